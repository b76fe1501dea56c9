// SPDX-License-Identifier: MPL-2.0

//! The multipart writer: `mjpegsink`'s part framing (pure Rust, no GStreamer
//! types).
//!
//! Every frame published by the sink is laid out **once**, in one contiguous
//! buffer shared by all clients:
//!
//! ```text
//! Content-Type: image/jpeg\r\n           ┐
//! Content-Length: N\r\n                  │ part headers
//! X-Timestamp: S.UUUUUU\r\n              │
//! \r\n                                   ┘
//! <JPEG, N bytes>                        ← snapshot = this slice
//! \r\n--B\r\n                            ← delimiter right after the frame
//! Content-Type: image/jpeg\r\n\r\n       ← advance headers for the next part
//! ```
//!
//! A normal client is sent `[part headers .. delimiter]`, an `advance_headers`
//! client `[JPEG .. advance headers]`, `/snapshot` the JPEG alone. All three
//! are `Bytes` slices of the same allocation: one copy per frame (from the
//! GStreamer buffer), none per client, and every part goes out as a single
//! buffer handed to the socket in one write.

use std::hash::Hasher as _;
use std::ops::Range;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

/// Headers an `advance_headers` client receives for the *next* part, right
/// after each delimiter (no Content-Length: it is not known yet).
pub(crate) const ADVANCE_HEADERS: &[u8] = b"Content-Type: image/jpeg\r\n\r\n";

/// Whether `b` can be used as a multipart boundary in an unquoted
/// `Content-Type` parameter: 1 to 70 characters from `A-Z a-z 0-9 ' + - . _`.
pub(crate) fn valid_boundary(b: &str) -> bool {
    (1..=70).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'\'' | b'+' | b'-' | b'.' | b'_'))
}

/// Seconds since the Unix epoch with microseconds, as sent in `X-Timestamp`.
pub(crate) fn timestamp_string(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// One published frame, shared by every client (wrap it in an `Arc`).
#[derive(Debug)]
pub(crate) struct Frame {
    /// 1-based sequence number of the frame on this server.
    pub(crate) seq: u64,
    /// Wall-clock time the frame was published, as sent in `X-Timestamp`.
    pub(crate) timestamp: String,
    /// Wall-clock time of publication (`Last-Modified` of `/snapshot`).
    pub(crate) published: SystemTime,
    /// Monotonic time of publication (ages, rate decisions).
    pub(crate) published_at: Instant,
    /// Hash of the JPEG bytes if asked for ([`Frame::with_digest`]),
    /// computed once per frame, so that telling byte-identical frames apart
    /// costs every client one length and one integer comparison.
    digest: Option<u64>,
    buf: Bytes,
    jpeg: Range<usize>,
    delimiter_end: usize,
}

impl Frame {
    /// Lay out `jpeg` (copied once), published at `published`, with its part
    /// headers, delimiter and the advance headers of the next part.
    pub(crate) fn new(seq: u64, jpeg: &[u8], boundary: &str, published: SystemTime) -> Self {
        let timestamp = timestamp_string(published);
        let mut head = Vec::with_capacity(96);
        head.extend_from_slice(b"Content-Type: image/jpeg\r\nContent-Length: ");
        head.extend_from_slice(jpeg.len().to_string().as_bytes());
        head.extend_from_slice(b"\r\nX-Timestamp: ");
        head.extend_from_slice(timestamp.as_bytes());
        head.extend_from_slice(b"\r\n\r\n");

        let total = head.len() + jpeg.len() + 4 + boundary.len() + 2 + ADVANCE_HEADERS.len();
        let mut b = BytesMut::with_capacity(total);
        b.put_slice(&head);
        let jpeg_start = b.len();
        b.put_slice(jpeg);
        let jpeg_end = b.len();
        b.put_slice(b"\r\n--");
        b.put_slice(boundary.as_bytes());
        b.put_slice(b"\r\n");
        let delimiter_end = b.len();
        b.put_slice(ADVANCE_HEADERS);
        debug_assert_eq!(b.len(), total);
        Frame {
            seq,
            timestamp,
            published,
            published_at: Instant::now(),
            digest: None,
            buf: b.freeze(),
            jpeg: jpeg_start..jpeg_end,
            delimiter_end,
        }
    }

    /// Part headers, JPEG and delimiter: what a normal client is sent.
    pub(crate) fn part(&self) -> Bytes {
        self.buf.slice(..self.delimiter_end)
    }

    /// JPEG, delimiter and the next part's headers: what an
    /// `advance_headers` client is sent.
    pub(crate) fn advance_part(&self) -> Bytes {
        self.buf.slice(self.jpeg.start..)
    }

    /// The JPEG alone (for `/snapshot`).
    pub(crate) fn jpeg(&self) -> Bytes {
        self.buf.slice(self.jpeg.clone())
    }

    /// Length of the JPEG in bytes.
    pub(crate) fn jpeg_len(&self) -> usize {
        self.jpeg.len()
    }

    /// Compute the digest [`Frame::same_image`] compares (once, when the
    /// frame is published).
    pub(crate) fn with_digest(mut self) -> Self {
        self.digest = Some(digest(&self.buf[self.jpeg.clone()]));
        self
    }

    /// Whether this frame's JPEG is (all but certainly) byte-identical to
    /// `other`'s: same length, same digest. False unless both have one.
    pub(crate) fn same_image(&self, other: &Frame) -> bool {
        self.jpeg_len() == other.jpeg_len() && self.digest.is_some() && self.digest == other.digest
    }
}

/// The digest of [`Frame::same_image`]: std's SipHash over the bytes, keyed
/// the same in every process (a collision only makes a viewer miss one
/// frame; nobody gains from forging one).
fn digest(data: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(data);
    h.finish()
}

/// The start of a stream body: the first delimiter (plus, for
/// `advance_headers`, the first part's headers).
pub(crate) fn preamble(boundary: &str, advance_headers: bool) -> Bytes {
    let mut v = format!("--{boundary}\r\n").into_bytes();
    if advance_headers {
        v.extend_from_slice(ADVANCE_HEADERS);
    }
    Bytes::from(v)
}

/// The end of a stream body after EOS. A normal client has just received a
/// delimiter line, so the close delimiter follows directly; an
/// `advance_headers` client has already received the headers of a part that
/// will never come, which becomes an empty part ended by the close delimiter.
pub(crate) fn closing(boundary: &str, advance_headers: bool) -> Bytes {
    if advance_headers {
        Bytes::from(format!("\r\n--{boundary}--\r\n"))
    } else {
        Bytes::from(format!("--{boundary}--\r\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let at = UNIX_EPOCH + std::time::Duration::from_micros(12_000_003);
        let f = Frame::new(7, b"\xff\xd8abc\xff\xd9", "B", at);
        assert_eq!(
            &f.part()[..],
            &b"Content-Type: image/jpeg\r\nContent-Length: 7\r\nX-Timestamp: 12.000003\r\n\r\n\xff\xd8abc\xff\xd9\r\n--B\r\n"[..]
        );
        assert_eq!(
            &f.advance_part()[..],
            &b"\xff\xd8abc\xff\xd9\r\n--B\r\nContent-Type: image/jpeg\r\n\r\n"[..]
        );
        assert_eq!(&f.jpeg()[..], b"\xff\xd8abc\xff\xd9");
        let same = Frame::new(8, b"\xff\xd8abc\xff\xd9", "B", at);
        assert!(!f.same_image(&same), "no digest, no comparison");
        let (f, same) = (f.with_digest(), same.with_digest());
        let other = Frame::new(9, b"\xff\xd8abd\xff\xd9", "B", at).with_digest();
        assert!(f.same_image(&same));
        assert!(!f.same_image(&other));
        assert_eq!(&preamble("B", false)[..], b"--B\r\n");
        assert_eq!(
            &preamble("B", true)[..],
            b"--B\r\nContent-Type: image/jpeg\r\n\r\n"
        );
        assert_eq!(&closing("B", false)[..], b"--B--\r\n");
        assert_eq!(&closing("B", true)[..], b"\r\n--B--\r\n");
    }

    #[test]
    fn boundaries() {
        assert!(valid_boundary("boundarydonotcross"));
        assert!(valid_boundary("a-b_c.d+e'f"));
        assert!(!valid_boundary(""));
        assert!(!valid_boundary("has space"));
        assert!(!valid_boundary("semi;colon"));
        assert!(!valid_boundary("quote\""));
        assert!(!valid_boundary(&"x".repeat(71)));
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_712_345_678_000_042);
        assert_eq!(timestamp_string(t), "1712345678.000042");
    }
}
