// SPDX-License-Identifier: MPL-2.0

//! A hostile fake camera: the scripts a broken or malicious server sends to
//! `mjpegsrc` (absurd `X-Timestamp` jumps, malformed or non-ASCII Digest
//! challenges, Digest then Basic-only 401s, cross-origin and https → http
//! redirects, one frame then close, 401 after good frames, only non-JPEG
//! parts, frames without a readable size), built on [`super::FakeCamera`],
//! which records every request each origin received. Plus a capture of the
//! GStreamer debug log, to check what never appears in it.

use std::sync::{Mutex, Once};

use super::*;

/// The boundary of every hostile stream.
pub const HB: &str = "hostile";

/// `\r\n--HB\r\n`, what follows every part of a boundary-after stream.
pub fn hdelim() -> Vec<u8> {
    format!("\r\n--{HB}\r\n").into_bytes()
}

/// A bodiless response with `Connection: close`, then close.
pub fn status(code: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<Step> {
    let mut h: Vec<(&str, &str)> = vec![("Content-Length", "0"), ("Connection", "close")];
    h.extend_from_slice(extra);
    vec![
        Step::Write(head(&format!("HTTP/1.1 {code} {reason}"), &h)),
        Step::Close,
    ]
}

/// 401 with the given `WWW-Authenticate` values (several headers), closed.
pub fn unauthorized(challenges: &[&str]) -> Vec<Step> {
    let mut h: Vec<(&str, &str)> = challenges
        .iter()
        .map(|c| ("WWW-Authenticate", *c))
        .collect();
    h.push(("Content-Length", "0"));
    h.push(("Connection", "close"));
    vec![
        Step::Write(head("HTTP/1.1 401 Unauthorized", &h)),
        Step::Close,
    ]
}

/// A `302 Found` to `location`, closed.
pub fn redirect(location: &str) -> Vec<Step> {
    status(302, "Found", &[("Location", location)])
}

/// Digest challenges a broken or hostile camera sends: non-ASCII text
/// (which made a challenge parser slice inside a character), unterminated
/// quotes, no nonce, garbage.
pub const MALFORMED_DIGEST: &[&str] = &[
    "Digest realm=\"éééééééé\", qop=\"auth\", nonce=\"n1\"",
    "Digest realm=\"Caméra d'entrée\", qop=\"auth\", nonce=\"é1\"",
    "Digest realm=\"cam\", qop=\"aüth\", nonce=\"n1\"",
    "Digest réalm=\"cam\", nonce=\"n1\"",
    "Digest realm=\"cam\", nonce=\"unterminated",
    "Digest realm=\"cam\"",
    "Digest ,,, ===",
];

/// One part with an `X-Timestamp` header (the value as the camera wrote it).
pub fn timestamped_part(jpeg: &[u8], stamp: &str) -> Vec<u8> {
    let mut v = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {stamp}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    v.extend_from_slice(jpeg);
    v
}

/// A paced boundary-after stream of `frames` with the given head and part
/// builder (frame numbers from `base`), without an ending.
pub fn paced_parts(
    head: &[u8],
    frames: &[Vec<u8>],
    base: usize,
    part: impl Fn(usize, &[u8]) -> Vec<u8>,
) -> Vec<Step> {
    let mut body = format!("--{HB}\r\n").into_bytes();
    for (i, f) in frames.iter().enumerate() {
        body.extend(part(i, f));
        body.extend(hdelim());
    }
    paced(head, &body, frames, Some(&hdelim()), Coding::Identity, base)
}

/// A paced stream of `frames`, each part carrying `stamps[i]` as its
/// `X-Timestamp`, then `end`.
pub fn timestamped_stream(frames: &[Vec<u8>], stamps: &[&str], end: Step) -> Vec<Step> {
    let mut s = paced_parts(&head_http10(&mjpeg_type(HB)), frames, 0, |i, f| {
        timestamped_part(f, stamps[i])
    });
    s.push(end);
    s
}

/// A paced plain stream of `frames` (numbered from `base`), then `end`.
pub fn plain_stream(frames: &[Vec<u8>], base: usize, end: Step) -> Vec<Step> {
    let mut s = paced_parts(&head_http10(&mjpeg_type(HB)), frames, base, |_, f| {
        std_part(f)
    });
    s.push(end);
    s
}

/// One frame, then a graceful close: the camera that reconnects twice a
/// second forever if one frame counts as a working session.
pub fn one_frame_then_close(frame: &[u8]) -> Vec<Step> {
    let mut body = head_http10(&mjpeg_type(HB));
    body.extend(format!("--{HB}\r\n").into_bytes());
    body.extend(std_part(frame));
    body.extend(hdelim());
    vec![Step::Write(body), Step::Close]
}

/// A stream of `n` parts of which none is a JPEG: typed `text/plain`
/// (`typed`) or typed `image/jpeg` with bytes that are not a JPEG. Ends by
/// stalling.
pub fn only_non_jpeg_parts(n: usize, typed: bool) -> Vec<Step> {
    let mut body = head_http10(&mjpeg_type(HB));
    body.extend(format!("--{HB}\r\n").into_bytes());
    for i in 0..n {
        let text = format!("motion event {i}: nothing to see here, not a picture");
        let ty = if typed { "text/plain" } else { "image/jpeg" };
        body.extend(
            format!(
                "Content-Type: {ty}\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .into_bytes(),
        );
        body.extend(hdelim());
    }
    vec![Step::Write(body), Step::Stall]
}

/// A JPEG that has no SOF segment at all (SOI, a comment, EOI): its size
/// cannot be read.
pub fn sofless_jpeg(seed: u32) -> Vec<u8> {
    let comment = format!("no frame header here {seed}");
    let len = (comment.len() + 2) as u16;
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xFE];
    v.extend(len.to_be_bytes());
    v.extend(comment.into_bytes());
    v.extend([0xFF, 0xD9]);
    v
}

/// Every value of header `name` in the requests `cam` received so far.
pub fn header_values(requests: &[Request], name: &str) -> Vec<String> {
    requests
        .iter()
        .flat_map(|r| r.header_all(name))
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------
// The debug log, captured
// ---------------------------------------------------------------------------

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Capture every GStreamer debug message of every category at every level
/// from now on (process-wide); read them with [`captured_log`].
pub fn capture_log() {
    static ONCE: Once = Once::new();
    init();
    ONCE.call_once(|| {
        gst::log::set_active(true);
        gst::log::set_default_threshold(gst::DebugLevel::Warning);
        gst::log::set_threshold_for_name("mjpegsrc", gst::DebugLevel::Memdump);
        // Keep stderr quiet: the capture is the only log function.
        gst::log::remove_default_log_function();
        gst::log::add_log_function(|cat, level, _file, _func, _line, _obj, msg| {
            if let Some(text) = msg.get() {
                lock(&LOG).push(format!("{level:?} {}: {text}", cat.name()));
            }
        });
    });
}

/// The log lines captured so far.
pub fn captured_log() -> Vec<String> {
    lock(&LOG).clone()
}
