// SPDX-License-Identifier: MPL-2.0

//! One test per row of `WIRE.md` ("What mjpegsrc must read"): a fake camera
//! writes the exact bytes of each variant; the frames must come out
//! byte-identical and the stats counters exact.
//!
//! The camera paces itself on the frames the test has pulled (see
//! `common::paced`): after the bytes that complete frame k — for parts without
//! a usable Content-Length, through the delimiter line that ends them — it
//! waits until frame k has come out. So no frame is ever dropped for lack of a
//! free buffer and counters are deterministic. Release latency (a frame must
//! come out before any following byte) is tested in `mjpegsrc_behaviour.rs`.
//!
//! 401/404/503 rows are in `mjpegsrc_auth.rs` and `mjpegsrc_reconnect.rs`,
//! TLS in `mjpegsrc_tls.rs`.

mod common;

use common::*;
use std::time::Duration;

/// Part bytes: each header line followed by `eol`, a blank line, the body.
fn part(headers: &[&str], eol: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for h in headers {
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(eol.as_bytes());
    }
    v.extend_from_slice(eol.as_bytes());
    v.extend_from_slice(body);
    v
}

fn ct_len(j: &[u8]) -> Vec<u8> {
    std_part(j)
}

/// The element and its camera; the element is dropped (set to NULL) first.
struct Run {
    src: Src,
    _cam: FakeCamera,
}

impl Run {
    /// Wait for the counters to settle, then check them exactly: `n` frames
    /// received and pushed, nothing dropped, no reconnect.
    fn counters(&self, n: u64, skipped: u64, resyncs: u64) -> Stats {
        let s = self
            .src
            .wait_stats("frames, skipped parts and resyncs counted", |s| {
                s.u64("frames-pushed") >= n
                    && s.u64("frames-received") >= n
                    && s.u64("skipped-parts") >= skipped
                    && s.u64("resyncs") >= resyncs
            });
        assert_eq!(s.u64("frames-received"), n, "frames-received in {}", s.0);
        assert_eq!(s.u64("frames-pushed"), n, "frames-pushed in {}", s.0);
        assert_eq!(s.u64("frames-dropped"), 0, "frames-dropped in {}", s.0);
        assert_eq!(s.u64("skipped-parts"), skipped, "skipped-parts in {}", s.0);
        assert_eq!(s.u64("resyncs"), resyncs, "resyncs in {}", s.0);
        assert_eq!(s.u64("reconnects"), 0, "reconnects in {}", s.0);
        s
    }
}

/// Serve `head` + `body` paced on `frames` (see module doc) on one
/// connection that then stays open, and check the frames byte for byte.
fn serve(
    head: &[u8],
    body: &[u8],
    frames: &[Vec<u8>],
    marker: Option<&[u8]>,
    coding: Coding,
) -> Run {
    let mut script = paced(head, body, frames, marker, coding, 0);
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/stream").play();
    let got = src.frames(frames.len());
    assert_frames(&data(&got), frames);
    // Nothing was lost: only the first buffer may be DISCONT; offsets are
    // consecutive sequence numbers.
    assert_continuous(&got);
    Run { src, _cam: cam }
}

fn assert_continuous(got: &[Frame]) {
    for (i, w) in got.windows(2).enumerate() {
        assert!(
            !w[1].discont(),
            "frame {} is DISCONT but nothing was lost: {got:?}",
            i + 1
        );
        assert_eq!(w[1].offset(), w[0].offset() + 1, "offsets: {got:?}");
    }
}

/// Standard case: HTTP/1.0 close-delimited, `boundary=frame`, paced on
/// `\r\n--frame\r\n`.
fn serve_std(body: &[u8], frames: &[Vec<u8>]) -> Run {
    serve(
        &head_http10(&mjpeg_type(B)),
        body,
        frames,
        Some(&delim(B)),
        Coding::Identity,
    )
}

// ---------------------------------------------------------------------------
// Outer HTTP response
// ---------------------------------------------------------------------------

#[test]
fn http10_connection_close_no_length() {
    let f = frames(5, 320, 240, 100);
    serve_std(&boundary_after(B, &f), &f).counters(5, 0, 0);
}

#[test]
fn http11_chunked_small_chunks() {
    // 13-byte chunks cut through delimiters, part headers and JPEGs.
    let f = frames(5, 320, 240, 110);
    serve(
        &head_http11_chunked(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Chunked(13),
    )
    .counters(5, 0, 0);
}

#[test]
fn http11_chunked_one_chunk_per_write() {
    let f = frames(5, 320, 240, 120);
    serve(
        &head_http11_chunked(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Chunked(usize::MAX),
    )
    .counters(5, 0, 0);
}

#[test]
fn http11_no_length_no_chunking_read_to_eof() {
    let f = frames(5, 320, 240, 130);
    serve(
        &head_http11_eof(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
    )
    .counters(5, 0, 0);
}

#[test]
fn http10_with_transfer_encoding_chunked() {
    let f = frames(5, 320, 240, 140);
    serve(
        &head_http10_chunked(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Chunked(40),
    )
    .counters(5, 0, 0);
}

#[test]
fn http11_chunked_with_extensions_and_uppercase_hex() {
    // Legal chunk syntax a strict decoder must accept: upper-case hex with
    // leading zeros and chunk extensions.
    let f = frames(4, 320, 240, 145);
    let body = boundary_after(B, &f);
    let segs = segments(&body, &f, Some(&delim(B)));
    let mut script = vec![Step::Write(head_http11_chunked(&mjpeg_type(B)))];
    for (k, seg) in segs.into_iter().enumerate() {
        let mut enc = Vec::new();
        for c in seg.chunks(97) {
            enc.extend_from_slice(format!("00{:X};frame={k};x=\"y\"\r\n", c.len()).as_bytes());
            enc.extend_from_slice(c);
            enc.extend_from_slice(b"\r\n");
        }
        if !enc.is_empty() {
            script.push(Step::Write(enc));
        }
        if k < f.len() {
            script.push(Step::AwaitPulled(k + 1));
        }
    }
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/").play();
    assert_frames(&src.frame_data(4), &f);
}

#[test]
fn http_response_minimal_status_line_and_lowercase_headers() {
    // Hand-written embedded servers: no reason phrase, lower-case names, no
    // space after the colon.
    let f = frames(4, 320, 240, 147);
    serve(
        b"HTTP/1.1 200\r\ncontent-type:multipart/x-mixed-replace;boundary=frame\r\naccess-control-allow-origin:*\r\n\r\n",
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn multipart_mixed_top_level_type() {
    let f = frames(4, 320, 240, 150);
    serve(
        &head_http10("multipart/mixed; boundary=frame"),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_missing() {
    let f = frames(4, 320, 240, 160);
    serve(
        &head_http10("multipart/x-mixed-replace"),
        &boundary_after("myboundary", &f),
        &f,
        Some(&delim("myboundary")),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_empty() {
    let f = frames(4, 320, 240, 165);
    serve(
        &head_http10("multipart/x-mixed-replace; boundary="),
        &boundary_after("emptyhint", &f),
        &f,
        Some(&delim("emptyhint")),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_quoted() {
    let b = "MOBOTIX_Fast_Serverpush";
    let f = frames(4, 320, 240, 170);
    serve(
        &head_http10(&format!("multipart/x-mixed-replace; boundary=\"{b}\"")),
        &boundary_after(b, &f),
        &f,
        Some(&delim(b)),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_name_any_case() {
    let f = frames(4, 320, 240, 180);
    serve(
        &head_http10("multipart/x-mixed-replace; BOUNDARY=frame"),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_spaces_around_semicolon() {
    let f = frames(4, 320, 240, 190);
    serve(
        &head_http10("multipart/x-mixed-replace ;  boundary=frame"),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_no_space_after_semicolon() {
    let f = frames(4, 320, 240, 200);
    serve(
        &head_http10("multipart/x-mixed-replace;boundary=frame"),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_already_has_dashes() {
    // Panasonic, Sony, IQinVision, VLC recipes: `boundary=--myboundary` and
    // delimiter lines `--myboundary` (not `----myboundary`).
    let f = frames(4, 320, 240, 210);
    let mut body = b"--myboundary\r\n".to_vec();
    for j in &f {
        body.extend_from_slice(&ct_len(j));
        body.extend_from_slice(b"\r\n--myboundary\r\n");
    }
    serve(
        &head_http10("multipart/x-mixed-replace; boundary=--myboundary"),
        &body,
        &f,
        Some(b"\r\n--myboundary\r\n"),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_parameter_mismatches_body() {
    // The body is the truth, the header only a hint.
    let f = frames(4, 320, 240, 220);
    serve(
        &head_http10(&mjpeg_type("headerboundary")),
        &boundary_after("bodyboundary", &f),
        &f,
        Some(&delim("bodyboundary")),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn boundary_relearnt_on_every_connection() {
    // Random boundary per request; the second connection uses another one
    // (and the header of the second says so too).
    let f1 = frames(2, 320, 240, 230);
    let f2 = frames(2, 320, 240, 240);
    let mut s1 = paced(
        &head_http10(&mjpeg_type("a1b2c3")),
        &boundary_after("a1b2c3", &f1),
        &f1,
        Some(&delim("a1b2c3")),
        Coding::Identity,
        0,
    );
    s1.push(Step::Close);
    let mut s2 = paced(
        &head_http10(&mjpeg_type("zz9988")),
        &boundary_after("zz9988", &f2),
        &f2,
        Some(&delim("zz9988")),
        Coding::Identity,
        2,
    );
    s2.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frame_data(4);
    assert_frames(&got, &[f1, f2].concat());
    let s = src.wait_stats("second connection's frames", |s| {
        s.u64("frames-pushed") >= 4
    });
    assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
    assert_eq!(s.u64("resyncs"), 0, "{}", s.0);
}

#[test]
fn redirect_302_to_stream_path() {
    let f = frames(3, 320, 240, 250);
    let mut stream = paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
        0,
    );
    stream.push(Step::Stall);
    let redirect = vec![
        Step::Write(head(
            "HTTP/1.1 302 Found",
            &[
                ("Location", "/stream"),
                ("Content-Length", "0"),
                ("Connection", "close"),
            ],
        )),
        Step::Close,
    ];
    let cam = FakeCamera::scripted(vec![redirect, stream]);
    let src = Src::harness_for_camera(&cam, "/video").play();
    assert_frames(&src.frame_data(3), &f);
    let r0 = cam.next_request(WAIT).expect("first request");
    let r1 = cam.next_request(WAIT).expect("request after the redirect");
    assert_eq!(r0.path(), "/video");
    assert_eq!(r1.path(), "/stream");
    let s = src.wait_stats("frames counted", |s| s.u64("frames-pushed") >= 3);
    assert_eq!(
        s.u64("reconnects"),
        0,
        "a redirect is not a reconnect: {}",
        s.0
    );
}

#[test]
fn redirect_chain_301_307_absolute_location() {
    let f = frames(2, 320, 240, 260);
    let cam = FakeCamera::start({
        let stream = std::sync::Mutex::new(Some({
            let mut s = paced(
                &head_http10(&mjpeg_type(B)),
                &boundary_after(B, &f),
                &f,
                Some(&delim(B)),
                Coding::Identity,
                0,
            );
            s.push(Step::Stall);
            s
        }));
        move |req| {
            let port = req
                .header("Host")
                .and_then(|h| h.rsplit(':').next())
                .unwrap_or("80")
                .to_string();
            let redirect = |code: &str, to: String| {
                vec![
                    Step::Write(head(
                        code,
                        &[("Location", to.as_str()), ("Content-Length", "0")],
                    )),
                    Step::Close,
                ]
            };
            match req.path() {
                "/a" => redirect(
                    "HTTP/1.1 301 Moved Permanently",
                    format!("http://127.0.0.1:{port}/b"),
                ),
                "/b" => redirect("HTTP/1.1 307 Temporary Redirect", "/stream?x=1".into()),
                "/stream?x=1" => lock(&stream).take().unwrap_or_else(|| vec![Step::Stall]),
                _ => vec![
                    Step::Write(head("HTTP/1.1 404 Not Found", &[("Content-Length", "0")])),
                    Step::Close,
                ],
            }
        }
    });
    let src = Src::harness_for_camera(&cam, "/a").play();
    assert_frames(&src.frame_data(2), &f);
    let paths: Vec<String> = cam
        .take_requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, vec!["/a", "/b", "/stream?x=1"]);
}

// ---------------------------------------------------------------------------
// Framing orders
// ---------------------------------------------------------------------------

#[test]
fn framing_boundary_after_each_part_with_x_timestamp() {
    // mjpg-streamer / ustreamer / Axis: `--B\r\n`, then per frame headers
    // (incl. X-Timestamp), JPEG, `\r\n--B\r\n`.
    let f = frames(5, 320, 240, 300);
    let mut body = format!("--{B}\r\n").into_bytes();
    for (i, j) in f.iter().enumerate() {
        let len = format!("Content-Length: {}", j.len());
        let ts = format!("X-Timestamp: 1712345678.{:06}", 100_000 + i * 40_000);
        body.extend_from_slice(&part(&["Content-Type: image/jpeg", &len, &ts], "\r\n", j));
        body.extend_from_slice(&delim(B));
    }
    serve_std(&body, &f).counters(5, 0, 0);
}

#[test]
fn framing_boundary_before_each_part() {
    // ESP32 CameraWebServer / IP Webcam / VLC: `\r\n--B\r\n` headers JPEG,
    // nothing after the JPEG until the next frame.
    let f = frames(5, 320, 240, 310);
    serve_std(&boundary_before(B, &f), &f).counters(5, 0, 0);
}

#[test]
fn framing_first_boundary_missing() {
    // Old ESP32 sketches, Tasmota 2021, motion 4.1: the body starts with
    // part headers.
    let f = frames(5, 320, 240, 320);
    serve_std(&first_boundary_missing(B, &f), &f).counters(5, 0, 0);
}

#[test]
fn framing_first_boundary_missing_no_boundary_parameter() {
    let f = frames(4, 320, 240, 330);
    serve(
        &head_http10("multipart/x-mixed-replace"),
        &first_boundary_missing("123456789000000000000987654321", &f),
        &f,
        Some(&delim("123456789000000000000987654321")),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

// ---------------------------------------------------------------------------
// Part level
// ---------------------------------------------------------------------------

/// Boundary-after framing with custom header lines per part.
fn body_with_headers(f: &[Vec<u8>], headers: impl Fn(usize, &[u8]) -> Vec<String>) -> Vec<u8> {
    let mut body = format!("--{B}\r\n").into_bytes();
    for (i, j) in f.iter().enumerate() {
        let h = headers(i, j);
        let h: Vec<&str> = h.iter().map(|s| s.as_str()).collect();
        body.extend_from_slice(&part(&h, "\r\n", j));
        body.extend_from_slice(&delim(B));
    }
    body
}

#[test]
fn header_names_any_case() {
    let f = frames(4, 320, 240, 400);
    let body = body_with_headers(&f, |i, j| match i % 4 {
        0 => vec![
            "Content-type: image/jpeg".into(),
            format!("Content-length: {}", j.len()),
        ],
        1 => vec![
            "CONTENT-TYPE: image/jpeg".into(),
            format!("CONTENT-LENGTH: {}", j.len()),
        ],
        2 => vec![
            "content-type: image/jpeg".into(),
            format!("content-length: {}", j.len()),
        ],
        _ => vec![
            "cOnTeNt-TyPe: image/jpeg".into(),
            format!("cOnTeNt-LeNgTh: {}", j.len()),
        ],
    });
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn header_no_space_after_colon() {
    // Foscam G2: `Content-Length:32514`.
    let f = frames(4, 320, 240, 410);
    let body = body_with_headers(&f, |_, j| {
        vec![
            "Content-Type:image/jpeg".into(),
            format!("Content-Length:{}", j.len()),
        ]
    });
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn header_values_padded_with_spaces() {
    // motion: `Content-Length:     12345`.
    let f = frames(4, 320, 240, 420);
    let body = body_with_headers(&f, |_, j| {
        vec![
            "Content-Type:   image/jpeg  ".into(),
            format!("Content-Length:     {}   ", j.len()),
        ]
    });
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn header_order_varies_and_extra_headers() {
    let f = frames(4, 320, 240, 430);
    let body = body_with_headers(&f, |i, j| {
        vec![
            format!("Content-Length: {}", j.len()),
            format!("X-Frame-Number: {i}"),
            "Content-Type: image/jpeg".into(),
            "Content-Disposition: inline; filename=\"snap.jpg\"".into(),
        ]
    });
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn part_type_variants() {
    let f = frames(5, 320, 240, 440);
    let types = [
        "image/jpg",
        "image/pjpeg",
        "image/jpeg;size=12345",
        "image/jpeg; charset=binary",
        "IMAGE/JPEG",
    ];
    let body = body_with_headers(&f, |i, j| {
        vec![
            format!("Content-Type: {}", types[i]),
            format!("Content-Length: {}", j.len()),
        ]
    });
    serve_std(&body, &f).counters(5, 0, 0);
}

#[test]
fn jpeg_typed_part_that_is_not_a_jpeg_is_skipped() {
    // `Content-Type: image/jpeg` on an HTML error page (camera firmware in a
    // bad mood): not a frame, skipped and counted, stream goes on.
    let f = frames(3, 320, 240, 605);
    let html = b"<html><body>Server busy</body></html>";
    let mut body = format!("--{B}\r\n").into_bytes();
    body.extend_from_slice(&ct_len(&f[0]));
    body.extend_from_slice(&delim(B));
    body.extend_from_slice(&ct_len(html));
    body.extend_from_slice(&delim(B));
    for j in &f[1..] {
        body.extend_from_slice(&ct_len(j));
        body.extend_from_slice(&delim(B));
    }
    serve_std(&body, &f).counters(3, 1, 0);
}

#[test]
fn part_without_content_type() {
    let f = frames(4, 320, 240, 450);
    let body = body_with_headers(&f, |_, j| vec![format!("Content-Length: {}", j.len())]);
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn non_jpeg_parts_are_skipped_and_counted() {
    let f = frames(4, 320, 240, 460);
    let mut body = format!("--{B}\r\n").into_bytes();
    let others: [(&str, &[u8]); 5] = [
        ("text/plain", b"motion detected\r\n"),
        ("text/xml", b"<event type=\"vmd\"/>"),
        ("application/xml", b"<?xml version=\"1.0\"?><x/>"),
        ("video/x-h264", b"\x00\x00\x00\x01\x67\x42\x00\x1e"),
        ("application/json", b"{\"fps\": 10}"),
    ];
    for (i, j) in f.iter().enumerate() {
        body.extend_from_slice(&ct_len(j));
        body.extend_from_slice(&delim(B));
        if let Some((t, data)) = others.get(i) {
            let ct = format!("Content-Type: {t}");
            let cl = format!("Content-Length: {}", data.len());
            body.extend_from_slice(&part(&[&ct, &cl], "\r\n", data));
            body.extend_from_slice(&delim(B));
        }
    }
    // One more non-JPEG part without Content-Length, then a last frame.
    body.extend_from_slice(&part(
        &["Content-Type: text/plain"],
        "\r\n",
        b"no length here",
    ));
    body.extend_from_slice(&delim(B));
    let last = jpeg(320, 240, 469);
    body.extend_from_slice(&ct_len(&last));
    body.extend_from_slice(&delim(B));
    let all: Vec<Vec<u8>> = f.iter().cloned().chain([last]).collect();
    serve_std(&body, &all).counters(5, 5, 0);
}

#[test]
fn no_content_length_boundary_after() {
    // Flask tutorials, Mobotix, ustreamer advance_headers: split on the
    // delimiter.
    let f = frames(5, 320, 240, 500);
    let body = body_with_headers(&f, |_, _| vec!["Content-Type: image/jpeg".into()]);
    serve_std(&body, &f).counters(5, 0, 0);
}

#[test]
fn no_content_length_boundary_before() {
    let f = frames(5, 320, 240, 510);
    let mut body = Vec::new();
    for j in &f {
        body.extend_from_slice(&delim(B));
        body.extend_from_slice(&part(&["Content-Type: image/jpeg"], "\r\n", j));
    }
    // The last frame ends at the next delimiter.
    body.extend_from_slice(&delim(B));
    serve_std(&body, &f).counters(5, 0, 0);
}

#[test]
fn no_content_length_lf_only_delimiter() {
    // `\n--B` followed by `\n`.
    let f = frames(4, 320, 240, 520);
    let mut body = format!("--{B}\n").into_bytes();
    for j in &f {
        body.extend_from_slice(&part(&["Content-Type: image/jpeg"], "\n", j));
        body.extend_from_slice(format!("\n--{B}\n").as_bytes());
    }
    serve(
        &head_http10(&mjpeg_type(B)),
        &body,
        &f,
        Some(format!("\n--{B}\n").as_bytes()),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn content_length_is_trusted_over_a_delimiter_lookalike() {
    // Never scan inside a part whose length is known: the JPEG's entropy
    // data contains `\r\n--frame\r\n`.
    let f: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            jpeg_containing(
                320,
                240,
                530 + i,
                b"\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n",
            )
        })
        .collect();
    serve_std(&boundary_after(B, &f), &f).counters(4, 0, 0);
}

#[test]
fn content_length_too_small() {
    // Length 50 bytes short: no FF D9 at the end of the counted bytes, so the
    // part continues to the delimiter and comes out whole. A length mismatch
    // is not a resync.
    let f = frames(4, 320, 240, 540);
    let body = body_with_headers(&f, |i, j| {
        let len = if i == 1 { j.len() - 50 } else { j.len() };
        vec![
            "Content-Type: image/jpeg".into(),
            format!("Content-Length: {len}"),
        ]
    });
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn junk_after_complete_parts_is_skipped() {
    // Correct lengths, but junk between each JPEG and the next delimiter
    // (cheap firmware, proxies): every frame is exactly its JPEG, the junk
    // is skipped and counted, and lengths stay trusted.
    const JUNK: &[u8] = b"garbage after the frame";
    let f = frames(30, 320, 240, 560);
    let mut body = format!("--{B}\r\n").into_bytes();
    for j in &f {
        body.extend_from_slice(&ct_len(j));
        body.extend_from_slice(JUNK);
        body.extend_from_slice(&delim(B));
    }
    let s = serve_std(&body, &f).counters(30, 0, 0);
    assert!(
        s.u64("junk-bytes") >= (30 * JUNK.len()) as u64,
        "junk-bytes in {}",
        s.0
    );
    assert_eq!(s.u64("length-mismatches"), 0, "{}", s.0);
}

#[test]
fn content_length_too_large_ends_at_the_inner_delimiter() {
    // Part 1 claims 40 bytes too many (a length that belongs to another
    // frame, as some VLC versions send): it swallows `\r\n--frame\r\n` and
    // the start of part 2's headers. The delimiter wins: frame 0 ends at the
    // delimiter found inside its count, what follows is parsed as part 2,
    // and every frame comes out whole, none lost.
    let f = frames(5, 320, 240, 550);
    let body = body_with_headers(&f, |i, j| {
        let len = if i == 0 { j.len() + 40 } else { j.len() };
        vec![
            "Content-Type: image/jpeg".into(),
            format!("Content-Length: {len}"),
        ]
    });
    // Frame 0 is released once bytes after its count show no delimiter
    // follows, so frames 0 and 1 arrive together; the rest is paced.
    let after_1 = find(&body, &f[1], 0).expect("frame 1") + f[1].len();
    let cut = find(&body, &delim(B), after_1).expect("delimiter after frame 1") + delim(B).len();
    let mut script = vec![
        Step::Write([head_http10(&mjpeg_type(B)), body[..cut].to_vec()].concat()),
        Step::AwaitPulled(2),
    ];
    script.extend(paced(
        &[],
        &body[cut..],
        &f[2..],
        Some(&delim(B)),
        Coding::Identity,
        2,
    ));
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let frames = src.frames(5);
    let flags: Vec<bool> = frames.iter().map(|f| f.discont()).collect();
    assert_eq!(
        &flags[1..],
        &[false, false, false, false],
        "DISCONT flags {frames:?}"
    );
    let got: Vec<Vec<u8>> = frames.into_iter().map(|f| f.data).collect();
    assert_frames(&got, &f);
    let s = src.wait_stats("repair counted", |s| s.u64("frames-pushed") >= 5);
    assert_eq!(s.u64("length-mismatches"), 1, "{}", s.0);
    assert_eq!(s.u64("resyncs"), 0, "{}", s.0);
    assert_eq!(s.u64("frames-dropped"), 0, "{}", s.0);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
}

#[test]
fn content_length_unparseable_or_absurd_is_ignored() {
    // Garbage, negative, and far beyond any frame size: not usable, so these
    // parts end at the delimiter.
    let f = frames(4, 320, 240, 555);
    let lens = ["abc", "-5", "99999999999999999999999", "12 34"];
    let body = body_with_headers(&f, |i, _| {
        vec![
            "Content-Type: image/jpeg".into(),
            format!("Content-Length: {}", lens[i]),
        ]
    });
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn content_length_duplicated_last_wins() {
    let f = frames(4, 320, 240, 560);
    let body = body_with_headers(&f, |_, j| {
        vec![
            "Content-Type: image/jpeg".into(),
            "Content-Length: 17".into(),
            format!("Content-Length: {}", j.len()),
        ]
    });
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn empty_parts_are_skipped_and_counted() {
    // ustreamer zero_data, picamera2's first frame: Content-Length 0 parts
    // are not the end of the stream.
    let f = frames(3, 320, 240, 570);
    let empty = part(
        &["Content-Type: image/jpeg", "Content-Length: 0"],
        "\r\n",
        b"",
    );
    let mut body = format!("--{B}\r\n").into_bytes();
    body.extend_from_slice(&empty);
    body.extend_from_slice(&delim(B));
    for j in &f {
        body.extend_from_slice(&ct_len(j));
        body.extend_from_slice(&delim(B));
        body.extend_from_slice(&empty);
        body.extend_from_slice(&delim(B));
    }
    let last = jpeg(320, 240, 579);
    body.extend_from_slice(&ct_len(&last));
    body.extend_from_slice(&delim(B));
    let all: Vec<Vec<u8>> = f.iter().cloned().chain([last]).collect();
    serve_std(&body, &all).counters(4, 4, 0);
}

#[test]
fn duplicated_delimiter_lines() {
    // Foscam G2: `--B\r\n--B\r\n`.
    let f = frames(4, 320, 240, 580);
    let mut body = format!("--{B}\r\n--{B}\r\n").into_bytes();
    for j in &f {
        body.extend_from_slice(&ct_len(j));
        body.extend_from_slice(format!("\r\n--{B}\r\n--{B}\r\n").as_bytes());
    }
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn blank_lines_and_bare_lf_between_parts() {
    let f = frames(4, 320, 240, 590);
    let gaps: [&[u8]; 4] = [b"\r\n\r\n", b"\n\n\n", b"\r\n\n\r\n\r\n", b""];
    let mut body = b"\r\n\n".to_vec();
    body.extend_from_slice(format!("--{B}\r\n").as_bytes());
    for (i, j) in f.iter().enumerate() {
        body.extend_from_slice(&ct_len(j));
        body.extend_from_slice(gaps[i]);
        body.extend_from_slice(&delim(B));
    }
    serve_std(&body, &f).counters(4, 0, 0);
}

#[test]
fn lf_only_line_endings_with_length() {
    // Old ffserver: LF everywhere.
    let f = frames(4, 320, 240, 600);
    let mut body = format!("--{B}\n").into_bytes();
    for j in &f {
        let cl = format!("Content-Length: {}", j.len());
        body.extend_from_slice(&part(&["Content-Type: image/jpeg", &cl], "\n", j));
        body.extend_from_slice(format!("\n--{B}\n").as_bytes());
    }
    let head = b"HTTP/1.0 200 OK\nContent-Type: multipart/x-mixed-replace;boundary=frame\n\n";
    serve(
        head,
        &body,
        &f,
        Some(format!("\n--{B}\n").as_bytes()),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

#[test]
fn delimiter_glued_to_next_header() {
    // `--jpgboundaryContent-type: ...` with no line break.
    let b = "jpgboundary";
    let f = frames(4, 320, 240, 610);
    let mut body = Vec::new();
    for j in &f {
        body.extend_from_slice(format!("--{b}").as_bytes());
        let cl = format!("Content-Length: {}", j.len());
        body.extend_from_slice(&part(&["Content-type: image/jpeg", &cl], "\r\n", j));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}").as_bytes());
    serve(
        &head_http10(&mjpeg_type(b)),
        &body,
        &f,
        Some(format!("\r\n--{b}").as_bytes()),
        Coding::Identity,
    )
    .counters(4, 0, 0);
}

/// Two frames, then `--frame--` and a frame-like part on the same
/// connection (held open), then two frames on the next connection. Returns
/// the time between the 2nd and the 3rd frame.
fn close_delimiter(timeout: Option<u32>) -> Duration {
    // `--frame--` closes the stream: what follows on that connection is not
    // delivered; the element reconnects and reads on.
    let f1 = frames(2, 320, 240, 620);
    let after_close = jpeg(320, 240, 622);
    let f2 = frames(2, 320, 240, 623);
    let mut s1 = paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, &f1),
        &f1,
        Some(&delim(B)),
        Coding::Identity,
        0,
    );
    // boundary_after() ended with `\r\n--frame\r\n`; close with a text
    // part and the close delimiter, then junk that looks like a frame.
    let mut tail = format!("Content-Type: text/plain\r\n\r\nbye\r\n--{B}--\r\n").into_bytes();
    tail.extend_from_slice(&ct_len(&after_close));
    tail.extend_from_slice(&delim(B));
    s1.push(Step::Write(tail));
    s1.push(Step::Stall);
    let mut s2 = paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, &f2),
        &f2,
        Some(&delim(B)),
        Coding::Identity,
        2,
    );
    s2.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let mut src = Src::harness_for_camera(&cam, "/");
    if let Some(t) = timeout {
        src = src.set("timeout", t);
    }
    let src = src.play();
    let mut got = src.frame_data(2);
    let t = std::time::Instant::now();
    // Up to 15 s: long enough to tell "after the default 10 s stall timeout"
    // from "never".
    for _ in 0..2 {
        let f = src.frame(Duration::from_secs(15)).unwrap_or_else(|| {
            panic!("no frame from the next connection; stats {}", src.stats().0)
        });
        got.push(f.data);
    }
    let waited = t.elapsed();
    assert_frames(&got, &[f1, f2].concat());
    let s = src.wait_stats("reconnect counted", |s| s.u64("reconnects") >= 1);
    assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
    waited
}

#[test]
fn close_delimiter_ends_the_stream() {
    // timeout=1: even an element that waits for EOF after `--B--` moves on.
    close_delimiter(Some(1));
}

#[test]
fn close_delimiter_ends_the_connection_promptly() {
    // Default timeout (10 s): after `--B--` the stream is over, the element
    // must not sit on the open connection until it counts as stalled.
    let waited = close_delimiter(None);
    assert!(
        waited < Duration::from_secs(3),
        "reconnected {waited:?} after the closing delimiter"
    );
}

#[test]
fn boundary_ending_in_dashes_is_not_a_close() {
    // TP-Link Kasa: boundary `data-boundary--`, HTTP/1.0 + chunked.
    let b = "data-boundary--";
    let f = frames(5, 320, 240, 630);
    let mut script = paced(
        &head_http10_chunked(&mjpeg_type(b)),
        &boundary_after(b, &f),
        &f,
        Some(&delim(b)),
        Coding::Chunked(64),
        0,
    );
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 5u32)
        .play();
    assert_frames(&src.frame_data(5), &f);
    let s = src.wait_stats("frames counted", |s| s.u64("frames-pushed") >= 5);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    assert_eq!(cam.connections(), 1);
}

#[test]
fn bytes_after_eoi_are_kept_with_length() {
    let f: Vec<Vec<u8>> = (0..4u32)
        .map(|i| {
            let mut j = jpeg(320, 240, 640 + i);
            j.extend_from_slice(b"\r\n\x00\x00trailing-bytes\x00");
            j
        })
        .collect();
    serve_std(&boundary_after(B, &f), &f).counters(4, 0, 0);
}

#[test]
fn bytes_after_eoi_are_kept_without_length() {
    let f: Vec<Vec<u8>> = (0..4u32)
        .map(|i| {
            let mut j = jpeg(320, 240, 650 + i);
            j.extend_from_slice(b"\x00\x00pad");
            j
        })
        .collect();
    let body = body_with_headers(&f, |_, _| vec!["Content-Type: image/jpeg".into()]);
    serve_std(&body, &f).counters(4, 0, 0);
}

// ---------------------------------------------------------------------------
// Not multipart: raw concatenated JPEGs
// ---------------------------------------------------------------------------

fn raw_stream(content_type: Option<&str>, f: &[Vec<u8>]) {
    let h = match content_type {
        Some(ct) => head_http10(ct),
        None => head("HTTP/1.0 200 OK", &[("Connection", "close")]),
    };
    serve(&h, &f.concat(), f, None, Coding::Identity).counters(f.len() as u64, 0, 0);
}

#[test]
fn raw_jpeg_concatenated_image_jpeg() {
    raw_stream(Some("image/jpeg"), &frames(4, 320, 240, 700));
}

#[test]
fn raw_jpeg_concatenated_octet_stream() {
    raw_stream(Some("application/octet-stream"), &frames(4, 320, 240, 710));
}

#[test]
fn raw_jpeg_concatenated_no_content_type() {
    raw_stream(None, &frames(4, 320, 240, 720));
}

#[test]
fn raw_jpeg_with_exif_thumbnails() {
    // Nested SOI/EOI inside APP1 must not end a frame.
    let f: Vec<Vec<u8>> = (0..4u32)
        .map(|i| {
            if i % 2 == 0 {
                jpeg_with_exif_thumbnail(320, 240, 730 + i)
            } else {
                jpeg(320, 240, 730 + i)
            }
        })
        .collect();
    raw_stream(Some("image/jpeg"), &f);
}

#[test]
fn exif_thumbnail_in_multipart_part() {
    let f: Vec<Vec<u8>> = (0..3u32)
        .map(|i| jpeg_with_exif_thumbnail(320, 240, 740 + i))
        .collect();
    serve_std(&boundary_after(B, &f), &f).counters(3, 0, 0);
}

// ---------------------------------------------------------------------------
// Hostile or broken input
// ---------------------------------------------------------------------------

#[test]
fn trickled_one_byte_at_a_time() {
    let f = frames(3, 320, 240, 800);
    let script: Vec<Step> = paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Identity,
        0,
    )
    .into_iter()
    .map(|s| match s {
        Step::Write(data) => Step::Trickle {
            data,
            piece: 1,
            pause: Duration::from_micros(300),
        },
        other => other,
    })
    .chain([Step::Stall])
    .collect();
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/").play();
    assert_frames(&src.frame_data(3), &f);
    let s = src.wait_stats("frames counted", |s| s.u64("frames-pushed") >= 3);
    assert_eq!(s.u64("frames-dropped"), 0, "{}", s.0);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
}

#[test]
fn oversized_part_with_length_is_dropped_and_counted() {
    let small = frames(2, 320, 240, 810);
    let big = jpeg_with_len(320, 240, 812, 200 * 1024);
    let after = frames(2, 320, 240, 813);
    let sent: Vec<Vec<u8>> = vec![
        small[0].clone(),
        small[1].clone(),
        big,
        after[0].clone(),
        after[1].clone(),
    ];
    let want: Vec<Vec<u8>> = [small, after].concat();
    let body = boundary_after(B, &sent);
    let mut script = paced(
        &head_http10(&mjpeg_type(B)),
        &body,
        &want,
        Some(&delim(B)),
        Coding::Identity,
        0,
    );
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("max-frame-size", 64u32 * 1024)
        .play();
    let got = src.frames(4);
    let flags: Vec<bool> = got.iter().map(|f| f.discont()).collect();
    assert_eq!(
        &flags[1..],
        &[false, true, false],
        "DISCONT after the drop: {got:?}"
    );
    assert_frames(&got.into_iter().map(|f| f.data).collect::<Vec<_>>(), &want);
    let s = src.wait_stats("drop counted", |s| {
        s.u64("dropped-too-big") >= 1 && s.u64("frames-pushed") >= 4
    });
    assert_eq!(s.u64("dropped-too-big"), 1, "{}", s.0);
    assert_eq!(s.u64("frames-dropped"), 1, "{}", s.0);
    assert_eq!(s.u64("frames-pushed"), 4, "{}", s.0);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
}

#[test]
fn oversized_part_without_length_is_dropped_and_counted() {
    // A 1 MiB part without Content-Length against max-frame-size 64 KiB:
    // dropped and counted, the next frames come out.
    let small = frames(2, 320, 240, 820);
    let big = jpeg_with_len(320, 240, 822, 1024 * 1024);
    let after = frames(2, 320, 240, 823);
    let sent: Vec<Vec<u8>> = vec![
        small[0].clone(),
        small[1].clone(),
        big,
        after[0].clone(),
        after[1].clone(),
    ];
    let want: Vec<Vec<u8>> = [small, after].concat();
    let body = body_with_headers(&sent, |_, _| vec!["Content-Type: image/jpeg".into()]);
    let mut script = paced(
        &head_http10(&mjpeg_type(B)),
        &body,
        &want,
        Some(&delim(B)),
        Coding::Identity,
        0,
    );
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("max-frame-size", 64u32 * 1024)
        .play();
    let got = src.frames(4);
    let flags: Vec<bool> = got.iter().map(|f| f.discont()).collect();
    assert_eq!(
        &flags[1..],
        &[false, true, false],
        "DISCONT after the drop: {got:?}"
    );
    assert_frames(&got.into_iter().map(|f| f.data).collect::<Vec<_>>(), &want);
    let s = src.wait_stats("drop counted", |s| {
        s.u64("dropped-too-big") >= 1 && s.u64("frames-pushed") >= 4
    });
    assert_eq!(s.u64("dropped-too-big"), 1, "{}", s.0);
    assert_eq!(s.u64("frames-dropped"), 1, "{}", s.0);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
}

#[test]
fn unbounded_header_block_recovers() {
    // A part header that never ends (64 KiB without a line break): capped,
    // then the element recovers (resync or reconnect) and reads on.
    let a = jpeg(320, 240, 830);
    let later = frames(2, 320, 240, 831);
    let mut s1 = paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, std::slice::from_ref(&a)),
        std::slice::from_ref(&a),
        Some(&delim(B)),
        Coding::Identity,
        0,
    );
    let mut junk = b"X-Junk: ".to_vec();
    junk.extend(std::iter::repeat_n(b'x', 64 * 1024));
    s1.push(Step::Write(junk));
    s1.push(Step::Stall);
    let mut s2 = paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, &later),
        &later,
        Some(&delim(B)),
        Coding::Identity,
        1,
    );
    s2.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 2u32)
        .play();
    let got = src.frame_data(3);
    assert_frames(&got, &[vec![a], later].concat());
    let s = src.wait_stats("reconnect counted", |s| s.u64("reconnects") >= 1);
    assert!(!s.str("last-reconnect-reason").is_empty(), "{}", s.0);
}

#[test]
fn boundary_that_never_comes_reconnects() {
    // After a length-framed part, 5 MiB without any delimiter: more than
    // the parser's 4 MiB garbage cap, so the element gives up on this
    // connection (junk counted, then reconnect) instead of scanning forever.
    let a = jpeg(320, 240, 840);
    let b = jpeg(320, 240, 841);
    let mut body = format!("--{B}\r\n").into_bytes();
    body.extend_from_slice(&ct_len(&a));
    let mut s1 = paced(
        &head_http10(&mjpeg_type(B)),
        &body,
        std::slice::from_ref(&a),
        None,
        Coding::Identity,
        0,
    );
    let mut garbage = b"\r\n".to_vec();
    let mut seed = 0;
    while garbage.len() < 5 * 1024 * 1024 {
        seed += 1;
        garbage.extend_from_slice(&jpeg_with_len(8, 8, 10_000 + seed, 60_000)[20..]);
    }
    s1.push(Step::Write(garbage));
    s1.push(Step::Stall);
    let mut s2 = paced(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, std::slice::from_ref(&b)),
        std::slice::from_ref(&b),
        Some(&delim(B)),
        Coding::Identity,
        1,
    );
    s2.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 3u32)
        .play();
    assert_frames(&src.frame_data(2), &[a, b]);
    let s = src.wait_stats("reconnect counted", |s| s.u64("reconnects") >= 1);
    assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
    // The bytes after the complete part are junk, skipped and counted up
    // to the garbage cap; lengths stay trusted.
    assert!(s.u64("junk-bytes") >= 4 * 1024 * 1024, "{}", s.0);
    assert_eq!(s.u64("frames-pushed"), 2, "{}", s.0);
}

#[test]
fn whole_stream_in_one_write() {
    // 20 frames in one write: the element may drop (a small hand-over
    // queue, which drops the oldest), but what comes out is byte-identical,
    // in order, ends with the newest frame, and every frame is accounted
    // for. The pool has more buffers than frames: the harness holds every
    // pushed buffer until the test pulls it, and a pool emptied that way
    // drops the newest frame (downstream's hold, not the queue's rule).
    let f = frames(20, 320, 240, 900);
    let mut bytes = head_http10(&mjpeg_type(B));
    bytes.extend_from_slice(&boundary_after(B, &f));
    let cam = FakeCamera::scripted(vec![vec![Step::Write(bytes), Step::Stall]]);
    let src = Src::fast_harness(&cam.url("/"))
        .set("pool-size", 32u32)
        .play();
    let mut got: Vec<Frame> = Vec::new();
    while got.last().is_none_or(|l| l.data != f[19]) {
        let fr = src.frame(WAIT).unwrap_or_else(|| {
            panic!(
                "the newest frame never came: got {got:?}, stats {}",
                src.stats().0
            )
        });
        got.push(fr);
    }
    let idx: Vec<usize> = got
        .iter()
        .map(|g| {
            f.iter()
                .position(|x| *x == g.data)
                .expect("a frame that was never sent whole")
        })
        .collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "in order: {idx:?}");
    for w in got.windows(2) {
        let gap = w[1].offset() - w[0].offset();
        assert_eq!(
            w[1].discont(),
            gap > 1,
            "DISCONT iff frames are missing: {got:?}"
        );
    }
    let s = src.wait_stats("all frames accounted for", |s| {
        s.u64("frames-received") == 20 && s.u64("frames-pushed") + s.u64("frames-dropped") == 20
    });
    assert_eq!(s.u64("frames-pushed"), got.len() as u64, "{}", s.0);
    assert_eq!(s.u64("dropped-too-big"), 0, "{}", s.0);
    assert_eq!(s.u64("dropped-no-buffer"), 0, "{}", s.0);
}
