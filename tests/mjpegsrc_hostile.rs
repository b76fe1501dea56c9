// SPDX-License-Identifier: MPL-2.0

//! `mjpegsrc` facing a hostile or broken camera: no panic and no silent
//! hang, credentials and headers kept to the origin the user named, no
//! password in stats, messages or logs, reconnects that do not hammer a
//! camera, a word to the application about everything dropped, and caps
//! that change only when the frame size does.

mod common;

use common::hostile::*;
use common::*;
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn attempts(src: &Src) -> Vec<u32> {
    src.element_messages_seen("mjpegsrc-reconnect")
        .iter()
        .map(|m| m.get::<u32>("attempt").expect("attempt"))
        .collect()
}

fn camera_time(f: &Frame) -> Option<gst::ClockTime> {
    f.buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .next()
        .map(|m| m.timestamp())
}

// ---------------------------------------------------------------------------
// No panic, no silent hang
// ---------------------------------------------------------------------------

#[test]
fn absurd_camera_timestamps_are_left_out_not_a_panic() {
    // 0, then epoch milliseconds (a jump of 1.7e12 s), then 1e300: neither
    // fits a GstClockTime. Then a clock restart and a normal step.
    let f = frames(5, 320, 240, 9000);
    let stamps = ["0", "1712345678123", "1e300", "100.0", "100.04"];
    let cam = FakeCamera::scripted(vec![timestamped_stream(&f, &stamps, Step::Stall)]);
    let src = Src::for_camera(&cam, "/").play();
    let got = src.frames(5);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    let metas: Vec<Option<gst::ClockTime>> = got.iter().map(camera_time).collect();
    assert_eq!(metas[0], Some(gst::ClockTime::ZERO), "{metas:?}");
    assert_eq!(
        metas[1..3],
        [None, None],
        "absurd stamps left out: {metas:?}"
    );
    assert_eq!(metas[3], Some(gst::ClockTime::ZERO), "{metas:?}");
    let step = metas[4].expect("a normal step has a meta").nseconds();
    assert!(step.abs_diff(40_000_000) < 1_000, "{metas:?}");
    let s = src.stats();
    assert_eq!(s.u64("bad-timestamps"), 2, "{}", s.0);
    let m = src
        .element_message("mjpegsrc-skipped", WAIT)
        .expect("a mjpegsrc-skipped message");
    assert_eq!(m.get::<&str>("kind").expect("kind"), "bad-timestamp", "{m}");
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
}

#[test]
fn malformed_digest_challenge_is_an_auth_error_not_a_hang() {
    for challenge in MALFORMED_DIGEST {
        let cam = FakeCamera::start(move |_| unauthorized(&[challenge]));
        let src = Src::for_camera(&cam, "/")
            .set("user-id", "admin")
            .set("user-pw", "pw")
            .play();
        let (err, debug) = src
            .error(WAIT)
            .unwrap_or_else(|| panic!("no error for {challenge:?}: the reader hangs"));
        assert!(
            err.matches(gst::ResourceError::NotAuthorized),
            "{challenge:?}: {err:?} ({debug})"
        );
        assert!(
            cam.take_requests()
                .iter()
                .all(|r| r.header("Authorization").is_none()),
            "{challenge:?}: answered a challenge it could not read"
        );
    }
}

#[test]
fn digest_offered_then_basic_only_gets_no_password() {
    // Digest in one header, then Basic only in the next 401 (a downgrade
    // a man in the middle would try), within one connection attempt.
    let cam = FakeCamera::start(|req| match req.header("Authorization") {
        None => unauthorized(&["Digest realm=\"cam\", qop=\"auth\", nonce=\"n1\""]),
        Some(_) => unauthorized(&["Basic realm=\"cam\""]),
    });
    let src = Src::for_camera(&cam, "/")
        .set("user-id", "admin")
        .set("user-pw", "pw")
        .play();
    let (err, debug) = src.error(WAIT).expect("an error");
    assert!(
        err.matches(gst::ResourceError::NotAuthorized),
        "{err:?} ({debug})"
    );
    let auths = header_values(&cam.take_requests(), "Authorization");
    assert!(
        auths.iter().all(|a| !a.starts_with("Basic")),
        "password sent in Basic: {auths:?}"
    );
}

// ---------------------------------------------------------------------------
// Redirects and secrets
// ---------------------------------------------------------------------------

#[test]
fn https_to_http_redirect_is_refused() {
    let f = frames(2, 320, 240, 9010);
    let plain = FakeCamera::scripted(vec![plain_stream(&f, 0, Step::Stall)]);
    let tls = FakeCamera::scripted_tls(vec![redirect(&plain.url("/stream"))]);
    let src = Src::fast(&tls.https_url("/"))
        .set("ssl-strict", false)
        .set("cookies", vec!["session=s3cr3t".to_string()])
        .paced_by(&plain)
        .play();
    let (err, debug) = src.error(WAIT).expect("an error, not a silent downgrade");
    assert!(
        err.matches(gst::ResourceError::OpenRead),
        "{err:?} ({debug})"
    );
    assert!(
        format!("{} {debug}", err.message()).contains("allow-insecure-redirect"),
        "the error says what to do: {err:?} ({debug})"
    );
    assert!(
        plain.next_request(Duration::from_millis(300)).is_none(),
        "the http URL was requested"
    );
}

#[test]
fn https_to_http_redirect_followed_when_allowed() {
    let f = frames(2, 320, 240, 9020);
    let plain = FakeCamera::scripted(vec![plain_stream(&f, 0, Step::Stall)]);
    let tls = FakeCamera::scripted_tls(vec![redirect(&plain.url("/stream"))]);
    let src = Src::fast(&tls.https_url("/"))
        .set("ssl-strict", false)
        .set("allow-insecure-redirect", true)
        .set("cookies", vec!["session=s3cr3t".to_string()])
        .paced_by(&plain)
        .play();
    let data: Vec<Vec<u8>> = src.frames(2).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    let reqs = plain.take_requests();
    assert_eq!(reqs.len(), 1);
    // Another scheme is another origin: the cookie stayed behind.
    assert!(header_values(&reqs, "Cookie").is_empty(), "{reqs:?}");
}

#[test]
fn password_never_in_stats_messages_or_logs() {
    const PW: &str = "hunter2-redact-me";
    capture_log();
    // An unparsable location with a password: refused, logged without it.
    init();
    let bad = gst::ElementFactory::make("mjpegsrc")
        .build()
        .expect("mjpegsrc");
    bad.set_property("location", format!("http://admin:{PW}@127.0.0.1:99999/"));

    // A camera that redirects to a URL with userinfo, then refuses the
    // credentials given in the user's URL.
    let other = FakeCamera::start(|_| unauthorized(&["Basic realm=\"cam\""]));
    let target = format!("http://evil:{PW}@127.0.0.1:{}/x", other.port());
    let cam = FakeCamera::start(move |req| match req.header("Authorization") {
        Some(_) => redirect(&target),
        None => unauthorized(&["Basic realm=\"cam\""]),
    });
    let src = Src::fast(&format!("http://admin:{PW}@127.0.0.1:{}/v", cam.port())).play();
    let location = src.stats().str("location");
    assert!(!location.contains(PW), "stats location {location}");
    assert!(location.contains(&format!("127.0.0.1:{}/v", cam.port())));
    src.error(WAIT).expect("an error");
    let stats = src.stats().0.to_string();
    assert!(!stats.contains(PW), "stats: {stats}");
    let msgs: Vec<String> = src
        .element_messages_seen("mjpegsrc-connected")
        .iter()
        .chain(src.element_messages_seen("mjpegsrc-reconnect").iter())
        .map(|s| s.to_string())
        .chain(src.posted_error())
        .collect();
    assert!(msgs.iter().all(|m| !m.contains(PW)), "{msgs:?}");
    let leaked: Vec<String> = captured_log()
        .into_iter()
        .filter(|l| l.contains(PW))
        .collect();
    assert!(leaked.is_empty(), "password in the log: {leaked:?}");
    assert!(
        captured_log().iter().any(|l| l.contains("Invalid URI")),
        "the log capture works"
    );
    assert!(
        header_values(&other.take_requests(), "Authorization").is_empty(),
        "a redirect's userinfo is not used"
    );
}

// ---------------------------------------------------------------------------
// Reconnects that respect cameras
// ---------------------------------------------------------------------------

#[test]
fn retry_delay_zero_has_a_floor() {
    let port = free_port();
    let src = Src::fast(&format!("http://127.0.0.1:{port}/"))
        .set("retry-delay", 0u32)
        .set("retry-delay-max", 0u32)
        .play();
    let first = src
        .element_message("mjpegsrc-reconnect", WAIT)
        .expect("reconnect 1");
    let t = Instant::now();
    let mut delays = vec![first.get::<u64>("delay-ms").expect("delay-ms")];
    for i in 2..=4 {
        let m = src
            .element_message("mjpegsrc-reconnect", WAIT)
            .unwrap_or_else(|| panic!("reconnect {i}"));
        delays.push(m.get::<u64>("delay-ms").expect("delay-ms"));
    }
    assert!(
        delays.iter().all(|&d| d >= 100),
        "floor of 100 ms: {delays:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "3 reconnects in {:?}",
        t.elapsed()
    );
}

#[test]
fn one_frame_sessions_do_not_reset_the_failure_count() {
    // One frame, then close, every time: a failing camera, not a working one.
    let f = jpeg(320, 240, 9030);
    let frame = f.clone();
    let cam = FakeCamera::start(move |_| one_frame_then_close(&frame));
    let src = Src::fast(&cam.url("/"))
        .set("retries", 3i32)
        .set("retry-delay", 100u32)
        .set("retry-delay-max", 400u32)
        .play();
    assert_eq!(src.frames(1)[0].data, f);
    let (err, debug) = src
        .error(WAIT)
        .expect("retries run out: one-frame sessions are failures");
    assert!(err.matches(gst::ResourceError::Read), "{err:?} ({debug})");
    assert_eq!(attempts(&src), vec![1, 2, 3]);
    let delays: Vec<u64> = src
        .element_messages_seen("mjpegsrc-reconnect")
        .iter()
        .map(|m| m.get::<u64>("delay-ms").expect("delay-ms"))
        .collect();
    assert!(delays[2] > delays[0], "the delay grows: {delays:?}");
}

fn gives_up_on_refusal_after_the_stream_ran(refusal: fn() -> Vec<Step>) {
    let f = frames(2, 320, 240, 9040);
    let first = Mutex::new(Some(plain_stream(&f, 0, Step::Close)));
    let cam = FakeCamera::start(move |_| lock(&first).take().unwrap_or_else(refusal));
    let src = Src::for_camera(&cam, "/")
        .set("user-id", "admin")
        .set("user-pw", "old-password")
        .play();
    let data: Vec<Vec<u8>> = src.frames(2).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    let (err, debug) = src
        .error(WAIT)
        .expect("an error, not endless retries that lock the account");
    assert!(
        err.matches(gst::ResourceError::NotAuthorized),
        "{err:?} ({debug})"
    );
    assert!(
        format!("{} {debug}", err.message()).contains("rejected the credentials"),
        "{err:?} ({debug})"
    );
    // The stream, then 3 retries and the refusal that ends it.
    let refused = cam.take_requests().len() - 1;
    assert!(
        (4..=8).contains(&refused),
        "{refused} requests after the stream"
    );
    assert!(
        cam.next_request(Duration::from_millis(300)).is_none(),
        "still trying after the error"
    );
}

#[test]
fn unauthorized_after_the_stream_ran_gives_up_after_a_few_retries() {
    gives_up_on_refusal_after_the_stream_ran(|| unauthorized(&["Basic realm=\"cam\""]));
}

#[test]
fn forbidden_after_the_stream_ran_gives_up_after_a_few_retries() {
    gives_up_on_refusal_after_the_stream_ran(|| status(403, "Forbidden", &[]));
}

// ---------------------------------------------------------------------------
// Why no frames arrive
// ---------------------------------------------------------------------------

fn skipped_message(src: &Src, kind: &str) -> gst::Structure {
    let m = src
        .message(WAIT, |m| {
            is_element_message(m, "mjpegsrc-skipped")
                && m.structure()
                    .and_then(|s| s.get::<&str>("kind").ok())
                    .is_some_and(|k| k == kind)
        })
        .unwrap_or_else(|| panic!("no mjpegsrc-skipped message of kind {kind}"));
    m.structure().expect("structure").to_owned()
}

#[test]
fn only_non_jpeg_parts_are_reported() {
    for typed in [true, false] {
        let cam = FakeCamera::scripted(vec![only_non_jpeg_parts(20, typed)]);
        let src = Src::for_camera(&cam, "/").play();
        let m = skipped_message(&src, "not-jpeg");
        assert!(m.get::<u64>("count").expect("count") >= 1, "{m}");
        assert!(src.warnings_seen() >= 1, "a warning too");
        // Rate-limited: one message for a burst of 20 parts.
        src.wait_stats("parts skipped", |s| s.u64("skipped-parts") >= 20);
        let n = src.element_messages_seen("mjpegsrc-skipped").len();
        assert_eq!(n, 1, "typed {typed}: one message per 5 s, not per part");
    }
}

#[test]
fn too_big_frames_are_reported() {
    let f: Vec<Vec<u8>> = (0..3)
        .map(|i| jpeg_with_len(320, 240, 9050 + i, 4000))
        .collect();
    let cam = FakeCamera::scripted(vec![plain_stream(&f, 0, Step::Stall)]);
    let src = Src::fast(&cam.url("/"))
        .set("max-frame-size", 1024u32)
        .play();
    let m = skipped_message(&src, "too-big");
    assert_eq!(m.get::<u64>("total").expect("total"), 1, "{m}");
    src.wait_stats("dropped", |s| s.u64("dropped-too-big") >= 1);
}

// ---------------------------------------------------------------------------
// Caps only when the size really changes
// ---------------------------------------------------------------------------

#[test]
fn frame_without_a_size_keeps_the_caps() {
    let f = vec![
        jpeg(320, 240, 9060),
        jpeg(0, 0, 9061),
        sofless_jpeg(9062),
        jpeg(320, 240, 9063),
        jpeg(640, 480, 9064),
    ];
    let cam = FakeCamera::scripted(vec![plain_stream(&f, 0, Step::Stall)]);
    let src = Src::for_camera(&cam, "/");
    let caps: Arc<Mutex<Vec<gst::Caps>>> = Arc::default();
    let seen = caps.clone();
    src.src_pad()
        .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && let gst::EventView::Caps(c) = ev.view()
            {
                lock(&seen).push(c.caps_owned());
            }
            gst::PadProbeReturn::Ok
        });
    let src = src.play();
    let got = src.frames(5);
    let data: Vec<Vec<u8>> = got.iter().map(|f| f.data.clone()).collect();
    assert_frames(&data, &f);
    let sizes: Vec<Option<(i32, i32)>> = got.iter().map(|f| f.size()).collect();
    assert_eq!(
        sizes,
        vec![
            Some((320, 240)),
            Some((320, 240)),
            Some((320, 240)),
            Some((320, 240)),
            Some((640, 480))
        ]
    );
    let caps = lock(&caps).clone();
    assert_eq!(caps.len(), 2, "caps only when the size changes: {caps:?}");
    assert_eq!(src.stats().u64("frames-without-size"), 2);
}

#[test]
fn a_snapshot_url_is_polled_without_growing_the_delay() {
    // One image/jpeg per response is a snapshot camera, not a failing
    // stream: every poll succeeds, the failure count stays at 1.
    let f = jpeg(320, 240, 9070);
    let served = f.clone();
    let cam = FakeCamera::start(move |_| {
        let mut r = head(
            "HTTP/1.1 200 OK",
            &[
                ("Content-Type", "image/jpeg"),
                ("Content-Length", &served.len().to_string()),
                ("Connection", "close"),
            ],
        );
        r.extend_from_slice(&served);
        vec![Step::Write(r), Step::Close]
    });
    let src = Src::fast(&cam.url("/snapshot.jpg"))
        .set("retry-delay", 100u32)
        .play();
    for fr in src.frames(4) {
        assert_eq!(fr.data, f);
    }
    let a = attempts(&src);
    assert!(a.len() >= 3 && a.iter().all(|&n| n == 1), "{a:?}");
}
