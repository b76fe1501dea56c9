// SPDX-License-Identifier: MPL-2.0

//! HTTP and multipart bytes as cameras send them: response heads, the three
//! framing orders, chunked coding, and scripts that pace a body on the frames
//! the test has pulled.

use super::camera::Step;

/// Concatenate byte slices.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn mjpeg_type(boundary: &str) -> String {
    format!("multipart/x-mixed-replace; boundary={boundary}")
}

/// A response head: status line, the given header lines, blank line.
pub fn head(status_line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{status_line}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// HTTP/1.0, `Connection: close`, no length (mjpg-streamer, ustreamer, Axis).
pub fn head_http10(content_type: &str) -> Vec<u8> {
    head(
        "HTTP/1.0 200 OK",
        &[
            ("Server", "fake-camera"),
            ("Connection", "close"),
            ("Cache-Control", "no-cache"),
            ("Content-Type", content_type),
        ],
    )
}

/// HTTP/1.1 with neither length nor chunking: the body runs to EOF (Tasmota).
pub fn head_http11_eof(content_type: &str) -> Vec<u8> {
    head("HTTP/1.1 200 OK", &[("Content-Type", content_type)])
}

/// HTTP/1.1 chunked (esp_http_server, motion, Flask).
pub fn head_http11_chunked(content_type: &str) -> Vec<u8> {
    head(
        "HTTP/1.1 200 OK",
        &[
            ("Content-Type", content_type),
            ("Transfer-Encoding", "chunked"),
        ],
    )
}

/// HTTP/1.0 **with** `Transfer-Encoding: chunked` (TP-Link Kasa).
pub fn head_http10_chunked(content_type: &str) -> Vec<u8> {
    head(
        "HTTP/1.0 200 OK",
        &[
            ("Content-Type", content_type),
            ("Transfer-Encoding", "chunked"),
        ],
    )
}

/// `Content-Type: image/jpeg\r\nContent-Length: N\r\n\r\n<J>`.
pub fn std_part(jpeg: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    v.extend_from_slice(jpeg);
    v
}

/// Framing order 1 (mjpg-streamer, ustreamer, Axis): body starts `--B\r\n`,
/// then per frame headers, JPEG, `\r\n--B\r\n`.
pub fn boundary_after(boundary: &str, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("--{boundary}\r\n").into_bytes();
    for f in frames {
        v.extend_from_slice(&std_part(f));
        v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    }
    v
}

/// Framing order 2 (ESP32 CameraWebServer, IP Webcam, VLC): per frame
/// `\r\n--B\r\n`, headers, JPEG, and nothing more until the next frame.
pub fn boundary_before(boundary: &str, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        v.extend_from_slice(&std_part(f));
    }
    v
}

/// Framing order 3 (old ESP32 sketches, Tasmota 2021, motion 4.1): the body
/// starts with part headers; `\r\n--B\r\n` after every part.
pub fn first_boundary_missing(boundary: &str, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        v.extend_from_slice(&std_part(f));
        v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    }
    v
}

/// Chunked transfer coding of `data` in chunks of at most `piece` bytes
/// (without the terminating zero chunk).
pub fn chunked(data: &[u8], piece: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for c in data.chunks(piece.max(1)) {
        v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        v.extend_from_slice(c);
        v.extend_from_slice(b"\r\n");
    }
    v
}

pub const CHUNK_END: &[u8] = b"0\r\n\r\n";

/// The first `needle` in `hay` at or after `from`.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Cut `body` into one segment per expected frame plus a remainder: segment
/// `k` ends right after frame `k`'s bytes, or (with `marker`) after the first
/// `marker` that follows them — the bytes a client needs to release frame `k`
/// when it cannot use a Content-Length. Panics if a frame is not in `body`.
pub fn segments(body: &[u8], frames: &[Vec<u8>], marker: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut search = 0;
    for (i, f) in frames.iter().enumerate() {
        let at = find(body, f, search).unwrap_or_else(|| panic!("frame {i} not found in body"));
        let end = at + f.len();
        let cut = match marker {
            None => end,
            Some(m) => find(body, m, end).map_or(body.len(), |p| p + m.len()),
        };
        out.push(body[pos..cut].to_vec());
        pos = cut;
        search = end;
    }
    out.push(body[pos..].to_vec());
    out
}

/// Transfer coding of a paced stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// Bytes as they are (close-delimited body).
    Identity,
    /// Each write wrapped in chunks of at most this many bytes.
    Chunked(usize),
}

impl Coding {
    fn encode(self, data: &[u8]) -> Vec<u8> {
        match self {
            Coding::Identity => data.to_vec(),
            Coding::Chunked(n) => chunked(data, n),
        }
    }
}

/// A script that writes `head`, then the body frame by frame: after the
/// bytes that complete frame `k` it waits until the test has pulled
/// `base + k + 1` frames. The remainder is written last. Append the ending
/// (`Step::Stall`, `Step::Close`, ...) yourself.
pub fn paced(
    head: &[u8],
    body: &[u8],
    frames: &[Vec<u8>],
    marker: Option<&[u8]>,
    coding: Coding,
    base: usize,
) -> Vec<Step> {
    let mut steps = vec![Step::Write(head.to_vec())];
    let segs = segments(body, frames, marker);
    let n = frames.len();
    for (k, seg) in segs.into_iter().enumerate() {
        if !seg.is_empty() {
            steps.push(Step::Write(coding.encode(&seg)));
        }
        if k < n {
            steps.push(Step::AwaitPulled(base + k + 1));
        }
    }
    steps
}

// ---------------------------------------------------------------------------
// The usual camera stream
// ---------------------------------------------------------------------------

/// The boundary of the scripted streams unless a test says otherwise.
pub const B: &str = "frame";

/// The delimiter line between parts: `\r\n--{boundary}\r\n`.
pub fn delim(boundary: &str) -> Vec<u8> {
    format!("\r\n--{boundary}\r\n").into_bytes()
}

/// The usual camera: an HTTP/1.0 close-delimited head and a paced
/// boundary-after body of `f` with Content-Length (frame numbers from
/// `base`). Append the ending yourself (see [`with`]).
pub fn stream(f: &[Vec<u8>], base: usize) -> Vec<Step> {
    paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, f),
        f,
        Some(&delim(B)),
        Coding::Identity,
        base,
    )
}

/// `steps` followed by `more`: a stream and how it ends.
pub fn with(mut steps: Vec<Step>, more: impl IntoIterator<Item = Step>) -> Vec<Step> {
    steps.extend(more);
    steps
}
