// SPDX-License-Identifier: MPL-2.0

//! Parts framed by their Content-Length: the counted body (fed or read by
//! the caller straight into its buffer), and what happens when the length
//! and the delimiter disagree (the delimiter wins).

use super::handler::{Disagreement, Event, Handler, ParseError};
use super::parser::{Parser, Sink, State, is_line_end};

/// Most line ends taken after a counted part while waiting for the
/// delimiter that would complete it.
pub(super) const MAX_TRAILER_LINE_ENDS: usize = 64;

impl Parser {
    pub(super) fn counted<H: Handler>(
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

    /// After counted body bytes: when the length is in, release the part if
    /// it ends like a JPEG, else see what follows it.
    pub(super) fn counted_advance<H: Handler>(&mut self, remaining: u64, h: &mut H) {
        if remaining > 0 {
            self.state = State::Counted { remaining };
        } else if !self.body.jpeg || self.body.tail.ends_with_eoi() {
            self.end_part(h);
            self.after_counted_part();
        } else {
            self.enter_trailer(h);
        }
    }

    pub(super) fn after_counted_part(&mut self) {
        self.junk = 0;
        self.state = State::Between {
            matched: 0,
            after_length: true,
        };
    }

    /// The body bytes of the current part as the handler kept them, if it
    /// delivers and keeps them all.
    pub(super) fn kept_bytes<'h, H: Handler>(&self, h: &'h H) -> Option<&'h [u8]> {
        if self.body.sink != Sink::Delivering {
            return None;
        }
        h.part_bytes()
            .filter(|bytes| bytes.len() as u64 == self.body.size)
    }

    /// The counted bytes of a part do not end with `FF D9`: keep the last of
    /// them (a delimiter may have begun there) and look at what follows,
    /// unless they end with a whole delimiter.
    pub(super) fn enter_trailer<H: Handler>(&mut self, h: &mut H) {
        let want = self.delimiter.needle().len() + 1;
        let last = self.kept_bytes(h).unwrap_or_else(|| self.body.tail.bytes());
        let last = &last[last.len().saturating_sub(want)..];
        self.trail.clear();
        self.trail.extend_from_slice(last);
        self.trail_counted = last.len();
        self.state = State::Trailer;
        if let Trail::Delimiter(start) = self.trail_verdict() {
            self.trail_complete(start, h);
        }
    }

    /// After the counted bytes of a part that does not end with `FF D9`,
    /// one byte at a time (a delimiter's length at most, plus line ends). A
    /// delimiter found here ends with the byte just taken.
    pub(super) fn trailer<H: Handler>(&mut self, input: &[u8], h: &mut H) -> usize {
        for (at, &byte) in input.iter().enumerate() {
            self.trail.push(byte);
            match self.trail_verdict() {
                Trail::Pending => {}
                Trail::Delimiter(start) => {
                    self.trail_complete(start, h);
                    return at + 1;
                }
                Trail::NoDelimiter => {
                    self.trail_disagrees(h);
                    return at + 1;
                }
            }
        }
        input.len()
    }

    /// Whether `\n` + delimiter begins in the last counted bytes or in line
    /// ends right after them.
    pub(super) fn trail_verdict(&self) -> Trail {
        let needle = self.delimiter.needle();
        let counted = self.trail_counted;
        let after = &self.trail[counted..];
        let line_ends = after.iter().take_while(|&&b| is_line_end(b)).count();
        if line_ends > MAX_TRAILER_LINE_ENDS {
            return Trail::NoDelimiter;
        }
        for start in memchr::memchr_iter(b'\n', &self.trail[..counted + line_ends]) {
            let rest = &self.trail[start..];
            if rest.len() < needle.len() {
                if needle.starts_with(rest) {
                    return Trail::Pending;
                }
            } else if rest.starts_with(needle) && start + needle.len() >= counted {
                return Trail::Delimiter(start);
            }
        }
        if line_ends == after.len() {
            Trail::Pending
        } else {
            Trail::NoDelimiter
        }
    }

    /// At the end of the body in Trailer: where the delimiter that was cut
    /// short begins (`after`: the bytes after the counted ones), if one had.
    pub(super) fn trail_open_delimiter(&self, after: &[u8]) -> Option<usize> {
        let needle = self.delimiter.needle();
        let counted = self.trail_counted;
        let line_ends = after.iter().take_while(|&&b| is_line_end(b)).count();
        let trail = [&self.trail[..counted], after].concat();
        memchr::memchr_iter(b'\n', &trail[..counted + line_ends])
            .find(|&start| needle.starts_with(&trail[start..]))
            // Only line ends: the first one begins the delimiter (a `\r`
            // there is taken as the delimiter's by `trail_complete`).
            .or((!after.is_empty() && line_ends == after.len()).then_some(counted + 1))
    }

    /// The delimiter follows the counted bytes (its `\n` at `start` in
    /// `trail`): release the part, without what of the delimiter it holds.
    pub(super) fn trail_complete<H: Handler>(&mut self, start: usize, h: &mut H) {
        let start = match start.checked_sub(1) {
            Some(cr) if self.trail[cr] == b'\r' => cr,
            _ => start,
        };
        let cut = self.trail_counted.saturating_sub(start);
        if cut > 0 {
            self.cut_part(self.body.size - cut as u64, h);
        }
        self.end_part(h);
        self.garbage = 0;
        self.enter_delimiter_line();
    }

    /// No delimiter follows the counted bytes: the delimiter wins. One
    /// inside them means the length was too long, none too short.
    pub(super) fn trail_disagrees<H: Handler>(&mut self, h: &mut H) {
        let after = self.trail.split_off(self.trail_counted);
        if self.too_long(&after, h) {
            return;
        }
        if self.body.sink == Sink::Delivering && self.kept_bytes(h).is_none() {
            // Too short or too long, no telling which: drop it.
            h.event(Event::LengthMismatch);
            h.disagreement(Disagreement::Dropped);
            self.abort_part(h);
        } else if self.body.sink == Sink::Delivering {
            h.event(Event::LengthMismatch);
            h.disagreement(Disagreement::TooShort);
        }
        // The part (or what is left of a dropped one) runs to the next
        // delimiter.
        self.scanner.reset(false);
        self.state = State::Scanned;
        self.replay = after;
    }

    /// Looks for a delimiter inside the kept bytes of the current part. If
    /// there is one, the part is cut before it and released, and what
    /// follows it, then `after` (the bytes after the counted ones), is to
    /// be parsed again as the rest of that delimiter line.
    pub(super) fn too_long<H: Handler>(&mut self, after: &[u8], h: &mut H) -> bool {
        let Some(bytes) = self.kept_bytes(h) else {
            return false;
        };
        let Some(at) = self.delimiter.finder.find(bytes) else {
            return false;
        };
        let start = match at.checked_sub(1) {
            Some(cr) if bytes[cr] == b'\r' => cr,
            _ => at,
        };
        self.replay.clear();
        self.replay
            .extend_from_slice(&bytes[at + self.delimiter.needle().len()..]);
        self.replay.extend_from_slice(after);
        self.cut_part(start as u64, h);
        self.end_part(h);
        self.garbage = 0;
        self.enter_delimiter_line();
        true
    }

    /// The current part really ends after `len` of its body bytes.
    pub(super) fn cut_part<H: Handler>(&mut self, len: u64, h: &mut H) {
        h.event(Event::LengthMismatch);
        h.disagreement(Disagreement::TooLong);
        if self.body.sink == Sink::Delivering {
            if len > 0 && self.kept_bytes(h).is_some() {
                h.part_truncate(len as usize);
            } else {
                if len > 0 {
                    h.disagreement(Disagreement::Dropped);
                }
                self.abort_part(h);
            }
        }
        self.body.size = len;
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
    /// it ends; at least the last two are needed). Exactly as if they had been fed, except that they are not
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
}

/// What the bytes after a counted part tell so far.
pub(super) enum Trail {
    /// Line ends, or the beginning of a delimiter: more bytes needed.
    Pending,
    /// `\n` + delimiter, its `\n` at this index of the trail.
    Delimiter(usize),
    /// Something else: the part does not end at its length.
    NoDelimiter,
}
