// SPDX-License-Identifier: MPL-2.0

//! Fault injection for `mjpegsrc`, with exact expectations: which frames
//! come out before and after each fault, what the counters say, when the
//! element reconnects (measured against its `mjpegsrc-reconnect` message's
//! `delay-ms`) and how much memory it may take.
//!
//! Faults already covered elsewhere are not repeated here: a stall longer
//! than `timeout`, a 1-byte trickle, 503 then OK, a refused connection,
//! an endless response header *line* (`mjpegsrc_reconnect.rs`), an endless
//! part header *line* and a boundary that never comes after a
//! length-framed part (`mjpegsrc_wire.rs`), TLS handshake failures
//! (`mjpegsrc_tls.rs`).
//!
//! Timing: the element posts `mjpegsrc-reconnect` right before it sleeps
//! `delay-ms`; a bus sync handler records when (in the posting thread), the
//! fake cameras record when each request or connection arrives. A reconnect
//! must come no earlier than `delay-ms` after the message and at most
//! [`SLACK`] later.
//!
//! Memory: tests that measure RSS run alone (an exclusive lock), after a
//! warm-up that has touched every pool buffer they will use.

mod common;

use common::*;
use gst::prelude::*;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `retry-delay` of these tests: long enough to tell a back-off from
/// scheduling noise.
const DELAY_MS: u32 = 200;
/// How much later than its back-off a reconnect may come (debug build on a
/// shared two-core machine).
const SLACK: Duration = Duration::from_millis(750);
/// The parser's default `max_part_size` (64 MiB): a part without usable
/// length that grows beyond it ends the connection.
const MAX_PART: u64 = 64 * 1024 * 1024;
/// `max-frame-size` of `Src::fast`.
const MAX_FRAME: usize = 1024 * 1024;
/// RSS growth allowed across a long garbage stream once warmed up.
const RSS_BOUND: u64 = 6 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Tests that measure RSS hold the write side; every other test the read
/// side, so nothing allocates next to a measurement.
static MEMORY: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MEMORY.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEMORY.write().unwrap_or_else(|e| e.into_inner())
}

fn mjpeg_head() -> Vec<u8> {
    head_http10(&mjpeg_type(B))
}

/// Like `stream` without Content-Length: parts end at the delimiter.
fn stream_without_length(f: &[Vec<u8>], base: usize) -> Vec<Step> {
    let mut body = format!("--{B}\r\n").into_bytes();
    for j in f {
        body.extend_from_slice(b"Content-Type: image/jpeg\r\n\r\n");
        body.extend_from_slice(j);
        body.extend_from_slice(&delim(B));
    }
    paced(
        &mjpeg_head(),
        &body,
        f,
        Some(&delim(B)),
        Coding::Identity,
        base,
    )
}

/// Bytes that never contain 0xFF, `-` or `\n`: no marker, no delimiter, no
/// line end can appear in them.
fn filler(seed: u32, len: usize) -> Vec<u8> {
    xorshift_bytes(
        seed.wrapping_mul(2_654_435_761) | 1,
        len,
        &[0xFF, b'-', b'\n'],
    )
}

/// Element messages and errors with the time they were posted: a bus sync
/// handler runs in the thread that posts.
#[derive(Clone, Default)]
struct Posted(Arc<Mutex<Vec<(Instant, gst::Message)>>>);

impl Posted {
    /// Install on `src`'s bus before it plays.
    fn install(src: &Src) -> Self {
        let p = Posted::default();
        let log = p.0.clone();
        src.pipeline()
            .bus()
            .expect("bus")
            .set_sync_handler(move |_, m| {
                if matches!(
                    m.view(),
                    gst::MessageView::Element(_) | gst::MessageView::Error(_)
                ) {
                    lock(&log).push((Instant::now(), m.clone()));
                }
                gst::BusSyncReply::Pass
            });
        p
    }

    /// Element messages with this structure name: (posted at, structure).
    fn named(&self, name: &str) -> Vec<(Instant, gst::Structure)> {
        lock(&self.0)
            .iter()
            .filter(|(_, m)| is_element_message(m, name))
            .filter_map(|(t, m)| m.structure().map(|s| (*t, s.to_owned())))
            .collect()
    }

    fn error_at(&self) -> Option<Instant> {
        lock(&self.0)
            .iter()
            .find(|(_, m)| matches!(m.view(), gst::MessageView::Error(_)))
            .map(|(t, _)| *t)
    }
}

/// (attempt, delay-ms, reason) of each reconnect message.
fn reconnects(p: &Posted) -> Vec<(u32, u64, String)> {
    p.named("mjpegsrc-reconnect")
        .iter()
        .map(|(_, s)| {
            (
                s.get::<u32>("attempt").expect("attempt"),
                s.get::<u64>("delay-ms").expect("delay-ms"),
                s.get::<String>("reason").expect("reason"),
            )
        })
        .collect()
}

/// Whether `delay_ms` is a reconnect delay for a nominal `nominal` ms: the
/// element varies it by ±20 % and never goes below 100 ms.
fn jittered(delay_ms: u64, nominal: u64) -> bool {
    let n = nominal.max(100);
    ((n * 8 / 10).max(100) - 1..=n * 12 / 10).contains(&delay_ms)
}

/// `next` (a connection or request) came `delay_ms` after the reconnect
/// message posted at `msg`, and not much later.
fn assert_backoff(what: &str, msg: Instant, delay_ms: u64, next: Instant) {
    let gap = next
        .checked_duration_since(msg)
        .unwrap_or_else(|| panic!("{what}: reconnected before the message was posted"));
    let delay = Duration::from_millis(delay_ms);
    eprintln!("{what}: back-off {delay:?}, reconnected after {gap:?}");
    assert!(
        gap >= delay,
        "{what}: reconnected {gap:?} after the message, before its delay {delay:?}"
    );
    assert!(
        gap <= delay + SLACK,
        "{what}: reconnected {gap:?} after the message, delay {delay:?} + slack {SLACK:?}"
    );
}

/// A camera that runs `scripts[i]` for request `i` and records when each
/// request arrived.
fn timed_camera(scripts: Vec<Vec<Step>>) -> (FakeCamera, Arc<Mutex<Vec<Instant>>>) {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let t = times.clone();
    let scripts = Mutex::new(VecDeque::from(scripts));
    let cam = FakeCamera::start(move |_| {
        lock(&t).push(Instant::now());
        lock(&scripts)
            .pop_front()
            .unwrap_or_else(|| vec![Step::Stall])
    });
    (cam, times)
}

fn wait_for_requests(times: &Mutex<Vec<Instant>>, n: usize) -> Vec<Instant> {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = lock(times).clone();
        if t.len() >= n || Instant::now() > deadline {
            return t;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `Src::for_camera` with a measurable back-off.
fn src_for(cam: &FakeCamera) -> Src {
    Src::for_camera(cam, "/")
        .set("retry-delay", DELAY_MS)
        .set("retry-delay-max", 4 * DELAY_MS)
}

/// Offsets 1..=n (nothing counted as lost) and DISCONT on the first buffer
/// and on `first_after` only.
fn assert_flags(what: &str, got: &[Frame], first_after: usize) {
    let offsets: Vec<u64> = got.iter().map(Frame::offset).collect();
    let want: Vec<u64> = (1..=got.len() as u64).collect();
    assert_eq!(offsets, want, "{what}: offsets {got:?}");
    for (i, f) in got.iter().enumerate() {
        assert_eq!(
            f.discont(),
            i == 0 || i == first_after,
            "{what}: DISCONT on frame {i}: {got:?}"
        );
    }
}

/// Counters once `n` frames are out: exact.
fn assert_counters(what: &str, src: &Src, n: u64, dropped_too_big: u64, resyncs: u64) -> Stats {
    let s = src.wait_stats(what, |s| {
        s.u64("frames-pushed") >= n && s.u64("frames-received") >= n + dropped_too_big
    });
    assert_eq!(s.u64("frames-pushed"), n, "{what}: {}", s.0);
    assert_eq!(
        s.u64("frames-received"),
        n + dropped_too_big,
        "{what}: {}",
        s.0
    );
    assert_eq!(s.u64("frames-dropped"), dropped_too_big, "{what}: {}", s.0);
    assert_eq!(s.u64("dropped-too-big"), dropped_too_big, "{what}: {}", s.0);
    assert_eq!(s.u64("skipped-parts"), 0, "{what}: {}", s.0);
    assert_eq!(s.u64("resyncs"), resyncs, "{what}: {}", s.0);
    s
}

/// Run every case, report every failure at once.
fn table<C>(cases: Vec<C>, name: impl Fn(&C) -> String, run: impl Fn(C)) {
    let mut failed = Vec::new();
    for c in cases {
        let n = name(&c);
        eprintln!("--- {n}");
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(c))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{n}: {msg}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

// ---------------------------------------------------------------------------
// A camera that runs closures on raw sockets (for data too large to script)
// ---------------------------------------------------------------------------

type Conn = Box<dyn FnOnce(TcpStream, &RawCtx) + Send>;

/// What a [`RawCamera`] connection closure can wait on.
struct RawCtx {
    pacer: Pacer,
    down: Arc<AtomicBool>,
}

impl RawCtx {
    fn down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Wait until the test has pulled `n` frames (bounded); false if not.
    fn pulled(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.down() && Instant::now() < deadline {
            if self.pacer.wait(n, Duration::from_millis(50)) {
                return true;
            }
        }
        false
    }

    /// Keep the socket open, writing nothing, until the peer closes it or
    /// the camera is dropped.
    fn hold(&self, s: &TcpStream) {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        drain_until_closed(s, Duration::from_secs(60), || self.down());
    }

    /// Run `steps` (Write, AwaitPulled, Close, Reset, Stall) on `s`.
    fn steps(&self, mut s: TcpStream, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Write(d) => {
                    if s.write_all(&d).is_err() {
                        return;
                    }
                }
                Step::AwaitPulled(n) => {
                    if !self.pulled(n) {
                        return;
                    }
                }
                Step::Close => {
                    let _ = s.shutdown(Shutdown::Write);
                    self.hold(&s);
                    return;
                }
                Step::Reset => {
                    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    return;
                }
                Step::Stall => {
                    self.hold(&s);
                    return;
                }
                _ => panic!("step not supported by RawCamera"),
            }
        }
        self.hold(&s);
    }
}

/// Connection `i` runs `conns[i]` once the request is read; later
/// connections are held without an answer. Records accept times.
struct RawCamera {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    pacer: Pacer,
    accepted: Arc<Mutex<Vec<Instant>>>,
    accept: Option<JoinHandle<()>>,
}

impl RawCamera {
    fn start(conns: Vec<Conn>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let down = Arc::new(AtomicBool::new(false));
        let pacer = Pacer::default();
        let accepted: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (d, p, a) = (down.clone(), pacer.clone(), accepted.clone());
        let accept = std::thread::spawn(move || {
            let mut conns: VecDeque<Conn> = conns.into();
            let mut threads = Vec::new();
            for s in listener.incoming() {
                if d.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = s else { continue };
                lock(&a).push(Instant::now());
                let conn = conns.pop_front();
                let ctx = RawCtx {
                    pacer: p.clone(),
                    down: d.clone(),
                };
                threads.push(std::thread::spawn(move || {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(60)));
                    if !read_request(&mut s, &ctx) {
                        return;
                    }
                    match conn {
                        Some(f) => f(s, &ctx),
                        None => ctx.hold(&s),
                    }
                }));
            }
            for t in threads {
                let _ = t.join();
            }
        });
        RawCamera {
            addr,
            down,
            pacer,
            accepted,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn accepted(&self) -> Vec<Instant> {
        lock(&self.accepted).clone()
    }
}

impl Drop for RawCamera {
    fn drop(&mut self) {
        self.down.store(true, Ordering::SeqCst);
        self.pacer.bump();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn read_request(s: &mut TcpStream, ctx: &RawCtx) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if ctx.down() || Instant::now() > deadline || buf.len() > 64 * 1024 {
            return false;
        }
        match s.read(&mut tmp) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Write `pattern` over and over until `total` bytes are out.
fn write_repeated(s: &mut TcpStream, pattern: &[u8], total: u64) -> bool {
    let mut left = total;
    while left > 0 {
        let n = usize::try_from(left).map_or(pattern.len(), |l| l.min(pattern.len()));
        if s.write_all(&pattern[..n]).is_err() {
            return false;
        }
        left -= n as u64;
    }
    true
}

/// Pull `n` frames from a source reading a [`RawCamera`], telling its
/// pacer about each one.
fn pull(src: &Src, cam: &RawCamera, n: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    for i in 0..n {
        let f = src.frame(WAIT).unwrap_or_else(|| {
            panic!(
                "frame {i} of {n} did not arrive (error {:?}), stats {}",
                src.posted_error(),
                src.stats().0
            )
        });
        out.push(f);
        cam.pacer.bump();
    }
    out
}

// ---------------------------------------------------------------------------
// Connection reset at every phase
// ---------------------------------------------------------------------------

struct Cut {
    name: &'static str,
    /// Script of the first connection (ends with the fault).
    first: Vec<Step>,
    /// The frames it delivers.
    before: Vec<Vec<u8>>,
    /// Whether its response head was complete (a `mjpegsrc-connected`).
    connected: bool,
    /// Expected in `last-reconnect-reason` (lower case).
    reason: &'static str,
}

#[test]
fn reset_at_every_phase() {
    let _g = shared();
    let mut cases = Vec::new();
    let mut seed = 20_000;
    let mut next = |n: usize| {
        seed += 10;
        frames(n, 320, 240, seed)
    };
    let reset = "connection reset";
    let full_head = mjpeg_head();

    cases.push(Cut {
        name: "before the status line",
        first: vec![Step::Reset],
        before: vec![],
        connected: false,
        reason: reset,
    });
    cases.push(Cut {
        name: "inside the status line",
        first: vec![Step::Write(b"HTTP/1.0 20".to_vec()), Step::Reset],
        before: vec![],
        connected: false,
        reason: reset,
    });
    cases.push(Cut {
        name: "inside the response head",
        first: vec![
            Step::Write(full_head[..full_head.len() - 20].to_vec()),
            Step::Reset,
        ],
        before: vec![],
        connected: false,
        reason: reset,
    });
    cases.push(Cut {
        name: "after the response head, before the body",
        first: vec![Step::Write(full_head.clone()), Step::Reset],
        before: vec![],
        connected: true,
        reason: reset,
    });
    cases.push(Cut {
        name: "inside the first delimiter line",
        first: vec![Step::Write(cat(&[&full_head, b"--fra"])), Step::Reset],
        before: vec![],
        connected: true,
        reason: reset,
    });
    let f = next(3);
    cases.push(Cut {
        name: "inside part headers",
        first: with(
            stream(&f[..2], 0),
            [
                Step::Write(b"Content-Type: image/jpeg\r\nContent-Le".to_vec()),
                Step::Reset,
            ],
        ),
        before: f[..2].to_vec(),
        connected: true,
        reason: reset,
    });
    let f = next(3);
    cases.push(Cut {
        name: "after part headers, before the JPEG",
        first: with(
            stream(&f[..2], 0),
            [
                Step::Write(
                    format!(
                        "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        f[2].len()
                    )
                    .into_bytes(),
                ),
                Step::Reset,
            ],
        ),
        before: f[..2].to_vec(),
        connected: true,
        reason: reset,
    });
    let f = next(3);
    let part = std_part(&f[2]);
    cases.push(Cut {
        name: "mid-JPEG, with Content-Length",
        first: with(
            stream(&f[..2], 0),
            [
                Step::Write(part[..part.len() - f[2].len() / 2].to_vec()),
                Step::Reset,
            ],
        ),
        before: f[..2].to_vec(),
        connected: true,
        reason: reset,
    });
    let f = next(3);
    cases.push(Cut {
        name: "mid-JPEG, without Content-Length",
        first: with(
            stream_without_length(&f[..2], 0),
            [
                Step::Write(cat(&[
                    b"Content-Type: image/jpeg\r\n\r\n",
                    &f[2][..f[2].len() / 2],
                ])),
                Step::Reset,
            ],
        ),
        before: f[..2].to_vec(),
        connected: true,
        reason: reset,
    });
    // A length-framed frame is out with its last byte: a reset right
    // after it or inside the delimiter that follows loses nothing.
    let f = next(3);
    cases.push(Cut {
        name: "after a length-framed JPEG, before its delimiter",
        first: with(
            stream(&f[..2], 0),
            [
                Step::Write(std_part(&f[2])),
                Step::AwaitPulled(3),
                Step::Reset,
            ],
        ),
        before: f.clone(),
        connected: true,
        reason: reset,
    });
    let f = next(3);
    cases.push(Cut {
        name: "inside the delimiter after a length-framed JPEG",
        first: with(
            stream(&f[..2], 0),
            [
                Step::Write(cat(&[&std_part(&f[2]), b"\r\n--fr"])),
                Step::AwaitPulled(3),
                Step::Reset,
            ],
        ),
        before: f.clone(),
        connected: true,
        reason: reset,
    });
    // Without a length the part ends at the delimiter: a reset inside it
    // loses the part (a reset is a failed transfer)...
    let f = next(3);
    cases.push(Cut {
        name: "inside the delimiter after a JPEG without length (RST)",
        first: with(
            stream_without_length(&f[..2], 0),
            [
                Step::Write(cat(&[
                    b"Content-Type: image/jpeg\r\n\r\n",
                    &f[2],
                    b"\r\n--fr",
                ])),
                Step::Reset,
            ],
        ),
        before: f[..2].to_vec(),
        connected: true,
        reason: reset,
    });
    // ...while an orderly end of the body completes it (ends with FF D9).
    let f = next(3);
    cases.push(Cut {
        name: "inside the delimiter after a JPEG without length (FIN)",
        first: with(
            stream_without_length(&f[..2], 0),
            [
                Step::Write(cat(&[
                    b"Content-Type: image/jpeg\r\n\r\n",
                    &f[2],
                    b"\r\n--fr",
                ])),
                Step::Close,
            ],
        ),
        before: f.clone(),
        connected: true,
        reason: "the server closed the stream",
    });
    let f = next(3);
    cases.push(Cut {
        name: "after a JPEG without length and the CRLF of its delimiter (FIN)",
        first: with(
            stream_without_length(&f[..2], 0),
            [
                Step::Write(cat(&[b"Content-Type: image/jpeg\r\n\r\n", &f[2], b"\r\n"])),
                Step::Close,
            ],
        ),
        before: f.clone(),
        connected: true,
        reason: "the server closed the stream",
    });
    let f = next(2);
    let mut chunked_first = paced(
        &head_http11_chunked(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(&delim(B)),
        Coding::Chunked(100),
        0,
    );
    chunked_first.extend([Step::Write(b"1f".to_vec()), Step::Reset]);
    cases.push(Cut {
        name: "inside a chunk-size line",
        first: chunked_first,
        before: f.clone(),
        connected: true,
        reason: reset,
    });

    let after_seed = std::cell::Cell::new(29_000);
    // Inside chunk data (read straight into the pool buffer): a chunk
    // announced for the whole part, half of it sent.
    for (name, end, reason) in [
        ("mid-JPEG inside a chunk (RST)", Step::Reset, reset),
        (
            "mid-JPEG inside a chunk (FIN)",
            Step::Close,
            "connection closed inside a chunk",
        ),
    ] {
        let f = next(3);
        let part = std_part(&f[2]);
        let mut first = paced(
            &head_http11_chunked(&mjpeg_type(B)),
            &boundary_after(B, &f[..2]),
            &f[..2],
            Some(&delim(B)),
            Coding::Chunked(100),
            0,
        );
        first.extend([
            Step::Write(cat(&[
                format!("{:x}\r\n", part.len()).as_bytes(),
                &part[..part.len() - f[2].len() / 2],
            ])),
            end,
        ]);
        cases.push(Cut {
            name,
            first,
            before: f[..2].to_vec(),
            connected: true,
            reason,
        });
    }

    table(
        cases,
        |c| c.name.to_string(),
        |c| {
            let k = c.before.len();
            let after = {
                after_seed.set(after_seed.get() + 10);
                frames(2, 320, 240, after_seed.get())
            };
            let second = with(stream(&after, k), [Step::Stall]);
            let (cam, requests) = timed_camera(vec![c.first, second]);
            let src = src_for(&cam).set("timeout", 5u32);
            let posted = Posted::install(&src);
            let src = src.play();
            let n = k + after.len();
            let got = src.frames(n);
            assert_frames(&data(&got), &[c.before.clone(), after].concat());
            assert_flags(c.name, &got, k);
            let s = assert_counters(c.name, &src, n as u64, 0, 0);
            assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
            let reason = s.str("last-reconnect-reason").to_lowercase();
            assert!(
                reason.contains(c.reason),
                "reason {reason:?} should contain {:?}",
                c.reason
            );
            let r = reconnects(&posted);
            assert_eq!(r.len(), 1, "{r:?}");
            assert!(r[0].0 == 1 && jittered(r[0].1, DELAY_MS.into()), "{r:?}");
            let times = wait_for_requests(&requests, 2);
            assert_eq!(times.len(), 2, "two requests");
            let msg_at = posted.named("mjpegsrc-reconnect")[0].0;
            assert_backoff(c.name, msg_at, r[0].1, times[1]);
            let connected = posted.named("mjpegsrc-connected").len();
            assert_eq!(
                connected,
                1 + usize::from(c.connected),
                "mjpegsrc-connected messages"
            );
            assert_eq!(src.warnings_seen(), 1, "one warning per reconnect");
            assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
        },
    );
}

// ---------------------------------------------------------------------------
// A server that accepts and never answers; DNS failure
// ---------------------------------------------------------------------------

#[test]
fn accepted_never_answered_times_out_per_connect_timeout() {
    // Accepts, reads nothing, writes nothing: `connect-timeout` (1 s) ends
    // each attempt; `retries=1` allows one reconnect, then an error.
    let _g = shared();
    let cam = RawCamera::start(vec![]);
    let src = Src::fast(&cam.url())
        .set("connect-timeout", 1u32)
        .set("retries", 1i32)
        .set("retry-delay", DELAY_MS);
    let posted = Posted::install(&src);
    let src = src.play();
    let (err, debug) = src.error(Duration::from_secs(15)).expect("an error");
    assert!(
        err.matches(gst::ResourceError::Read),
        "want ResourceError::Read, got {err:?} ({debug})"
    );
    let r = reconnects(&posted);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].0 == 1 && jittered(r[0].1, DELAY_MS.into()), "{r:?}");
    assert!(r[0].2.contains("timed out"), "{r:?}");
    let accepted = cam.accepted();
    assert_eq!(accepted.len(), 2, "two connection attempts");
    let msg_at = posted.named("mjpegsrc-reconnect")[0].0;
    let err_at = posted.error_at().expect("error time");
    // Each attempt is given up 1 s after it connected.
    for (what, from, to) in [
        ("first attempt", accepted[0], msg_at),
        ("second attempt", accepted[1], err_at),
    ] {
        let waited = to.duration_since(from);
        eprintln!("{what}: gave up after {waited:?}");
        assert!(
            waited >= Duration::from_millis(1000) && waited <= Duration::from_secs(1) + SLACK,
            "{what}: gave up after {waited:?}, connect-timeout is 1 s"
        );
    }
    assert_backoff("reconnect", msg_at, r[0].1, accepted[1]);
    let s = src.stats();
    assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
    assert_eq!(s.u64("bytes-received"), 0, "{}", s.0);
    assert_eq!(s.u64("frames-received"), 0, "{}", s.0);
    assert!(!s.bool("connected"), "{}", s.0);
    assert!(posted.named("mjpegsrc-connected").is_empty());
}

#[test]
fn dns_failure_is_retried_per_retries() {
    let _g = shared();
    let src = Src::fast("http://camera.invalid:8080/video.mjpg")
        .set("retries", 2i32)
        .set("retry-delay", 50u32)
        .set("retry-delay-max", 1000u32);
    let posted = Posted::install(&src);
    let t = Instant::now();
    let src = src.play();
    // Generous: a resolver that does not fail .invalid at once may wait
    // for its server on each of the three lookups.
    let (err, debug) = src
        .error(Duration::from_secs(60))
        .expect("an error once the retries are spent");
    let took = t.elapsed();
    assert!(
        err.matches(gst::ResourceError::Read),
        "want ResourceError::Read, got {err:?} ({debug})"
    );
    assert!(
        debug.contains("camera.invalid") || err.message().contains("camera.invalid"),
        "the error names the host: {err} ({debug})"
    );
    let r = reconnects(&posted);
    let attempts: Vec<(u32, u64)> = r.iter().map(|(a, d, _)| (*a, *d)).collect();
    // retry-delay 50 ms: under the 100 ms floor.
    assert!(
        attempts.len() == 2
            && attempts[0].0 == 1
            && attempts[1].0 == 2
            && jittered(attempts[0].1, 100)
            && jittered(attempts[1].1, 100),
        "{r:?}"
    );
    for (_, _, reason) in &r {
        assert!(reason.starts_with("connection failed"), "{r:?}");
    }
    // Three lookups, 150 ms of back-off in between.
    eprintln!("gave up after {took:?}");
    assert!(took >= Duration::from_millis(150), "{took:?}");
    let s = src.stats();
    assert_eq!(s.u64("reconnects"), 2, "{}", s.0);
    assert!(posted.named("mjpegsrc-connected").is_empty());
}

// ---------------------------------------------------------------------------
// Endless heads and parts
// ---------------------------------------------------------------------------

#[test]
fn endless_header_lines_and_blocks_reconnect() {
    // Endless header lines and header blocks made of short lines, in the
    // response head and in part headers: capped, the connection abandoned
    // with a reason that says which cap, the next one read. (The single
    // lines also appear, with looser checks, in mjpegsrc_reconnect.rs and
    // mjpegsrc_wire.rs.)
    let _g = shared();
    let endless_line = |prefix: &[u8]| cat(&[prefix, &filler(5, 1024 * 1024)]);
    let lines = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("X-Junk-{i:05}: v\r\n").into_bytes())
            .collect()
    };
    /// (name, first connection, frames it delivers, reason)
    type Case = (&'static str, Vec<Step>, Vec<Vec<u8>>, &'static str);
    let mut cases: Vec<Case> = Vec::new();
    cases.push((
        "response header line of 1 MiB",
        vec![
            Step::Write(endless_line(b"HTTP/1.0 200 OK\r\nX-Junk: ")),
            Step::Stall,
        ],
        vec![],
        "response head larger than 65536 bytes",
    ));
    let f = frames(2, 320, 240, 21_200);
    cases.push((
        "part header line of 1 MiB",
        with(
            stream(&f, 0),
            [Step::Write(endless_line(b"X-Junk: ")), Step::Stall],
        ),
        f,
        "part header too large",
    ));
    cases.push((
        "response head of 128 KiB of header lines",
        vec![
            Step::Write(cat(&[b"HTTP/1.0 200 OK\r\n", &lines(128 * 1024 / 17)])),
            Step::Stall,
        ],
        vec![],
        "response head larger than 65536 bytes",
    ));
    cases.push((
        "response head with 200 headers",
        vec![
            Step::Write(cat(&[
                b"HTTP/1.0 200 OK\r\n",
                &lines(200),
                format!("Content-Type: {}\r\n\r\n", mjpeg_type(B)).as_bytes(),
            ])),
            Step::Stall,
        ],
        vec![],
        "too many headers",
    ));
    let f = frames(2, 320, 240, 21_000);
    cases.push((
        "part header block of 64 KiB of header lines",
        with(
            stream(&f, 0),
            [Step::Write(lines(64 * 1024 / 17)), Step::Stall],
        ),
        f,
        "part header too large",
    ));
    table(
        cases,
        |c| c.0.to_string(),
        |(name, first, before, reason)| {
            let after = frames(2, 320, 240, 21_100);
            let k = before.len();
            let (cam, requests) = timed_camera(vec![first, with(stream(&after, k), [Step::Stall])]);
            let src = src_for(&cam).set("timeout", 5u32);
            let posted = Posted::install(&src);
            let src = src.play();
            let got = src.frames(k + after.len());
            assert_frames(&data(&got), &[before, after].concat());
            assert_flags(name, &got, k);
            let s = assert_counters(name, &src, got.len() as u64, 0, 0);
            assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
            let why = s.str("last-reconnect-reason");
            assert!(why.contains(reason), "{why:?} should contain {reason:?}");
            // Given up at the cap, not after swallowing the whole megabyte
            // (head bytes are not body bytes; one 64 KiB read at most).
            let body = s.u64("bytes-received");
            assert!(body < 256 * 1024, "{body} body bytes read");
            let times = wait_for_requests(&requests, 2);
            let msg_at = posted.named("mjpegsrc-reconnect")[0].0;
            let delay = reconnects(&posted)[0].1;
            assert_backoff(name, msg_at, delay, times[1]);
        },
    );
}

/// How an endless part starts (after two good frames).
#[derive(Clone, Copy, Debug)]
enum Endless {
    /// Part headers without Content-Length, then a JPEG start and no end.
    NoLength,
    /// `Content-Length: 2147483648` (beyond any frame: not trusted).
    Length2GiB,
    /// A raw concatenated-JPEG stream: SOI and never EOI.
    RawJpeg,
}

#[test]
fn endless_part_is_dropped_then_reconnects_memory_bounded() {
    // The part is dropped (too big) once it passes max-frame-size; the
    // connection is abandoned once it passes the parser's 64 MiB cap; the
    // next connection is read. RSS does not follow the part.
    let _g = exclusive();
    table(
        vec![Endless::NoLength, Endless::Length2GiB, Endless::RawJpeg],
        |c| format!("{c:?}"),
        |kind| {
            let f = frames(2, 320, 240, 22_000);
            let after = frames(2, 320, 240, 22_100);
            let (head, lead, start): (Vec<u8>, Vec<u8>, Vec<u8>) = match kind {
                Endless::RawJpeg => (head_http10("image/jpeg"), f.concat(), vec![0xFF, 0xD8]),
                Endless::NoLength | Endless::Length2GiB => {
                    let hdr = if matches!(kind, Endless::Length2GiB) {
                        "Content-Type: image/jpeg\r\nContent-Length: 2147483648\r\n\r\n"
                    } else {
                        "Content-Type: image/jpeg\r\n\r\n"
                    };
                    (
                        mjpeg_head(),
                        boundary_after(B, &f),
                        cat(&[hdr.as_bytes(), &[0xFF, 0xD8]]),
                    )
                }
            };
            let endless_len = MAX_PART + 4 * 1024 * 1024;
            let after2 = after.clone();
            let first: Conn = Box::new(move |mut s, ctx| {
                // Two frames (both fit the hand-over queue), then, once
                // they are pulled, the endless part.
                let _ = s.write_all(&cat(&[&head, &lead]));
                if !ctx.pulled(2) {
                    return;
                }
                let _ = s.write_all(&start);
                let pattern = filler(7, 64 * 1024);
                if write_repeated(&mut s, &pattern, endless_len) {
                    ctx.hold(&s);
                }
            });
            let second: Conn =
                Box::new(move |s, ctx| ctx.steps(s, with(stream(&after2, 2), [Step::Stall])));
            let cam = RawCamera::start(vec![first, second]);
            let src = Src::fast(&cam.url())
                .set("retry-delay", DELAY_MS)
                .set("timeout", 10u32)
                .set("pool-size", 4u32);
            let posted = Posted::install(&src);
            let src = src.play();
            let mut got = pull(&src, &cam, 2);
            let rss_before = rss_bytes();
            got.extend(pull(&src, &cam, 2));
            let rss_after = rss_bytes();
            let growth = rss_after.saturating_sub(rss_before);
            eprintln!(
                "{kind:?}: RSS {} -> {} KiB (+{} KiB)",
                rss_before >> 10,
                rss_after >> 10,
                growth >> 10
            );
            assert_frames(&data(&got), &[f, after].concat());
            // Dropped frames count in the sequence: the too-big one is
            // frame 3, so the first frame after the reconnect is offset 4.
            let offsets: Vec<u64> = got.iter().map(Frame::offset).collect();
            assert_eq!(offsets, vec![1, 2, 4, 5], "{got:?}");
            let flags: Vec<bool> = got.iter().map(Frame::discont).collect();
            assert_eq!(flags, vec![true, false, true, false], "{got:?}");
            let s = assert_counters(&format!("{kind:?}"), &src, 4, 1, 0);
            assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
            assert_eq!(s.u64("overruns"), 1, "{}", s.0);
            let why = s.str("last-reconnect-reason");
            assert!(
                why.contains("part too large"),
                "{why:?} should say the part is too large"
            );
            let bytes = s.u64("bytes-received");
            assert!(
                bytes > MAX_PART && bytes < MAX_PART + 2 * 1024 * 1024,
                "read {bytes} bytes: the connection must end right after 64 MiB of one part"
            );
            let r = reconnects(&posted);
            assert!(r[0].0 == 1 && jittered(r[0].1, DELAY_MS.into()), "{r:?}");
            let accepted = cam.accepted();
            let msg_at = posted.named("mjpegsrc-reconnect")[0].0;
            assert_backoff(&format!("{kind:?}"), msg_at, r[0].1, accepted[1]);
            assert!(
                growth <= RSS_BOUND,
                "{kind:?}: RSS grew by {} KiB reading a 68 MiB part",
                growth >> 10
            );
        },
    );
}

#[test]
fn long_garbage_stream_keeps_memory_flat() {
    // 200 MB on one connection: huge parts without length (each dropped as
    // too big) and junk runs between parts (each a resync), then a frame.
    // Nothing reconnects, every counter is exact, RSS stays flat once every
    // pool buffer has been written once.
    let _g = exclusive();
    const HUGE: usize = 3 * MAX_FRAME;
    const JUNK: usize = 256 * 1024;
    const WARMUP: usize = 8;
    const ROUNDS: usize = 60;
    let marks = frames(3, 320, 240, 23_000);
    let m = marks.clone();
    let first: Conn = Box::new(move |mut s, ctx| {
        let huge_body = {
            let mut j = vec![0xFF, 0xD8];
            j.extend_from_slice(&filler(11, HUGE));
            j.extend_from_slice(&[0xFF, 0xD9]);
            j
        };
        let huge = cat(&[b"Content-Type: image/jpeg\r\n\r\n", &huge_body, &delim(B)]);
        // A junk run in header position: a line that is no header, then
        // short lines of anything but a delimiter.
        let junk: Vec<u8> = b"this is no header\r\n"
            .iter()
            .copied()
            .chain(
                filler(12, JUNK)
                    .chunks(100)
                    .flat_map(|c| [c, b"\r\n"].concat()),
            )
            .chain(delim(B)[2..].iter().copied())
            .collect();
        let round = |s: &mut TcpStream| s.write_all(&huge).and_then(|_| s.write_all(&junk));
        let mark = |s: &mut TcpStream, i: usize| s.write_all(&cat(&[&std_part(&m[i]), &delim(B)]));
        let mut go = || -> io::Result<()> {
            s.write_all(&cat(&[&mjpeg_head(), format!("--{B}\r\n").as_bytes()]))?;
            mark(&mut s, 0)?;
            ctx.pulled(1);
            for _ in 0..WARMUP {
                round(&mut s)?;
            }
            mark(&mut s, 1)?;
            ctx.pulled(2);
            for _ in 0..ROUNDS {
                round(&mut s)?;
            }
            mark(&mut s, 2)?;
            Ok(())
        };
        if go().is_ok() {
            ctx.hold(&s);
        }
    });
    let cam = RawCamera::start(vec![first]);
    let src = Src::fast(&cam.url())
        .set("timeout", 10u32)
        .set("pool-size", 4u32);
    let src = src.play();
    let t = Instant::now();
    let mut got = pull(&src, &cam, 2);
    let rss_before = rss_bytes();
    let bytes_before = src.stats().u64("bytes-received");
    got.extend(pull(&src, &cam, 1));
    let rss_after = rss_bytes();
    let s = src.stats();
    let streamed = s.u64("bytes-received") - bytes_before;
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "{} MB of garbage in {:?}; RSS {} -> {} KiB (+{} KiB)",
        streamed / 1_000_000,
        t.elapsed(),
        rss_before >> 10,
        rss_after >> 10,
        growth >> 10
    );
    assert_frames(&data(&got), &marks);
    let rounds = (WARMUP + ROUNDS) as u64;
    let s = assert_counters("garbage", &src, 3, rounds, rounds);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    assert!(streamed >= 200_000_000, "streamed {streamed} bytes");
    let flags: Vec<bool> = got.iter().map(Frame::discont).collect();
    assert_eq!(flags, vec![true, true, true], "{got:?}");
    assert!(
        growth <= RSS_BOUND,
        "RSS grew by {} KiB over {} MB of garbage",
        growth >> 10,
        streamed / 1_000_000
    );
}

// ---------------------------------------------------------------------------
// Content-Length: 2147483648
// ---------------------------------------------------------------------------

#[test]
fn content_length_2gib() {
    // 2^31: parseable, beyond any frame and the parser's part cap. On a
    // part it is ignored (the part ends at its delimiter); on the response
    // it is ignored for multipart (read to EOF) and honoured for raw JPEG.
    let _g = shared();
    let big = "2147483648";
    let f = frames(3, 320, 240, 24_000);
    let mut part_body = format!("--{B}\r\n").into_bytes();
    for (i, j) in f.iter().enumerate() {
        let len = if i == 1 {
            big.to_string()
        } else {
            j.len().to_string()
        };
        part_body.extend_from_slice(
            format!("Content-Type: image/jpeg\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
        );
        part_body.extend_from_slice(j);
        part_body.extend_from_slice(&delim(B));
    }
    let head_2gib = |ct: &str| {
        head(
            "HTTP/1.1 200 OK",
            &[("Content-Type", ct), ("Content-Length", big)],
        )
    };
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("on a part", mjpeg_head(), part_body),
        (
            "on a multipart response",
            head_2gib(&mjpeg_type(B)),
            boundary_after(B, &f),
        ),
        (
            "on a raw JPEG response",
            head_2gib("image/jpeg"),
            f.concat(),
        ),
    ];
    table(
        cases,
        |c| c.0.to_string(),
        |(name, head, body)| {
            // Marker: the delimiter for multipart, nothing for raw JPEG.
            let marker = (name != "on a raw JPEG response").then(|| delim(B));
            let script = with(
                paced(&head, &body, &f, marker.as_deref(), Coding::Identity, 0),
                [Step::Close],
            );
            let (cam, _) = timed_camera(vec![script]);
            let src = src_for(&cam).play();
            let got = src.frames(3);
            assert_frames(&data(&got), &f);
            assert_flags(name, &got, 0);
            assert_counters(name, &src, 3, 0, 0);
            // The body ran to the server's close, not to a length.
            let s = src.wait_stats("reconnect after the close", |s| s.u64("reconnects") >= 1);
            assert_eq!(
                s.str("last-reconnect-reason"),
                "the server closed the stream",
                "{}",
                s.0
            );
        },
    );
}

// ---------------------------------------------------------------------------
// Server restarting on the same port; boundary changes
// ---------------------------------------------------------------------------

#[test]
fn server_restarting_on_the_same_port() {
    // The camera goes away (its listener closed, its connection ended),
    // connections are refused for a while, then a new server binds the
    // same port: the element follows with the documented back-off.
    let _g = shared();
    let f = frames(2, 320, 240, 25_000);
    let g = frames(2, 320, 240, 25_100);
    let old = FakeCamera::scripted(vec![with(stream(&f, 0), [Step::Stall])]);
    let port = old.port();
    let src = Src::for_camera(&old, "/")
        .set("retry-delay", DELAY_MS)
        .set("retry-delay-max", 8 * DELAY_MS);
    let posted = Posted::install(&src);
    let src = src.play();
    let mut got = src.frames(2);
    drop(old);
    // The end of the stream, then one refused attempt.
    let deadline = Instant::now() + WAIT;
    while reconnects(&posted).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "reconnects: {:?}",
            reconnects(&posted)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Attempt 2 sleeps 400 ms: bind the same port again meanwhile.
    let requests: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let r2 = requests.clone();
    // The new camera's pacer counts from zero.
    let script = Mutex::new(Some(with(stream(&g, 0), [Step::Stall])));
    let new = FakeCamera::start_on(port, move |_| {
        lock(&r2).push(Instant::now());
        lock(&script).take().unwrap_or_else(|| vec![Step::Stall])
    });
    assert_eq!(new.port(), port);
    let src = src.paced_by(&new);
    got.extend(src.frames(2));
    assert_frames(&data(&got), &[f, g].concat());
    assert_flags("restart", &got, 2);
    let s = assert_counters("restart", &src, 4, 0, 0);
    assert_eq!(s.u64("reconnects"), 2, "{}", s.0);
    let r = reconnects(&posted);
    let attempts: Vec<(u32, u64)> = r.iter().map(|(a, d, _)| (*a, *d)).collect();
    let d = u64::from(DELAY_MS);
    assert!(
        attempts.len() == 2
            && attempts[0].0 == 1
            && attempts[1].0 == 2
            && jittered(attempts[0].1, d)
            && jittered(attempts[1].1, 2 * d),
        "{r:?}"
    );
    assert_eq!(r[0].2, "the server closed the stream", "{r:?}");
    assert!(
        r[1].2.contains("onnection refused"),
        "the second attempt is refused: {r:?}"
    );
    let times = wait_for_requests(&requests, 1);
    let msgs = posted.named("mjpegsrc-reconnect");
    assert_backoff("after the refusal", msgs[1].0, r[1].1, times[0]);
    assert_eq!(posted.named("mjpegsrc-connected").len(), 2);
}

#[test]
fn boundary_changes_between_connections() {
    // The second connection uses another boundary; its header gives no,
    // a stale, or a dash-prefixed hint, and the framing changes too.
    let _g = shared();
    let f = frames(2, 320, 240, 26_000);
    let g = frames(2, 320, 240, 26_100);
    let before_each = |b: &str| -> Vec<u8> {
        g.iter()
            .flat_map(|j| cat(&[format!("\r\n--{b}\r\n").as_bytes(), &std_part(j)]))
            .collect()
    };
    /// (name, second response's Content-Type, its body, marker, boundary in
    /// the connected message)
    type Case = (&'static str, String, Vec<u8>, Option<Vec<u8>>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "no boundary parameter, boundary before each part",
            "multipart/x-mixed-replace".into(),
            before_each("zz9988"),
            None,
            "",
        ),
        (
            "stale boundary parameter",
            mjpeg_type(B),
            boundary_after("zz9988", &g),
            Some(b"\r\n--zz9988\r\n".to_vec()),
            B,
        ),
        (
            "boundary parameter with dashes, body the same",
            mjpeg_type("--zz9988"),
            // Lines `--zz9988`, as the servers that send this do.
            boundary_after("zz9988", &g),
            Some(b"\r\n--zz9988\r\n".to_vec()),
            "--zz9988",
        ),
        (
            "new boundary a prefix of the old one",
            mjpeg_type("fra"),
            boundary_after("fra", &g),
            Some(b"\r\n--fra\r\n".to_vec()),
            "fra",
        ),
    ];
    table(
        cases,
        |c| c.0.to_string(),
        |(name, ct, body, marker, boundary)| {
            let first = with(stream(&f, 0), [Step::Close]);
            let second = with(
                paced(
                    &head_http10(&ct),
                    &body,
                    &g,
                    marker.as_deref(),
                    Coding::Identity,
                    2,
                ),
                [Step::Stall],
            );
            let (cam, _) = timed_camera(vec![first, second]);
            let src = src_for(&cam);
            let posted = Posted::install(&src);
            let src = src.play();
            let got = src.frames(4);
            assert_frames(&data(&got), &[f.clone(), g.clone()].concat());
            assert_flags(name, &got, 2);
            let s = assert_counters(name, &src, 4, 0, 0);
            assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
            let c = posted.named("mjpegsrc-connected");
            let boundaries: Vec<String> = c
                .iter()
                .map(|(_, s)| s.get::<String>("boundary").expect("boundary"))
                .collect();
            assert_eq!(boundaries, vec![B.to_string(), boundary.to_string()]);
        },
    );
}

// ---------------------------------------------------------------------------
// A trickle of one byte per 100 ms
// ---------------------------------------------------------------------------

/// The smallest JPEG-shaped frame: SOI, SOF0 (16x16), EOI; 23 bytes.
fn tiny_jpeg() -> Vec<u8> {
    let mut v = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x10,
    ];
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
    v
}

#[test]
fn trickle_one_byte_per_100ms_body() {
    // Every byte of the body 100 ms apart (the existing trickle test is
    // 1 byte per 300 us): with timeout=1 s nothing is a stall; the frame is
    // released with its last byte, whole.
    let _g = shared();
    let j = tiny_jpeg();
    let body = cat(&[
        format!("--{B}\r\nContent-Length: {}\r\n\r\n", j.len()).as_bytes(),
        &j,
    ]);
    let cam = FakeCamera::scripted(vec![vec![
        Step::Write(mjpeg_head()),
        Step::Trickle {
            data: body.clone(),
            piece: 1,
            pause: Duration::from_millis(100),
        },
        Step::Stall,
    ]]);
    let t = Instant::now();
    let src = Src::for_camera(&cam, "/").set("timeout", 1u32).play();
    let got = src.frames(1);
    let took = t.elapsed();
    eprintln!("{} bytes at 1 per 100 ms: frame after {took:?}", body.len());
    assert_frames(&data(&got), &[j]);
    assert_eq!(got[0].size(), Some((16, 16)));
    // The last byte leaves the camera (n - 1) * 100 ms after the first.
    let least = Duration::from_millis(100 * (body.len() as u64 - 1));
    assert!(took >= least, "frame after {took:?}, before its last byte");
    assert!(took < least + Duration::from_secs(3), "{took:?}");
    let s = assert_counters("trickle", &src, 1, 0, 0);
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    assert_eq!(
        s.u64("bytes-received"),
        body.len() as u64,
        "every byte counted: {}",
        s.0
    );
}

#[test]
fn trickled_response_head_is_bounded_by_connect_timeout() {
    // `connect-timeout` bounds connecting *and* receiving the response
    // head: a head trickled at 1 byte per 100 ms (about 12 s for this one)
    // is given up after 1 s, and the next connection is read.
    let _g = shared();
    let f = frames(2, 320, 240, 27_000);
    let (cam, requests) = timed_camera(vec![
        vec![
            Step::Trickle {
                data: mjpeg_head(),
                piece: 1,
                pause: Duration::from_millis(100),
            },
            Step::Stall,
        ],
        with(stream(&f, 0), [Step::Stall]),
    ]);
    let src = src_for(&cam).set("connect-timeout", 1u32);
    let posted = Posted::install(&src);
    let src = src.play();
    let got = src.frames(2);
    assert_frames(&data(&got), &f);
    let s = assert_counters("trickled head", &src, 2, 0, 0);
    assert_eq!(s.u64("reconnects"), 1, "{}", s.0);
    assert_eq!(
        s.u64("bytes-received") as usize,
        boundary_after(B, &f).len()
    );
    let r = reconnects(&posted);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0].2, "timed out waiting for the server's response",
        "{r:?}"
    );
    let times = wait_for_requests(&requests, 2);
    let msgs = posted.named("mjpegsrc-reconnect");
    let waited = msgs[0].0.duration_since(times[0]);
    eprintln!("trickled head given up after {waited:?}");
    assert!(
        waited >= Duration::from_secs(1) && waited <= Duration::from_secs(1) + SLACK,
        "{waited:?}"
    );
    assert_backoff("trickled head", msgs[0].0, r[0].1, times[1]);
    assert_eq!(posted.named("mjpegsrc-connected").len(), 1);
}
