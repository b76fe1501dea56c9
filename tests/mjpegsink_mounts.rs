// SPDX-License-Identifier: MPL-2.0

//! Several mjpegsinks on one port (`mount`): each serves its own frames
//! under its mount, `/` lists them when no sink is mounted there,
//! listener-level settings must agree, and a sink that leaves takes only
//! its mount with it. Ports are picked by the OS; every wait is bounded.

mod common;

use gst::prelude::*;

use common::mounts::{
    bus_error, camera_branch, get, get_with, play_joining, play_sharing, port_is_free,
    snapshot_size, stream_size,
};
use common::{WAIT, base64, by_name, wait_for};

const A: (u32, u32) = (320, 240);
const B: (u32, u32) = (160, 120);

fn stop(p: &gst::Pipeline) {
    p.set_state(gst::State::Null).expect("to NULL");
}

/// Two branches of one pipeline on one port: each mount serves its own
/// frames on every endpoint form; paths on no mount (or on a mount's name
/// prefix) are 404; setting one sink to NULL leaves the other serving.
#[test]
fn two_mounts_in_one_pipeline() {
    let (p, port) = play_sharing(
        &[
            camera_branch("a", "/a", A, 0, ""),
            camera_branch("b", "/b", B, 0, ""),
        ],
        "a",
        &["b"],
    );
    let a: gst::Element = by_name(&p, "a");
    let b: gst::Element = by_name(&p, "b");
    assert_eq!(b.property::<i32>("current-port"), i32::from(port));

    for path in [
        "/a",
        "/a/",
        "/a/stream",
        "/a?action=stream",
        "/a/?action=stream",
    ] {
        assert_eq!(stream_size(port, path), A, "{path}");
    }
    for path in ["/b", "/b/stream", "/b?action=stream"] {
        assert_eq!(stream_size(port, path), B, "{path}");
    }
    assert_eq!(snapshot_size(port, "/a/snapshot"), A);
    assert_eq!(snapshot_size(port, "/b/snapshot"), B);
    assert_eq!(snapshot_size(port, "/b/?action=snapshot"), B);
    assert_eq!(snapshot_size(port, "/a?action=snapshot"), A);

    let state = get(port, "/b/state");
    assert_eq!(state.status, 200, "{}", state.head);
    let json: serde_json::Value = serde_json::from_slice(&state.body).expect("JSON");
    assert_eq!(json["width"], B.0, "{json}");

    // Metrics per mount: each mount's requests under its own label; the
    // port's counters under the listener's, never repeated per mount.
    let listener = format!("listener=\"127.0.0.1:{port}\"");
    for (mount, streams, other) in [("/a", 5, "/b"), ("/b", 3, "/a")] {
        let m = get(port, &format!("{mount}/metrics"));
        assert_eq!(m.status, 200, "{}", m.head);
        let text = String::from_utf8(m.body).expect("UTF-8");
        let want = format!(
            "mjpegsink_requests_total{{mount=\"{mount}\",endpoint=\"stream\"}} {streams}\n"
        );
        assert!(text.contains(&want), "{mount}: no {want:?} in\n{text}");
        assert!(!text.contains(&format!("mount=\"{other}\"")), "{text}");
        assert!(
            text.contains(&format!("mjpegsink_listener_bytes_out_total{{{listener}}}")),
            "{text}"
        );
        assert!(!text.contains("bytes_out_total{mount"), "{text}");
    }

    for path in ["/stream", "/snapshot", "/state", "/ab", "/a0/stream", "/c"] {
        assert_eq!(get(port, path).status, 404, "{path}");
    }

    // b leaves while a viewer watches it: that viewer's stream ends with
    // the closing delimiter, a keeps serving, b's paths are gone.
    let viewer = std::thread::spawn(move || {
        common::http_get(port, "/b/stream", &[], common::LONG_WAIT, |_| false)
    });
    assert!(
        wait_for(WAIT, || common::stat_u64(&b, "clients") == 1),
        "the viewer of /b is connected"
    );
    let started = std::time::Instant::now();
    b.set_state(gst::State::Null).expect("b to NULL");
    let ended = viewer.join().expect("viewer thread").expect("a response");
    assert!(started.elapsed() < WAIT, "b's viewer was let go");
    assert!(
        ended.body.ends_with(b"--boundarydonotcross--\r\n"),
        "closing delimiter: {:?}",
        String::from_utf8_lossy(&ended.body[ended.body.len().saturating_sub(40)..])
    );
    assert_eq!(b.property::<i32>("current-port"), 0);
    assert_eq!(get(port, "/b/snapshot").status, 404);
    assert_eq!(snapshot_size(port, "/a/snapshot"), A);
    assert_eq!(stream_size(port, "/a/stream"), A);
    assert!(!port_is_free(port), "a still listens");
    drop(a);
    stop(&p);
    assert!(
        port_is_free(port),
        "the port is free after the last sink stopped"
    );
}

/// Two pipelines of one process share a port: the index page lists both
/// (the one with credentials without a preview), `/streams` is the same
/// list as JSON; credentials are per mount; stopping one pipeline leaves
/// the other serving, stopping both frees the port.
#[test]
fn two_pipelines_share_a_port_with_an_index() {
    let first = play_joining("cam1", "/cam1", A, 0, "");
    let cam1: gst::Element = by_name(&first, "cam1");
    let port = common::current_port(&cam1);
    let second = play_joining(
        "cam2",
        "/cam2",
        B,
        port,
        "user-id=user user-pw=s3cret allow-origin=https://example.org",
    );
    let cam2: gst::Element = by_name(&second, "cam2");
    assert_eq!(common::current_port(&cam2), port);

    assert_eq!(stream_size(port, "/cam1/stream"), A);
    assert_eq!(get(port, "/cam2/snapshot").status, 401);
    let auth = format!("Basic {}", base64(b"user:s3cret"));
    let snap = get_with(port, "/cam2/snapshot", &[("Authorization", &auth)]);
    assert_eq!(snap.status, 200, "{}", snap.head);
    assert_eq!(
        snap.header("access-control-allow-origin"),
        Some("https://example.org")
    );
    // CORS is per mount: cam1 sends none.
    let snap1 = get(port, "/cam1/snapshot");
    assert_eq!(snap1.header("access-control-allow-origin"), None);

    // Both have a frame, so both report their size.
    assert!(
        wait_for(WAIT, || {
            let r = get(port, "/streams");
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            v.as_array().is_some_and(|l| {
                l.len() == 2 && l.iter().all(|m| m["width"].as_u64().unwrap_or(0) > 0)
            })
        }),
        "/streams lists both mounts with their sizes"
    );
    let r = get(port, "/streams");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v[0]["mount"], "/cam1", "{v}");
    assert_eq!(v[0]["width"], A.0, "{v}");
    assert_eq!(v[0]["height"], A.1, "{v}");
    assert_eq!(v[0]["auth"], false, "{v}");
    assert_eq!(v[1]["mount"], "/cam2", "{v}");
    assert_eq!(v[1]["width"], B.0, "{v}");
    assert_eq!(v[1]["auth"], true, "{v}");
    // The index answers only GET and HEAD, and says so.
    let got = common::attack::exchange(
        port,
        b"POST /streams HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .expect("a response");
    assert_eq!(common::attack::status(&got), 405);
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.contains("\r\nallow: get, head\r\n"), "{text}");
    assert!(v[0]["clients"].is_u64(), "{v}");

    let index = get(port, "/");
    assert_eq!(index.status, 200, "{}", index.head);
    assert!(
        index
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{}",
        index.head
    );
    let html = String::from_utf8_lossy(&index.body);
    assert!(html.contains("<img src=\"/cam1/stream\""), "{html}");
    assert!(html.contains("href=\"/cam2/stream\""), "{html}");
    assert!(!html.contains("<img src=\"/cam2/stream\""), "{html}");

    // cam2's pipeline stops: cam1 serves on, cam2 is gone from the index.
    stop(&second);
    assert_eq!(get(port, "/cam2/snapshot").status, 404);
    assert_eq!(snapshot_size(port, "/cam1/snapshot"), A);
    let html = String::from_utf8_lossy(&get(port, "/").body).into_owned();
    assert!(
        html.contains("/cam1/stream") && !html.contains("/cam2"),
        "{html}"
    );

    // It comes back on the same port.
    second.set_state(gst::State::Playing).expect("plays again");
    assert_eq!(common::current_port(&cam2), port);

    stop(&first);
    assert!(!port_is_free(port), "cam2 still listens");
    let s = get_with(port, "/cam2/snapshot", &[("Authorization", &auth)]);
    assert_eq!(s.status, 200, "{}", s.head);
    stop(&second);
    assert!(
        port_is_free(port),
        "the port is free after the last sink stopped"
    );
}

/// A sink whose listener-level settings differ from those of the sink that
/// serves the port fails to start, naming the setting and the other sink;
/// so does a second sink on a taken mount. The first serves on.
#[test]
fn conflicting_listener_settings_fail_clearly() {
    let first = play_joining("owner", "/a", A, 0, "max-connections=50");
    let owner: gst::Element = by_name(&first, "owner");
    let port = common::current_port(&owner);

    let cases = [
        ("late", "/b", "max-connections=60", "max-connections"),
        ("late2", "/b", "max-connections=50 timeout=3", "timeout"),
        (
            "late3",
            "/b",
            "max-connections=50 allowed-hosts=<\"cam.example\">",
            "allowed-hosts",
        ),
        ("dup", "/a", "max-connections=50", "mount /a"),
    ];
    for (name, mount, extra, what) in cases {
        let p = common::launch(&camera_branch(name, mount, B, port, extra));
        assert!(
            p.set_state(gst::State::Playing).is_err(),
            "{name} must not start"
        );
        let (msg, _debug) = bus_error(&p, WAIT).unwrap_or_else(|| panic!("{name}: no error"));
        assert!(msg.contains(what), "{name}: {msg}");
        assert!(msg.contains("owner"), "{name}: {msg}");
        stop(&p);
    }
    let p = common::launch(&camera_branch("late", "/b", B, port, "max-connections=60"));
    let _ = p.set_state(gst::State::Playing);
    let msg = p
        .bus()
        .and_then(|bus| {
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        })
        .expect("an error");
    if let gst::MessageView::Error(e) = msg.view() {
        assert!(
            e.error().matches(gst::ResourceError::Settings),
            "{:?}",
            e.error()
        );
    }
    stop(&p);

    assert_eq!(snapshot_size(port, "/a/snapshot"), A);
    stop(&first);
    assert!(port_is_free(port));
}

/// Signed links are per mount: the signed path includes the mount, and a
/// link signed for one mount opens nothing on another.
#[test]
fn signed_links_are_per_mount() {
    let (p, port) = play_sharing(
        &[
            camera_branch("a", "/a", A, 0, "link-secret=aaaa"),
            camera_branch("b", "/b", B, 0, "link-secret=bbbb"),
        ],
        "a",
        &["b"],
    );
    let a: gst::Element = by_name(&p, "a");
    let b: gst::Element = by_name(&p, "b");
    let sign = |e: &gst::Element, path: &str| {
        e.emit_by_name::<Option<String>>("sign-url", &[&path, &60u32])
            .expect("signed")
    };
    assert_eq!(get(port, "/a/snapshot").status, 403);
    let la = sign(&a, "/a/snapshot");
    assert_eq!(snapshot_size(port, &la), A);
    let lb = sign(&b, "/b/snapshot");
    assert_eq!(snapshot_size(port, &lb), B);
    // a's key, b's path: refused.
    let wrong = sign(&a, "/b/snapshot");
    assert_eq!(get(port, &wrong).status, 403);
    stop(&p);
}
