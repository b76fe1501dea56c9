// SPDX-License-Identifier: MPL-2.0

//! Lifecycle stress: many PLAYING -> NULL -> PLAYING cycles of `mjpegsrc`
//! (its camera dropping and resetting connections), of `mjpegsink` (raw TCP
//! clients attached and reading) and of a relay `mjpegsrc ! mjpegsink`;
//! after the cycles no more threads, descriptors or memory than after a
//! warm-up, and every state change bounded. Also `unlock` latency from
//! every state a source can be blocked in.
//!
//! `MJPEG_LIFECYCLE_CYCLES` sets the number of cycles of each test (default
//! [`DEFAULT_CYCLES`], sized to keep each test well under 20 s in a debug
//! build on a two-core machine). The tests of this file run one at a time:
//! thread and descriptor counts are per process.

mod common;

use common::*;
use gst::prelude::*;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Cycles per test unless `MJPEG_LIFECYCLE_CYCLES` says otherwise.
const DEFAULT_CYCLES: usize = 1000;
/// Cycles before the baseline is taken (threads, pools, caches warm).
const WARMUP_CYCLES: usize = 20;
/// Upper bound of one state change (a hang is far beyond it).
const STATE_CHANGE_BOUND: Duration = Duration::from_secs(2);
/// Scale of the RSS growth allowed over the second half of the cycles (see
/// [`Checkpoints::check`]: half of it per quarter; a 12 KiB-per-cycle leak
/// injected into mjpegsink's `start` fails it). Measured: about
/// 1 MiB per 1000 cycles for mjpegsrc and the relay, which is the
/// allocator, not a leak: each start allocates a new pool (8 x 4 MiB by
/// default) and glibc keeps some freed pages resident; under heaptrack the
/// heap still allocated at exit is the same after 100 and 600 cycles
/// (1.68 and 1.70 MB, GStreamer's own caches).
const RSS_GROWTH_BOUND: u64 = 4 * 1024 * 1024;
/// `unlock` must return a blocked `create()` within this.
const UNLOCK_BOUND: Duration = Duration::from_millis(100);
/// No progress for this long aborts the test binary: a hang fails loudly.
const WATCHDOG: Duration = Duration::from_secs(60);

fn cycles() -> usize {
    std::env::var("MJPEG_LIFECYCLE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES)
}

// ---------------------------------------------------------------------------
// Process resources
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Resources {
    threads: usize,
    fds: usize,
    rss: u64,
    /// Virtual size: an allocation leaked without ever being written shows
    /// here and not in the RSS.
    vm: u64,
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn resources() -> Resources {
    Resources {
        threads: count("/proc/self/task"),
        fds: count("/proc/self/fd"),
        rss: rss_bytes(),
        vm: vm_bytes(),
    }
}

fn vm_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The lowest thread and descriptor counts seen over `window` (transient
/// threads and sockets of the fake servers come and go), with the RSS at
/// the end.
fn low_water(window: Duration) -> Resources {
    let end = Instant::now() + window;
    let mut low = resources();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        let r = resources();
        low.threads = low.threads.min(r.threads);
        low.fds = low.fds.min(r.fds);
        low.rss = r.rss;
        low.vm = r.vm;
    }
    low
}

/// Poll (bounded) until threads and descriptors are back to `base`;
/// returns what was seen last.
fn back_to(base: Resources, within: Duration) -> Resources {
    let end = Instant::now() + within;
    loop {
        let r = resources();
        if (r.threads <= base.threads && r.fds <= base.fds) || Instant::now() > end {
            return r;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resources sampled during the cycles: after the warm-up, at half and at
/// three quarters of them.
#[derive(Default)]
struct Checkpoints {
    base: Option<Resources>,
    half: Option<u64>,
    three_quarters: Option<u64>,
}

impl Checkpoints {
    /// Call before cycle `i` of `WARMUP_CYCLES + n`.
    fn at(&mut self, i: usize, n: usize) {
        let settle = Duration::from_millis(500);
        if i == WARMUP_CYCLES {
            self.base = Some(low_water(settle));
        } else if i == WARMUP_CYCLES + n / 2 {
            self.half = Some(low_water(settle).rss);
        } else if i == WARMUP_CYCLES + 3 * n / 4 {
            self.three_quarters = Some(low_water(settle).rss);
        }
    }

    /// Threads and descriptors back to the baseline, and no steady RSS
    /// growth over the second half of the cycles: a leak grows in each of
    /// its quarters, so growth fails only when both quarters grew by more
    /// than half of [`RSS_GROWTH_BOUND`] (or the half by more than twice
    /// it); a one-off step of the allocator (an arena that another test's
    /// thread left, a pool page kept resident) lands in one quarter.
    fn check(self, what: &str, cycles: usize) {
        let base = self.base.expect("baseline");
        let half = self.half.expect("half-way point");
        let three_quarters = self.three_quarters.expect("three-quarter point");
        let after = back_to(base, Duration::from_secs(10));
        let third = three_quarters.saturating_sub(half);
        let fourth = after.rss.saturating_sub(three_quarters);
        let growth = after.rss.saturating_sub(half);
        eprintln!(
            "{what}: {cycles} cycles; threads {} -> {}, fds {} -> {}, RSS {} -> {} KiB \
             (second half +{} KiB: +{} then +{}), virtual {} -> {} MiB",
            base.threads,
            after.threads,
            base.fds,
            after.fds,
            base.rss >> 10,
            after.rss >> 10,
            growth >> 10,
            third >> 10,
            fourth >> 10,
            base.vm >> 20,
            after.vm >> 20
        );
        assert!(
            after.threads <= base.threads,
            "{what}: threads grew from {} to {} over {cycles} cycles",
            base.threads,
            after.threads
        );
        assert!(
            after.fds <= base.fds,
            "{what}: descriptors grew from {} to {} over {cycles} cycles",
            base.fds,
            after.fds
        );
        let steady = third > RSS_GROWTH_BOUND / 2 && fourth > RSS_GROWTH_BOUND / 2;
        assert!(
            !steady && growth <= 2 * RSS_GROWTH_BOUND,
            "{what}: RSS grew by {} KiB over the last {} cycles (+{} KiB, then +{} KiB)",
            growth >> 10,
            cycles / 2,
            third >> 10,
            fourth >> 10
        );
    }
}

/// Aborts the process if not petted within [`WATCHDOG`]: a test that hangs
/// in a state change fails instead of blocking the suite forever.
struct Watchdog {
    tx: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn new(what: &str) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let what = what.to_string();
        let thread = std::thread::spawn(move || {
            loop {
                match rx.recv_timeout(WATCHDOG) {
                    Ok(()) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        eprintln!("{what}: no progress for {WATCHDOG:?}: hung, aborting");
                        std::process::abort();
                    }
                }
            }
        });
        Watchdog {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn pet(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(());
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Longest and total duration of a kind of state change.
#[derive(Default)]
struct Timing {
    max: Duration,
    total: Duration,
    n: u32,
}

impl Timing {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        let d = t.elapsed();
        self.max = self.max.max(d);
        self.total += d;
        self.n += 1;
        out
    }

    fn check(&self, what: &str) {
        let mean = self.total / self.n.max(1);
        eprintln!("{what}: mean {mean:?}, max {:?}", self.max);
        assert!(
            self.max < STATE_CHANGE_BOUND,
            "{what} took {:?} (bound {STATE_CHANGE_BOUND:?})",
            self.max
        );
    }
}

/// Change state; NULL must be reached synchronously. (A live pipeline
/// whose sink prerolls on its first buffer reaches PLAYING asynchronously.)
fn set_state(e: &impl IsA<gst::Element>, s: gst::State) {
    e.set_state(s)
        .unwrap_or_else(|err| panic!("set_state({s:?}): {err:?}"));
    if s == gst::State::Null {
        assert_eq!(e.current_state(), gst::State::Null);
    }
}

// ---------------------------------------------------------------------------
// A camera for many connections, raw MJPEG clients
// ---------------------------------------------------------------------------

/// Every connection gets a stream of `burst` frames, then, by connection
/// number: stays open, closes (FIN), or is reset in the middle of a part;
/// every fourth connection is reset before its first frame is complete.
fn reconnecting_camera(burst: usize) -> FakeCamera {
    let f = frames(burst, 320, 240, 30_000);
    let head = head_http10(&mjpeg_type(B));
    let body = boundary_after(B, &f);
    let part = std_part(&f[0]);
    let conn = Mutex::new(0usize);
    FakeCamera::start(move |_| {
        let k = {
            let mut c = lock(&conn);
            *c += 1;
            *c
        };
        match k % 4 {
            0 => vec![
                Step::Write(cat(&[&head, format!("--{B}\r\n").as_bytes(), &part[..100]])),
                Step::Reset,
            ],
            1 => vec![Step::Write(cat(&[&head, &body])), Step::Stall],
            2 => vec![Step::Write(cat(&[&head, &body])), Step::Close],
            _ => vec![
                Step::Write(cat(&[&head, &body, &part[..part.len() / 2]])),
                Step::Reset,
            ],
        }
    })
}

/// A raw HTTP client of an MJPEG stream.
struct Viewer {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Viewer {
    fn connect(port: u16) -> Viewer {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the sink");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.write_all(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: lifecycle\r\n\r\n")
            .expect("request");
        Viewer { s, buf: Vec::new() }
    }

    fn find(&self, pat: &[u8], from: usize) -> Option<usize> {
        self.buf
            .get(from..)?
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| p + from)
    }

    /// Read until the first whole JPEG of the stream is in; returns it.
    fn first_frame(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        let mut tmp = [0u8; 16 * 1024];
        loop {
            // Response head, then a part head with Content-Length.
            if let Some(h) = self.find(b"\r\n\r\n", 0)
                && let Some(p) = self.find(b"\r\n\r\n", h + 4)
            {
                let part_head = String::from_utf8_lossy(&self.buf[h + 4..p]).to_string();
                let len: usize = part_head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no Content-Length in {part_head:?}"));
                if self.buf.len() >= p + 4 + len {
                    return self.buf[p + 4..p + 4 + len].to_vec();
                }
            }
            assert!(Instant::now() < deadline, "no frame within {WAIT:?}");
            let n = self.s.read(&mut tmp).expect("read the stream");
            assert!(n > 0, "the stream ended before its first frame");
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Read until the server closes the connection (bounded).
    fn closed(mut self) {
        let deadline = Instant::now() + WAIT;
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.s.read(&mut tmp) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("waiting for the server to close: {e}"),
            }
            assert!(Instant::now() < deadline, "the server never closed");
        }
    }
}

fn refused(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, WAIT)
        .err()
        .is_some_and(|e| e.kind() == io::ErrorKind::ConnectionRefused)
}

/// `appsrc ! mjpegsink` on 127.0.0.1.
fn sink_pipeline(port: u16) -> (gst::Pipeline, gst_app::AppSrc, gst::Element) {
    init();
    let appsrc = gst_app::AppSrc::builder()
        .caps(
            &gst::Caps::builder("image/jpeg")
                .field("width", 320i32)
                .field("height", 240i32)
                .field("framerate", gst::Fraction::new(0, 1))
                .build(),
        )
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(true)
        .build();
    let sink = gst::ElementFactory::make("mjpegsink")
        .property("host", "127.0.0.1")
        .property("port", i32::from(port))
        .build()
        .expect("mjpegsink");
    let p = gst::Pipeline::new();
    p.add_many([appsrc.upcast_ref(), &sink]).expect("add");
    appsrc.link(&sink).expect("link");
    (p, appsrc, sink)
}

// ---------------------------------------------------------------------------
// PLAYING -> NULL -> PLAYING cycles
// ---------------------------------------------------------------------------

/// Pop every message off the bus (nothing may pile up over the cycles);
/// panic on an error.
fn drain(bus: &gst::Bus, cycle: usize) {
    while let Some(m) = bus.pop() {
        if let gst::MessageView::Error(e) = m.view() {
            panic!("cycle {cycle}: {} ({:?})", e.error(), e.debug());
        }
    }
}

#[test]
fn mjpegsrc_cycles() {
    let _s = serial();
    let n = cycles();
    let cam = reconnecting_camera(3);
    init();
    let src = gst::ElementFactory::make("mjpegsrc")
        .property("location", cam.url("/"))
        .property("retry-delay", 10u32)
        .property("retry-delay-max", 100u32)
        .build()
        .expect("mjpegsrc");
    let (pipeline, appsink) = with_appsink(&src);
    let bus = pipeline.bus().expect("bus");
    let sent: Vec<Vec<u8>> = frames(3, 320, 240, 30_000);
    let dog = Watchdog::new("mjpegsrc cycles");
    let (mut play, mut stop) = (Timing::default(), Timing::default());
    let mut marks = Checkpoints::default();
    let t = Instant::now();
    for i in 0..WARMUP_CYCLES + n {
        marks.at(i, n);
        play.time(|| set_state(&pipeline, gst::State::Playing));
        // Every fifth cycle stops at once (while connecting); the others
        // once a frame is out (possibly after a reconnect).
        if i % 5 != 4 {
            let sample = appsink
                .try_pull_sample(gst::ClockTime::from_seconds(WAIT.as_secs()))
                .unwrap_or_else(|| {
                    panic!(
                        "cycle {i}: no frame, stats {}",
                        src.property::<gst::Structure>("stats")
                    )
                });
            let map = sample
                .buffer()
                .expect("buffer")
                .map_readable()
                .expect("map");
            assert!(
                sent.iter().any(|f| f.as_slice() == map.as_slice()),
                "cycle {i}"
            );
        }
        stop.time(|| set_state(&pipeline, gst::State::Null));
        drain(&bus, i);
        dog.pet();
    }
    let took = t.elapsed();
    eprintln!(
        "mjpegsrc: {} cycles in {took:?} ({:?} per cycle), {} camera connections",
        WARMUP_CYCLES + n,
        took / (WARMUP_CYCLES + n) as u32,
        cam.connections()
    );
    play.check("NULL->PLAYING");
    stop.check("PLAYING->NULL");
    marks.check("mjpegsrc", n);
}

#[test]
fn mjpegsrc_pause_play_cycles() {
    // PLAYING -> PAUSED -> PLAYING: unlock, then unlock_stop and a
    // restarted streaming task; the reader keeps its connection, frames
    // flow again every time.
    let _s = serial();
    let n = cycles();
    let f = frames(1, 320, 240, 34_000);
    let part = cat(&[&std_part(&f[0]), &delim(B)]);
    let head = cat(&[
        &head_http10(&mjpeg_type(B)),
        format!("--{B}\r\n").as_bytes(),
    ]);
    // One connection: a frame after each pull, for every cycle.
    let mut script = vec![Step::Write(head)];
    for k in 0..WARMUP_CYCLES + n {
        script.push(Step::Write(part.clone()));
        script.push(Step::AwaitPulled(k + 1));
    }
    script.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![script]);
    let src = Src::for_camera(&cam, "/").play();
    let dog = Watchdog::new("mjpegsrc pause/play cycles");
    let (mut pause, mut resume) = (Timing::default(), Timing::default());
    let mut marks = Checkpoints::default();
    for i in 0..WARMUP_CYCLES + n {
        marks.at(i, n);
        let got = src.frame(WAIT).unwrap_or_else(|| {
            panic!(
                "cycle {i}: no frame ({:?}), stats {}",
                src.posted_error(),
                src.stats().0
            )
        });
        assert_eq!(got.data, f[0], "cycle {i}");
        pause.time(|| {
            src.pipeline()
                .set_state(gst::State::Paused)
                .expect("PLAYING -> PAUSED")
        });
        resume.time(|| {
            src.pipeline()
                .set_state(gst::State::Playing)
                .expect("PAUSED -> PLAYING")
        });
        drain(&src.pipeline().bus().expect("bus"), i);
        dog.pet();
    }
    pause.check("PLAYING->PAUSED");
    resume.check("PAUSED->PLAYING");
    let s = src.stats();
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    assert_eq!(cam.connections(), 1);
    assert!(pause.max < UNLOCK_BOUND, "unlock took {:?}", pause.max);
    marks.check("mjpegsrc pause/play", n);
}

#[test]
fn mjpegsink_cycles_with_clients() {
    // Three raw TCP clients per cycle, each reading a frame; on NULL every
    // connection is closed and the port is free; the next cycle binds the
    // same port again.
    let _s = serial();
    let n = cycles();
    let jpeg = jpeg(320, 240, 31_000);
    let (pipeline, appsrc, sink) = sink_pipeline(0);
    let dog = Watchdog::new("mjpegsink cycles");
    let (mut play, mut stop) = (Timing::default(), Timing::default());
    let mut port = 0;
    let mut marks = Checkpoints::default();
    let t = Instant::now();
    for i in 0..WARMUP_CYCLES + n {
        marks.at(i, n);
        play.time(|| set_state(&pipeline, gst::State::Playing));
        if port == 0 {
            port = current_port(&sink);
        }
        assert_eq!(current_port(&sink), port, "cycle {i}: same port");
        let mut viewers: Vec<Viewer> = (0..3).map(|_| Viewer::connect(port)).collect();
        appsrc
            .push_buffer(gst::Buffer::from_slice(jpeg.clone()))
            .expect("push");
        for v in &mut viewers {
            assert_eq!(v.first_frame(), jpeg, "cycle {i}");
        }
        stop.time(|| set_state(&pipeline, gst::State::Null));
        // Port 0 the first time; then the port it got, in NULL.
        sink.set_property("port", i32::from(port));
        for v in viewers {
            v.closed();
        }
        assert!(refused(port), "cycle {i}: the port is free in NULL");
        drain(&pipeline.bus().expect("bus"), i);
        dog.pet();
    }
    let took = t.elapsed();
    eprintln!(
        "mjpegsink: {} cycles in {took:?} ({:?} per cycle)",
        WARMUP_CYCLES + n,
        took / (WARMUP_CYCLES + n) as u32
    );
    play.check("NULL->PLAYING");
    stop.check("PLAYING->NULL");
    marks.check("mjpegsink", n);
}

#[test]
fn relay_cycles_with_clients() {
    // camera -> mjpegsrc ! mjpegsink -> two raw clients, each reading a
    // frame every cycle; the camera drops and resets connections.
    let _s = serial();
    let n = cycles();
    let cam = reconnecting_camera(3);
    init();
    let src = gst::ElementFactory::make("mjpegsrc")
        .property("location", cam.url("/"))
        .property("retry-delay", 10u32)
        .property("retry-delay-max", 100u32)
        .build()
        .expect("mjpegsrc");
    // With mjpegsrc reporting its latency, the sink holds each frame for
    // basesink's 20 ms processing deadline; the cycles do not need that
    // (it would make each cycle ~20 ms longer).
    let sink = gst::ElementFactory::make("mjpegsink")
        .property("host", "127.0.0.1")
        .property("port", 0i32)
        .property("processing-deadline", 0u64)
        .build()
        .expect("mjpegsink");
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([&src, &sink]).expect("add");
    src.link(&sink).expect("link");
    let bus = pipeline.bus().expect("bus");
    let sent: Vec<Vec<u8>> = frames(3, 320, 240, 30_000);
    let dog = Watchdog::new("relay cycles");
    let (mut play, mut stop) = (Timing::default(), Timing::default());
    let mut port = 0;
    let mut marks = Checkpoints::default();
    let t = Instant::now();
    for i in 0..WARMUP_CYCLES + n {
        marks.at(i, n);
        play.time(|| set_state(&pipeline, gst::State::Playing));
        if port == 0 {
            port = current_port(&sink);
        }
        assert_eq!(current_port(&sink), port, "cycle {i}: same port");
        let mut viewers: Vec<Viewer> = (0..2).map(|_| Viewer::connect(port)).collect();
        for v in &mut viewers {
            let f = v.first_frame();
            assert!(
                sent.contains(&f),
                "cycle {i}: a frame the camera never sent"
            );
        }
        stop.time(|| set_state(&pipeline, gst::State::Null));
        // Port 0 the first time; then the port it got, in NULL.
        sink.set_property("port", i32::from(port));
        for v in viewers {
            v.closed();
        }
        drain(&bus, i);
        dog.pet();
    }
    let took = t.elapsed();
    eprintln!(
        "relay: {} cycles in {took:?} ({:?} per cycle), {} camera connections",
        WARMUP_CYCLES + n,
        took / (WARMUP_CYCLES + n) as u32,
        cam.connections()
    );
    play.check("NULL->PLAYING");
    stop.check("PLAYING->NULL");
    marks.check("relay", n);
}

// ---------------------------------------------------------------------------
// unlock latency from every blocked state
// ---------------------------------------------------------------------------

/// The unlock latency: the time PLAYING -> PAUSED takes. For a live
/// source GstBaseSrc calls `unlock()`, then takes the LIVE lock, which the
/// streaming thread holds for as long as it is inside `create()`: the state
/// change returns only once the blocked `create()` has returned. (With
/// `unlock()` made a no-op it never returns: the watchdog aborts.)
fn unlock_latency(src: &Src) -> Duration {
    assert_eq!(src.src_pad().task_state(), gst::TaskState::Started);
    let t = Instant::now();
    src.pipeline()
        .set_state(gst::State::Paused)
        .expect("PLAYING -> PAUSED");
    t.elapsed()
}

fn assert_unlock(src: &Src, what: &str) {
    let unlock = unlock_latency(src);
    let stop = src.stop();
    eprintln!("unlock while {what}: {unlock:?} (then PAUSED -> NULL {stop:?})");
    assert!(
        unlock < UNLOCK_BOUND,
        "unlock while {what} took {unlock:?} (bound {UNLOCK_BOUND:?})"
    );
    assert!(
        stop < Duration::from_secs(1),
        "PAUSED -> NULL after {what} took {stop:?}"
    );
}

/// Whether a socket of this process is in SYN_SENT towards `port`.
fn syn_sent_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(2) == Some(&remote.as_str()) && f.get(3) == Some(&"02")
    })
}

#[test]
fn unlock_while_connecting_to_a_blackhole() {
    let _s = serial();
    // A create() that unlock() cannot wake hangs the state change: abort.
    let _dog = Watchdog::new("unlock_while_connecting_to_a_blackhole");
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so connect() hangs in SYN_SENT.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
    let fillers: Vec<_> = (0..4)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    let src = Src::fast(&format!("http://{addr}/")).play();
    wait_until("connecting (SYN_SENT)", || syn_sent_to(addr.port()));
    assert_unlock(&src, "connecting to a blackhole");
    drop(fillers);
}

#[test]
fn unlock_while_waiting_for_response_headers() {
    let _s = serial();
    // A create() that unlock() cannot wake hangs the state change: abort.
    let _dog = Watchdog::new("unlock_while_waiting_for_response_headers");
    let cam = FakeCamera::scripted(vec![vec![Step::Stall]]);
    let src = Src::fast(&cam.url("/")).play();
    cam.next_request(WAIT).expect("the request");
    assert_unlock(&src, "waiting for the response headers");
}

#[test]
fn unlock_while_reading_a_stalled_body() {
    let _s = serial();
    // A create() that unlock() cannot wake hangs the state change: abort.
    let _dog = Watchdog::new("unlock_while_reading_a_stalled_body");
    let part = std_part(&jpeg(320, 240, 32_000));
    let cam = FakeCamera::scripted(vec![vec![
        Step::Write(cat(&[
            &head_http10(&mjpeg_type(B)),
            format!("--{B}\r\n").as_bytes(),
            &part[..part.len() / 2],
        ])),
        Step::Stall,
    ]]);
    let src = Src::fast(&cam.url("/")).play();
    src.wait_stats("half a frame in", |s| s.u64("bytes-received") > 0);
    assert_unlock(&src, "reading a body stalled mid-frame");
}

#[test]
fn unlock_while_backing_off() {
    let _s = serial();
    // A create() that unlock() cannot wake hangs the state change: abort.
    let _dog = Watchdog::new("unlock_while_backing_off");
    let port = free_port();
    let src = Src::fast(&format!("http://127.0.0.1:{port}/"))
        .set("retry-delay", 60_000u32)
        .set("retry-delay-max", 60_000u32)
        .play();
    src.element_message("mjpegsrc-reconnect", WAIT)
        .expect("reconnect message");
    assert_unlock(&src, "backing off for 60 s");
}

#[test]
fn unlock_while_waiting_for_a_frame_then_resume() {
    // Connected and idle between frames. PAUSED unlocks create(); back in
    // PLAYING it waits again and gets the next frame, twice.
    let _s = serial();
    // A create() that unlock() cannot wake hangs the state change: abort.
    let _dog = Watchdog::new("unlock_while_waiting_for_a_frame_then_resume");
    let f = frames(3, 320, 240, 33_000);
    let gates = [Gate::new(), Gate::new()];
    let cam = FakeCamera::scripted(vec![vec![
        Step::Write(cat(&[
            &head_http10(&mjpeg_type(B)),
            &boundary_after(B, &f[..1]),
        ])),
        Step::WaitFor(gates[0].clone()),
        Step::Write(cat(&[&std_part(&f[1]), &delim(B)])),
        Step::WaitFor(gates[1].clone()),
        Step::Write(cat(&[&std_part(&f[2]), &delim(B)])),
        Step::Stall,
    ]]);
    let src = Src::fast(&cam.url("/")).play();
    assert_frames(&[src.frames(1).remove(0).data], &f[..1]);

    let unlock = unlock_latency(&src);
    eprintln!("unlock while waiting for a frame: {unlock:?}");
    assert!(unlock < UNLOCK_BOUND, "unlock took {unlock:?}");
    src.pipeline().set_state(gst::State::Playing).expect("play");
    gates[0].open();
    assert_frames(&[src.frames(1).remove(0).data], &f[1..2]);

    // And again.
    let unlock = unlock_latency(&src);
    eprintln!("unlock while waiting for a frame (again): {unlock:?}");
    assert!(unlock < UNLOCK_BOUND, "unlock took {unlock:?}");
    src.pipeline().set_state(gst::State::Playing).expect("play");
    gates[1].open();
    assert_frames(&[src.frames(1).remove(0).data], &f[2..]);
    let stop = src.stop();
    assert!(
        stop < Duration::from_secs(1),
        "PLAYING -> NULL took {stop:?}"
    );
}
