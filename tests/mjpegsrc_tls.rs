// SPDX-License-Identifier: MPL-2.0

//! HTTPS with a self-signed certificate (fresh per test, via rcgen):
//! `ssl-strict=false` accepts it, the default refuses it.

mod common;

use common::*;
use gst::prelude::*;
use std::time::{Duration, Instant};

/// A paced chunked boundary-before stream over HTTP/1.1, then a stall.
fn chunked_stream(f: &[Vec<u8>], base: usize) -> Vec<Step> {
    let mut s = paced(
        &head_http11_chunked(&mjpeg_type(B)),
        &boundary_before(B, f),
        f,
        Some(&delim(B)),
        Coding::Chunked(100),
        base,
    );
    s.push(Step::Stall);
    s
}

#[test]
fn self_signed_accepted_with_ssl_strict_false() {
    let f = frames(4, 320, 240, 3000);
    let cam = FakeCamera::scripted_tls(vec![chunked_stream(&f, 0)]);
    let src = Src::fast_harness(&cam.https_url("/stream"))
        .set("ssl-strict", false)
        .paced_by(&cam)
        .play();
    let data: Vec<Vec<u8>> = src.frames(4).into_iter().map(|f| f.data).collect();
    assert_frames(&data, &f);
    let s = src.wait_stats("connected", |s| {
        s.bool("connected") && s.u64("frames-pushed") >= 4
    });
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    let r = cam.next_request(WAIT).expect("request over TLS");
    assert_eq!(r.path(), "/stream");
}

#[test]
fn self_signed_refused_by_default() {
    // Default ssl-strict=true: the handshake fails on the unknown issuer,
    // before any request, and that is a clear error (a certificate does
    // not fix itself), not a reconnect loop.
    let f = frames(2, 320, 240, 3010);
    let cam = FakeCamera::scripted_tls(vec![
        chunked_stream(&f, 0),
        chunked_stream(&f, 0),
        chunked_stream(&f, 0),
    ]);
    let src = Src::fast_harness(&cam.https_url("/stream"))
        .set("retry-delay", 50u32)
        .play();
    assert!(src.element.property::<bool>("ssl-strict"));
    let (err, debug) = src.error(WAIT).expect("an error for the certificate");
    assert!(err.matches(gst::ResourceError::OpenRead), "{err:?} {debug}");
    assert!(
        debug.contains("TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        "{debug}"
    );
    assert!(src.frame(Duration::from_millis(1)).is_none());
    assert!(src.element_messages_seen("mjpegsrc-reconnect").is_empty());
    // The client aborted the handshake: no HTTP request reached the camera.
    let deadline = Instant::now() + WAIT;
    while cam.tls_failures() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cam.tls_failures(), 1, "one handshake, refused");
    assert!(
        cam.take_requests().is_empty(),
        "a request was sent over an untrusted connection"
    );
    let s = src.stats();
    assert_eq!(s.u64("frames-received"), 0, "{}", s.0);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    assert!(!s.bool("connected"), "{}", s.0);
}

#[test]
fn plain_http_to_a_tls_port_fails_cleanly() {
    // Wrong scheme: garbage (a TLS alert) instead of an HTTP response; the
    // element must not hang or deliver anything.
    let cam = FakeCamera::scripted_tls(vec![]);
    let src = Src::fast_harness(&cam.url("/")).set("timeout", 1u32).play();
    assert!(src.frame(Duration::from_secs(2)).is_none());
    let t = src.stop();
    assert!(t < Duration::from_secs(1), "stop took {t:?}");
}

#[test]
fn stalled_tls_handshake_times_out_and_stop_is_quick() {
    // A plain TCP server that never answers the ClientHello: the handshake
    // hangs; connect-timeout ends it (a reconnect, not a fatal TLS error),
    // and PLAYING->NULL is immediate meanwhile.
    let cam = FakeCamera::scripted(vec![]);
    let src = Src::fast_harness(&cam.https_url("/"))
        .set("ssl-strict", false)
        .set("connect-timeout", 1u32)
        .play();
    let m = src
        .element_message("mjpegsrc-reconnect", WAIT)
        .unwrap_or_else(|| {
            panic!(
                "reconnect after the handshake timeout: {:?}",
                src.posted_error()
            )
        });
    assert!(
        !m.get::<String>("reason").expect("reason").is_empty(),
        "{m}"
    );
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
    let t = src.stop();
    assert!(t < Duration::from_secs(1), "stop took {t:?}");
}
