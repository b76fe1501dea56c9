// SPDX-License-Identifier: MPL-2.0

//! Incremental push parser for MJPEG-over-HTTP response bodies.
//!
//! The parser is fed the body in arbitrary chunks ([`Parser::feed`]) and calls
//! a [`Handler`] as parts start, carry data and end. Body bytes are handed to
//! [`Handler::part_data`] as slices of the caller's chunk; the parser copies
//! only header lines and, when it has to search for a delimiter, a
//! delimiter-sized tail that might begin a match. All of its memory is
//! bounded by [`Limits`], whatever the input.
//!
//! # Modes
//!
//! A body is either `multipart/*` or raw concatenated JPEGs. Raw mode is
//! chosen by an `image/*` or `application/octet-stream` Content-Type, or by a
//! body whose first byte is `0xFF`; it splits frames with
//! [`jpeg::FrameSplitter`]. Everything else is parsed as multipart.
//!
//! # Multipart state machine
//!
//! ```text
//! state          input                                  next state
//! Start          '-' / 0xFF / anything else             Between / Raw / Headers
//! Between        line ends                              Between
//!                the delimiter (a prefix of its line)   DelimiterLine
//!                anything else after a counted part     Junk
//!                anything else                          Resync
//! DelimiterLine  `--` after the delimiter               Between (Event::Closed)
//!                end of line                            Headers
//! Headers        blank line, or 0xFF at a line start    Counted (length) or Scanned
//!                a delimiter line before any header     Headers (start over)
//!                a line that is no header               Resync
//! Counted        last byte, ends with FF D9             Between (released)
//!                last byte, no FF D9 at the end         Trailer
//! Trailer        line ends + delimiter (or a delimiter  DelimiterLine (released)
//!                  straddling the part's end)
//!                anything else, delimiter inside part   DelimiterLine (cut, the rest re-parsed)
//!                anything else, no delimiter inside     Scanned (length too short)
//! Scanned        `\r?\n` + delimiter                    DelimiterLine
//! Junk           `\n` + delimiter                       DelimiterLine (Disagreement::Junk)
//! Resync         `\n` + delimiter                       DelimiterLine
//! ```
//!
//! * **Start**: the first byte tells a delimiter (`-`), raw JPEG (`0xFF`) and
//!   a body that starts directly with part headers apart.
//! * **Between** parts: line ends are skipped, then the delimiter line must
//!   follow. Until the delimiter is learnt, any line starting with `--` is
//!   one.
//! * **DelimiterLine**: the rest of the delimiter line is read. The first one
//!   teaches the delimiter ([`Event::BoundaryLearned`]); the Content-Type's
//!   `boundary` parameter only helps to find where it ends (`boundary=B`
//!   means `--B`, `boundary=--B` may mean either `----B` or `--B`). What
//!   follows the delimiter is `--` (close, unless the delimiter itself ends in
//!   `--`), nothing, or the first header glued to it.
//! * **Headers** are read line by line, any case and spacing. Blank lines and
//!   repeated delimiter lines before the first header are skipped; a `0xFF`
//!   at the start of a line there begins a part without headers.
//! * **Counted**: the body of a part with a Content-Length is passed through
//!   untouched (or read by the caller straight into its buffer, see
//!   [`Parser::feed_direct`]) and released the moment its last byte is in if
//!   it ends with `FF D9` (framing with the boundary before each part sends
//!   nothing after a frame until the next one). Nothing inside the counted
//!   bytes is ever scanned on that path. Non-JPEG parts end at their length.
//! * **Trailer**: the counted bytes do not end with `FF D9`. If line ends and
//!   the delimiter follow, the part is complete (a JPEG padded after its
//!   EOI, or a length that counted part of the delimiter, which is then cut
//!   off). Otherwise Content-Length and the delimiter disagree, and the
//!   delimiter wins: only now are the counted bytes searched, through
//!   [`Handler::part_bytes`]. A delimiter inside them means the length was
//!   too long: the part is cut before it ([`Handler::part_truncate`]) and
//!   released, and the bytes after it are parsed again as the next part,
//!   from a parser-owned copy (parts whose headers end inside that copy are
//!   split on the delimiter, not by their length). No delimiter inside means
//!   the length was too short: the part continues as Scanned. A handler that
//!   keeps no bytes gets the part aborted ([`Disagreement::Dropped`]).
//! * **Scanned**: the body of a part without length ends at `\r?\n` +
//!   delimiter, found with a `memmem` finder, and is released at the match
//!   without waiting for what follows.
//! * **Junk**: bytes after a part that ended by its length (with `FF D9`),
//!   before the next delimiter, are skipped and reported once per run
//!   ([`Disagreement::Junk`]); lengths stay trusted.
//! * **Resync**: garbage is skipped up to the next delimiter, at most
//!   [`Limits::max_garbage`] bytes (as is junk).
//!
//! A part is never released with bytes that are not its own or cut short:
//! what cannot be recovered whole is aborted ([`Handler::part_abort`]).
//!
//! The Content-Length path and its repairs live in `length.rs`, the
//! delimiter search in `scan.rs`, the public types in `handler.rs`.

use super::handler::{Disagreement, Event, Handler, Limits, ParseError, PartInfo, SkipReason};
use super::scan::{Delimiter, Scanner, Tail};
use crate::jpeg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Start,
    /// `matched` bytes of the delimiter prefix seen; `after_length`: the
    /// previous part was framed by its Content-Length.
    Between {
        matched: usize,
        after_length: bool,
    },
    DelimiterLine,
    Headers,
    Counted {
        remaining: u64,
    },
    /// After the counted bytes of a part that does not end with `FF D9`.
    Trailer,
    Scanned,
    Junk,
    Resync,
    Raw,
    Failed(ParseError),
}

/// Where the body of the current part goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sink {
    /// A JPEG candidate whose first byte has not arrived.
    Unstarted,
    /// Accepted by the handler.
    Delivering,
    /// Skipped, refused or abandoned, or no part open.
    Discarding,
}

/// The part whose body is being read.
pub(super) struct Body {
    pub(super) info: PartInfo,
    pub(super) sink: Sink,
    /// JPEG candidate: a counted body must end like a JPEG.
    pub(super) jpeg: bool,
    pub(super) size: u64,
    pub(super) tail: Tail,
}

impl Body {
    const NONE: Self = Self {
        info: PartInfo {
            content_type: None,
            content_length: None,
            timestamp: None,
            index: 0,
        },
        sink: Sink::Discarding,
        jpeg: false,
        size: 0,
        tail: Tail::EMPTY,
    };

    pub(super) fn new(info: PartInfo, jpeg: bool) -> Self {
        Self {
            info,
            sink: if jpeg {
                Sink::Unstarted
            } else {
                Sink::Discarding
            },
            jpeg,
            ..Self::NONE
        }
    }
}

/// Header fields collected so far for the next part.
#[derive(Default)]
pub(super) struct Headers {
    pub(super) content_type: Option<String>,
    pub(super) content_length: Option<u64>,
    pub(super) timestamp: Option<f64>,
    /// Header lines seen.
    pub(super) count: usize,
    /// Bytes of the header block.
    pub(super) size: usize,
}

/// Incremental MJPEG body parser. Its state machine is described at the
/// top of `src/multipart/parser.rs`.
pub struct Parser {
    pub(super) limits: Limits,
    pub(super) state: State,
    pub(super) delimiter: Delimiter,
    /// An incomplete delimiter or header line, at most `max_header_size`.
    pub(super) line: Vec<u8>,
    pub(super) headers: Headers,
    pub(super) body: Body,
    pub(super) scanner: Scanner,
    pub(super) splitter: jpeg::FrameSplitter,
    /// In Trailer: the last bytes of the counted body (`trail_counted` of
    /// them, at most a delimiter's length), then the bytes after it.
    pub(super) trail: Vec<u8>,
    pub(super) trail_counted: usize,
    /// Bytes to parse again before the rest of the input: what followed a
    /// delimiter found inside a part's counted bytes. At most a part.
    pub(super) replay: Vec<u8>,
    /// `replay` is being parsed: Content-Length is not used for parts whose
    /// headers end there, so that a replay never yields another one.
    pub(super) replaying: bool,
    /// Bytes after a counted part that were not its delimiter.
    pub(super) junk: u64,
    /// Bytes skipped since the last delimiter (or JPEG start).
    pub(super) garbage: usize,
    /// Parts seen.
    pub(super) parts: u64,
}

impl Parser {
    /// `content_type`: the HTTP response Content-Type header value if any.
    /// Multipart types give a boundary hint; `image/*` and
    /// `application/octet-stream` select raw concatenated-JPEG mode, as does
    /// a body that starts with `0xFF`.
    pub fn new(content_type: Option<&str>, limits: Limits) -> Self {
        let content_type = content_type.unwrap_or_default();
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let boundary = super::boundary_param(content_type);
        let raw = media_type.starts_with("image/") || media_type == "application/octet-stream";
        Self {
            limits,
            state: if raw { State::Raw } else { State::Start },
            delimiter: Delimiter::new(boundary),
            line: Vec::new(),
            headers: Headers::default(),
            body: Body::NONE,
            scanner: Scanner::default(),
            splitter: jpeg::FrameSplitter::new(),
            trail: Vec::new(),
            trail_counted: 0,
            replay: Vec::new(),
            replaying: false,
            junk: 0,
            garbage: 0,
            parts: 0,
        }
    }

    /// The delimiter line learnt from the body, including its leading `--`.
    #[cfg(any(test, feature = "internals"))]
    pub fn delimiter(&self) -> Option<&[u8]> {
        self.delimiter.learnt.as_deref()
    }

    /// Whether the body is being split as raw concatenated JPEGs.
    #[cfg(any(test, feature = "internals"))]
    pub fn is_raw_jpeg(&self) -> bool {
        self.state == State::Raw
    }

    /// Parses the next chunk of the body. After an error the parser stays
    /// failed; the open part, if any, has been aborted.
    pub fn feed<H: Handler>(&mut self, chunk: &[u8], h: &mut H) -> Result<(), ParseError> {
        let result = self.run(chunk, h);
        if let Err(e) = result {
            self.fail(e, h);
        }
        result
    }

    pub(super) fn fail<H: Handler>(&mut self, e: ParseError, h: &mut H) {
        self.abort_part(h);
        self.replay = Vec::new();
        self.replaying = false;
        self.state = State::Failed(e);
    }

    /// Runs the state machine over `input`, and over the replay as soon as
    /// a step asks for one (before the rest of `input`).
    pub(super) fn run<H: Handler>(&mut self, input: &[u8], h: &mut H) -> Result<(), ParseError> {
        let mut input = input;
        while !input.is_empty() {
            let used = self.step(input, h)?;
            input = input.get(used..).unwrap_or_default();
            if !self.replay.is_empty() && !self.replaying {
                self.replay(h)?;
            }
        }
        Ok(())
    }

    pub(super) fn replay<H: Handler>(&mut self, h: &mut H) -> Result<(), ParseError> {
        let bytes = std::mem::take(&mut self.replay);
        self.replaying = true;
        let result = self.run(&bytes, h);
        self.replaying = false;
        result
    }

    pub(super) fn step<H: Handler>(
        &mut self,
        input: &[u8],
        h: &mut H,
    ) -> Result<usize, ParseError> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Start => Ok(self.start(input)),
            State::Between {
                matched,
                after_length,
            } => self.between(input, matched, after_length, h),
            State::DelimiterLine => self.delimiter_line(input, h),
            State::Headers => self.headers(input, h),
            State::Counted { remaining } => self.counted(input, remaining, h),
            State::Trailer => Ok(self.trailer(input, h)),
            State::Scanned => self.scanned(input, h),
            State::Junk => self.skip_junk(input, h),
            State::Resync => self.resync(input),
            State::Raw => self.raw(input, h),
        }
    }

    /// End of the body. A part cut short by it is completed if it is whole
    /// by the delimiter rules (a part without length that ends with
    /// `FF D9`, a part whose counted bytes hold a delimiter, a part whose
    /// delimiter had begun), else aborted. Call it once; the body of another
    /// response needs a new parser.
    pub fn finish<H: Handler>(&mut self, h: &mut H) {
        if self.state == State::Junk {
            let scanner = std::mem::take(&mut self.scanner);
            let held = scanner.hold.len().saturating_sub(scanner.skip) as u64;
            h.disagreement(Disagreement::Junk(std::mem::take(&mut self.junk) + held));
        }
        if let Err(e) = self.finish_counted(h) {
            self.fail(e, h);
            return;
        }
        if self.state == State::Scanned {
            let scanner = std::mem::take(&mut self.scanner);
            let pending = scanner.hold.get(scanner.skip..).unwrap_or_default();
            let needle = self.delimiter.needle();
            // Held back: body data, then possibly the start of a delimiter
            // (`\r?\n--B`) that the end of the body cut short.
            let delimiter_start = |p: &[u8]| {
                !p.is_empty()
                    && (needle.starts_with(p)
                        || p.strip_prefix(b"\r").is_some_and(|p| needle.starts_with(p)))
            };
            let data_len = (0..pending.len())
                .find(|&at| delimiter_start(&pending[at..]))
                .unwrap_or(pending.len());
            let flushed = self.body_data(&pending[..data_len], h).is_ok();
            if flushed && self.body.sink == Sink::Delivering && self.body.tail.ends_with_eoi() {
                self.end_part(h);
            }
        }
        self.abort_part(h);
    }

    /// `finish` inside a counted part or its trailer: the delimiter rules
    /// decide, as they would have with more input.
    pub(super) fn finish_counted<H: Handler>(&mut self, h: &mut H) -> Result<(), ParseError> {
        match self.state {
            State::Counted { .. } => {
                let cut = self.too_long(&[], h);
                if cut {
                    self.replay(h)?;
                }
            }
            State::Trailer => {
                let after = self.trail.split_off(self.trail_counted);
                if self.too_long(&after, h) {
                    self.replay(h)?;
                } else if let Some(start) = self.trail_open_delimiter(&after) {
                    self.trail.extend_from_slice(&after);
                    self.trail_complete(start, h);
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn start(&mut self, input: &[u8]) -> usize {
        self.state = match input.first() {
            Some(b'\r' | b'\n') => return 1,
            Some(b'-') => State::Between {
                matched: 0,
                after_length: false,
            },
            Some(0xFF) => State::Raw,
            _ => State::Headers,
        };
        0
    }

    pub(super) fn between<H: Handler>(
        &mut self,
        input: &[u8],
        matched: usize,
        after_length: bool,
        h: &mut H,
    ) -> Result<usize, ParseError> {
        if matched == 0 {
            let line_ends = input
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if line_ends > 0 {
                self.skip_garbage(line_ends)?;
                if after_length {
                    self.junk += line_ends as u64;
                }
                return Ok(line_ends);
            }
        }
        let prefix = self.delimiter.prefix();
        let wanted = prefix.get(matched..).unwrap_or_default();
        let common = wanted.iter().zip(input).take_while(|(a, b)| a == b).count();
        if common == wanted.len() {
            self.line.clear();
            self.line.extend_from_slice(prefix);
            self.state = State::DelimiterLine;
        } else if common == input.len() {
            self.state = State::Between {
                matched: matched + common,
                after_length,
            };
        } else if after_length {
            // Junk after a part framed by its length: skip it, keep trusting
            // lengths.
            self.junk += (matched + common) as u64;
            self.scanner.reset(false);
            self.state = State::Junk;
        } else {
            self.start_resync(false, h);
        }
        Ok(common)
    }

    pub(super) fn delimiter_line<H: Handler>(
        &mut self,
        input: &[u8],
        h: &mut H,
    ) -> Result<usize, ParseError> {
        let (complete, used) = self.read_line(input)?;
        if complete {
            let line = std::mem::take(&mut self.line);
            self.on_delimiter(line.trim_ascii_end(), h);
            self.line = line;
            self.line.clear();
        }
        Ok(used)
    }

    /// A delimiter line (trimmed) was read: learn the delimiter, then close
    /// or begin the header block.
    pub(super) fn on_delimiter<H: Handler>(&mut self, line: &[u8], h: &mut H) {
        let len = match &self.delimiter.learnt {
            Some(learnt) => learnt.len(),
            None => {
                let len = self.delimiter.learn(line);
                h.event(Event::BoundaryLearned(line[..len].to_vec()));
                len
            }
        };
        self.garbage = 0;
        let rest = line.get(len..).unwrap_or_default();
        if self.delimiter.is_close(rest) {
            h.event(Event::Closed);
            self.state = State::Between {
                matched: 0,
                after_length: false,
            };
            return;
        }
        self.headers = Headers::default();
        self.state = State::Headers;
        if !rest.is_empty() {
            self.header_line(rest, h);
        }
    }

    pub(super) fn headers<H: Handler>(
        &mut self,
        input: &[u8],
        h: &mut H,
    ) -> Result<usize, ParseError> {
        if self.line.is_empty() && self.headers.count == 0 {
            match input.first() {
                // Blank lines before the first header.
                Some(b'\r' | b'\n') => return self.count_header_bytes(1).map(|()| 1),
                // A part without headers.
                Some(0xFF) => {
                    self.end_headers(h);
                    return Ok(0);
                }
                _ => {}
            }
        }
        let (complete, used) = self.read_line(input)?;
        self.count_header_bytes(used)?;
        if complete {
            let line = std::mem::take(&mut self.line);
            let content = trim_line_end(&line);
            if content.is_empty() {
                self.end_headers(h);
            } else {
                self.header_line(content, h);
            }
            self.line = line;
            self.line.clear();
        }
        Ok(used)
    }

    pub(super) fn count_header_bytes(&mut self, n: usize) -> Result<(), ParseError> {
        self.headers.size += n;
        if self.headers.size > self.limits.max_header_size {
            return Err(ParseError::HeaderTooLarge);
        }
        Ok(())
    }

    /// One header line (without its line end).
    pub(super) fn header_line<H: Handler>(&mut self, line: &[u8], h: &mut H) {
        if line.starts_with(self.delimiter.prefix()) {
            // A repeated delimiter line: start the header block over.
            self.on_delimiter(line.trim_ascii_end(), h);
            return;
        }
        let Some((name, value)) = line
            .iter()
            .position(|&b| b == b':')
            .map(|colon| (&line[..colon], &line[colon + 1..]))
        else {
            // Folded continuation lines are ignored; anything else is junk.
            if !line.starts_with(b" ") && !line.starts_with(b"\t") {
                self.start_resync(true, h);
            }
            return;
        };
        self.headers.count += 1;
        let Ok(value) = std::str::from_utf8(value) else {
            return;
        };
        let value = value.trim();
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-type") {
            let media_type = value.split(';').next().unwrap_or_default().trim();
            self.headers.content_type = Some(media_type.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case(b"content-length") {
            self.headers.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case(b"x-timestamp") {
            self.headers.timestamp = value.parse().ok().filter(|t: &f64| t.is_finite());
        }
    }

    /// The header block is complete: skip the part or read its body.
    pub(super) fn end_headers<H: Handler>(&mut self, h: &mut H) {
        let headers = std::mem::take(&mut self.headers);
        let info = PartInfo {
            content_type: headers.content_type,
            content_length: headers
                .content_length
                .filter(|&n| n <= self.limits.max_part_size as u64),
            timestamp: headers.timestamp,
            index: self.parts,
        };
        self.parts += 1;
        let length = info.content_length.filter(|_| !self.replaying);
        let jpeg = matches!(
            info.content_type.as_deref(),
            None | Some("image/jpeg" | "image/jpg" | "image/pjpeg")
        );
        if length == Some(0) {
            h.event(Event::Skipped(SkipReason::Empty));
            self.after_counted_part();
            return;
        }
        if !jpeg {
            h.event(Event::Skipped(SkipReason::NotJpeg));
        }
        self.body = Body::new(info, jpeg);
        self.state = match length {
            Some(remaining) => State::Counted { remaining },
            None => {
                self.scanner.reset(true);
                State::Scanned
            }
        };
    }
}

impl Parser {
    pub(super) fn scanned<H: Handler>(
        &mut self,
        input: &[u8],
        h: &mut H,
    ) -> Result<usize, ParseError> {
        let step = self.scanner.step(&self.delimiter.finder, input);
        let held = self.scanner.hold.len();
        let hold = std::mem::take(&mut self.scanner.hold);
        let from_hold = hold
            .get(step.data.start.min(held)..step.data.end.min(held))
            .unwrap_or_default();
        let delivered = self.body_data(from_hold, h);
        self.scanner.hold = hold;
        delivered?;
        let from_input = input
            .get(step.data.start.max(held) - held..step.data.end.max(held) - held)
            .unwrap_or_default();
        self.body_data(from_input, h)?;
        self.scanner.commit(input, &step);
        if step.found {
            self.end_part(h);
            self.enter_delimiter_line();
        }
        Ok(step.used)
    }

    /// Junk after a counted part, up to the next delimiter.
    pub(super) fn skip_junk<H: Handler>(
        &mut self,
        input: &[u8],
        h: &mut H,
    ) -> Result<usize, ParseError> {
        let step = self.scanner.step(&self.delimiter.finder, input);
        self.junk += step.data.len() as u64;
        if let Err(e) = self.skip_garbage(step.used) {
            // The run ends here: no delimiter within the limit.
            h.disagreement(Disagreement::Junk(std::mem::take(&mut self.junk)));
            return Err(e);
        }
        self.scanner.commit(input, &step);
        if step.found {
            h.disagreement(Disagreement::Junk(std::mem::take(&mut self.junk)));
            self.enter_delimiter_line();
        }
        Ok(step.used)
    }

    pub(super) fn resync(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        let step = self.scanner.step(&self.delimiter.finder, input);
        self.skip_garbage(step.used)?;
        self.scanner.commit(input, &step);
        if step.found {
            self.enter_delimiter_line();
        }
        Ok(step.used)
    }

    pub(super) fn raw<H: Handler>(&mut self, input: &[u8], h: &mut H) -> Result<usize, ParseError> {
        let in_frame = self.splitter.in_frame();
        let (used, mark) = self.splitter.scan(input);
        let seen = &input[..used];
        match mark {
            None if in_frame => self.body_data(seen, h)?,
            None => self.skip_garbage(used)?,
            Some(jpeg::Mark::Soi { carried }) => {
                let soi = if carried { 1 } else { 2 };
                self.skip_garbage(used - soi)?;
                self.garbage = 0;
                self.body = Body::new(
                    PartInfo {
                        index: self.parts,
                        ..PartInfo::default()
                    },
                    true,
                );
                self.parts += 1;
                if carried {
                    self.body_data(&[0xFF], h)?;
                }
                self.body_data(&seen[used - soi..], h)?;
            }
            Some(jpeg::Mark::Eoi) => {
                self.body_data(seen, h)?;
                self.end_part(h);
            }
        }
        Ok(used)
    }

    /// Appends `input` up to and including the next LF to `self.line`.
    /// Returns whether the line is complete and the bytes consumed.
    pub(super) fn read_line(&mut self, input: &[u8]) -> Result<(bool, usize), ParseError> {
        let (used, complete) = match memchr::memchr(b'\n', input) {
            Some(lf) => (lf + 1, true),
            None => (input.len(), false),
        };
        if self.line.len() + used > self.limits.max_header_size {
            return Err(ParseError::HeaderTooLarge);
        }
        self.line.extend_from_slice(&input[..used]);
        Ok((complete, used))
    }

    /// A body scan or resync matched `\n` + delimiter prefix: read the rest
    /// of its line.
    pub(super) fn enter_delimiter_line(&mut self) {
        self.line.clear();
        self.line
            .extend_from_slice(self.delimiter.needle().get(1..).unwrap_or_default());
        self.state = State::DelimiterLine;
    }

    pub(super) fn start_resync<H: Handler>(&mut self, at_line_start: bool, h: &mut H) {
        h.event(Event::Resync);
        self.scanner.reset(at_line_start);
        self.state = State::Resync;
    }

    pub(super) fn skip_garbage(&mut self, n: usize) -> Result<(), ParseError> {
        self.garbage += n;
        if self.garbage > self.limits.max_garbage {
            return Err(ParseError::NoDelimiter);
        }
        Ok(())
    }

    /// Body bytes of the current part: counted, remembered for the end
    /// check, and delivered if the handler wants them.
    pub(super) fn body_data<H: Handler>(
        &mut self,
        data: &[u8],
        h: &mut H,
    ) -> Result<(), ParseError> {
        if data.is_empty() {
            return Ok(());
        }
        let body = &mut self.body;
        body.size += data.len() as u64;
        if body.size > self.limits.max_part_size as u64 {
            return Err(ParseError::PartTooLarge);
        }
        body.tail.push(data);
        if body.sink == Sink::Unstarted {
            body.sink = if h.part_start(&body.info) {
                Sink::Delivering
            } else {
                Sink::Discarding
            };
        }
        if body.sink == Sink::Delivering && !h.part_data(data) {
            body.sink = Sink::Discarding;
        }
        Ok(())
    }

    pub(super) fn end_part<H: Handler>(&mut self, h: &mut H) {
        match self.body.sink {
            Sink::Delivering => h.part_end(),
            Sink::Unstarted => h.event(Event::Skipped(SkipReason::Empty)),
            Sink::Discarding => {}
        }
        self.body.sink = Sink::Discarding;
    }

    pub(super) fn abort_part<H: Handler>(&mut self, h: &mut H) {
        if self.body.sink == Sink::Delivering {
            h.part_abort();
        }
        self.body.sink = Sink::Discarding;
    }
}

pub(super) fn is_line_end(byte: u8) -> bool {
    byte == b'\r' || byte == b'\n'
}

/// `line` without its trailing `\n` or `\r\n`.
pub(super) fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::tests::{jpeg_with_thumbnail, synthetic_jpeg};

    const MJPEG: Option<&str> = Some("multipart/x-mixed-replace; boundary=B");

    /// Records everything a parser reports, checking the call order.
    #[derive(Debug, Default, PartialEq)]
    struct Recorder {
        frames: Vec<Vec<u8>>,
        infos: Vec<PartInfo>,
        events: Vec<Event>,
        disagreements: Vec<Disagreement>,
        aborted: Vec<Vec<u8>>,
        current: Option<Vec<u8>>,
        error: Option<ParseError>,
        /// Refuse parts whose index is listed here.
        refuse: Vec<u64>,
        /// Keep no bytes for the parser (`part_bytes` is `None`).
        forgetful: bool,
    }

    impl Handler for Recorder {
        fn part_start(&mut self, info: &PartInfo) -> bool {
            assert!(self.current.is_none(), "part_start inside a part");
            self.infos.push(info.clone());
            if self.refuse.contains(&info.index) {
                return false;
            }
            self.current = Some(Vec::new());
            true
        }
        fn part_data(&mut self, data: &[u8]) -> bool {
            assert!(!data.is_empty(), "empty part_data");
            self.current
                .as_mut()
                .expect("part_data outside a part")
                .extend_from_slice(data);
            true
        }
        fn part_end(&mut self) {
            let frame = self.current.take().expect("part_end outside a part");
            self.frames.push(frame);
        }
        fn part_abort(&mut self) {
            let frame = self.current.take().expect("part_abort outside a part");
            self.aborted.push(frame);
        }
        fn event(&mut self, ev: Event) {
            self.events.push(ev);
        }
        fn part_bytes(&self) -> Option<&[u8]> {
            self.current.as_deref().filter(|_| !self.forgetful)
        }
        fn part_truncate(&mut self, len: usize) {
            assert!(!self.forgetful, "part_truncate without part_bytes");
            let frame = self.current.as_mut().expect("part_truncate outside a part");
            assert!(0 < len && len < frame.len(), "part_truncate to {len}");
            frame.truncate(len);
        }
        fn disagreement(&mut self, d: Disagreement) {
            self.disagreements.push(d);
        }
    }

    fn parse_with(content_type: Option<&str>, limits: Limits, chunks: &[&[u8]]) -> Recorder {
        let mut parser = Parser::new(content_type, limits);
        let mut rec = Recorder::default();
        for chunk in chunks {
            if let Err(e) = parser.feed(chunk, &mut rec) {
                rec.error = Some(e);
                assert!(rec.current.is_none(), "part left open after an error");
                return rec;
            }
        }
        parser.finish(&mut rec);
        assert!(rec.current.is_none(), "part left open after finish");
        rec
    }

    fn parse(content_type: Option<&str>, chunks: &[&[u8]]) -> Recorder {
        parse_with(content_type, Limits::default(), chunks)
    }

    /// Parses `input` whole, split in two at every byte boundary and one
    /// byte at a time, asserting identical results; returns them.
    fn parse_all_splits(content_type: Option<&str>, input: &[u8]) -> Recorder {
        let whole = parse(content_type, &[input]);
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(parse(content_type, &[a, b]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse(content_type, &bytes), whole, "byte by byte");
        for step in [1, 3, 7, 64, input.len().max(1)] {
            assert_eq!(
                parse_direct(content_type, input, step),
                whole,
                "direct reads of {step}"
            );
        }
        whole
    }

    /// Parses `input` in chunks of `step`, writing counted bodies into the
    /// handler's frame directly and reporting them with `feed_direct`, as
    /// the source does when it reads from the socket into a pool buffer.
    fn parse_direct(content_type: Option<&str>, input: &[u8], step: usize) -> Recorder {
        parse_direct_with(content_type, Limits::default(), input, step)
    }

    fn parse_direct_with(
        content_type: Option<&str>,
        limits: Limits,
        input: &[u8],
        step: usize,
    ) -> Recorder {
        let mut parser = Parser::new(content_type, limits);
        let mut rec = Recorder::default();
        let mut rest = input;
        while !rest.is_empty() {
            let result = match (parser.direct_remaining(), rec.current.as_mut()) {
                (Some(due), Some(frame)) => {
                    let n = usize::try_from(due)
                        .unwrap_or(usize::MAX)
                        .min(step)
                        .min(rest.len());
                    frame.extend_from_slice(&rest[..n]);
                    let last = frame[frame.len().saturating_sub(64)..].to_vec();
                    rest = &rest[n..];
                    parser.feed_direct(n, &last, &mut rec)
                }
                _ => {
                    let n = step.min(rest.len());
                    let result = parser.feed(&rest[..n], &mut rec);
                    rest = &rest[n..];
                    result
                }
            };
            if let Err(e) = result {
                rec.error = Some(e);
                return rec;
            }
        }
        parser.finish(&mut rec);
        rec
    }

    fn cat(pieces: &[&[u8]]) -> Vec<u8> {
        pieces.concat()
    }

    fn j(fill: u8) -> Vec<u8> {
        synthetic_jpeg(32, 16, fill)
    }

    /// A part with `Content-Type: image/jpeg` and a correct Content-Length.
    fn counted(jpeg: &[u8]) -> Vec<u8> {
        let headers = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        );
        cat(&[headers.as_bytes(), jpeg])
    }

    fn learnt(line: &str) -> Event {
        Event::BoundaryLearned(line.as_bytes().to_vec())
    }

    #[test]
    fn boundary_after_each_part() {
        let (a, b) = (j(1), j(2));
        let mut part_a = b"Content-Type: image/jpeg\r\nContent-Length: ".to_vec();
        part_a.extend_from_slice(
            format!("{}\r\nX-Timestamp: 1712345678.125\r\n\r\n", a.len()).as_bytes(),
        );
        let input = cat(&[
            b"--B\r\n",
            &part_a,
            &a,
            b"\r\n--B\r\n",
            &counted(&b),
            b"\r\n--B\r\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a.clone(), b.clone()]);
        assert_eq!(rec.events, vec![learnt("--B")]);
        assert_eq!(
            rec.infos[0],
            PartInfo {
                content_type: Some("image/jpeg".into()),
                content_length: Some(a.len() as u64),
                timestamp: Some(1712345678.125),
                index: 0,
            }
        );
        assert_eq!(rec.infos[1].index, 1);
        assert_eq!(rec.infos[1].timestamp, None);
    }

    #[test]
    fn boundary_before_each_part() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[b"\r\n--B\r\n", &counted(&a), b"\r\n--B\r\n", &counted(&b)]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b]);
        assert_eq!(rec.events, vec![learnt("--B")]);
    }

    #[test]
    fn counted_part_released_with_its_last_byte() {
        let a = j(1);
        let input = cat(&[b"\r\n--B\r\n", &counted(&a)]);
        for at in 0..input.len() {
            let mut parser = Parser::new(MJPEG, Limits::default());
            let mut rec = Recorder::default();
            parser.feed(&input[..at], &mut rec).unwrap();
            assert!(rec.frames.is_empty());
            parser.feed(&input[at..], &mut rec).unwrap();
            assert_eq!(rec.frames, vec![a.clone()], "second chunk from {at}");
        }
    }

    #[test]
    fn scanned_part_released_at_delimiter_match() {
        let a = j(1);
        let head = cat(&[b"--B\r\nContent-Type: image/jpeg\r\n\r\n", &a, b"\r\n--B"]);
        let mut parser = Parser::new(MJPEG, Limits::default());
        let mut rec = Recorder::default();
        parser.feed(&head, &mut rec).unwrap();
        assert_eq!(rec.frames, vec![a]);
    }

    #[test]
    fn first_boundary_missing() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[&counted(&a), b"\r\n--B\r\n", &counted(&b), b"\r\n--B\r\n"]);
        for content_type in [MJPEG, None] {
            let rec = parse_all_splits(content_type, &input);
            assert_eq!(rec.frames, vec![a.clone(), b.clone()]);
            assert_eq!(rec.events, vec![learnt("--B")]);
        }
        // Without lengths the hint tells where the first part ends.
        let input = cat(&[
            b"Content-Type: image/jpeg\r\n\r\n",
            &a,
            b"\r\n--B\r\n\r\n",
            &b,
            b"\r\n--B\r\n",
        ]);
        assert_eq!(parse_all_splits(MJPEG, &input).frames, vec![a, b]);
    }

    #[test]
    fn boundary_parameter_variants() {
        let a = j(1);
        let body = |line: &str| {
            cat(&[
                line.as_bytes(),
                b"\r\n",
                &counted(&a),
                b"\r\n",
                line.as_bytes(),
                b"\r\n",
            ])
        };
        let cases = [
            ("multipart/x-mixed-replace;boundary=frame", "--frame"),
            (
                "multipart/x-mixed-replace; boundary=\"MOBOTIX_Fast_Serverpush\"",
                "--MOBOTIX_Fast_Serverpush",
            ),
            ("Multipart/X-Mixed-Replace ; Boundary = myb", "--myb"),
            (
                "multipart/x-mixed-replace;boundary=--myboundary",
                "--myboundary",
            ),
            (
                "multipart/x-mixed-replace;boundary=--myboundary",
                "----myboundary",
            ),
            ("multipart/x-mixed-replace;boundary=wrong", "--actual"),
            ("multipart/x-mixed-replace", "--nohint"),
            ("multipart/mixed; boundary=mixed", "--mixed"),
        ];
        for (content_type, line) in cases {
            let rec = parse_all_splits(Some(content_type), &body(line));
            assert_eq!(rec.frames, vec![a.clone()], "{content_type} / {line}");
            assert_eq!(rec.events, vec![learnt(line)], "{content_type} / {line}");
        }
        // Learnt delimiters are exposed.
        let mut parser = Parser::new(Some(cases[3].0), Limits::default());
        parser
            .feed(&body("--myboundary"), &mut Recorder::default())
            .unwrap();
        assert_eq!(parser.delimiter(), Some(&b"--myboundary"[..]));
    }

    #[test]
    fn duplicated_delimiters_blank_lines_and_bare_lf() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[
            b"\r\n\r\n--B\r\n--B\r\n",
            &counted(&a),
            b"\r\n\n\r\n\n--B\r\n--B\n--B\r\n",
            &counted(&b),
            b"\n\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b]);
        assert_eq!(rec.events, vec![learnt("--B")]);
    }

    #[test]
    fn lf_only_stream() {
        let (a, b) = (j(1), j(2));
        let with_length = format!("Content-Type: image/jpeg\nContent-Length: {}\n\n", a.len());
        let input = cat(&[
            b"--B\n",
            with_length.as_bytes(),
            &a,
            b"\n--B\nContent-Type: image/jpeg\n\n",
            &b,
            b"\n--B\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b]);
    }

    #[test]
    fn header_spelling() {
        let a = j(1);
        let n = a.len();
        let headers = [
            format!("content-length: {n}\r\ncontent-type: image/jpeg\r\n\r\n"),
            format!("Content-type:image/jpeg\r\nContent-length:{n}\r\n\r\n"),
            format!("CONTENT-TYPE:   image/JPEG  \r\nContent-Length:     {n}   \r\n\r\n"),
            format!("Content-Length: 5\r\nContent-Type: image/jpeg\r\nContent-Length: {n}\r\n\r\n"),
            format!("Content-Type: image/jpeg\r\nContent-Length: {n}\r\nX-Folded: a\r\n b\r\n\r\n"),
        ];
        for h in &headers {
            let input = cat(&[b"--B\r\n", h.as_bytes(), &a, b"\r\n--B\r\n"]);
            let rec = parse_all_splits(MJPEG, &input);
            assert_eq!(rec.frames, vec![a.clone()], "{h}");
            assert_eq!(
                rec.infos[0].content_type.as_deref(),
                Some("image/jpeg"),
                "{h}"
            );
            assert_eq!(rec.infos[0].content_length, Some(n as u64), "{h}");
        }
    }

    #[test]
    fn no_content_length() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[
            b"--B\r\nContent-Type: image/jpeg\r\n\r\n",
            &a,
            b"\r\n--B\r\nContent-Type: image/jpeg\r\n\r\n",
            &b,
            b"\n--B--\r\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b]);
        assert_eq!(rec.events, vec![learnt("--B"), Event::Closed]);
        assert_eq!(rec.infos[0].content_length, None);
    }

    #[test]
    fn content_length_above_max_part_size_is_ignored() {
        let a = j(1);
        let input = cat(&[
            b"--B\r\nContent-Type: image/jpeg\r\nContent-Length: 999999\r\n\r\n",
            &a,
            b"\r\n--B\r\n",
        ]);
        let limits = Limits {
            max_part_size: 1000,
            ..Limits::default()
        };
        let rec = parse_with(MJPEG, limits, &[&input]);
        assert_eq!(rec.frames, vec![a]);
        assert_eq!(rec.infos[0].content_length, None);
    }

    #[test]
    fn content_length_too_short() {
        let (a, b) = (j(1), j(2));
        let short = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            a.len() - 30
        );
        let input = cat(&[
            b"--B\r\n",
            short.as_bytes(),
            &a,
            b"\r\n--B\r\n",
            &counted(&b),
            b"\r\n--B\r\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b]);
        assert_eq!(rec.events, vec![learnt("--B"), Event::LengthMismatch]);
    }

    /// A part with `Content-Type: image/jpeg` and the given Content-Length.
    fn with_length(jpeg: &[u8], length: usize) -> Vec<u8> {
        let headers = format!("Content-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n");
        cat(&[headers.as_bytes(), jpeg])
    }

    /// Like `parse_all_splits` for long inputs: whole, byte by byte, direct
    /// reads, and split in two at every `stride`th byte.
    fn parse_some_splits(content_type: Option<&str>, input: &[u8], stride: usize) -> Recorder {
        let whole = parse(content_type, &[input]);
        for at in (0..=input.len()).step_by(stride) {
            let (a, b) = input.split_at(at);
            assert_eq!(parse(content_type, &[a, b]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse(content_type, &bytes), whole, "byte by byte");
        for step in [1, 7, 64, 1000, input.len().max(1)] {
            assert_eq!(
                parse_direct(content_type, input, step),
                whole,
                "direct reads of {step}"
            );
        }
        whole
    }

    #[test]
    fn content_length_too_long_ends_at_the_inner_delimiter() {
        let (a, b, c) = (j(1), j(2), j(3));
        let input = cat(&[
            b"--B\r\n",
            &with_length(&a, a.len() + 10),
            b"\r\n--B\r\n",
            &counted(&b),
            b"\r\n--B\r\n",
            // Too short now: extended to the delimiter.
            &with_length(&c, 3),
            b"\r\n--B\r\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b, c]);
        assert!(rec.aborted.is_empty());
        assert_eq!(
            rec.events,
            vec![learnt("--B"), Event::LengthMismatch, Event::LengthMismatch]
        );
        assert_eq!(
            rec.disagreements,
            vec![Disagreement::TooLong, Disagreement::TooShort]
        );
    }

    #[test]
    fn over_long_first_length_loses_no_frame() {
        // Some VLC versions send the first part with the length of another
        // frame: the counted bytes run into the next part (or parts), or
        // end inside its delimiter.
        let (a, b, c) = (j(1), jpeg_with_thumbnail(), j(3));
        let layouts = [
            // (start, delimiter line, end)
            (&b"--B\r\n"[..], &b"\r\n--B\r\n"[..], &b"\r\n--B\r\n"[..]),
            (b"\r\n--B\r\n", b"\r\n--B\r\n", b""),
            // Delimiters glued to the next header.
            (b"--B", b"\r\n--B", b"\r\n--B--\r\n"),
        ];
        for (start, delimiter, end) in layouts {
            let rest = cat(&[delimiter, &counted(&b), delimiter, &counted(&c)]);
            // Up to the byte before the last EOI: a count that ends with
            // an EOI is taken as complete.
            for extra in (1..12).chain([30, 60, rest.len() - 40, rest.len() - 1]) {
                let first = with_length(&a, a.len() + extra);
                let input = cat(&[start, &first, &rest, end]);
                let rec = parse_all_splits(MJPEG, &input);
                let name = String::from_utf8_lossy(delimiter);
                assert_eq!(
                    rec.frames,
                    vec![a.clone(), b.clone(), c.clone()],
                    "{extra} too many, delimiter {name:?}"
                );
                assert!(rec.aborted.is_empty(), "{extra} too many");
                assert_eq!(rec.disagreements, vec![Disagreement::TooLong]);
                // Every header was read whole, glued ones too.
                let types: Vec<_> = rec
                    .infos
                    .iter()
                    .map(|i| i.content_type.as_deref())
                    .collect();
                assert_eq!(types, [Some("image/jpeg"); 3], "{extra} too many");
            }
        }
    }

    #[test]
    fn over_long_length_at_the_end_of_the_stream() {
        let (a, b) = (j(1), j(2));
        let part_b = cat(&[b"\r\n--B\r\n", &counted(&b)]);
        let head = cat(&[b"--B\r\n", &with_length(&a, a.len() + part_b.len() + 100)]);
        // The stream ends inside the next part: that one is dropped, never
        // pushed truncated; the first ends at the delimiter.
        let cut = cat(&[&head, &part_b[..part_b.len() - 10]]);
        let rec = parse_all_splits(MJPEG, &cut);
        assert_eq!(rec.frames, vec![a.clone()]);
        assert_eq!(rec.aborted, vec![b[..b.len() - 10].to_vec()]);
        // The stream ends after the next part: both are whole.
        let whole = cat(&[&head, &part_b]);
        let rec = parse_all_splits(MJPEG, &whole);
        assert_eq!(rec.frames, vec![a.clone(), b]);
        assert!(rec.aborted.is_empty());
        // No delimiter among the bytes that came: dropped.
        let rec = parse_all_splits(MJPEG, &head);
        assert!(rec.frames.is_empty());
        assert_eq!(rec.aborted, vec![a]);
    }

    #[test]
    fn over_long_length_without_part_bytes_is_dropped() {
        let (a, b, c) = (j(1), j(2), j(3));
        let input = cat(&[
            b"--B\r\n",
            &with_length(&a, a.len() + 20),
            b"\r\n--B\r\n",
            &counted(&b),
            b"\r\n--B\r\n",
            &counted(&c),
            b"\r\n--B\r\n",
        ]);
        let mut parser = Parser::new(MJPEG, Limits::default());
        let mut rec = Recorder {
            forgetful: true,
            ..Recorder::default()
        };
        parser.feed(&input, &mut rec).unwrap();
        parser.finish(&mut rec);
        // The first frame cannot be cut, the second began inside it: only
        // the third is whole.
        assert_eq!(rec.frames, vec![c]);
        assert_eq!(rec.disagreements, vec![Disagreement::Dropped]);
        assert_eq!(rec.aborted.len(), 1);
    }

    #[test]
    fn content_length_too_short_with_padding_after_eoi() {
        // A JPEG padded after its EOI, with a short length: the EOI is among
        // the counted bytes (in their last 64), the padding is not.
        let padded = cat(&[&j(1), &[0; 40]]);
        let b = j(2);
        for short in [10, 30, 41] {
            let input = cat(&[
                b"--B\r\n",
                &with_length(&padded, padded.len() - short),
                b"\r\n--B\r\n",
                &counted(&b),
                b"\r\n--B\r\n",
            ]);
            let rec = parse_all_splits(MJPEG, &input);
            assert_eq!(rec.frames, vec![padded.clone(), b.clone()], "{short} short");
            assert_eq!(rec.disagreements, vec![Disagreement::TooShort]);
        }
        // With the right length the padded JPEG is complete when the
        // delimiter follows, even after blank lines.
        for eol in ["\r\n", "\n", "\r\n\r\n"] {
            let input = cat(&[
                b"--B\r\n",
                &counted(&padded),
                eol.as_bytes(),
                b"--B\r\n",
                &counted(&b),
            ]);
            let rec = parse_all_splits(MJPEG, &input);
            assert_eq!(rec.frames, vec![padded.clone(), b.clone()], "{eol:?}");
            assert!(rec.disagreements.is_empty());
        }
    }

    #[test]
    fn content_length_too_short_with_an_eoi_near_its_end() {
        // The counted bytes end a few bytes after the EOI of the EXIF
        // thumbnail: they hold an FF D9 among their last 64, but do not end
        // with it.
        let a = jpeg_with_thumbnail();
        let thumb_end = 12 + synthetic_jpeg(4, 3, 9).len();
        assert_eq!(a[thumb_end - 2..thumb_end], [0xFF, 0xD9]);
        let b = j(2);
        for short_at in [thumb_end + 1, thumb_end + 5, thumb_end + 40] {
            let input = cat(&[
                b"\r\n--B\r\n",
                &with_length(&a, short_at),
                b"\r\n--B\r\n",
                &counted(&b),
            ]);
            let rec = parse_all_splits(MJPEG, &input);
            assert_eq!(rec.frames, vec![a.clone(), b.clone()], "{short_at}");
            assert_eq!(rec.disagreements, vec![Disagreement::TooShort]);
        }
    }

    #[test]
    fn junk_after_complete_counted_parts_is_skipped() {
        let junks: [&[u8]; 5] = [b"junk", b"\r\nX", b"\0", b"-X-\r\n\r\n", b"\r\n-\r\n-"];
        let frames: Vec<Vec<u8>> = (0..100).map(|i| j(i as u8)).collect();
        let mut input = b"--B\r\n".to_vec();
        let mut expected = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let junk = junks[i % junks.len()];
            input.extend_from_slice(&cat(&[&counted(frame), junk, b"\r\n--B\r\n"]));
            expected.push(Disagreement::Junk(junk.len() as u64));
        }
        let rec = parse_some_splits(MJPEG, &input, 97);
        assert_eq!(rec.frames, frames);
        assert_eq!(rec.disagreements, expected);
        assert_eq!(rec.events, vec![learnt("--B")]);
        // A run that ends the stream is reported too.
        let unended = cat(&[b"--B\r\n", &counted(&frames[0]), b"junk\r\n-"]);
        let rec = parse_all_splits(MJPEG, &unended);
        assert_eq!(rec.frames, frames[..1]);
        assert_eq!(rec.disagreements, [Disagreement::Junk(7)]);
        let limits = Limits {
            max_garbage: 1000,
            ..Limits::default()
        };
        let endless = cat(&[b"--B\r\n", &counted(&frames[0]), &[b'x'; 2000]]);
        let rec = parse_with(MJPEG, limits, &[&endless]);
        assert_eq!(rec.error, Some(ParseError::NoDelimiter));
        assert!(matches!(rec.disagreements[..], [Disagreement::Junk(n)] if n > 1000));
        // Every split, on a shorter stream.
        let short = cat(&[b"--B\r\n", &input[5..][..3 * (input.len() - 5) / 100]]);
        let rec = parse_all_splits(MJPEG, &short);
        assert_eq!(rec.frames, frames[..3]);
        assert_eq!(rec.disagreements, expected[..3]);
    }

    #[test]
    fn lengths_stay_trusted_after_junk() {
        let (a, b) = (j(1), j(2));
        let head = cat(&[b"--B\r\n", &counted(&a), b"junk\r\n--B\r\n"]);
        let headers = b"Content-Type: image/jpeg\r\nContent-Length: ";
        let input = cat(&[&head, headers, format!("{}\r\n\r\n", b.len()).as_bytes()]);
        let mut parser = Parser::new(MJPEG, Limits::default());
        let mut rec = Recorder::default();
        parser.feed(&input, &mut rec).unwrap();
        parser.feed(&b[..1], &mut rec).unwrap();
        assert_eq!(parser.direct_remaining(), Some(b.len() as u64 - 1));
        parser.feed(&b[1..], &mut rec).unwrap();
        assert_eq!(rec.frames, vec![a, b]);
    }

    #[test]
    fn empty_parts_are_skipped() {
        let a = j(1);
        let input = cat(&[
            b"--B\r\nContent-Type: image/jpeg\r\nContent-Length: 0\r\n\r\n\r\n--B\r\n",
            b"Content-Type: image/jpeg\r\n\r\n\r\n--B\r\n",
            &counted(&a),
            b"\r\n--B\r\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a]);
        let skipped = Event::Skipped(SkipReason::Empty);
        assert_eq!(rec.events, vec![learnt("--B"), skipped.clone(), skipped]);
        assert_eq!(rec.infos[0].index, 2);
    }

    #[test]
    fn non_jpeg_parts_are_skipped() {
        let a = j(1);
        let mut input =
            b"--B\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\r\n--B\r\n"
                .to_vec();
        input.extend_from_slice(b"Content-Type: application/xml\r\n\r\n<a>\xFF\xD9</a>\r\n--B\r\n");
        input.extend_from_slice(
            b"Content-Type: video/x-h264\r\nContent-Length: 4\r\n\r\n\0\0\0\x01\r\n--B\r\n",
        );
        for content_type in [
            "image/jpeg",
            "image/jpg",
            "image/pjpeg",
            "image/jpeg;size=1234",
        ] {
            let h = format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                a.len()
            );
            input.extend_from_slice(&cat(&[h.as_bytes(), &a, b"\r\n--B\r\n"]));
        }
        input.extend_from_slice(&cat(&[b"X-Other: 1\r\n\r\n", &a, b"\r\n--B\r\n"]));
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a; 5]);
        let not_jpeg = Event::Skipped(SkipReason::NotJpeg);
        assert_eq!(
            rec.events,
            vec![learnt("--B"), not_jpeg.clone(), not_jpeg.clone(), not_jpeg]
        );
        assert_eq!(rec.infos[3].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(rec.infos[4].content_type, None);
        assert_eq!(rec.infos[4].index, 7);
    }

    #[test]
    fn boundary_ending_in_dashes_does_not_close() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[
            b"--data-boundary--\r\n",
            &counted(&a),
            b"\r\n--data-boundary--\r\n",
            &counted(&b),
        ]);
        for content_type in [
            Some("multipart/x-mixed-replace; boundary=data-boundary--"),
            None,
        ] {
            let rec = parse_all_splits(content_type, &input);
            assert_eq!(rec.frames, vec![a.clone(), b.clone()]);
            assert_eq!(rec.events, vec![learnt("--data-boundary--")]);
        }
    }

    #[test]
    fn delimiter_glued_to_header() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[
            b"--jpgboundary",
            &counted(&a),
            b"\r\n--jpgboundary",
            &counted(&b),
            b"\r\n--jpgboundary",
        ]);
        for content_type in [Some("multipart/x-mixed-replace;boundary=jpgboundary"), None] {
            let rec = parse_all_splits(content_type, &input);
            assert_eq!(rec.frames, vec![a.clone(), b.clone()]);
            assert_eq!(rec.events, vec![learnt("--jpgboundary")]);
        }
    }

    #[test]
    fn headerless_part_after_delimiter() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[b"--B\r\n\r\n", &a, b"\r\n--B\r\n", &b, b"\r\n--B\r\n"]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b]);
        assert_eq!(rec.infos[0], PartInfo::default());
    }

    #[test]
    fn trailing_bytes_after_eoi_are_kept() {
        let a = cat(&[&j(1), b"\0\0trailer"]);
        let input = cat(&[
            b"--B\r\n",
            &counted(&a),
            b"\r\n--B\r\nContent-Type: image/jpeg\r\n\r\n",
            &a,
            b"\r\n--B\r\n",
        ]);
        assert_eq!(parse_all_splits(MJPEG, &input).frames, vec![a.clone(), a]);
    }

    #[test]
    fn raw_concatenated_jpegs() {
        let (a, b) = (jpeg_with_thumbnail(), j(2));
        let input = cat(&[&a, &b, b"\r\n", &a]);
        for content_type in [
            Some("image/jpeg"),
            Some("application/octet-stream"),
            None,
            MJPEG,
        ] {
            let rec = parse_all_splits(content_type, &input);
            assert_eq!(
                rec.frames,
                vec![a.clone(), b.clone(), a.clone()],
                "{content_type:?}"
            );
            assert_eq!(rec.infos[2].index, 2);
            assert!(rec.events.is_empty());
        }
        let mut parser = Parser::new(None, Limits::default());
        parser.feed(&input, &mut Recorder::default()).unwrap();
        assert!(parser.is_raw_jpeg());
    }

    #[test]
    fn garbage_between_parts_is_resynced() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[
            b"--B\r\n",
            &counted(&a),
            b"\r\n--B\r\n",
            b"junk\r\n--Bx not a delimiter\r\n",
            b"\r\n--B\r\n",
            &counted(&b),
            b"\r\n--B\r\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        assert_eq!(rec.frames, vec![a, b]);
        // `--Bx` looks like a delimiter with a glued header until the header
        // turns out to be junk: one resync per junk line.
        assert_eq!(
            rec.events,
            vec![learnt("--B"), Event::Resync, Event::Resync]
        );
    }

    #[test]
    fn limits_end_the_stream() {
        let limits = Limits {
            max_header_size: 100,
            max_part_size: 1000,
            max_garbage: 1000,
        };
        let garbage = cat(&[
            b"--B\r\n",
            &counted(&j(1)),
            b"\r\n--B\r\n",
            b"x:",
            &[b'y'; 2000],
        ]);
        let endless_line = cat(&[b"--B\r\nContent-Type: ", &[b'a'; 200]]);
        let endless_block = cat(&[b"--B\r\n", &b"X: y\r\n".repeat(40)]);
        let endless_part = cat(&[
            b"--B\r\nContent-Type: image/jpeg\r\n\r\n",
            &[0xFF, 0xD8],
            &[1; 2000],
        ]);
        let endless_garbage = cat(&[b"--B\r\n", &counted(&j(1)), &[b'-'; 2000]]);
        for (input, error) in [
            (&garbage, ParseError::HeaderTooLarge),
            (&endless_line, ParseError::HeaderTooLarge),
            (&endless_block, ParseError::HeaderTooLarge),
            (&endless_part, ParseError::PartTooLarge),
            (&endless_garbage, ParseError::NoDelimiter),
        ] {
            let rec = parse_with(MJPEG, limits, &[input]);
            assert_eq!(rec.error, Some(error));
        }
        // A part that had started is aborted.
        let pieces: Vec<&[u8]> = endless_part.chunks(100).collect();
        let rec = parse_with(MJPEG, limits, &pieces);
        assert_eq!(rec.error, Some(ParseError::PartTooLarge));
        assert_eq!(rec.aborted.len(), 1);
        let junk = cat(&[b"--B\r\n", &counted(&j(1)), b"\r\n", &[b'z'; 2000]]);
        assert_eq!(
            parse_with(MJPEG, limits, &[&junk]).error,
            Some(ParseError::NoDelimiter)
        );
    }

    #[test]
    fn finish_completes_or_aborts_the_open_part() {
        let a = j(1);
        let open = cat(&[b"--B\r\nContent-Type: image/jpeg\r\n\r\n", &a]);
        let rec = parse_all_splits(MJPEG, &open);
        assert_eq!(rec.frames, vec![a.clone()]);
        let cut_in_delimiter = cat(&[&open, b"\r\n--"]);
        assert_eq!(
            parse_all_splits(MJPEG, &cut_in_delimiter).frames,
            vec![a.clone()]
        );
        let truncated = &open[..open.len() - 1];
        let rec = parse(MJPEG, &[truncated]);
        assert!(rec.frames.is_empty());
        assert_eq!(rec.aborted, vec![a[..a.len() - 1].to_vec()]);
        let counted_truncated = cat(&[b"--B\r\n", &counted(&a)]);
        let rec = parse(MJPEG, &[&counted_truncated[..counted_truncated.len() - 5]]);
        assert_eq!(rec.aborted.len(), 1);
    }

    #[test]
    fn finish_completes_a_part_cut_inside_its_delimiter() {
        // The body ends (FIN) anywhere inside the delimiter that follows a
        // whole JPEG without length, even just after its CRLF: the line
        // break belongs to the delimiter, the part is the JPEG.
        let a = j(1);
        for boundary in ["B", "frame", "a-much-longer-boundary-0123456789"] {
            let ct = format!("multipart/x-mixed-replace; boundary={boundary}");
            let open = cat(&[
                format!("--{boundary}\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
                &a,
            ]);
            for eol in ["\r\n", "\n"] {
                let delimiter = format!("{eol}--{boundary}");
                for cut in 1..delimiter.len() {
                    let input = cat(&[&open, &delimiter.as_bytes()[..cut]]);
                    let rec = parse_all_splits(Some(&ct), &input);
                    assert_eq!(
                        rec.frames,
                        vec![a.clone()],
                        "boundary {boundary:?}, cut after {:?}",
                        &delimiter[..cut]
                    );
                    assert!(rec.aborted.is_empty());
                }
            }
        }
    }

    #[test]
    fn refused_part_is_consumed() {
        let (a, b) = (j(1), j(2));
        let input = cat(&[
            b"--B\r\n",
            &counted(&a),
            b"\r\n--B\r\nContent-Type: image/jpeg\r\n\r\n",
            &a,
            b"\r\n--B\r\n",
            &counted(&b),
        ]);
        for refused in [0, 1] {
            let mut parser = Parser::new(MJPEG, Limits::default());
            let mut rec = Recorder {
                refuse: vec![refused],
                ..Recorder::default()
            };
            parser.feed(&input, &mut rec).unwrap();
            assert_eq!(rec.frames, vec![a.clone(), b.clone()]);
            assert_eq!(rec.infos.len(), 3);
        }
    }

    /// xorshift64: deterministic pseudo-random numbers without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_input_never_panics_and_stays_bounded() {
        let limits = Limits {
            max_header_size: 256,
            max_part_size: 4096,
            max_garbage: 8192,
        };
        let (a, b) = (j(1), jpeg_with_thumbnail());
        let seeds: Vec<Vec<u8>> = vec![
            cat(&[
                b"--B\r\n",
                &counted(&a),
                b"\r\n--B\r\nContent-Type: image/jpeg\r\n\r\n",
                &b,
                b"\r\n--B--\r\n",
            ]),
            cat(&[
                b"\r\n--B\r\n",
                &counted(&b),
                b"\n--B\nContent-type:text/plain\n\nhi\n--B\n",
            ]),
            cat(&[&a, &b, &a]),
            // Content-Length and the delimiter disagree.
            cat(&[
                b"--B\r\n",
                &with_length(&a, a.len() + 30),
                b"\r\n--B\r\n",
                &with_length(&b, 9),
                b"\r\n--B\r\n",
                &counted(&a),
                b"junk\r\n--B\r\n",
                &counted(&cat(&[&a, b"pad"])),
                b"\r\n--B\r\n",
            ]),
        ];
        let alphabet = b"\r\n-B:\xFF\xD8\xD9\x00Content-Length: 12";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let mut input = seeds[round % seeds.len()].clone();
            for _ in 0..rng.below(8) {
                if input.is_empty() {
                    break;
                }
                let at = rng.below(input.len());
                match rng.below(5) {
                    0 => input[at] = rng.next() as u8,
                    1 => input.insert(at, alphabet[rng.below(alphabet.len())]),
                    2 => drop(input.drain(at..(at + rng.below(32)).min(input.len()))),
                    3 => input
                        .splice(at..at, seeds[0][..rng.below(64)].to_vec())
                        .for_each(drop),
                    _ => input.truncate(at),
                }
            }
            if round % 10 == 0 {
                input = (0..rng.below(20000)).map(|_| rng.next() as u8).collect();
            }
            let content_type = [MJPEG, None, Some("image/jpeg")][rng.below(3)];
            let mut parser = Parser::new(content_type, limits);
            let mut rec = Recorder::default();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (chunk, next) = rest.split_at(rng.below(rest.len()) + 1);
                rest = next;
                let failed = parser.feed(chunk, &mut rec).is_err();
                assert!(parser.line.len() <= limits.max_header_size);
                assert!(parser.scanner.hold.len() <= limits.max_header_size + 2);
                assert!(parser.trail.len() <= 2 * limits.max_header_size + 70);
                assert!(parser.replay.is_empty());
                if failed {
                    break;
                }
            }
            parser.finish(&mut rec);
            assert!(rec.frames.iter().all(|f| f.len() <= limits.max_part_size));
            // Reading counted bodies directly changes nothing.
            let step = rng.below(100) + 1;
            let direct = parse_direct_with(content_type, limits, &input, step);
            assert_eq!(direct.frames, rec.frames, "round {round}, step {step}");
            assert_eq!(direct.disagreements, rec.disagreements, "round {round}");
        }
    }
}
