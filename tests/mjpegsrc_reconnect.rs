// SPDX-License-Identifier: MPL-2.0

//! Reconnects inside the element: frames before and after a drop, stall,
//! 5xx, refused connection or EOF; errors where a retry cannot help.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn status(code: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<Step> {
    let mut h: Vec<(&str, &str)> = vec![("Content-Length", "0"), ("Connection", "close")];
    h.extend_from_slice(extra);
    vec![
        Step::Write(head(&format!("HTTP/1.1 {code} {reason}"), &h)),
        Step::Close,
    ]
}

fn reconnect_messages(src: &Src) -> Vec<gst::Structure> {
    src.element_messages_seen("mjpegsrc-reconnect")
}

/// Check the frames around a reconnect and the bookkeeping that goes with
/// it: DISCONT on the first frame of the new connection, one reconnect
/// counted, a reconnect message and warning posted, a reason recorded.
fn check_one_reconnect(src: &Src, got: &[Frame], first_after: usize) {
    assert!(
        got[first_after].discont(),
        "first frame after the reconnect must be DISCONT: {got:?}"
    );
    for (i, f) in got.iter().enumerate().skip(1) {
        if i != first_after {
            assert!(!f.discont(), "frame {i} must not be DISCONT: {got:?}");
        }
    }
    let s = src.wait_stats("reconnect counted", |s| s.u64("reconnects") >= 1);
    assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
    assert!(!s.str("last-reconnect-reason").is_empty(), "{}", s.0);
    let m = src
        .element_message("mjpegsrc-reconnect", WAIT)
        .expect("mjpegsrc-reconnect message");
    assert_eq!(m.get::<u32>("attempt").expect("attempt u32"), 1, "{m}");
    assert!(
        !m.get::<String>("reason").expect("reason str").is_empty(),
        "{m}"
    );
    m.get::<u64>("delay-ms").expect("delay-ms u64");
    assert!(
        src.warnings_seen() >= 1,
        "a warning must be posted with each reconnect"
    );
}

#[test]
fn reset_mid_frame_then_reconnect() {
    let f = frames(5, 320, 240, 1000);
    let half = std_part(&f[2]);
    let mut s1 = stream(&f[..2], 0);
    s1.push(Step::Write(half[..half.len() / 2].to_vec()));
    s1.push(Step::Reset);
    let s2 = with(stream(&f[3..], 2), [Step::Stall]);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frames(4);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    // Frame 2 was cut: never delivered, not even partly.
    assert_frames(&data, &[&f[..2], &f[3..]].concat());
    check_one_reconnect(&src, &got, 2);
}

#[test]
fn close_mid_frame_then_reconnect() {
    // FIN in the middle of a part of a close-delimited body.
    let f = frames(5, 320, 240, 1010);
    let half = std_part(&f[2]);
    let mut s1 = stream(&f[..2], 0);
    s1.push(Step::Write(half[..half.len() - 30].to_vec()));
    s1.push(Step::Close);
    let s2 = with(stream(&f[3..], 2), [Step::Stall]);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frames(4);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &[&f[..2], &f[3..]].concat());
    check_one_reconnect(&src, &got, 2);
}

#[test]
fn close_mid_frame_without_length_then_reconnect() {
    // No Content-Length and the JPEG is cut before FF D9: at EOF the part
    // does not look like a whole JPEG and is aborted.
    let f = frames(4, 320, 240, 1020);
    let mut body = format!("--{B}\r\n").into_bytes();
    for j in &f[..2] {
        body.extend_from_slice(b"Content-Type: image/jpeg\r\n\r\n");
        body.extend_from_slice(j);
        body.extend_from_slice(&delim(B));
    }
    let mut s1 = paced(
        &head_http10(&mjpeg_type(B)),
        &body,
        &f[..2],
        Some(&delim(B)),
        Coding::Identity,
        0,
    );
    let mut cut = b"Content-Type: image/jpeg\r\n\r\n".to_vec();
    cut.extend_from_slice(&jpeg(320, 240, 1029)[..200]);
    s1.push(Step::Write(cut));
    s1.push(Step::Close);
    let s2 = with(stream(&f[2..], 2), [Step::Stall]);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frames(4);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    check_one_reconnect(&src, &got, 2);
}

#[test]
fn eof_at_part_boundary_then_reconnect_without_range() {
    let f = frames(4, 320, 240, 1030);
    let s1 = with(stream(&f[..2], 0), [Step::Close]);
    let s2 = with(stream(&f[2..], 2), [Step::Stall]);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/cam").play();
    let got = src.frames(4);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    check_one_reconnect(&src, &got, 2);
    let r0 = cam.next_request(WAIT).expect("first request");
    let r1 = cam.next_request(WAIT).expect("second request");
    for r in [&r0, &r1] {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path(), "/cam");
        assert!(
            r.header("Range").is_none(),
            "no Range header:\n{}",
            r.text()
        );
    }
    assert_eq!(r1.conn, 1, "the reconnect opens a new connection");
}

#[test]
fn stall_times_out_and_reconnects() {
    let f = frames(3, 320, 240, 1040);
    let s1 = with(stream(&f[..1], 0), [Step::Stall]);
    let s2 = with(stream(&f[1..], 1), [Step::Stall]);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 1u32)
        .play();
    let first = src.frames(1);
    let t = Instant::now();
    let rest = src.frames(2);
    let waited = t.elapsed();
    let got: Vec<Frame> = first.into_iter().chain(rest).collect();
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    check_one_reconnect(&src, &got, 1);
    // timeout=1 s: no earlier than ~1 s after the last byte, not much later.
    assert!(
        waited >= Duration::from_millis(900),
        "reconnected after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "reconnected after {waited:?}"
    );
}

#[test]
fn stall_with_timeout_zero_never_reconnects() {
    let f = frames(1, 320, 240, 1045);
    let s1 = with(stream(&f, 0), [Step::Stall]);
    let cam = FakeCamera::scripted(vec![s1]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 0u32)
        .play();
    src.frames(1);
    // Bounded observation window: nothing happens for 2.5 s.
    assert!(src.frame(Duration::from_millis(2500)).is_none());
    let s = src.stats();
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    assert_eq!(cam.connections(), 1);
}

#[test]
fn service_unavailable_at_start_then_ok() {
    let f = frames(3, 320, 240, 1050);
    let s503 = || status(503, "Service Unavailable", &[("Retry-After", "1")]);
    let cam = FakeCamera::scripted(vec![s503(), s503(), with(stream(&f, 0), [Step::Stall])]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frames(3);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
    let msgs = reconnect_messages(&src);
    let attempts: Vec<u32> = msgs
        .iter()
        .map(|m| m.get::<u32>("attempt").expect("attempt"))
        .collect();
    assert_eq!(attempts, vec![1, 2], "{msgs:?}");
    let s = src.wait_stats("connected", |s| s.bool("connected"));
    assert_eq!(s.u64("reconnects"), 2, "{}", s.0);
}

#[test]
fn refused_then_up() {
    let port = free_port();
    let src = Src::fast_harness(&format!("http://127.0.0.1:{port}/stream"))
        .set("retry-delay", 20u32)
        .set("retry-delay-max", 50u32)
        .play();
    // The element keeps retrying a refused connection.
    for want in 1..=2u32 {
        let m = src
            .element_message("mjpegsrc-reconnect", WAIT)
            .unwrap_or_else(|| panic!("reconnect message {want}: error {:?}", src.posted_error()));
        assert_eq!(m.get::<u32>("attempt").expect("attempt"), want, "{m}");
    }
    assert!(!src.stats().bool("connected"));
    let f = frames(3, 320, 240, 1060);
    let cam = FakeCamera::start_on(port, {
        let script = std::sync::Mutex::new(Some(with(stream(&f, 0), [Step::Stall])));
        move |_| lock(&script).take().unwrap_or_else(|| vec![Step::Stall])
    });
    let src = src.paced_by(&cam);
    let got = src.frames(3);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    assert!(got[0].discont());
    assert!(src.posted_error().is_none());
    let s = src.wait_stats("connected", |s| s.bool("connected"));
    assert!(s.u64("reconnects") >= 2, "{}", s.0);
}

#[test]
fn not_found_on_first_connect_is_an_error() {
    let cam = FakeCamera::scripted(vec![status(404, "Not Found", &[])]);
    let src = Src::harness_for_camera(&cam, "/nope").play();
    let (err, debug) = src.error(WAIT).expect("error message");
    assert!(
        err.matches(gst::ResourceError::NotFound),
        "want ResourceError::NotFound, got {err:?} ({debug})"
    );
    assert!(src.frame(Duration::from_millis(100)).is_none());
    cam.next_request(WAIT).expect("the request");
    // No retry: no second request within a bounded window.
    assert!(
        cam.next_request(Duration::from_millis(500)).is_none(),
        "404 must not be retried"
    );
    assert!(reconnect_messages(&src).is_empty());
}

#[test]
fn unauthorized_on_first_connect_is_an_error() {
    let cam = FakeCamera::start(|_| {
        status(
            401,
            "Unauthorized",
            &[("WWW-Authenticate", "Basic realm=\"cam\"")],
        )
    });
    let src = Src::harness_for_camera(&cam, "/").play();
    let (err, debug) = src.error(WAIT).expect("error message");
    assert!(
        err.matches(gst::ResourceError::NotAuthorized),
        "want ResourceError::NotAuthorized, got {err:?} ({debug})"
    );
    assert!(reconnect_messages(&src).is_empty());
}

#[test]
fn forbidden_on_first_connect_is_an_error() {
    let cam = FakeCamera::start(|_| status(403, "Forbidden", &[]));
    let src = Src::harness_for_camera(&cam, "/").play();
    let (err, debug) = src.error(WAIT).expect("error message");
    assert!(
        err.matches(gst::ResourceError::NotAuthorized),
        "want ResourceError::NotAuthorized, got {err:?} ({debug})"
    );
    assert!(reconnect_messages(&src).is_empty());
}

#[test]
fn not_found_after_the_stream_ran_is_retried() {
    // Once a stream has run, `retries` governs even 404 (camera rebooting).
    let f = frames(3, 320, 240, 1070);
    let cam = FakeCamera::scripted(vec![
        with(stream(&f[..1], 0), [Step::Close]),
        status(404, "Not Found", &[]),
        with(stream(&f[1..], 1), [Step::Stall]),
    ]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frames(3);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    assert!(got[1].discont());
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
    assert_eq!(
        src.wait_stats("reconnects", |s| s.u64("reconnects") >= 2)
            .u64("reconnects"),
        2
    );
}

fn retries_exhausted(retries: i32) {
    let port = free_port();
    let src = Src::fast_harness(&format!("http://127.0.0.1:{port}/"))
        .set("retries", retries)
        .play();
    let (err, debug) = src
        .error(WAIT)
        .expect("error after the retries are exhausted");
    assert!(
        err.matches(gst::ResourceError::Read) || err.matches(gst::ResourceError::OpenRead),
        "want ResourceError::Read or OpenRead, got {err:?} ({debug})"
    );
    // One reconnect message per retry (retries = retries after the first
    // attempt, as souphttpsrc counts them).
    let msgs = reconnect_messages(&src);
    let attempts: Vec<u32> = msgs
        .iter()
        .map(|m| m.get::<u32>("attempt").expect("attempt"))
        .collect();
    assert_eq!(
        attempts,
        (1..=retries as u32).collect::<Vec<_>>(),
        "{msgs:?}"
    );
}

#[test]
fn retries_exhausted_is_an_error() {
    retries_exhausted(3);
}

#[test]
fn retries_zero_fails_at_the_first_failure() {
    retries_exhausted(0);
}

#[test]
fn retries_exhausted_after_the_stream_ran() {
    let f = frames(2, 320, 240, 1080);
    // The stream runs once, then every request gets 503.
    let script = std::sync::Mutex::new(Some(with(stream(&f, 0), [Step::Close])));
    let cam = FakeCamera::start(move |_| {
        lock(&script)
            .take()
            .unwrap_or_else(|| status(503, "Service Unavailable", &[]))
    });
    let src = Src::harness_for_camera(&cam, "/")
        .set("retries", 2i32)
        .play();
    let data: Vec<Vec<u8>> = src.frames(2).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    let (err, debug) = src
        .error(WAIT)
        .expect("error after the retries are exhausted");
    assert!(
        err.matches(gst::ResourceError::Read) || err.matches(gst::ResourceError::OpenRead),
        "got {err:?} ({debug})"
    );
    let attempts: Vec<u32> = reconnect_messages(&src)
        .iter()
        .map(|m| m.get::<u32>("attempt").expect("attempt"))
        .collect();
    assert_eq!(attempts, vec![1, 2]);
}

#[test]
fn backoff_grows_to_the_cap() {
    // retry-delay 100 ms doubling up to retry-delay-max 400 ms, each delay
    // varied by up to ±20 % (never below 100 ms).
    let port = free_port();
    let src = Src::fast(&format!("http://127.0.0.1:{port}/"))
        .set("retry-delay", 100u32)
        .set("retry-delay-max", 400u32)
        .play();
    let mut delays = Vec::new();
    for want in 1..=6u32 {
        let m = src
            .element_message("mjpegsrc-reconnect", WAIT)
            .unwrap_or_else(|| panic!("reconnect message {want}: {:?}", src.posted_error()));
        assert_eq!(m.get::<u32>("attempt").expect("attempt"), want, "{m}");
        delays.push(m.get::<u64>("delay-ms").expect("delay-ms"));
    }
    let nominal = [100u64, 200, 400, 400, 400, 400];
    for (d, n) in delays.iter().zip(nominal) {
        assert!(
            (n * 8 / 10..=n * 12 / 10).contains(d) && *d >= 100,
            "{d} ms for a nominal {n} ms: {delays:?}"
        );
    }
    assert!(
        delays.iter().zip(nominal).any(|(d, n)| *d != n),
        "jitter: {delays:?}"
    );
    assert!(delays[5] > delays[0], "grows: {delays:?}");
}

#[test]
fn attempt_counter_restarts_after_a_successful_connection() {
    // Only a working session (frames for at least 5 s) restarts the count:
    // a session with one frame does not, one with frames 5 s apart does.
    let f = frames(4, 320, 240, 1090);
    let mut working = stream(&f[1..2], 1);
    working.push(Step::Pause(Duration::from_millis(5200)));
    working.extend(stream(&f[2..3], 2).into_iter().skip(1));
    working.push(Step::Close);
    let cam = FakeCamera::scripted(vec![
        status(503, "Service Unavailable", &[]),
        with(stream(&f[..1], 0), [Step::Close]),
        status(503, "Service Unavailable", &[]),
        working,
        status(503, "Service Unavailable", &[]),
        with(stream(&f[3..], 3), [Step::Stall]),
    ]);
    let src = Src::for_camera(&cam, "/").play();
    let data: Vec<Vec<u8>> = src.frames(4).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    let attempts: Vec<u32> = reconnect_messages(&src)
        .iter()
        .map(|m| m.get::<u32>("attempt").expect("attempt"))
        .collect();
    // 503 (1), one frame, EOF (2), 503 (3), frames over 5 s, EOF (1),
    // 503 (2), stream.
    assert_eq!(attempts, vec![1, 2, 3, 1, 2]);
}

#[test]
fn no_response_times_out_and_reconnects() {
    // The camera accepts and reads the request but never answers.
    let f = frames(2, 320, 240, 1100);
    let cam = FakeCamera::scripted(vec![vec![Step::Stall], with(stream(&f, 0), [Step::Stall])]);
    let t = Instant::now();
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 1u32)
        .set("connect-timeout", 1u32)
        .play();
    let data: Vec<Vec<u8>> = src.frames(2).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "gave up after {waited:?}"
    );
    let attempts: Vec<u32> = reconnect_messages(&src)
        .iter()
        .map(|m| m.get::<u32>("attempt").expect("attempt"))
        .collect();
    assert_eq!(attempts, vec![1]);
}

#[test]
fn reset_before_the_response_reconnects() {
    let f = frames(2, 320, 240, 1110);
    let cam = FakeCamera::scripted(vec![
        vec![Step::Reset],
        vec![
            Step::Write(b"HTTP/1.0 200 OK\r\nContent-Ty".to_vec()),
            Step::Reset,
        ],
        with(stream(&f, 0), [Step::Stall]),
    ]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let data: Vec<Vec<u8>> = src.frames(2).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
    let s = src.wait_stats("reconnects", |s| s.u64("reconnects") >= 2);
    assert_eq!(s.u64("reconnects"), 2, "{}", s.0);
}

#[test]
fn unbounded_response_headers_reconnect() {
    // A response head that never ends: capped, the connection abandoned.
    let f = frames(2, 320, 240, 1120);
    let mut junk = b"HTTP/1.0 200 OK\r\nX-Junk: ".to_vec();
    junk.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    let cam = FakeCamera::scripted(vec![
        vec![Step::Write(junk), Step::Stall],
        with(stream(&f, 0), [Step::Stall]),
    ]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 2u32)
        .play();
    let data: Vec<Vec<u8>> = src.frames(2).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
    // Abandoned because of the cap, not after a timeout or at EOF.
    let m = src
        .element_message("mjpegsrc-reconnect", WAIT)
        .expect("a reconnect message");
    assert_eq!(
        m.get::<String>("reason").ok().as_deref(),
        Some("protocol error: response head larger than 65536 bytes"),
        "{m}"
    );
}

#[test]
fn chunked_terminator_ends_the_stream() {
    // The last chunk arrives and the connection stays open (keep-alive):
    // the body is over, the element must not wait for a timeout. Both a new
    // connection and a second request on this one are fine.
    let f = frames(4, 320, 240, 1130);
    let mut s1 = paced(
        &head_http11_chunked(&mjpeg_type(B)),
        &boundary_after(B, &f[..2]),
        &f[..2],
        Some(&delim(B)),
        Coding::Chunked(64),
        0,
    );
    s1.push(Step::Write(CHUNK_END.to_vec()));
    let s2 = with(stream(&f[2..], 2), [Step::Stall]);
    let cam = FakeCamera::scripted(vec![s1, s2]);
    let t = Instant::now();
    // Default timeout (10 s) is longer than the frame wait.
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 30u32)
        .play();
    let got = src.frames(4);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    assert!(got[2].discont());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn endless_chunk_size_line_reconnects() {
    // A chunk-size line that never ends: capped, the connection abandoned.
    let f = frames(2, 320, 240, 1140);
    let mut junk = head_http11_chunked(&mjpeg_type(B));
    junk.extend(std::iter::repeat_n(b'0', 256 * 1024));
    let cam = FakeCamera::scripted(vec![
        vec![Step::Write(junk), Step::Stall],
        with(stream(&f, 0), [Step::Stall]),
    ]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("timeout", 2u32)
        .play();
    let data: Vec<Vec<u8>> = src.frames(2).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
    // Abandoned because of the cap: not a full buffer read as EOF, not a
    // stall.
    let m = src
        .element_message("mjpegsrc-reconnect", WAIT)
        .expect("a reconnect message");
    assert_eq!(
        m.get::<String>("reason").ok().as_deref(),
        Some("protocol error: chunk-size line too long"),
        "{m}"
    );
}
