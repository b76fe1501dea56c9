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
//!                anything else                          Resync
//! DelimiterLine  `--` after the delimiter               Between (Event::Closed)
//!                end of line                            Headers
//! Headers        blank line, or 0xFF at a line start    Counted (trusted length) or Scanned
//!                a delimiter line before any header     Headers (start over)
//!                a line that is no header               Resync
//! Counted        last byte, FF D9 near the end          Between
//!                last byte, no FF D9 near the end       Scanned (Event::LengthMismatch)
//! Scanned        `\r?\n` + delimiter                    DelimiterLine
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
//! * **Counted**: the body of a part with a trusted Content-Length is passed
//!   through untouched and released the moment its last byte is in, if it
//!   ends like a JPEG (`FF D9` within its last 64 bytes). If it does not, the
//!   length was too short ([`Event::LengthMismatch`]) and the part continues
//!   as Scanned. After a counted part, anything but line ends and a delimiter
//!   means the length was too long: [`Event::Resync`], and Content-Length is
//!   not trusted any more.
//! * **Scanned**: the body of a part without (usable) length ends at
//!   `\r?\n` + delimiter, found with a `memmem` finder, and is released at
//!   the match without waiting for what follows.
//! * **Resync**: garbage is skipped up to the next delimiter, at most
//!   [`Limits::max_garbage`] bytes.

use std::{fmt, ops::Range};

use memchr::memmem::Finder;

use crate::jpeg;

/// How many bytes at the end of a counted part must contain `FF D9`.
const EOI_WINDOW: usize = 64;

/// Bounds on the parser's memory and patience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest part header block (and delimiter line), in bytes.
    pub max_header_size: usize,
    /// Largest part body. A larger Content-Length is ignored (the part is
    /// split on the delimiter instead); a larger part without usable length
    /// is [`ParseError::PartTooLarge`].
    pub max_part_size: usize,
    /// Bytes scanned for a delimiter (or a JPEG start, in raw mode) before
    /// giving up with [`ParseError::NoDelimiter`].
    pub max_garbage: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_size: 16 * 1024,
            max_part_size: 64 * 1024 * 1024,
            max_garbage: 4 * 1024 * 1024,
        }
    }
}

/// What the headers of a part said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartInfo {
    /// Lower-cased media type without parameters, e.g. `image/jpeg`.
    pub content_type: Option<String>,
    /// The last Content-Length header, if parseable and at most
    /// [`Limits::max_part_size`].
    pub content_length: Option<u64>,
    /// `X-Timestamp` in seconds, on the camera's clock.
    pub timestamp: Option<f64>,
    /// 0-based number of the part on this parser, skipped parts included.
    pub index: u64,
}

/// Why a part was not handed to [`Handler::part_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Empty body (`Content-Length: 0` or nothing before the delimiter).
    Empty,
    /// A Content-Type other than JPEG.
    NotJpeg,
}

/// Noteworthy things that do not interrupt the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Skipped(SkipReason),
    /// Unexpected bytes; scanning for the next delimiter.
    Resync,
    /// The delimiter line (with its leading `--`) as found in the body.
    BoundaryLearned(Vec<u8>),
    /// A part did not end like a JPEG after Content-Length bytes; it
    /// continues up to the delimiter.
    LengthMismatch,
    /// The close delimiter `--B--`.
    Closed,
}

/// Receives the parts found by a [`Parser`].
pub trait Handler {
    /// A JPEG-candidate part starts (parts with Content-Length 0 or a
    /// non-JPEG Content-Type never reach here; they are reported as
    /// [`Event::Skipped`]). Called with the first body byte at hand. Return
    /// false to ignore this part's body (e.g. no buffer free).
    fn part_start(&mut self, info: &PartInfo) -> bool;
    /// Body bytes of the accepted current part, in order, as they arrive.
    /// Return false to abandon the rest of this part.
    fn part_data(&mut self, data: &[u8]) -> bool;
    /// The accepted current part is complete: release it now.
    fn part_end(&mut self);
    /// The accepted current part will not complete.
    fn part_abort(&mut self);
    /// Something to count or log.
    fn event(&mut self, ev: Event);
}

/// Input the parser cannot make sense of within its [`Limits`]; the caller
/// should drop the connection. The parser stays failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A header line or block longer than [`Limits::max_header_size`].
    HeaderTooLarge,
    /// A part without usable length longer than [`Limits::max_part_size`].
    PartTooLarge,
    /// No delimiter (or JPEG start) within [`Limits::max_garbage`] bytes.
    NoDelimiter,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeaderTooLarge => "part header too large",
            Self::PartTooLarge => "part too large",
            Self::NoDelimiter => "no multipart delimiter found",
        })
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
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
    Scanned,
    Resync,
    Raw,
    Failed(ParseError),
}

/// The delimiter line, as far as it is known.
struct Delimiter {
    /// The delimiter line (`--B`) once seen in the body.
    learnt: Option<Vec<u8>>,
    /// Possible delimiter lines from the Content-Type boundary parameter,
    /// longest first.
    hints: Vec<Vec<u8>>,
    /// Finds `\n` + the best-known delimiter line (or just `\n--`).
    finder: Finder<'static>,
}

impl Delimiter {
    fn new(boundary: Option<&str>) -> Self {
        let mut hints = Vec::new();
        if let Some(b) = boundary.filter(|b| !b.is_empty()) {
            hints.push([b"--", b.as_bytes()].concat());
            if b.starts_with("--") {
                hints.push(b.as_bytes().to_vec());
            }
        }
        // Scanning before anything is learnt: `boundary=--B` is taken to
        // mean lines `--B`, as the servers that send it do.
        let line = hints.last().map_or(&b"--"[..], Vec::as_slice);
        let finder = Self::finder_for(line);
        Self {
            learnt: None,
            hints,
            finder,
        }
    }

    fn finder_for(line: &[u8]) -> Finder<'static> {
        Finder::new(&[b"\n", line].concat()).into_owned()
    }

    /// What a delimiter line starts with.
    fn prefix(&self) -> &[u8] {
        self.learnt.as_deref().unwrap_or(b"--")
    }

    /// `\n` + what a delimiter line starts with, as the finder looks for it.
    fn needle(&self) -> &[u8] {
        self.finder.needle()
    }

    /// Learns the delimiter from the first delimiter line (trimmed, starting
    /// with `--`) and returns its length. A hint that prefixes the line wins;
    /// else a header glued to the delimiter is cut off; else it is the whole
    /// line.
    fn learn(&mut self, line: &[u8]) -> usize {
        let len = self
            .hints
            .iter()
            .find(|hint| line.starts_with(hint))
            .map(Vec::len)
            .or_else(|| {
                Finder::new(b"content-")
                    .find(&line.to_ascii_lowercase())
                    .filter(|&at| at > 2)
            })
            .unwrap_or(line.len());
        let learnt = line[..len].to_vec();
        self.finder = Self::finder_for(&learnt);
        self.learnt = Some(learnt);
        len
    }

    /// Whether `rest`, what follows the delimiter on its line, closes the
    /// stream. Not for a delimiter that itself ends in `--` (`data-boundary--`).
    fn is_close(&self, rest: &[u8]) -> bool {
        rest == b"--" && !self.prefix().ends_with(b"--")
    }
}

/// Searches `\n` + delimiter in data arriving in pieces, holding back only
/// the bytes that could begin a match.
#[derive(Default)]
struct Scanner {
    /// Unreleased bytes from earlier pieces, at most a needle's length.
    hold: Vec<u8>,
    /// Leading bytes of `hold` that are not data: a virtual `\n` so that a
    /// delimiter at the very start of a line matches.
    skip: usize,
}

/// The outcome of [`Scanner::step`]; positions index `hold` + `input`.
struct ScanStep {
    /// Data before the delimiter (or that cannot be part of one).
    data: Range<usize>,
    /// Bytes of `input` consumed.
    used: usize,
    found: bool,
    /// Without a match: where the bytes to hold back start.
    keep_from: usize,
}

impl Scanner {
    fn reset(&mut self, at_line_start: bool) {
        self.hold.clear();
        self.skip = usize::from(at_line_start);
        if at_line_start {
            self.hold.push(b'\n');
        }
    }

    fn step(&mut self, finder: &Finder, input: &[u8]) -> ScanStep {
        let needle = finder.needle().len();
        let held = self.hold.len();
        // Matches straddling `hold` and `input`.
        self.hold
            .extend_from_slice(&input[..needle.min(input.len())]);
        let found = finder
            .find(&self.hold)
            .or_else(|| finder.find(input).map(|at| at + held));
        self.hold.truncate(held);
        let byte = |at: usize| match at.checked_sub(held) {
            None => self.hold.get(at).copied(),
            Some(at) => input.get(at).copied(),
        };
        match found {
            Some(at) => {
                let end = if at > self.skip && byte(at - 1) == Some(b'\r') {
                    at - 1
                } else {
                    at
                };
                ScanStep {
                    data: self.skip..end.max(self.skip),
                    used: (at + needle).saturating_sub(held),
                    found: true,
                    keep_from: at + needle,
                }
            }
            None => {
                let keep_from = (held + input.len()).saturating_sub(needle);
                ScanStep {
                    data: self.skip..keep_from.max(self.skip),
                    used: input.len(),
                    found: false,
                    keep_from,
                }
            }
        }
    }

    /// Drops what `step` released or matched, keeps what may begin a match.
    fn commit(&mut self, input: &[u8], step: &ScanStep) {
        if step.found {
            self.reset(false);
            return;
        }
        let held = self.hold.len();
        if step.keep_from >= held {
            self.hold.clear();
            self.hold
                .extend_from_slice(input.get(step.keep_from - held..).unwrap_or_default());
        } else {
            self.hold.drain(..step.keep_from);
            self.hold.extend_from_slice(input);
        }
        self.skip = self.skip.saturating_sub(step.keep_from);
    }
}

/// The last bytes of a part body, to see how it ends.
struct Tail {
    bytes: [u8; EOI_WINDOW],
    len: usize,
}

impl Tail {
    const EMPTY: Self = Self {
        bytes: [0; EOI_WINDOW],
        len: 0,
    };

    fn push(&mut self, data: &[u8]) {
        if data.len() >= EOI_WINDOW {
            self.bytes.copy_from_slice(&data[data.len() - EOI_WINDOW..]);
            self.len = EOI_WINDOW;
        } else {
            let keep = self.len.min(EOI_WINDOW - data.len());
            self.bytes.copy_within(self.len - keep..self.len, 0);
            self.bytes[keep..keep + data.len()].copy_from_slice(data);
            self.len = keep + data.len();
        }
    }

    /// Replace the window with the last bytes of the body.
    fn set(&mut self, last: &[u8]) {
        let last = &last[last.len().saturating_sub(EOI_WINDOW)..];
        self.bytes[..last.len()].copy_from_slice(last);
        self.len = last.len();
    }

    fn contains_eoi(&self) -> bool {
        self.bytes[..self.len].windows(2).any(|w| w == [0xFF, 0xD9])
    }

    fn ends_with_eoi(&self) -> bool {
        self.bytes[..self.len].ends_with(&[0xFF, 0xD9])
    }
}

/// Where the body of the current part goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// A JPEG candidate whose first byte has not arrived.
    Unstarted,
    /// Accepted by the handler.
    Delivering,
    /// Skipped, refused or abandoned, or no part open.
    Discarding,
}

/// The part whose body is being read.
struct Body {
    info: PartInfo,
    sink: Sink,
    /// JPEG candidate: a counted body must end like a JPEG.
    jpeg: bool,
    size: u64,
    tail: Tail,
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

    fn new(info: PartInfo, jpeg: bool) -> Self {
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
struct Headers {
    content_type: Option<String>,
    content_length: Option<u64>,
    timestamp: Option<f64>,
    /// Header lines seen.
    count: usize,
    /// Bytes of the header block.
    size: usize,
}

/// Incremental MJPEG body parser. Its state machine is described at the
/// top of `src/multipart/parser.rs`.
pub struct Parser {
    limits: Limits,
    state: State,
    delimiter: Delimiter,
    /// An incomplete delimiter or header line, at most `max_header_size`.
    line: Vec<u8>,
    headers: Headers,
    body: Body,
    scanner: Scanner,
    splitter: jpeg::FrameSplitter,
    /// False once a Content-Length pointed past the delimiter.
    trust_length: bool,
    /// Bytes skipped since the last delimiter (or JPEG start).
    garbage: usize,
    /// Parts seen.
    parts: u64,
}

impl Parser {
    /// `content_type`: the HTTP response Content-Type header value if any.
    /// Multipart types give a boundary hint; `image/*` and
    /// `application/octet-stream` select raw concatenated-JPEG mode, as does
    /// a body that starts with `0xFF`.
    pub fn new(content_type: Option<&str>, limits: Limits) -> Self {
        let mut params = content_type.unwrap_or_default().split(';');
        let media_type = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let boundary = params.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"'))
        });
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
            trust_length: true,
            garbage: 0,
            parts: 0,
        }
    }

    /// The delimiter line learnt from the body, including its leading `--`.
    pub fn delimiter(&self) -> Option<&[u8]> {
        self.delimiter.learnt.as_deref()
    }

    /// Whether the body is being split as raw concatenated JPEGs.
    pub fn is_raw_jpeg(&self) -> bool {
        self.state == State::Raw
    }

    /// Parses the next chunk of the body. After an error the parser stays
    /// failed; the open part, if any, has been aborted.
    pub fn feed<H: Handler>(&mut self, chunk: &[u8], h: &mut H) -> Result<(), ParseError> {
        let mut input = chunk;
        while !input.is_empty() {
            let step = match self.state {
                State::Failed(e) => return Err(e),
                State::Start => Ok(self.start(input)),
                State::Between {
                    matched,
                    after_length,
                } => self.between(input, matched, after_length, h),
                State::DelimiterLine => self.delimiter_line(input, h),
                State::Headers => self.headers(input, h),
                State::Counted { remaining } => self.counted(input, remaining, h),
                State::Scanned => self.scanned(input, h),
                State::Resync => self.resync(input),
                State::Raw => self.raw(input, h),
            };
            match step {
                Ok(used) => input = input.get(used..).unwrap_or_default(),
                Err(e) => {
                    self.abort_part(h);
                    self.state = State::Failed(e);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// End of the body. An open part without length is completed if it ends
    /// with `FF D9`, else aborted, as is an incomplete counted part. Call it
    /// once; the body of another response needs a new parser.
    pub fn finish<H: Handler>(&mut self, h: &mut H) {
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

    fn start(&mut self, input: &[u8]) -> usize {
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

    fn between<H: Handler>(
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
        } else {
            if after_length {
                self.trust_length = false;
            }
            self.start_resync(false, h);
        }
        Ok(common)
    }

    fn delimiter_line<H: Handler>(&mut self, input: &[u8], h: &mut H) -> Result<usize, ParseError> {
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
    fn on_delimiter<H: Handler>(&mut self, line: &[u8], h: &mut H) {
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

    fn headers<H: Handler>(&mut self, input: &[u8], h: &mut H) -> Result<usize, ParseError> {
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

    fn count_header_bytes(&mut self, n: usize) -> Result<(), ParseError> {
        self.headers.size += n;
        if self.headers.size > self.limits.max_header_size {
            return Err(ParseError::HeaderTooLarge);
        }
        Ok(())
    }

    /// One header line (without its line end).
    fn header_line<H: Handler>(&mut self, line: &[u8], h: &mut H) {
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
    fn end_headers<H: Handler>(&mut self, h: &mut H) {
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
        let length = info.content_length.filter(|_| self.trust_length);
        let jpeg = matches!(
            info.content_type.as_deref(),
            None | Some("image/jpeg" | "image/jpg" | "image/pjpeg")
        );
        if length == Some(0) {
            h.event(Event::Skipped(SkipReason::Empty));
            self.state = State::Between {
                matched: 0,
                after_length: true,
            };
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

    fn counted<H: Handler>(
        &mut self,
        input: &[u8],
        remaining: u64,
        h: &mut H,
    ) -> Result<usize, ParseError> {
        let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
        self.body_data(&input[..take], h)?;
        self.counted_advance(remaining - take as u64, h);
        Ok(take)
    }

    /// After counted body bytes: complete the part when its length is in
    /// (or fall back to scanning when it does not end like a JPEG).
    fn counted_advance<H: Handler>(&mut self, remaining: u64, h: &mut H) {
        self.state = if remaining > 0 {
            State::Counted { remaining }
        } else if !self.body.jpeg || self.body.tail.contains_eoi() {
            self.end_part(h);
            State::Between {
                matched: 0,
                after_length: true,
            }
        } else {
            h.event(Event::LengthMismatch);
            self.scanner.reset(false);
            State::Scanned
        };
    }

    /// Inside an accepted part framed by a trusted Content-Length: how many
    /// body bytes are still due. The caller may read up to that many bytes
    /// itself, straight into the part's destination (so the socket read is
    /// the only copy), and report them with [`Parser::feed_direct`].
    pub fn direct_remaining(&self) -> Option<u64> {
        match self.state {
            State::Counted { remaining } if self.body.sink == Sink::Delivering => Some(remaining),
            _ => None,
        }
    }

    /// Account for `n` body bytes the caller wrote into the current part's
    /// destination itself (see [`Parser::direct_remaining`]); `last` holds
    /// the last bytes of the part so far (up to 64 are used, to check how
    /// it ends). Exactly as if they had been fed, except that they are not
    /// passed to [`Handler::part_data`]. Ignored outside a direct read.
    pub fn feed_direct<H: Handler>(
        &mut self,
        n: usize,
        last: &[u8],
        h: &mut H,
    ) -> Result<(), ParseError> {
        let Some(remaining) = self.direct_remaining() else {
            return Ok(());
        };
        let n = usize::try_from(remaining).map_or(n, |r| r.min(n));
        let body = &mut self.body;
        body.size += n as u64;
        if body.size > self.limits.max_part_size as u64 {
            self.abort_part(h);
            self.state = State::Failed(ParseError::PartTooLarge);
            return Err(ParseError::PartTooLarge);
        }
        body.tail.set(last);
        self.counted_advance(remaining - n as u64, h);
        Ok(())
    }

    fn scanned<H: Handler>(&mut self, input: &[u8], h: &mut H) -> Result<usize, ParseError> {
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

    fn resync(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        let step = self.scanner.step(&self.delimiter.finder, input);
        self.skip_garbage(step.used)?;
        self.scanner.commit(input, &step);
        if step.found {
            self.enter_delimiter_line();
        }
        Ok(step.used)
    }

    fn raw<H: Handler>(&mut self, input: &[u8], h: &mut H) -> Result<usize, ParseError> {
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
    fn read_line(&mut self, input: &[u8]) -> Result<(bool, usize), ParseError> {
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
    fn enter_delimiter_line(&mut self) {
        self.line.clear();
        self.line
            .extend_from_slice(self.delimiter.needle().get(1..).unwrap_or_default());
        self.state = State::DelimiterLine;
    }

    fn start_resync<H: Handler>(&mut self, at_line_start: bool, h: &mut H) {
        h.event(Event::Resync);
        self.scanner.reset(at_line_start);
        self.state = State::Resync;
    }

    fn skip_garbage(&mut self, n: usize) -> Result<(), ParseError> {
        self.garbage += n;
        if self.garbage > self.limits.max_garbage {
            return Err(ParseError::NoDelimiter);
        }
        Ok(())
    }

    /// Body bytes of the current part: counted, remembered for the end
    /// check, and delivered if the handler wants them.
    fn body_data<H: Handler>(&mut self, data: &[u8], h: &mut H) -> Result<(), ParseError> {
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

    fn end_part<H: Handler>(&mut self, h: &mut H) {
        match self.body.sink {
            Sink::Delivering => h.part_end(),
            Sink::Unstarted => h.event(Event::Skipped(SkipReason::Empty)),
            Sink::Discarding => {}
        }
        self.body.sink = Sink::Discarding;
    }

    fn abort_part<H: Handler>(&mut self, h: &mut H) {
        if self.body.sink == Sink::Delivering {
            h.part_abort();
        }
        self.body.sink = Sink::Discarding;
    }
}

/// `line` without its trailing `\n` or `\r\n`.
fn trim_line_end(line: &[u8]) -> &[u8] {
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
        aborted: Vec<Vec<u8>>,
        current: Option<Vec<u8>>,
        error: Option<ParseError>,
        /// Refuse parts whose index is listed here.
        refuse: Vec<u64>,
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
        let mut parser = Parser::new(content_type, Limits::default());
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

    #[test]
    fn content_length_too_long_stops_trusting_lengths() {
        let (a, b, c) = (j(1), j(2), j(3));
        let long = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            a.len() + 10
        );
        let input = cat(&[
            b"--B\r\n",
            long.as_bytes(),
            &a,
            b"\r\n--B\r\n",
            &counted(&b),
            b"\r\n--B\r\n",
            // A wrong length no longer matters.
            b"Content-Type: image/jpeg\r\nContent-Length: 3\r\n\r\n",
            &c,
            b"\r\n--B\r\n",
        ]);
        let rec = parse_all_splits(MJPEG, &input);
        // The first frame includes the bytes its length claimed; the second is
        // lost while resyncing.
        assert_eq!(
            rec.frames,
            vec![input[5 + long.len()..][..a.len() + 10].to_vec(), c]
        );
        assert_eq!(rec.events, vec![learnt("--B"), Event::Resync]);
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
                if failed {
                    break;
                }
            }
            parser.finish(&mut rec);
            assert!(rec.frames.iter().all(|f| f.len() <= limits.max_part_size));
        }
    }
}
