// SPDX-License-Identifier: MPL-2.0

//! mjpegsink against hostile clients, next to a live pipeline and a set of
//! well-behaved stream readers: slowloris, thousands of connect/close
//! cycles, clients that read nothing, clients that half-close, oversized
//! request lines and header blocks, bad credentials, path tricks, HTTP/1.0
//! and pipelined requests.
//!
//! After every attack the same checks run ([`Rig::check`]): the pipeline kept
//! its rate (buffers counted by a pad probe on the sink), every good reader
//! got every frame the pipeline produced meanwhile, at the pipeline rate and
//! with bounded delay, the server counts only the good readers as clients,
//! and open descriptors (`/proc/self/fd`) and RSS are back to the baseline
//! taken before the attack.
//!
//! The tests share the process (descriptors, CPU), so they run one at a time
//! (`SERIAL`). Every server binds port 0 on 127.0.0.1; every wait is bounded.

mod common;

use common::*;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use gst::prelude::*;

/// Upper bound for any single wait.
const WAIT: Duration = Duration::from_secs(15);
/// The pipeline's frame rate.
const FPS: f64 = 30.0;
/// Well-behaved stream readers next to every attack.
const READERS: usize = 4;
/// The pipeline and each reader must keep at least this share of `FPS`.
const MIN_RATE: f64 = 0.8;
/// Longest a frame may take from the sink pad to every reader.
const MAX_DELAY: Duration = Duration::from_millis(1000);
/// Longest pause between two buffers reaching the sink.
const MAX_GAP: Duration = Duration::from_millis(500);
/// Every attack window covers at least this many pipeline frames.
const MIN_WINDOW_FRAMES: usize = 45;
/// RSS may stay this far above the baseline after an attack (allocator
/// caches, the attack's own buffers). Too coarse to see a small leak per
/// connection: `connect_close_churn_leaks_nothing` bounds the growth per
/// connection instead.
const RSS_SLACK_KB: u64 = 12 * 1024;
/// hyper's header read timeout in the server.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const BOUNDARY: &str = "boundarydonotcross";

fn hash(data: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

// ---------------------------------------------------------------------------
// A raw HTTP connection that sees exactly the bytes on the wire.

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Response {
    head: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")
}

impl Conn {
    fn connect(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        Conn::from_stream(s)
    }

    fn from_stream(s: TcpStream) -> Conn {
        s.set_read_timeout(Some(WAIT)).expect("read timeout");
        s.set_write_timeout(Some(WAIT)).expect("write timeout");
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.s.write_all(bytes)
    }

    fn request(port: u16, bytes: &[u8]) -> Conn {
        let mut c = Conn::connect(port);
        c.send(bytes).expect("send request");
        c
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.s.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn read_until(&mut self, pat: &[u8]) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, pat, 0) {
                return Ok(self.buf.drain(..i + pat.len()).collect());
            }
            if self.fill()? == 0 {
                return Err(eof());
            }
        }
    }

    fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(eof());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Everything until EOF; a reset counts as EOF. Times out (an error)
    /// after `WAIT`.
    fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match self.fill() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(e),
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }

    fn head(&mut self) -> io::Result<Response> {
        let raw = self.read_until(b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw).into_owned();
        let (status, headers) = parse_head(&head);
        Ok(Response {
            head,
            status,
            headers,
            body: Vec::new(),
        })
    }

    /// A whole non-stream response (body per Content-Length, none for a
    /// HEAD request).
    fn response(&mut self, head_request: bool) -> io::Result<Response> {
        let mut r = self.head()?;
        if !head_request {
            let len: usize = r
                .header("Content-Length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            r.body = self.read_exact(len)?;
        }
        Ok(r)
    }

    /// The next part of a stream (after its head and first delimiter).
    fn part(&mut self) -> io::Result<Vec<u8>> {
        let headers = self.read_until(b"\r\n\r\n")?;
        let text = String::from_utf8_lossy(&headers);
        let len: usize = text
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("part without length: {text:?}")))?;
        let body = self.read_exact(len)?;
        let delim = self.read_exact(BOUNDARY.len() + 6)?;
        if delim != format!("\r\n--{BOUNDARY}\r\n").as_bytes() {
            return Err(io::Error::other(format!("bad delimiter {delim:?}")));
        }
        Ok(body)
    }

    /// A stream response's head and first delimiter.
    fn stream_start(&mut self) -> io::Result<Response> {
        let r = self.head()?;
        if r.status != 200
            || !r
                .header("Content-Type")
                .is_some_and(|t| t.starts_with("multipart/x-mixed-replace"))
        {
            return Err(io::Error::other(format!("not a stream: {}", r.head)));
        }
        let first = self.read_exact(BOUNDARY.len() + 4)?;
        if first != format!("--{BOUNDARY}\r\n").as_bytes() {
            return Err(io::Error::other(format!("bad first delimiter {first:?}")));
        }
        Ok(r)
    }
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n{extra}\r\n")
        .into_bytes()
}

// ---------------------------------------------------------------------------
// The rig: a live pipeline, its sink's input counted by a probe, and good
// stream readers.

type Log = Arc<Mutex<Vec<(Instant, u64)>>>;

struct Reader {
    log: Log,
    stop: Arc<AtomicBool>,
    sock: TcpStream,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Reader {
    fn start(port: u16, auth: &str) -> Reader {
        let mut c = Conn::request(port, &get("/stream", auth));
        let sock = c.s.try_clone().expect("clone socket");
        let log: Log = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut run = || -> io::Result<()> {
                c.stream_start()?;
                loop {
                    let body = c.part()?;
                    let h = hash(&body);
                    l.lock().expect("log").push((Instant::now(), h));
                }
            };
            match run() {
                Err(_) if st.load(Ordering::SeqCst) => Ok(()),
                Err(e) => Err(format!("reader failed: {e}")),
                Ok(()) => Ok(()),
            }
        });
        Reader {
            log,
            stop,
            sock,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    fn alive(&self) -> Result<(), String> {
        match &self.thread {
            Some(t) if t.is_finished() => Err("reader thread ended".into()),
            _ => Ok(()),
        }
    }

    fn stop(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.sock.shutdown(Shutdown::Both);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "reader panicked".to_string())?,
            None => Ok(()),
        }
    }
}

struct Rig {
    pipeline: gst::Element,
    sink: gst::Element,
    port: u16,
    probe: Log,
    readers: Vec<Reader>,
    auth: String,
    fds: usize,
    rss: u64,
}

impl Rig {
    /// `sink_props` are added to the mjpegsink; `auth` (a header line or "")
    /// is what the good readers send.
    fn new(sink_props: &str, auth: &str) -> Rig {
        init();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true pattern=ball ! \
             video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! \
             mjpegsink name=sink host=127.0.0.1 port=0 resend-interval=0 timeout=2 {sink_props}"
        ))
        .expect("pipeline");
        let bin = pipeline.clone().downcast::<gst::Bin>().expect("bin");
        let sink = bin.by_name("sink").expect("sink");
        let probe: Log = Arc::default();
        let p = probe.clone();
        on_input(&sink, move |data| {
            lock(&p).push((Instant::now(), hash(data)));
        });
        pipeline.set_state(gst::State::Playing).expect("play");
        let port = poll_until(WAIT, || {
            let p = sink.property::<i32>("current-port");
            (p > 0).then_some(p as u16)
        })
        .expect("server listening");
        let readers = (0..READERS).map(|_| Reader::start(port, auth)).collect();
        let mut rig = Rig {
            pipeline,
            sink,
            port,
            probe,
            readers,
            auth: auth.to_string(),
            fds: 0,
            rss: 0,
        };
        // Steady state: every reader streaming.
        poll_until(WAIT, || {
            rig.readers.iter().all(|r| r.count() >= 10).then_some(())
        })
        .expect("readers get frames");
        rig.wait_stat("clients", READERS as u64);
        rig.fds = open_fds();
        rig.rss = rss_kb();
        rig
    }

    fn stat(&self, field: &str) -> u64 {
        self.sink
            .property::<gst::Structure>("stats")
            .get::<u64>(field)
            .expect(field)
    }

    fn wait_stat(&self, field: &str, value: u64) {
        let got = poll_until(WAIT, || (self.stat(field) == value).then_some(()));
        assert!(
            got.is_some(),
            "{field} = {}, expected {value}",
            self.stat(field)
        );
    }

    fn probe_since(&self, from: Instant) -> Vec<(Instant, u64)> {
        self.probe
            .lock()
            .expect("probe")
            .iter()
            .filter(|(t, _)| *t >= from)
            .copied()
            .collect()
    }

    /// Let the attack window cover at least `MIN_WINDOW_FRAMES` frames.
    fn hold(&self, from: Instant) {
        poll_until(WAIT, || {
            (self.probe_since(from).len() >= MIN_WINDOW_FRAMES).then_some(())
        })
        .expect("the pipeline produces frames");
    }

    /// The checks after an attack that started at `from`; `extra_fds` are
    /// descriptors the attack still holds on purpose.
    fn check(&self, label: &str, from: Instant, extra_fds: usize) {
        self.hold(from);
        let to = Instant::now();
        let secs = to.duration_since(from).as_secs_f64();
        let frames: Vec<(Instant, u64)> = self
            .probe_since(from)
            .into_iter()
            .filter(|(t, _)| *t <= to)
            .collect();

        // The pipeline never slowed.
        let rate = frames.len() as f64 / secs;
        assert!(
            rate >= FPS * MIN_RATE,
            "{label}: pipeline ran at {rate:.1} fps"
        );
        let mut last = from;
        let mut max_gap = Duration::ZERO;
        for (t, _) in &frames {
            max_gap = max_gap.max(t.duration_since(last));
            last = *t;
        }
        assert!(
            max_gap <= MAX_GAP,
            "{label}: the pipeline paused for {max_gap:?}"
        );

        // Every reader got every frame, in time.
        let mut report = Vec::new();
        for (i, r) in self.readers.iter().enumerate() {
            if let Err(e) = r.alive() {
                panic!("{label}: reader {i}: {e}");
            }
            let all_in = poll_until(WAIT, || {
                let log = r.log.lock().expect("log");
                let got: HashSet<u64> = log.iter().map(|(_, h)| *h).collect();
                frames.iter().all(|(_, h)| got.contains(h)).then_some(())
            });
            let log = r.log.lock().expect("log").clone();
            let got: HashSet<u64> = log.iter().map(|(_, h)| *h).collect();
            let missing = frames.iter().filter(|(_, h)| !got.contains(h)).count();
            assert!(
                all_in.is_some(),
                "{label}: reader {i} missed {missing} of {} frames",
                frames.len()
            );
            let mut max_delay = Duration::ZERO;
            for (t, h) in &frames {
                if let Some((rt, _)) = log.iter().find(|(rt, rh)| rh == h && rt >= t) {
                    max_delay = max_delay.max(rt.duration_since(*t));
                }
            }
            assert!(
                max_delay <= MAX_DELAY,
                "{label}: reader {i} got a frame {max_delay:?} late"
            );
            let received = log.iter().filter(|(t, _)| *t >= from && *t <= to).count();
            let fps = received as f64 / secs;
            assert!(
                fps >= FPS * MIN_RATE,
                "{label}: reader {i} received {fps:.1} fps"
            );
            report.push(format!("{fps:.1}"));
        }

        // Only the good readers are clients now.
        self.wait_stat("clients", READERS as u64);

        // Descriptors back to the baseline.
        let limit = self.fds + extra_fds;
        if poll_until(WAIT, || (open_fds() <= limit).then_some(())).is_none() {
            panic!(
                "{label}: {} descriptors open, baseline {} + {extra_fds}: {:#?}",
                open_fds(),
                self.fds,
                fd_targets()
            );
        }
        // Memory back near the baseline.
        let rss = poll_until(Duration::from_secs(3), || {
            let r = rss_kb();
            (r <= self.rss + RSS_SLACK_KB).then_some(r)
        });
        assert!(
            rss.is_some(),
            "{label}: RSS {} kB, baseline {} kB",
            rss_kb(),
            self.rss
        );
        eprintln!(
            "{label}: {secs:.1} s, pipeline {rate:.1} fps (max gap {max_gap:?}), readers {} fps, \
             fds {} (baseline {}), RSS {} kB (baseline {} kB)",
            report.join("/"),
            open_fds(),
            self.fds,
            rss_kb(),
            self.rss
        );
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let mut errors = Vec::new();
        for r in &mut self.readers {
            if let Err(e) = r.stop() {
                errors.push(e);
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        if !std::thread::panicking() {
            assert!(errors.is_empty(), "{errors:?}");
        }
    }
}

/// Whether the peer closed `s` (EOF or error), without blocking; data read
/// meanwhile is appended to `got`.
fn peer_closed(s: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn small_rcvbuf_socket(port: u16) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(4096).expect("rcvbuf");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    s.connect(&addr.into()).expect("connect");
    s.into()
}

// ---------------------------------------------------------------------------

/// Request heads sent one byte per 50 ms, silent connections and idle
/// keep-alive connections are all closed by the header read timeout, and
/// nobody else notices them.
#[test]
fn slowloris_is_timed_out_and_disturbs_nobody() {
    let _serial = serial();
    let rig = Rig::new("", "");
    let t0 = Instant::now();

    struct Slow {
        s: TcpStream,
        script: Vec<u8>,
        sent: usize,
        got: Vec<u8>,
        closed: Option<Duration>,
        /// When the server's header timer started for this connection.
        timer_from: Instant,
    }
    let mut slow = Vec::new();
    let mut add = |script: &[u8], preamble: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", rig.port)).expect("connect");
        let mut got = Vec::new();
        if !preamble.is_empty() {
            // A complete request first: the timer restarts after its answer.
            s.write_all(preamble).expect("send");
            s.set_read_timeout(Some(WAIT)).expect("timeout");
            while find(&got, b"\r\n\r\n", 0).is_none() {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).expect("response");
                assert!(n > 0, "closed before answering");
                got.extend_from_slice(&buf[..n]);
            }
        }
        s.set_nonblocking(true).expect("nonblocking");
        slow.push(Slow {
            s,
            script: script.to_vec(),
            sent: 0,
            got,
            closed: None,
            timer_from: Instant::now(),
        });
    };
    let state = get("/state", "");
    for _ in 0..8 {
        add(b"GET /stream HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", b"");
    }
    for _ in 0..4 {
        add(b"GET /", b"");
    }
    for _ in 0..4 {
        add(b"", b"");
    }
    for _ in 0..4 {
        add(b"", &state);
    }
    for _ in 0..4 {
        add(b"GET /snapshot HTTP/1.1\r\nHost: localhost\r\n", &state);
    }

    // One byte per connection every 50 ms (the script, then 'a' forever)
    // until the server has closed every connection.
    let deadline = Instant::now() + HEADER_READ_TIMEOUT + Duration::from_secs(5);
    while slow.iter().any(|c| c.closed.is_none()) && Instant::now() < deadline {
        for c in slow.iter_mut().filter(|c| c.closed.is_none()) {
            let mut closed = peer_closed(&mut c.s, &mut c.got);
            let silent = c.script.is_empty();
            if !closed && !silent {
                let byte = c.script.get(c.sent).copied().unwrap_or(b'a');
                match c.s.write(&[byte]) {
                    Ok(_) => c.sent += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => closed = true,
                }
            }
            if closed {
                c.closed = Some(c.timer_from.elapsed());
            }
        }
        // The pace of the attack, not a synchronisation.
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, c) in slow.iter().enumerate() {
        let after = c
            .closed
            .unwrap_or_else(|| panic!("slow connection {i} still open after {:?}", t0.elapsed()));
        assert!(
            after <= HEADER_READ_TIMEOUT + Duration::from_secs(3),
            "slow connection {i} closed only after {after:?}"
        );
        assert!(
            find(&c.got, b"multipart", 0).is_none(),
            "slow connection {i} was served a stream"
        );
    }
    let sent: usize = slow.iter().map(|c| c.sent).sum();
    eprintln!(
        "slowloris: {} connections closed after {:?}..{:?}, {sent} bytes trickled",
        slow.len(),
        slow.iter().filter_map(|c| c.closed).min(),
        slow.iter().filter_map(|c| c.closed).max()
    );
    drop(slow);
    rig.check("slowloris", t0, 0);
}

/// 6000 connections opened and closed in every way (before a request, with
/// RST, mid-request, after a stream head, without reading an answer) leave
/// nothing behind; two more rounds of 6000 grow RSS by less than
/// `MAX_RSS_PER_CONNECTION` each (a leak of 2 KiB per connection would add
/// 24 MiB).
#[test]
fn connect_close_churn_leaks_nothing() {
    /// RSS growth allowed per connection after the first round warmed the
    /// allocator's caches.
    const MAX_RSS_PER_CONNECTION: u64 = 512;
    const ROUNDS: usize = 3;
    let _serial = serial();
    let rig = Rig::new("", "");
    let total_before = rig.stat("clients-total");
    let t0 = Instant::now();
    const THREADS: usize = 3;
    const CYCLES: usize = 2000;
    const KINDS: usize = 6;
    let port = rig.port;
    let round = || {
        let workers: Vec<_> = (0..THREADS)
            .map(|w| {
                std::thread::spawn(move || -> Result<usize, String> {
                    let mut streams = 0;
                    for i in 0..CYCLES {
                        let kind = (i + w) % KINDS;
                        let s = TcpStream::connect(("127.0.0.1", port))
                            .map_err(|e| format!("connect: {e}"))?;
                        let mut c = Conn::from_stream(s);
                        match kind {
                            0 => {}
                            1 => {
                                // Close with RST.
                                socket2::SockRef::from(&c.s)
                                    .set_linger(Some(Duration::ZERO))
                                    .map_err(|e| e.to_string())?;
                            }
                            2 => {
                                let _ = c.send(&get("/stream", ""));
                                c.stream_start().map_err(|e| format!("stream: {e}"))?;
                                streams += 1;
                            }
                            3 => {
                                let _ = c.send(&get("/state", ""));
                            }
                            4 => {
                                let _ = c.send(b"GET /snaps");
                            }
                            _ => {
                                let _ = c.send(&get("/snapshot", "Connection: close\r\n"));
                                let r = c.response(false).map_err(|e| format!("snapshot: {e}"))?;
                                if r.status != 200 || !r.body.starts_with(&[0xFF, 0xD8]) {
                                    return Err(format!("bad snapshot: {}", r.head));
                                }
                            }
                        }
                        drop(c);
                    }
                    Ok(streams)
                })
            })
            .collect();
        let mut streams = 0;
        for w in workers {
            streams += w.join().expect("worker").expect("churn");
        }
        streams
    };
    // RSS once the server has closed everything: the lowest reading over a
    // short bounded window (allocator trimming, readers' buffers).
    let settled_rss = || {
        rig.wait_stat("connections", READERS as u64);
        let mut low = u64::MAX;
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            low = low.min(rss_kb());
            std::thread::sleep(POLL);
        }
        low
    };
    let mut streams = round();
    let warm = settled_rss();
    for _ in 1..ROUNDS {
        streams += round();
    }
    let after = settled_rss();
    let connections = ((ROUNDS - 1) * THREADS * CYCLES) as u64;
    let per_connection = after.saturating_sub(warm) * 1024 / connections;
    eprintln!(
        "churn: {} cycles in {:?}; RSS {warm} kB after the first round, {after} kB after \
         {connections} more connections: {per_connection} bytes per connection",
        ROUNDS * THREADS * CYCLES,
        t0.elapsed()
    );
    assert!(
        per_connection < MAX_RSS_PER_CONNECTION,
        "RSS grew {per_connection} bytes per connection ({warm} -> {after} kB)"
    );
    rig.wait_stat("clients-total", total_before + streams as u64);
    rig.check("connect/close churn", t0, 0);
}

/// Stream clients that never read, and a client that pipelines hundreds of
/// snapshots without reading, are dropped after `timeout` (2 s here).
#[test]
fn clients_that_read_nothing_are_dropped() {
    let _serial = serial();
    let rig = Rig::new("", "");
    let dropped_before = rig.stat("clients-dropped-timeout");
    let t0 = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut s = small_rcvbuf_socket(rig.port);
        s.write_all(&get("/stream", "")).expect("request");
        idle.push(s);
    }
    for _ in 0..2 {
        let mut s = small_rcvbuf_socket(rig.port);
        let burst: Vec<u8> = (0..300).flat_map(|_| get("/snapshot", "")).collect();
        // The server stops reading once its answers back up: send what fits.
        s.set_nonblocking(true).expect("nonblocking");
        let _ = s.write(&burst);
        idle.push(s);
    }
    // Every one of them is dropped for not reading, while we still hold the
    // sockets (only the server's side closes).
    let n = idle.len() as u64;
    let dropped = poll_until(WAIT, || {
        (rig.stat("clients-dropped-timeout") >= dropped_before + n).then_some(t0.elapsed())
    });
    assert!(
        dropped.is_some(),
        "clients-dropped-timeout {} -> {}",
        dropped_before,
        rig.stat("clients-dropped-timeout")
    );
    eprintln!("non-reading: {n} clients dropped after {dropped:?}");
    rig.check("clients that read nothing", t0, idle.len());
    drop(idle);
    rig.check("clients that read nothing, closed", t0, 0);
}

/// Clients that half-close after their request get a complete answer (or a
/// stream) and then a close; a half-close without a request is a close.
#[test]
fn half_closed_clients_get_an_answer() {
    let _serial = serial();
    let rig = Rig::new("", "");
    let t0 = Instant::now();
    for round in 0..10 {
        // Snapshot, state, 404 and HEAD: whole answer, then EOF.
        for (req, status, head) in [
            (get("/snapshot", ""), 200, false),
            (get("/state", ""), 200, false),
            (get("/nothing", ""), 404, false),
            (b"HEAD /snapshot HTTP/1.0\r\n\r\n".to_vec(), 200, true),
            (b"GET /snapshot HTTP/1.0\r\n\r\n".to_vec(), 200, false),
        ] {
            let mut c = Conn::request(rig.port, &req);
            c.s.shutdown(Shutdown::Write).expect("half-close");
            let r = c.response(head).unwrap_or_else(|e| {
                panic!(
                    "round {round}: no answer to half-closed {:?}: {e}",
                    String::from_utf8_lossy(&req)
                )
            });
            assert_eq!(r.status, status, "{}", r.head);
            if req.starts_with(b"GET /snapshot") {
                assert!(r.body.starts_with(&[0xFF, 0xD8]) && r.body.ends_with(&[0xFF, 0xD9]));
            }
            let rest = c.read_to_end().expect("EOF after the answer");
            assert!(rest.is_empty(), "bytes after the answer: {rest:?}");
        }
        // A stream: frames keep coming while the client reads.
        let mut c = Conn::request(rig.port, &get("/stream", ""));
        c.s.shutdown(Shutdown::Write).expect("half-close");
        c.stream_start().expect("half-closed stream");
        for _ in 0..3 {
            c.part().expect("part to a half-closed client");
        }
        drop(c);
        // Nothing sent: a clean close.
        let mut c = Conn::connect(rig.port);
        c.s.shutdown(Shutdown::Write).expect("half-close");
        assert_eq!(c.read_to_end().expect("EOF"), b"");
    }
    rig.check("half-closed clients", t0, 0);
}

/// Oversized request lines and header blocks are refused with 4xx or a
/// close, never a hang and never a frame.
#[test]
fn oversized_requests_are_refused() {
    let _serial = serial();
    let rig = Rig::new("", "");
    let t0 = Instant::now();
    let long = |n: usize| "a".repeat(n);
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_block: String = (0..100)
        .map(|i| format!("X-H{i}: {}\r\n", long(300)))
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "64 KiB request line",
            format!(
                "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                long(64 * 1024)
            )
            .into_bytes(),
        ),
        (
            "20 KiB query",
            format!(
                "GET /stream?q={} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                long(20 * 1024)
            )
            .into_bytes(),
        ),
        (
            "200 headers",
            format!("GET /stream HTTP/1.1\r\n{many_headers}\r\n").into_bytes(),
        ),
        (
            "30 KiB header block",
            format!("GET /stream HTTP/1.1\r\n{big_block}\r\n").into_bytes(),
        ),
        (
            "1 MiB header value",
            format!("GET /stream HTTP/1.1\r\nX-Big: {}\r\n\r\n", long(1 << 20)).into_bytes(),
        ),
        ("4 MiB without a newline", vec![b'G'; 4 << 20]),
        ("4 MiB of blank lines", b"\r\n".repeat(2 << 20)),
    ];
    for (name, req) in &cases {
        let started = Instant::now();
        let mut c = Conn::connect(rig.port);
        let mut w = c.s.try_clone().expect("clone");
        let req = req.clone();
        // The server may answer and close long before all is sent.
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&req);
        });
        let got = c
            .read_to_end()
            .unwrap_or_else(|e| panic!("{name}: no answer and no close: {e}"));
        let _ = c.s.shutdown(Shutdown::Both);
        writer.join().expect("writer");
        let text = String::from_utf8_lossy(&got[..got.len().min(200)]).into_owned();
        // Refused with a status, not a silent close.
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            text.starts_with("HTTP/1.") && matches!(status, 400 | 413 | 414 | 431),
            "{name}: answered {text:?}"
        );
        assert!(
            find(&got, &[0xFF, 0xD8], 0).is_none(),
            "{name}: got frame bytes"
        );
        eprintln!(
            "oversized: {name}: {:?} after {:?}",
            text.lines().next().unwrap_or("(closed)"),
            started.elapsed()
        );
    }
    drop(cases);
    rig.check("oversized requests", t0, 0);
}

/// With credentials configured, no request without them gets a frame, a
/// stream or the state, however the Authorization header is bent.
#[test]
fn bad_auth_never_leaks_a_frame() {
    let _serial = serial();
    let good = basic("user", "s3cret");
    // Behind a "proxy" (127.0.0.1, trusted), each attempt names its own
    // client address, so the login throttle (10 failures per address and
    // minute) lets every bad header reach the credential check.
    let rig = Rig::new(
        r#"user-id=user user-pw=s3cret trusted-proxies=<"127.0.0.1">"#,
        &good,
    );
    let unauthorized_before = rig.stat("requests-unauthorized");
    let t0 = Instant::now();
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let bad: Vec<String> = vec![
        String::new(),
        basic("user", "wrong"),
        basic("user", "s3cre"),
        basic("user", "s3cret "),
        basic("user", "s3cretx"),
        basic("User", "s3cret"),
        basic("", "s3cret"),
        basic("user", ""),
        basic("", ""),
        format!("Authorization: Basic {}\r\n", b64(b"user:s3cret\0")),
        format!("Authorization: Basic {}\r\n", b64(b"user s3cret")),
        format!("Authorization: Basic {}\r\n", b64(b"s3cret")),
        format!("Authorization: Bearer {}\r\n", b64(b"user:s3cret")),
        format!("Authorization: Digest {}\r\n", b64(b"user:s3cret")),
        format!("Authorization: {}\r\n", b64(b"user:s3cret")),
        format!("Authorization: Basic{}\r\n", b64(b"user:s3cret")),
        format!("Authorization: Basic {}x\r\n", b64(b"user:s3cret")),
        format!("Authorization: Basic {}===\r\n", b64(b"user:s3cret")),
        format!("Authorization: Basic user:s3cret\r\n"),
        "Authorization: Basic\r\n".into(),
        "Authorization: Basic \r\n".into(),
        "Authorization: \r\n".into(),
        format!("Authorization: Basic {}\r\n", "A".repeat(8000)),
        "Authorization: Basic \u{e9}\u{e9}\r\n".into(),
        format!("Authorisation: Basic {}\r\n", b64(b"user:s3cret")),
        format!("X-Authorization: Basic {}\r\n", b64(b"user:s3cret")),
        format!("Proxy-Authorization: Basic {}\r\n", b64(b"user:s3cret")),
        format!("Authorization: Basic {}\r\n{}", b64(b"user:x"), good),
    ];
    let targets = [
        "GET /",
        "GET /stream",
        "GET /snapshot",
        "GET /state",
        "GET /?action=stream",
        "GET /?action=snapshot",
        "HEAD /stream",
        "HEAD /snapshot",
        "OPTIONS /stream",
        "POST /stream",
        "GET http://127.0.0.1/snapshot",
    ];
    let mut attempts = 0u64;
    for t in targets {
        for auth in &bad {
            let head = t.starts_with("HEAD");
            let auth = format!(
                "X-Forwarded-For: 10.1.{}.{}\r\n{auth}",
                attempts / 256,
                attempts % 256
            );
            let mut c = Conn::request(
                rig.port,
                format!("{t} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
                    .as_bytes(),
            );
            attempts += 1;
            let r = c
                .response(head)
                .unwrap_or_else(|e| panic!("{t} {auth:?}: {e}"));
            let rest = c.read_to_end().expect("EOF");
            assert_eq!(r.status, 401, "{t} {auth:?}: {}", r.head);
            assert!(r.header("WWW-Authenticate").is_some());
            let all = [r.head.as_bytes(), &r.body, &rest].concat();
            assert!(
                find(&all, &[0xFF, 0xD8], 0).is_none(),
                "{t} {auth:?}: frame bytes"
            );
            assert!(
                find(&all, b"multipart", 0).is_none(),
                "{t} {auth:?}: a stream"
            );
            assert!(
                find(&all, b"frames-in", 0).is_none(),
                "{t} {auth:?}: the state"
            );
        }
    }
    // 300 pipelined bad attempts on one keep-alive connection.
    let burst: Vec<u8> = (0..300)
        .flat_map(|i| {
            get(
                ["/stream", "/snapshot", "/state"][i % 3],
                &format!(
                    "X-Forwarded-For: 10.2.{}.{}\r\n{}",
                    i / 256,
                    i % 256,
                    basic("user", "nope")
                ),
            )
        })
        .collect();
    let mut c = Conn::request(rig.port, &burst);
    for i in 0..300 {
        let r = c
            .response(false)
            .unwrap_or_else(|e| panic!("burst {i}: {e}"));
        assert_eq!(r.status, 401, "burst {i}: {}", r.head);
        assert!(find(&r.body, &[0xFF, 0xD8], 0).is_none());
    }
    attempts += 300;
    drop(c);
    rig.wait_stat("requests-unauthorized", unauthorized_before + attempts);
    // And the good credentials still work.
    let mut c = Conn::request(rig.port, &get("/snapshot", &rig.auth));
    assert_eq!(c.response(false).expect("snapshot").status, 200);
    drop(c);
    rig.check("bad auth", t0, 0);
}

/// Request targets route exactly: dot segments, encoded characters and
/// doubled slashes never reach an endpoint; absolute-form URIs and long
/// queries work; malformed targets are 400.
#[test]
fn path_tricks_route_exactly() {
    let _serial = serial();
    let rig = Rig::new("", "");
    let t0 = Instant::now();
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Want {
        Stream,
        Snapshot,
        State,
        Status(u16),
    }
    use Want::*;
    let long_query = format!("/?{}&action=snapshot", "x=y&".repeat(3000));
    let cases: Vec<(String, Want)> = vec![
        ("/../stream".into(), Status(404)),
        ("/%2e%2e/stream".into(), Status(404)),
        ("/%2E%2E/%2E%2E/etc/passwd".into(), Status(404)),
        ("/..%2fstream".into(), Status(404)),
        ("/./stream".into(), Status(404)),
        ("//stream".into(), Status(404)),
        ("///snapshot".into(), Status(404)),
        ("/stream/".into(), Status(404)),
        ("/stream/..".into(), Status(404)),
        ("/Stream".into(), Status(404)),
        ("/STATE".into(), Status(404)),
        ("/%73tream".into(), Status(404)),
        ("/st%61te".into(), Status(404)),
        ("/stream%00".into(), Status(404)),
        ("/stream%20".into(), Status(404)),
        ("/stream;jsessionid=1".into(), Status(404)),
        ("/snapshot.jpg".into(), Status(404)),
        ("/?action=bogus".into(), Status(404)),
        ("/?action=%00".into(), Status(404)),
        ("*".into(), Status(404)),
        ("/stream?".into(), Stream),
        ("/stream?%ff%fe%00=%zz".into(), Stream),
        ("/?action=%73tream".into(), Stream),
        ("/?action=snapshot".into(), Snapshot),
        ("/?action=stream&action=snapshot".into(), Snapshot),
        ("/snapshot#frag".into(), Snapshot),
        ("/state?x=1".into(), State),
        ("http://127.0.0.1/stream".into(), Stream),
        ("http://evil.example:1234/snapshot".into(), Status(403)),
        ("HTTP://127.0.0.1/state".into(), State),
        (format!("/stream?q={}", "%41".repeat(4000)), Stream),
        (long_query, Snapshot),
        ("/stream\\..\\state".into(), Status(404)),
        ("/str\u{e9}am".into(), Status(404)),
        ("/stream\x7f".into(), Status(400)),
        ("/stream\"<>".into(), Status(400)),
    ];
    for (target, want) in &cases {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut c = Conn::request(rig.port, &req);
        let short = &target[..target.len().min(60)];
        let r = c
            .response(false)
            .unwrap_or_else(|e| panic!("{short:?}: no answer: {e}"));
        let got = match r.status {
            200 if r
                .header("Content-Type")
                .is_some_and(|t| t.starts_with("multipart/")) =>
            {
                // The rest of the stream: one whole part.
                let _ = c.read_exact(BOUNDARY.len() + 4).expect("delimiter");
                let part = c.part().expect("part");
                assert!(part.starts_with(&[0xFF, 0xD8]));
                Stream
            }
            200 if r.header("Content-Type") == Some("image/jpeg") => {
                assert!(r.body.starts_with(&[0xFF, 0xD8]));
                Snapshot
            }
            200 if r.header("Content-Type") == Some("application/json") => {
                let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
                assert!(v["frames-in"].as_u64().is_some());
                State
            }
            s => {
                assert!(find(&r.body, &[0xFF, 0xD8], 0).is_none());
                Status(s)
            }
        };
        assert_eq!(got, *want, "{short:?}: {}", r.head);
    }
    rig.check("path tricks", t0, 0);
}

/// HTTP/1.0 requests and pipelined requests get exactly the answers they
/// asked for, in order; unsupported versions are refused.
#[test]
fn http10_and_pipelined_requests() {
    let _serial = serial();
    let rig = Rig::new("", "");
    let t0 = Instant::now();
    let is_jpeg = |b: &[u8]| b.starts_with(&[0xFF, 0xD8]) && b.ends_with(&[0xFF, 0xD9]);

    for _ in 0..5 {
        // HTTP/1.0: one answer, then close.
        let mut c = Conn::request(rig.port, b"GET /snapshot HTTP/1.0\r\n\r\n");
        let r = c.response(false).expect("1.0 snapshot");
        assert_eq!(r.status, 200, "{}", r.head);
        assert!(is_jpeg(&r.body));
        assert_eq!(c.read_to_end().expect("EOF"), b"");

        let mut c = Conn::request(rig.port, b"GET /state HTTP/1.0\r\n\r\n");
        let r = c.response(false).expect("1.0 state");
        assert_eq!(r.status, 200);
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("JSON");
        assert_eq!(c.read_to_end().expect("EOF"), b"");

        let mut c = Conn::request(rig.port, b"GET /stream HTTP/1.0\r\n\r\n");
        c.stream_start().expect("1.0 stream");
        for _ in 0..3 {
            assert!(is_jpeg(&c.part().expect("part")));
        }

        // HTTP/1.0 keep-alive: two answers on one connection.
        let ka = b"GET /snapshot HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let mut c = Conn::request(rig.port, &[&ka[..], &ka[..]].concat());
        for i in 0..2 {
            let r = c.response(false).expect("1.0 keep-alive snapshot");
            assert_eq!(r.status, 200, "{i}: {}", r.head);
            assert!(is_jpeg(&r.body));
        }

        // Two snapshots in one write.
        let mut c = Conn::request(
            rig.port,
            &[get("/snapshot", ""), get("/snapshot", "")].concat(),
        );
        for i in 0..2 {
            let r = c.response(false).expect("pipelined snapshot");
            assert_eq!(r.status, 200, "{i}: {}", r.head);
            assert!(is_jpeg(&r.body));
        }

        // State, then a stream, in one write.
        let mut c = Conn::request(rig.port, &[get("/state", ""), get("/stream", "")].concat());
        let r = c.response(false).expect("pipelined state");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        c.stream_start().expect("pipelined stream");
        for _ in 0..3 {
            assert!(is_jpeg(&c.part().expect("part")));
        }

        // A stream, then more requests: the stream is intact, the rest
        // never answered.
        let mut c = Conn::request(
            rig.port,
            &[get("/stream", ""), get("/state", ""), get("/snapshot", "")].concat(),
        );
        c.stream_start().expect("stream before pipelined requests");
        for _ in 0..3 {
            assert!(is_jpeg(&c.part().expect("part")));
        }

        // HEAD of the stream closes: the pipelined GET is not answered.
        let mut c = Conn::request(
            rig.port,
            &[
                b"HEAD /stream HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
                get("/snapshot", ""),
            ]
            .concat(),
        );
        let r = c.response(true).expect("HEAD stream");
        assert_eq!(r.status, 200);
        assert_eq!(c.read_to_end().expect("EOF"), b"");

        // 100 pipelined requests in one write, answered in order.
        let mut burst = Vec::new();
        for i in 0..100 {
            burst.extend(get(
                ["/state", "/snapshot", "/nothing", "/state"][i % 4],
                "",
            ));
        }
        burst.extend(get("/state", "Connection: close\r\n"));
        let mut c = Conn::request(rig.port, &burst);
        for i in 0..100 {
            let r = c.response(false).expect("burst answer");
            let want = [200, 200, 404, 200][i % 4];
            assert_eq!(r.status, want, "burst {i}: {}", r.head);
        }
        assert_eq!(c.response(false).expect("last").status, 200);
        assert_eq!(c.read_to_end().expect("EOF"), b"");
    }

    // Versions the server does not speak: refused with 400, no frame. The
    // HTTP/2 preface is not HTTP/1 at all: closed without an answer.
    for (req, want) in [
        (&b"GET /stream\r\n\r\n"[..], Some("HTTP/1.1 400 ")),
        (b"GET /stream HTTP/0.9\r\n\r\n", Some("HTTP/1.1 400 ")),
        (b"GET /stream HTTP/1.2\r\n\r\n", Some("HTTP/1.1 400 ")),
        (b"GET /stream HTTP/2.0\r\n\r\n", Some("HTTP/1.1 400 ")),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", None),
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
            Some("HTTP/1.1 400 "),
        ),
    ] {
        let mut c = Conn::request(rig.port, req);
        let got = c.read_to_end().unwrap_or_else(|e| panic!("{req:?}: {e}"));
        let text = String::from_utf8_lossy(&got[..got.len().min(100)]).into_owned();
        eprintln!(
            "version {:?}: {:?}",
            String::from_utf8_lossy(req),
            text.lines().next()
        );
        assert!(
            find(&got, &[0xFF, 0xD8], 0).is_none(),
            "{req:?}: frame bytes"
        );
        match want {
            Some(status) => assert!(text.starts_with(status), "{req:?}: answered {text:?}"),
            None => assert!(got.is_empty(), "{req:?}: answered {text:?}"),
        }
    }
    rig.check("HTTP/1.0 and pipelining", t0, 0);
}
