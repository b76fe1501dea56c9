// SPDX-License-Identifier: MPL-2.0

//! Element behaviour: release latency, slow downstream, caps, timestamps,
//! offsets, DISCONT, num-buffers, camera timestamps, stopping while blocked,
//! stats, bus messages, request headers, proxy.

mod common;

use common::*;
use gst::prelude::*;
use gst_base::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Release latency: a frame is pushed before the server sends anything more
// ---------------------------------------------------------------------------

/// Writes `head`, then for each frame `pre[k]`, holds on a gate the test
/// opens only after it has pulled frame k, then writes `post[k]`.
fn gated(head: Vec<u8>, pre: Vec<Vec<u8>>, post: Vec<Vec<u8>>) -> (Vec<Step>, Vec<Gate>) {
    let gates: Vec<Gate> = pre.iter().map(|_| Gate::new()).collect();
    let mut steps = vec![Step::Write(head)];
    for ((p, q), g) in pre.into_iter().zip(post).zip(&gates) {
        steps.push(Step::Write(p));
        steps.push(Step::WaitFor(g.clone()));
        if !q.is_empty() {
            steps.push(Step::Write(q));
        }
    }
    steps.push(Step::Stall);
    (steps, gates)
}

fn check_gated(script: Vec<Step>, gates: Vec<Gate>, f: &[Vec<u8>]) {
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::fast_harness(&cam.url("/")).play();
    for (k, (g, want)) in gates.iter().zip(f).enumerate() {
        // The camera is holding everything after frame k's last byte.
        let t = Instant::now();
        let got = src.frame(WAIT).unwrap_or_else(|| {
            panic!(
                "frame {k} not released before the bytes that follow it (error {:?}, stats {})",
                src.posted_error(),
                src.stats().0
            )
        });
        assert!(!g.is_open());
        assert_frames(&[got.data], std::slice::from_ref(want));
        eprintln!("frame {k} released after {:?}", t.elapsed());
        g.open();
    }
}

#[test]
fn latency_boundary_before_frame_released_with_its_last_byte() {
    // ESP32 style: `\r\n--B\r\n` headers JPEG, then nothing until the next
    // frame. The frame must come out now, not when the next frame starts.
    let f = frames(3, 320, 240, 4000);
    let pre: Vec<Vec<u8>> = f.iter().map(|j| cat(&[&delim(B), &std_part(j)])).collect();
    let post = vec![Vec::new(); f.len()];
    let (script, gates) = gated(head_http10(&mjpeg_type(B)), pre, post);
    check_gated(script, gates, &f);
}

#[test]
fn latency_boundary_after_frame_released_before_its_delimiter() {
    // Length-framed part: released when its N bytes are in, before the
    // `\r\n--B\r\n` that follows.
    let f = frames(3, 320, 240, 4010);
    let mut pre: Vec<Vec<u8>> = f.iter().map(|j| std_part(j)).collect();
    pre[0] = cat(&[format!("--{B}\r\n").as_bytes(), &pre[0]]);
    let post = vec![delim(B); f.len()];
    let (script, gates) = gated(head_http10(&mjpeg_type(B)), pre, post);
    check_gated(script, gates, &f);
}

#[test]
fn latency_without_length_released_at_the_delimiter() {
    // No Content-Length: released as soon as the delimiter line is complete,
    // before the next part's headers.
    let f = frames(3, 320, 240, 4020);
    let mut pre: Vec<Vec<u8>> = f
        .iter()
        .map(|j| cat(&[b"Content-Type: image/jpeg\r\n\r\n", j, &delim(B)]))
        .collect();
    pre[0] = cat(&[format!("--{B}\r\n").as_bytes(), &pre[0]]);
    let post = vec![Vec::new(); f.len()];
    let (script, gates) = gated(head_http10(&mjpeg_type(B)), pre, post);
    check_gated(script, gates, &f);
}

#[test]
fn latency_raw_jpeg_released_at_eoi() {
    let f = frames(3, 320, 240, 4030);
    let post = vec![Vec::new(); f.len()];
    let (script, gates) = gated(head_http10("image/jpeg"), f.clone(), post);
    check_gated(script, gates, &f);
}

// ---------------------------------------------------------------------------
// Slow downstream
// ---------------------------------------------------------------------------

/// A 200 KB JPEG, distinct per `k` through a COM segment right after SOI
/// (shares the rest with `base`, so building many is cheap).
fn big_frame(base: &[u8], k: u32) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x0A];
    j.extend_from_slice(format!("b{k:07}").as_bytes());
    j.extend_from_slice(&base[2..]);
    j
}

struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[test]
fn slow_downstream_drops_counted_memory_bounded_newest_flow_after() {
    const BURST: u32 = 200;
    const POOL: u32 = 4;
    let base = jpeg_with_len(640, 480, 4100, 200_000);
    let burst: Vec<Vec<u8>> = (0..BURST).map(|k| big_frame(&base, k)).collect();
    let after: Vec<Vec<u8>> = (0..4).map(|k| big_frame(&base, 1000 + k)).collect();
    let burst_bytes: usize = burst.iter().map(|j| j.len()).sum();

    let resume = Gate::new();
    let after_gates: Vec<Gate> = after.iter().map(|_| Gate::new()).collect();
    let mut script = vec![Step::Write(cat(&[
        &head_http10(&mjpeg_type(B)),
        format!("--{B}\r\n").as_bytes(),
    ]))];
    for j in &burst {
        script.push(Step::Write(cat(&[&std_part(j), &delim(B)])));
        // Spread over ~2 s: downstream stays blocked for seconds.
        script.push(Step::Pause(Duration::from_millis(10)));
    }
    script.push(Step::WaitFor(resume.clone()));
    for (j, g) in after.iter().zip(&after_gates) {
        script.push(Step::Write(cat(&[&std_part(j), &delim(B)])));
        script.push(Step::WaitFor(g.clone()));
    }
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);

    let src = Src::fast(&cam.url("/"))
        .set("pool-size", POOL)
        .set("max-frame-size", 256u32 * 1024)
        .set("timeout", 30u32);
    // Block the streaming thread on the first buffer until released (also
    // released if the test fails, so that teardown is not stuck).
    let release = Gate::new();
    let blocked = Gate::new();
    {
        let (release, blocked) = (release.clone(), blocked.clone());
        src.src_pad()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                if !blocked.is_open() {
                    blocked.open();
                    release.wait(Duration::from_secs(60));
                }
                gst::PadProbeReturn::Ok
            });
    }
    let rss_before = rss_bytes();
    let src = src.play();
    // Declared after `src`, so dropped before it.
    let _release_on_exit = OpenOnDrop(release.clone());
    assert!(
        blocked.wait(WAIT),
        "no first buffer: {:?}",
        src.posted_error()
    );

    // The network keeps being read while downstream is blocked.
    let s = src.wait_stats("the whole burst read while downstream is blocked", |s| {
        s.u64("bytes-received") >= burst_bytes as u64
    });
    let rss_during = rss_bytes();
    let dropped = s.u64("frames-dropped");
    assert!(dropped > 0, "frames must be dropped, not queued: {}", s.0);
    assert_eq!(
        dropped,
        s.u64("dropped-no-buffer") + s.u64("dropped-too-big") + s.u64("dropped-queue-full"),
        "frames-dropped is the sum: {}",
        s.0
    );
    assert_eq!(s.u64("dropped-too-big"), 0, "{}", s.0);
    assert!(s.u64("overruns") >= 1, "{}", s.0);
    assert!(s.u32("free-buffers") <= POOL, "{}", s.0);
    assert!(
        s.u64("frames-received") <= s.u64("frames-pushed") + dropped + POOL as u64 + 1,
        "{}",
        s.0
    );
    // 40 MB went through while blocked; the pool is 1 MiB.
    let growth = rss_during.saturating_sub(rss_before);
    eprintln!(
        "burst {} MB, rss growth while blocked {} MB",
        burst_bytes >> 20,
        growth >> 20
    );
    assert!(
        growth < 20 << 20,
        "memory grew by {} MB while blocked",
        growth >> 20
    );

    // Unblock: the blocked frame, a backlog bounded by the pool that ends
    // with the newest frame of the burst, then the new frames, exact.
    release.open();
    resume.open();
    let mut out: Vec<Frame> = Vec::new();
    loop {
        let f = src
            .frame(WAIT)
            .unwrap_or_else(|| panic!("no frame after unblocking; stats {}", src.stats().0));
        let is_new = f.data == after[0];
        assert!(
            is_new || burst.contains(&f.data),
            "a frame that was never sent whole ({} bytes)",
            f.data.len()
        );
        out.push(f);
        if is_new {
            break;
        }
        assert!(
            out.len() <= POOL as usize + 1,
            "backlog longer than the pool: {} frames",
            out.len()
        );
    }
    let backlog = &out[..out.len() - 1];
    eprintln!("backlog after unblocking: {} frames", backlog.len());
    assert_eq!(backlog[0].data, burst[0], "the blocked frame comes first");
    assert!(
        backlog
            .last()
            .is_some_and(|f| f.data == burst[BURST as usize - 1]),
        "the newest frame of the burst must flow after unblocking, got {:?}",
        backlog
            .iter()
            .map(|f| burst.iter().position(|b| *b == f.data))
            .collect::<Vec<_>>()
    );
    // offset = sequence number: DISCONT exactly where frames are missing.
    for w in out.windows(2) {
        let (a, b) = (w[0].offset(), w[1].offset());
        assert!(b > a, "offsets increase: {out:?}");
        assert_eq!(
            w[1].discont(),
            b > a + 1,
            "DISCONT iff frames are missing before it: {out:?}"
        );
    }
    assert!(out.iter().skip(1).any(|f| f.discont()), "{out:?}");
    after_gates[0].open();
    for (k, want) in after.iter().enumerate().skip(1) {
        let f = src.frame(WAIT).expect("new frame");
        assert_frames(&[f.data], std::slice::from_ref(want));
        after_gates[k].open();
    }
    let s = src.wait_stats("quiet", |s| {
        s.u64("frames-received") == s.u64("frames-pushed") + s.u64("frames-dropped")
    });
    assert_eq!(
        s.u64("frames-received"),
        u64::from(BURST) + after.len() as u64,
        "{}",
        s.0
    );
}

// ---------------------------------------------------------------------------
// Caps, timestamps, offsets, flags
// ---------------------------------------------------------------------------

#[test]
fn caps_carry_sof_size_and_renegotiate() {
    let sizes = [
        (320u16, 240u16),
        (320, 240),
        (640, 480),
        (640, 480),
        (1920, 1080),
        (320, 240),
    ];
    let f: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, (w, h))| jpeg(*w, *h, 4200 + i as u32))
        .collect();
    let cam = FakeCamera::scripted(vec![with(stream(&f, 0), [Step::Stall])]);
    let src = Src::for_camera(&cam, "/").play();
    let got = src.frames(f.len());
    for (i, (fr, (w, h))) in got.iter().zip(sizes).enumerate() {
        assert_eq!(fr.data, f[i]);
        let caps = fr.caps.as_ref().expect("caps");
        let s = caps.structure(0).expect("structure");
        assert_eq!(s.name(), "image/jpeg", "{caps}");
        assert_eq!(fr.size(), Some((w as i32, h as i32)), "frame {i}: {caps}");
        assert_eq!(
            s.get::<gst::Fraction>("framerate").ok(),
            Some(gst::Fraction::new(0, 1)),
            "{caps}"
        );
    }
    let caps = src.src_pad().current_caps().expect("negotiated caps");
    let s = caps.structure(0).expect("structure");
    assert_eq!(
        (s.get::<i32>("width").ok(), s.get::<i32>("height").ok()),
        (Some(320), Some(240))
    );
}

#[test]
fn pts_is_the_running_time_of_the_first_byte() {
    // Half a frame, a 400 ms pause (server pacing), the rest: the PTS is
    // taken when the part started arriving, not when it completed.
    let j = jpeg(320, 240, 4290);
    let part = std_part(&j);
    let (a, b) = part.split_at(part.len() / 2);
    let cam = FakeCamera::scripted(vec![vec![
        Step::Write(cat(&[
            &head_http10(&mjpeg_type(B)),
            format!("--{B}\r\n").as_bytes(),
            a,
        ])),
        Step::Pause(Duration::from_millis(400)),
        Step::Write(cat(&[b, &delim(B)])),
        Step::Stall,
    ]]);
    let src = Src::fast(&cam.url("/")).play();
    let f = src.frames(1).remove(0);
    let now = src.pipeline().current_running_time().expect("running time");
    let pts = f.pts().expect("pts");
    assert_eq!(f.data, j);
    assert!(
        pts + gst::ClockTime::from_mseconds(300) <= now,
        "PTS {pts} is not the arrival of the first byte (pulled at {now})"
    );
}

#[test]
fn pts_running_time_monotonic_offsets_sequential() {
    let f = frames(6, 320, 240, 4300);
    let cam = FakeCamera::scripted(vec![with(stream(&f, 0), [Step::Stall])]);
    let src = Src::for_camera(&cam, "/").play();
    let got = src.frames(6);
    let pts: Vec<gst::ClockTime> = got
        .iter()
        .map(|f| f.pts().expect("every buffer has a PTS"))
        .collect();
    // Paced: each frame's first byte arrives after the previous frame was
    // pulled, so PTS strictly increase.
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "PTS increase: {pts:?}");
    let now = src.pipeline().current_running_time().expect("running time");
    assert!(
        *pts.last().expect("pts") <= now,
        "PTS {pts:?} in the future of {now}"
    );
    let offsets: Vec<u64> = got.iter().map(|f| f.offset()).collect();
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "offset = frame sequence number: {offsets:?}"
    );
}

#[test]
fn discont_on_first_buffer_after_reconnect_only() {
    let f = frames(4, 320, 240, 4400);
    let cam = FakeCamera::scripted(vec![
        with(stream(&f[..2], 0), [Step::Close]),
        with(stream(&f[2..], 2), [Step::Stall]),
    ]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frames(4);
    let flags: Vec<bool> = got.iter().map(|f| f.discont()).collect();
    assert_eq!(
        &flags[1..],
        &[false, true, false],
        "DISCONT flags {flags:?}"
    );
    let offsets: Vec<u64> = got.iter().map(|f| f.offset()).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
}

#[test]
fn num_buffers_then_eos() {
    let f = frames(6, 320, 240, 4500);
    let cam = FakeCamera::scripted(vec![with(stream(&f, 0), [Step::Stall])]);
    let src = Src::harness_for_camera(&cam, "/")
        .set("num-buffers", 3i32)
        .play();
    assert_frames(&data(&src.frames(3)), &f[..3]);
    assert!(
        src.eos(WAIT),
        "EOS after num-buffers: {:?}",
        src.posted_error()
    );
    assert!(src.frame(Duration::from_millis(200)).is_none());
    assert!(src.is_eos());
}

#[test]
fn x_timestamp_becomes_reference_timestamp_meta() {
    // Seconds since boot, then a reboot (backward jump), then a part without
    // X-Timestamp.
    let ts = [
        "1712345678.100000",
        "1712345678.140000",
        "1712345678.180000",
        "12.500000",
        "12.540000",
    ];
    let f = frames(6, 320, 240, 4600);
    let mut body = format!("--{B}\r\n").into_bytes();
    for (i, j) in f.iter().enumerate() {
        let mut h = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n",
            j.len()
        );
        if let Some(t) = ts.get(i) {
            h.push_str(&format!("X-Timestamp: {t}\r\n"));
        }
        h.push_str("\r\n");
        body.extend_from_slice(h.as_bytes());
        body.extend_from_slice(j);
        body.extend_from_slice(&delim(B));
    }
    let mut script = paced(
        &head_http10(&mjpeg_type(B)),
        &body,
        &f,
        Some(&delim(B)),
        Coding::Identity,
        0,
    );
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let got = src.frames(6);
    let metas: Vec<Option<gst::ClockTime>> = got
        .iter()
        .map(|fr| {
            let m: Vec<_> = fr
                .buffer
                .iter_meta::<gst::ReferenceTimestampMeta>()
                .collect();
            assert!(m.len() <= 1, "one camera timestamp per buffer");
            m.first().map(|m| {
                let caps = m.reference();
                assert_eq!(
                    caps.structure(0).map(|s| s.name().as_str()),
                    Some("timestamp/x-mjpeg-camera"),
                    "{caps:?}"
                );
                m.timestamp()
            })
        })
        .collect();
    assert!(metas[..5].iter().all(|m| m.is_some()), "{metas:?}");
    assert!(metas[5].is_none(), "no X-Timestamp, no meta: {metas:?}");
    let m: Vec<u64> = metas[..5]
        .iter()
        .map(|m| m.expect("meta").nseconds())
        .collect();
    // Only deltas are meaningful: 40 ms steps on either side of the reboot.
    let d = |a: u64, b: u64| b as i128 - a as i128;
    for (a, b) in [(0, 1), (1, 2), (3, 4)] {
        let delta = d(m[a], m[b]);
        assert!(
            (delta - 40_000_000).abs() <= 1_000,
            "delta {a}->{b}: {delta} ns ({m:?})"
        );
    }
}

// ---------------------------------------------------------------------------
// Stopping while blocked
// ---------------------------------------------------------------------------

fn assert_quick_stop(src: &Src, what: &str) {
    let t = src.stop();
    eprintln!("PLAYING->NULL while {what}: {t:?}");
    assert!(
        t < Duration::from_secs(1),
        "PLAYING->NULL while {what} took {t:?}"
    );
}

#[test]
fn stop_is_quick_while_waiting_for_the_response() {
    // The camera reads the request and never answers.
    let cam = FakeCamera::scripted(vec![vec![Step::Stall]]);
    let src = Src::fast_harness(&cam.url("/")).play();
    cam.next_request(WAIT).expect("the request");
    assert_quick_stop(&src, "waiting for response headers");
}

#[test]
fn stop_is_quick_while_tcp_connect_hangs() {
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so connect() itself hangs (on 127.0.0.1).
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
    let fillers: Vec<_> = (0..4)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();
    let src = Src::fast_harness(&format!("http://{addr}/")).play();
    // Whatever the element is doing now (connecting, backing off), stopping
    // must be quick.
    assert!(src.frame(Duration::from_millis(500)).is_none());
    assert_quick_stop(&src, "connecting");
    drop(fillers);
}

#[test]
fn stop_is_quick_while_reading() {
    let f = frames(1, 320, 240, 4700);
    let cam = FakeCamera::scripted(vec![with(stream(&f, 0), [Step::Stall])]);
    let src = Src::harness_for_camera(&cam, "/").play();
    src.frames(1);
    assert_quick_stop(&src, "reading a stalled stream");
}

#[test]
fn stop_is_quick_while_reading_mid_frame() {
    let j = jpeg(320, 240, 4710);
    let part = std_part(&j);
    let cam = FakeCamera::scripted(vec![vec![
        Step::Write(head_http10(&mjpeg_type(B))),
        Step::Write(cat(&[
            format!("--{B}\r\n").as_bytes(),
            &part[..part.len() / 2],
        ])),
        Step::Stall,
    ]]);
    let src = Src::fast_harness(&cam.url("/")).play();
    src.wait_stats("bytes in", |s| s.u64("bytes-received") > 0);
    assert_quick_stop(&src, "in the middle of a frame");
}

#[test]
fn stop_is_quick_during_backoff() {
    let port = free_port();
    let src = Src::fast_harness(&format!("http://127.0.0.1:{port}/"))
        .set("retry-delay", 60_000u32)
        .set("retry-delay-max", 60_000u32)
        .play();
    let m = src
        .element_message("mjpegsrc-reconnect", WAIT)
        .expect("reconnect message");
    assert!(m.get::<u64>("delay-ms").expect("delay-ms") >= 10_000, "{m}");
    assert_quick_stop(&src, "backing off");
}

#[test]
fn stop_and_restart() {
    // NULL -> PLAYING -> NULL -> PLAYING reconnects and streams again.
    let f = frames(2, 320, 240, 4720);
    let cam = FakeCamera::scripted(vec![
        with(stream(&f[..1], 0), [Step::Stall]),
        with(stream(&f[1..], 1), [Step::Stall]),
    ]);
    let src = Src::harness_for_camera(&cam, "/").play();
    assert_frames(&data(&src.frames(1)), &f[..1]);
    assert_quick_stop(&src, "streaming");
    let src = src.play();
    assert_frames(&data(&src.frames(1)), &f[1..]);
}

// ---------------------------------------------------------------------------
// Stats and bus messages
// ---------------------------------------------------------------------------

fn check_stats_shape(s: &Stats, location: &str, pool: u32) {
    assert_eq!(s.0.name(), "mjpegsrc-stats", "{}", s.0);
    for f in SRC_STATS_U64 {
        s.u64(f);
    }
    let fps = s.f64("fps");
    assert!(fps.is_finite() && fps >= 0.0, "{}", s.0);
    s.str("last-reconnect-reason");
    assert!(s.u32("free-buffers") <= pool, "{}", s.0);
    s.bool("connected");
    assert_eq!(s.str("location"), location, "{}", s.0);
    assert_eq!(
        s.u64("frames-dropped"),
        s.u64("dropped-no-buffer") + s.u64("dropped-too-big") + s.u64("dropped-queue-full"),
        "{}",
        s.0
    );
}

#[test]
fn stats_fields_present_and_consistent() {
    let f = frames(10, 320, 240, 4800);
    let head = head_http10(&mjpeg_type(B));
    let body = boundary_after(B, &f);
    let sent = (head.len() + body.len()) as u64;
    let close = Gate::new();
    let cam = FakeCamera::scripted(vec![with(
        stream(&f, 0),
        [Step::WaitFor(close.clone()), Step::Close],
    )]);
    let url = cam.url("/s");
    let src = Src::harness_for_camera(&cam, "/s").set("pool-size", 6u32);

    let s = src.stats();
    check_stats_shape(&s, &url, 6);
    for f in SRC_STATS_U64 {
        assert_eq!(s.u64(f), 0, "{f} before start: {}", s.0);
    }
    assert!(!s.bool("connected"));
    assert_eq!(s.str("last-reconnect-reason"), "");

    let src = src.play();
    assert_frames(&data(&src.frames(10)), &f);
    let s = src.wait_stats("all received and pushed", |s| {
        s.u64("frames-pushed") >= 10 && s.u64("frames-received") >= 10
    });
    check_stats_shape(&s, &url, 6);
    assert_eq!(s.u64("frames-received"), 10, "{}", s.0);
    assert_eq!(s.u64("frames-pushed"), 10, "{}", s.0);
    assert_eq!(s.u64("frames-dropped"), 0, "{}", s.0);
    assert_eq!(s.u64("overruns"), 0, "{}", s.0);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    let jpeg_bytes: u64 = f.iter().map(|j| j.len() as u64).sum();
    let b = s.u64("bytes-received");
    assert!(
        b >= jpeg_bytes && b <= sent,
        "bytes-received {b} not in [{jpeg_bytes}, {sent}]"
    );
    assert!(s.f64("fps") > 0.0, "fps while streaming: {}", s.0);
    // The camera closes now; the next request is never answered: not
    // connected, one reconnect with a reason.
    close.open();
    let s = src.wait_stats("disconnected", |s| {
        s.u64("reconnects") >= 1 && !s.bool("connected")
    });
    check_stats_shape(&s, &url, 6);
    assert!(!s.str("last-reconnect-reason").is_empty(), "{}", s.0);
    let b2 = s.u64("bytes-received");
    assert!(
        b2 >= b && b2 <= sent,
        "bytes-received {b2} not in [{b}, {sent}]"
    );
    // Every buffer went back to the pool: nothing leaks. appsink keeps a
    // reference to its preroll buffer (one pool buffer) for as long as it
    // runs; with fakesink all 6 come back.
    src.wait_stats("all buffers but appsink's preroll free again", |s| {
        s.u32("free-buffers") >= 5
    });
}

#[test]
fn connected_and_reconnect_messages() {
    let f = frames(2, 320, 240, 4900);
    let cam = FakeCamera::scripted(vec![
        with(stream(&f[..1], 0), [Step::Close]),
        with(stream(&f[1..], 1), [Step::Stall]),
    ]);
    let url = cam.url("/live");
    let src = Src::harness_for_camera(&cam, "/live")
        .set("retry-delay-max", 100u32)
        .play();
    let c = src
        .element_message("mjpegsrc-connected", WAIT)
        .unwrap_or_else(|| panic!("connected message: {:?}", src.posted_error()));
    assert_eq!(c.get::<String>("location").expect("location"), url, "{c}");
    assert_eq!(c.get::<u32>("status").expect("status u32"), 200, "{c}");
    assert!(
        c.get::<String>("content-type")
            .expect("content-type")
            .starts_with("multipart/x-mixed-replace"),
        "{c}"
    );
    let boundary = c.get::<String>("boundary").expect("boundary");
    assert!(boundary == B || boundary == format!("--{B}"), "{c}");
    src.frames(2);
    let r = src
        .element_message("mjpegsrc-reconnect", WAIT)
        .expect("reconnect message");
    assert!(
        !r.get::<String>("reason").expect("reason").is_empty(),
        "{r}"
    );
    assert_eq!(r.get::<u32>("attempt").expect("attempt u32"), 1, "{r}");
    // retry-delay 10 ms: the 100 ms floor, +20 % jitter at most.
    assert!(
        r.get::<u64>("delay-ms").expect("delay-ms u64") <= 120,
        "{r}"
    );
    let c2 = src
        .element_message("mjpegsrc-connected", WAIT)
        .expect("second connected message");
    assert_eq!(c2.get::<u32>("status").expect("status"), 200);
    assert!(
        src.warnings_seen() >= 1,
        "a GST warning with each reconnect"
    );
}

// ---------------------------------------------------------------------------
// Request headers, proxy, is-live
// ---------------------------------------------------------------------------

fn first_request(props: &[(&str, glib::Value)]) -> Request {
    let f = frames(1, 320, 240, 5000);
    let cam = FakeCamera::scripted(vec![with(stream(&f, 0), [Step::Stall])]);
    let mut src = Src::harness_for_camera(&cam, "/req");
    for (k, v) in props {
        src = src.set(k, v.clone());
    }
    let src = src.play();
    src.frames(1);
    cam.next_request(WAIT).expect("request")
}

#[test]
fn default_request_headers() {
    let r = first_request(&[]);
    assert_eq!(r.method, "GET");
    assert_eq!(r.path(), "/req");
    let ua = r.header("User-Agent").expect("User-Agent");
    assert!(ua.starts_with("gst-mjpeg/"), "User-Agent {ua:?}");
    assert!(r.header("Range").is_none(), "{}", r.text());
    assert!(r.header("Authorization").is_none(), "{}", r.text());
    assert!(r.header("Host").is_some(), "{}", r.text());
}

#[test]
fn user_agent_extra_headers_and_cookies_are_sent() {
    let extra = gst::Structure::builder("extra-headers")
        .field("X-Api-Key", "k3y")
        .field("X-Camera-Channel", 5i32)
        .build();
    let r = first_request(&[
        ("user-agent", "MyViewer/2.0".to_value()),
        ("extra-headers", extra.to_value()),
        (
            "cookies",
            glib::StrV::from(vec!["session=abc123", "theme=dark"]).to_value(),
        ),
    ]);
    assert_eq!(r.header("User-Agent"), Some("MyViewer/2.0"), "{}", r.text());
    assert_eq!(r.header("X-Api-Key"), Some("k3y"), "{}", r.text());
    assert_eq!(r.header("X-Camera-Channel"), Some("5"), "{}", r.text());
    let mut cookies: Vec<String> = r
        .header_all("Cookie")
        .iter()
        .flat_map(|v| v.split(';'))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    cookies.sort();
    assert_eq!(
        cookies,
        vec!["session=abc123", "theme=dark"],
        "{}",
        r.text()
    );
}

#[test]
fn http_proxy_with_credentials() {
    // The fake camera acts as the proxy: absolute-form request target and
    // Proxy-Authorization; the origin port itself is closed.
    let origin = format!("http://127.0.0.1:{}/cam", free_port());
    let f = frames(2, 320, 240, 5100);
    let want = format!("Basic {}", base64(b"pxuser:pxpass"));
    let script = Mutex::new(Some(with(stream(&f, 0), [Step::Stall])));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen2 = seen.clone();
    let proxy = FakeCamera::start(move |req| {
        lock(&seen2).push(req.target.clone());
        if req.header("Proxy-Authorization") == Some(want.as_str()) {
            lock(&script).take().unwrap_or_else(|| vec![Step::Stall])
        } else {
            vec![Step::Write(head(
                "HTTP/1.1 407 Proxy Authentication Required",
                &[
                    ("Proxy-Authenticate", "Basic realm=\"proxy\""),
                    ("Content-Length", "0"),
                ],
            ))]
        }
    });
    let src = Src::fast_harness(&origin)
        .set("proxy", format!("http://127.0.0.1:{}", proxy.port()))
        .set("proxy-id", "pxuser")
        .set("proxy-pw", "pxpass")
        .paced_by(&proxy)
        .play();
    assert_frames(&data(&src.frames(2)), &f);
    let targets = lock(&seen).clone();
    assert!(
        targets.iter().all(|t| t == &origin),
        "absolute-form targets: {targets:?}"
    );
}

#[test]
fn live_by_default_and_not_live_on_request() {
    let cam = FakeCamera::scripted(vec![vec![Step::Stall], vec![Step::Stall]]);
    let src = Src::fast(&cam.url("/"));
    assert_eq!(
        src.pipeline().set_state(gst::State::Paused),
        Ok(gst::StateChangeSuccess::NoPreroll),
        "a live source does not preroll"
    );
    assert!(
        src.element
            .dynamic_cast_ref::<gst_base::BaseSrc>()
            .expect("BaseSrc")
            .is_live()
    );
    src.stop();
    let src = Src::fast(&cam.url("/")).set("is-live", false);
    assert!(
        !src.element
            .dynamic_cast_ref::<gst_base::BaseSrc>()
            .expect("BaseSrc")
            .is_live()
    );
    let r = src.pipeline().set_state(gst::State::Paused);
    assert_eq!(
        r,
        Ok(gst::StateChangeSuccess::Async),
        "is-live=false prerolls"
    );
    src.stop();
}

#[test]
fn stats_snapshots_are_consistent_while_streaming() {
    // Every snapshot taken while frames flow must be coherent: no frame can
    // be pushed before it was received.
    let f = frames(300, 160, 120, 5200);
    let cam = FakeCamera::scripted(vec![with(stream(&f, 0), [Step::Stall])]);
    let src = Src::harness_for_camera(&cam, "/").play();
    let mut bad = Vec::new();
    for (i, want) in f.iter().enumerate() {
        let fr = src.frame(WAIT).expect("frame");
        assert_eq!(&fr.data, want);
        let s = src.stats();
        check_stats_shape(&s, &cam.url("/"), 16);
        if s.u64("frames-pushed") > s.u64("frames-received") {
            bad.push(format!(
                "after frame {i}: frames-pushed {} > frames-received {}",
                s.u64("frames-pushed"),
                s.u64("frames-received")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} incoherent snapshots, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
}

fn start_fails(src: Src, what: &str) {
    let r = src.pipeline().set_state(gst::State::Playing);
    let err = src.error(WAIT);
    assert!(
        r.is_err() || err.is_some(),
        "{what}: starting must fail with an error (state change {r:?})"
    );
    let (err, debug) = err.unwrap_or_else(|| panic!("{what}: no error message posted"));
    eprintln!("{what}: {err} ({debug})");
    assert!(src.frame(Duration::from_millis(100)).is_none());
}

#[test]
fn missing_location_is_an_error() {
    init();
    let src = Src::new("http://127.0.0.1:9/");
    src.element.set_property("location", None::<&str>);
    start_fails(src, "no location");
}

#[test]
fn unusable_location_is_an_error() {
    init();
    for loc in ["ftp://127.0.0.1/x", "http://", "not a url"] {
        let src = Src::new("http://127.0.0.1:9/");
        // Either the property refuses the value (and keeps the old one) or
        // start() does.
        src.element.set_property("location", loc);
        let now = src.element.property::<Option<String>>("location");
        if now.as_deref() != Some(loc) {
            assert_eq!(now.as_deref(), Some("http://127.0.0.1:9/"), "{loc}");
            continue;
        }
        start_fails(src, loc);
    }
}
