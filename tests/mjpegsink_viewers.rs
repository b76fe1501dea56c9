// SPDX-License-Identifier: MPL-2.0

//! mjpegsink for many kinds of viewers (issue 12): a per-viewer rate
//! (`?fps=N`), `drop-same-frames`, fresh snapshots (ETag/304, `Age`,
//! `Last-Modified`, `?wait=1`, `?max_age=S`), `/metrics` read by the Python
//! `prometheus_client` parser, and the `clients` property with its
//! `notify::clients`.
//!
//! Every server binds port 0 on 127.0.0.1; every wait is bounded.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use common::viewers::*;
use common::*;
use gst::glib;
use gst::prelude::*;

/// A harness around a fresh mjpegsink (see `test_sink`), PLAYING with caps.
fn harness(props: &[(&str, glib::Value)]) -> (gst_check::Harness, u16) {
    let e = test_sink(props);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), None);
    h.play();
    h.set_src_caps_str("image/jpeg,width=64,height=48,framerate=30/1");
    let port = current_port(&h.element().expect("element"));
    (h, port)
}

fn push(h: &mut gst_check::Harness, jpeg: &[u8]) {
    h.push(gst::Buffer::from_slice(jpeg.to_vec()))
        .expect("push a frame");
}

fn element(h: &gst_check::Harness) -> gst::Element {
    h.element().expect("element")
}

fn wait_stat(e: &gst::Element, field: &str, pred: impl Fn(u64) -> bool) -> u64 {
    poll_until(WAIT, || {
        let v = stat_u64(e, field);
        pred(v).then_some(v)
    })
    .unwrap_or_else(|| panic!("{field} stuck at {}", stat_u64(e, field)))
}

// ---------------------------------------------------------------------------
// ?fps=N

/// A live 30 fps source (`videotestsrc ! jpegenc ! mjpegsink`).
fn live_source() -> (gst::Pipeline, gst::Element, u16) {
    init();
    let p = launch(
        "videotestsrc is-live=true pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! \
         mjpegsink name=sink host=127.0.0.1 port=0",
    );
    p.set_state(gst::State::Playing).expect("playing");
    let sink: gst::Element = by_name(&p, "sink");
    wait_stat(&sink, "frames-in", |n| n > 0);
    let port = current_port(&sink);
    (p, sink, port)
}

#[test]
fn fps_query_paces_a_viewer_to_its_rate() {
    let (p, sink, port) = live_source();
    let window = Duration::from_secs(3);
    // Both URL forms, and an unpaced viewer alongside.
    let mut paced = PartReader::open(port, "/stream?fps=5", &[]);
    let mut action = PartReader::open(port, "/?action=stream&fps=5", &[]);
    let mut full = PartReader::open(port, "/stream", &[]);
    assert_eq!(paced.status, 200, "{}", paced.head);
    let t_action = std::thread::spawn(move || action.parts_for(window));
    let t_full = std::thread::spawn(move || full.parts_for(window));
    let parts = paced.parts_for(window);
    let action_parts = t_action.join().expect("reader");
    let full_parts = t_full.join().expect("reader");
    let (fps, action_fps, full_fps) = (
        measured_fps(&parts),
        measured_fps(&action_parts),
        measured_fps(&full_parts),
    );
    eprintln!(
        "?fps=5: {fps:.2} fps ({} parts); ?action=stream&fps=5: {action_fps:.2} fps; \
         unpaced: {full_fps:.2} fps ({} parts)",
        parts.len(),
        full_parts.len()
    );
    assert!((4.0..=6.0).contains(&fps), "?fps=5 measured {fps:.2} fps");
    assert!(
        (4.0..=6.0).contains(&action_fps),
        "?action=stream&fps=5 measured {action_fps:.2} fps"
    );
    assert!(
        full_fps > 10.0,
        "the source (30 fps) reached an unpaced viewer at only {full_fps:.2} fps"
    );
    // Every paced part is a whole, recent JPEG.
    assert!(parts.iter().all(|p| is_jpeg(&p.jpeg)));
    assert!(stat_u64(&sink, "frames-skipped-rate") > 0);
    let _ = p.set_state(gst::State::Null);
}

// ---------------------------------------------------------------------------
// drop-same-frames

#[test]
fn drop_same_frames_skips_up_to_n_identical_frames() {
    let (mut h, port) = harness(&[("drop-same-frames", 3u32.to_value())]);
    let e = element(&h);
    assert_eq!(e.property::<u32>("drop-same-frames"), 3);
    let a = jpeg(64, 48, 1);
    let b = jpeg(64, 48, 2);
    let mut c = PartReader::open(port, "/stream", &[]);
    wait_stat(&e, "clients", |n| n == 1);
    let deadline = || Instant::now() + WAIT;

    push(&mut h, &a);
    assert_eq!(c.next_part(deadline()).expect("first frame").jpeg, a);
    // Three identical frames are dropped, one by one.
    for i in 1..=3 {
        push(&mut h, &a);
        wait_stat(&e, "frames-skipped-same", |n| n == i);
    }
    // The fourth identical one goes.
    push(&mut h, &a);
    assert_eq!(c.next_part(deadline()).expect("4th same frame").jpeg, a);
    // A different one goes at once.
    push(&mut h, &b);
    assert_eq!(c.next_part(deadline()).expect("new frame").jpeg, b);
    // And after it, an identical frame is dropped again.
    push(&mut h, &b);
    wait_stat(&e, "frames-skipped-same", |n| n == 4);
    assert_eq!(stat_u64(&e, "frames-out"), 3);
    assert_eq!(stat_u64(&e, "frames-skipped-busy"), 0);
    assert_eq!(stat_u64(&e, "frames-skipped"), 0);
}

#[test]
fn drop_same_frames_still_sends_one_every_resend_interval() {
    // A static scene: the same frame pushed at ~50 fps.
    let (mut h, port) = harness(&[
        ("drop-same-frames", 1_000_000u32.to_value()),
        ("resend-interval", 300u32.to_value()),
    ]);
    let e = element(&h);
    let a = jpeg(64, 48, 7);
    let mut c = PartReader::open(port, "/stream", &[]);
    wait_stat(&e, "clients", |n| n == 1);
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        for _ in 0..3 {
            match c.next_part(deadline) {
                Some(p) => {
                    let _ = tx.send(p);
                }
                None => return,
            }
        }
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 3 && Instant::now() < deadline {
        push(&mut h, &a);
        // Pacing of the static source only.
        if let Ok(p) = rx.recv_timeout(Duration::from_millis(20)) {
            got.push(p);
        }
    }
    let _ = reader.join();
    assert_eq!(got.len(), 3, "parts of a static scene");
    for w in got.windows(2) {
        let gap = w[1].received.duration_since(w[0].received);
        assert!(
            gap >= Duration::from_millis(250) && gap < Duration::from_secs(3),
            "same frames went out {gap:?} apart (resend-interval 300 ms)"
        );
    }
    assert!(stat_u64(&e, "frames-skipped-same") > 5);
}

#[test]
fn drop_same_frames_with_a_solid_color_source() {
    init();
    let p = launch(
        "videotestsrc is-live=true pattern=solid-color foreground-color=0xff336699 ! \
         video/x-raw,width=64,height=48,framerate=30/1 ! jpegenc ! \
         mjpegsink name=sink host=127.0.0.1 port=0 drop-same-frames=10",
    );
    p.set_state(gst::State::Playing).expect("playing");
    let sink: gst::Element = by_name(&p, "sink");
    let port = current_port(&sink);
    let mut c = PartReader::open(port, "/stream", &[]);
    let parts = c.parts_for(Duration::from_secs(2));
    let frames_in = stat_u64(&sink, "frames-in");
    let same = stat_u64(&sink, "frames-skipped-same");
    eprintln!(
        "solid colour: {} parts of {frames_in} frames, {same} dropped as same",
        parts.len()
    );
    assert!(!parts.is_empty());
    // At most one part in 11 frames (plus the first), nearly all dropped.
    assert!(same > 0, "no identical frame dropped");
    assert!(
        (parts.len() as u64) <= frames_in / 11 + 2,
        "{} parts of {frames_in} identical frames",
        parts.len()
    );
    let _ = p.set_state(gst::State::Null);
}

// ---------------------------------------------------------------------------
// Fresh snapshots

fn etag_seq(tag: &str) -> (String, u64) {
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("unquoted ETag {tag}"));
    let (epoch, seq) = inner.rsplit_once('-').expect("epoch-seq");
    assert!(
        !epoch.is_empty() && epoch.chars().all(|c| c.is_ascii_hexdigit()),
        "{tag}"
    );
    (epoch.to_string(), seq.parse().expect("frame number"))
}

#[test]
fn snapshot_has_etag_last_modified_age_and_answers_304() {
    let (mut h, port) = harness(&[]);
    let a = jpeg(64, 48, 1);
    let before = SystemTime::now() - Duration::from_secs(1);
    push(&mut h, &a);
    let r = get_once(port, "/snapshot", &[], WAIT);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, a);
    let tag = r.header("etag").expect("ETag").to_string();
    let (epoch, seq) = etag_seq(&tag);
    assert_eq!(seq, 1);
    let modified = httpdate::parse_http_date(r.header("last-modified").expect("Last-Modified"))
        .expect("an HTTP date");
    assert!(
        modified >= before && modified <= SystemTime::now(),
        "{r:?}",
        r = r.head
    );
    let age: u64 = r.header("age").expect("Age").parse().expect("seconds");
    assert!(age <= 1, "age {age}");

    // Revalidation of the current frame: 304, no body.
    let r = get_once(port, "/snapshot", &[("If-None-Match", &tag)], WAIT);
    assert_eq!(r.status, 304, "{}", r.head);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(tag.as_str()));
    // So does the mjpg-streamer form, and a list with a weak tag.
    let weak = format!("\"other\", W/{tag}");
    let r = get_once(port, "/?action=snapshot", &[("If-None-Match", &weak)], WAIT);
    assert_eq!(r.status, 304, "{}", r.head);

    // A new frame: the old tag gets the new frame and a new tag.
    let b = jpeg(64, 48, 2);
    push(&mut h, &b);
    let r = get_once(port, "/snapshot", &[("If-None-Match", &tag)], WAIT);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, b);
    let (epoch2, seq2) = etag_seq(r.header("etag").expect("ETag"));
    assert_eq!((epoch2.as_str(), seq2), (epoch.as_str(), 2));
    assert_eq!(stat_u64(&element(&h), "snapshots-not-modified"), 2);

    // Another start of the server numbers frames from 1 again, under
    // another epoch: the old tag never matches its frame 1.
    let (mut h2, port2) = harness(&[]);
    push(&mut h2, &a);
    let first_tag = format!("\"{epoch}-1\"");
    let r = get_once(port2, "/snapshot", &[("If-None-Match", &first_tag)], WAIT);
    assert_eq!(r.status, 200, "{}", r.head);
    let (epoch3, seq3) = etag_seq(r.header("etag").expect("ETag"));
    assert_eq!(seq3, 1);
    assert_ne!(epoch3, epoch, "two starts share an epoch");
}

/// GET `path` on a thread; push frames (pacing a source) until it answers.
fn snapshot_while_pushing(
    h: &mut gst_check::Harness,
    port: u16,
    path: &'static str,
    seed: u32,
) -> (Response, Vec<Vec<u8>>) {
    let e = element(h);
    let asked = stat_u64(&e, "requests-snapshot");
    let t = std::thread::spawn(move || get_once(port, path, &[], LONG_WAIT));
    wait_stat(&e, "requests-snapshot", |n| n > asked);
    let mut pushed = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !t.is_finished() && Instant::now() < deadline {
        let f = jpeg(64, 48, seed + pushed.len() as u32);
        push(h, &f);
        pushed.push(f);
        std::thread::sleep(Duration::from_millis(50));
    }
    (t.join().expect("snapshot thread"), pushed)
}

#[test]
fn snapshot_wait_returns_a_frame_published_after_the_request() {
    let (mut h, port) = harness(&[]);
    let old = jpeg(64, 48, 1);
    push(&mut h, &old);
    let (r, pushed) = snapshot_while_pushing(&mut h, port, "/snapshot?wait=1", 100);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_ne!(
        r.body, old,
        "wait=1 answered the frame that was there before"
    );
    assert!(
        pushed.contains(&r.body),
        "not a frame pushed after the request"
    );
    let (_, seq) = etag_seq(r.header("etag").expect("ETag"));
    assert!(seq >= 2);
}

#[test]
fn snapshot_max_age_returns_a_fresh_enough_frame_or_waits() {
    let (mut h, port) = harness(&[]);
    let old = jpeg(64, 48, 1);
    push(&mut h, &old);
    // Young enough: at once.
    let r = get_once(port, "/snapshot?max_age=60", &[], WAIT);
    assert_eq!((r.status, &r.body), (200, &old));
    // Older than 0 s: waits for a new one.
    let (r, pushed) = snapshot_while_pushing(&mut h, port, "/?action=snapshot&max_age=0", 200);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_ne!(r.body, old);
    assert!(pushed.contains(&r.body));
}

#[test]
fn snapshot_wait_gives_504_after_its_cap_even_with_timeout_0() {
    let (mut h, port) = harness(&[("timeout", 0u32.to_value())]);
    push(&mut h, &jpeg(64, 48, 1));
    let t0 = Instant::now();
    let r = get_once(port, "/snapshot?wait=1", &[], LONG_WAIT);
    let took = t0.elapsed();
    assert_eq!(r.status, 504, "{}", r.head);
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "504 after {took:?} (cap 10 s)"
    );
    assert_eq!(stat_u64(&element(&h), "snapshots-timed-out"), 1);
    // A plain snapshot still answers the current frame at once.
    let r = get_once(port, "/snapshot", &[], WAIT);
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------
// /metrics

fn sample(families: &[Family], sample: &str, label: Option<(&str, &str)>) -> Option<f64> {
    families
        .iter()
        .flat_map(|f| f.2.iter())
        .find(|(name, labels, _)| {
            name == sample
                && label.is_none_or(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.2)
}

#[test]
fn metrics_parse_as_prometheus_text_behind_auth() {
    let (mut h, port) = harness(&[
        ("user-id", "viewer".to_value()),
        ("user-pw", "secret".to_value()),
    ]);
    let auth = format!("Basic {}", base64(b"viewer:secret"));
    push(&mut h, &jpeg(64, 48, 1));
    push(&mut h, &jpeg(64, 48, 2));

    let r = get_once(port, "/metrics", &[], WAIT);
    assert_eq!(r.status, 401, "{}", r.head);
    let _ = get_once(port, "/snapshot", &[("Authorization", &auth)], WAIT);
    let r = get_once(port, "/metrics", &[("Authorization", &auth)], WAIT);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).expect("UTF-8");
    let families = match parse_prometheus(&text) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("SKIPPED the Prometheus parse: {why}");
            return;
        }
    };
    // Every sample is prefixed and carries its scope: the mount, or for
    // the port-wide `mjpegsink_listener_*` the listening address.
    let listener = format!("127.0.0.1:{port}");
    for (name, kind, samples) in &families {
        assert!(name.starts_with("mjpegsink_"), "{name}");
        for (s, labels, _) in samples {
            let scope = if name.starts_with("mjpegsink_listener_") {
                ("listener", listener.as_str())
            } else {
                ("mount", "/")
            };
            assert!(
                labels
                    .iter()
                    .any(|(k, v)| (k.as_str(), v.as_str()) == scope),
                "{s} {labels:?}"
            );
            if kind == "counter" {
                assert!(s.ends_with("_total"), "counter sample {s}");
            }
        }
    }
    let kind = |n: &str| families.iter().find(|f| f.0 == n).map(|f| f.1.as_str());
    assert_eq!(kind("mjpegsink_frames_in"), Some("counter"));
    assert_eq!(kind("mjpegsink_clients"), Some("gauge"));
    let get = |n: &str, l| sample(&families, n, l).unwrap_or_else(|| panic!("{n} {l:?}\n{text}"));
    assert_eq!(get("mjpegsink_frames_in_total", None), 2.0);
    assert_eq!(get("mjpegsink_clients", None), 0.0);
    assert_eq!(get("mjpegsink_requests_unauthorized_total", None), 1.0);
    assert_eq!(
        get("mjpegsink_requests_total", Some(("endpoint", "snapshot"))),
        1.0
    );
    assert_eq!(
        get("mjpegsink_requests_total", Some(("endpoint", "metrics"))),
        1.0
    );
    for reason in ["busy", "rate", "same"] {
        assert_eq!(
            get("mjpegsink_frames_skipped_total", Some(("reason", reason))),
            0.0
        );
    }
    assert_eq!(get("mjpegsink_logins_failed_total", None), 0.0);
    assert!(get("mjpegsink_listener_bytes_out_total", None) > 0.0);
    assert!(get("mjpegsink_listener_connections_accepted_total", None) >= 3.0);
    assert!(get("mjpegsink_listener_connections", None) >= 1.0);
    let age = get("mjpegsink_frame_age_seconds", None);
    assert!((0.0..5.0).contains(&age), "frame age {age}");
}

// ---------------------------------------------------------------------------
// clients and notify::clients

#[test]
fn clients_property_notifies_from_a_thread_of_its_own() {
    let (mut h, port) = harness(&[]);
    let e = element(&h);
    assert_eq!(e.property::<u32>("clients"), 0);
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    e.connect_notify(Some("clients"), move |e, _| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        let _ = lock(&tx).send((e.property::<u32>("clients"), name));
    });
    let next = || rx.recv_timeout(WAIT).expect("notify::clients");

    let c1 = PartReader::open(port, "/stream", &[]);
    let (n, thread) = next();
    assert_eq!(n, 1);
    assert!(
        !thread.starts_with("gst-mjpeg-runtime"),
        "notify::clients emitted from a runtime worker ({thread})"
    );
    let c2 = PartReader::open(port, "/stream", &[]);
    assert_eq!(next().0, 2);
    assert_eq!(e.property::<u32>("clients"), 2);
    // A client that left is noticed at a write after its close: frames
    // keep coming (pacing a source) until the count drops.
    let mut seed = 0;
    let mut until = |want: u32| {
        poll_until(WAIT, || {
            seed += 1;
            push(&mut h, &jpeg(64, 48, seed));
            rx.recv_timeout(Duration::from_millis(50))
                .ok()
                .filter(|(n, _)| *n == want)
        })
        .unwrap_or_else(|| panic!("no notify::clients to {want}"))
    };
    drop(c1);
    until(1);
    drop(c2);
    until(0);
    assert_eq!(e.property::<u32>("clients"), 0);
}
