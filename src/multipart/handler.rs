// SPDX-License-Identifier: MPL-2.0

//! What the parser reports, to whom, and within which bounds.

use std::fmt;

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
    /// A part's Content-Length disagreed with where its delimiter is (too
    /// short or too long, see [`Handler::disagreement`]).
    LengthMismatch,
    /// The close delimiter `--B--`.
    Closed,
}

/// How Content-Length and the delimiter disagreed, and what became of it;
/// reported through [`Handler::disagreement`] so that the element can
/// count it. In every case the delimiter wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disagreement {
    /// Bytes after a part that ended by its Content-Length (with `FF D9`),
    /// before the next delimiter: skipped, reported once per run when the
    /// delimiter is found (or when the run ends the stream:
    /// [`ParseError::NoDelimiter`], or the end of the body). The part was
    /// released as its counted bytes.
    Junk(u64),
    /// The counted bytes did not end with `FF D9` and no delimiter followed:
    /// the part continued up to the next delimiter.
    TooShort,
    /// A delimiter was inside the counted bytes (or straddled their end):
    /// the part was cut before it and what followed was parsed as the next
    /// part.
    TooLong,
    /// The part could not be recovered whole (the handler keeps no bytes,
    /// see [`Handler::part_bytes`]) and was aborted.
    Dropped,
}

/// Receives the parts found by a [`Parser`].
///
/// A handler that keeps the body of the current part (as a frame buffer
/// does) should implement [`Handler::part_bytes`] and
/// [`Handler::part_truncate`]: they let the parser repair a part whose
/// Content-Length was wrong. With the defaults such a part is aborted
/// instead, never released with bytes that are not its own.
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
    /// The body bytes of the accepted current part so far, in order: those
    /// passed to [`Handler::part_data`] and those the caller read in itself
    /// and reported with [`Parser::feed_direct`], minus what
    /// [`Handler::part_truncate`] cut off. `None` if the handler does not
    /// keep them (the default), or the part was abandoned. Called only
    /// between [`Handler::part_start`] and the part's end or abort, when a
    /// part's Content-Length disagrees with the delimiter: never for a
    /// well-behaved stream. A slice whose length is not the body size the
    /// parser counted is ignored.
    fn part_bytes(&self) -> Option<&[u8]> {
        None
    }
    /// Keep only the first `len` bytes of the accepted current part (the
    /// rest belongs to the delimiter and the next part). Called only right
    /// after [`Handler::part_bytes`] returned `Some` with more than `len`
    /// (and `len > 0`) bytes, and followed by [`Handler::part_end`]. A handler
    /// that returns `Some` from `part_bytes` must implement it.
    fn part_truncate(&mut self, len: usize) {
        let _ = len;
    }
    /// Content-Length and the delimiter disagreed; to count or log.
    /// Ignored by default.
    fn disagreement(&mut self, d: Disagreement) {
        let _ = d;
    }
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
