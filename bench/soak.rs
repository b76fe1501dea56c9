// SPDX-License-Identifier: MPL-2.0

//! Soak test: a relay `mjpegsrc ! mjpegsink` fed by a misbehaving camera and
//! read by a churn of clients, for a fixed time; memory must stay flat.
//!
//! ```text
//! cargo run --release --example soak -- --minutes 10      # or: make soak SOAK_MINUTES=10
//! ```
//!
//! Everything runs in this process on 127.0.0.1:
//!
//! * a fake camera that changes its boundary and framing on every
//!   connection, puts junk between parts, interleaves non-JPEG and oversized
//!   parts, answers some requests with 503, and ends every connection badly:
//!   FIN or RST in the middle of a frame, a stall longer than the source's
//!   `timeout`, a closing delimiter or a plain close;
//! * the relay, `mjpegsrc timeout=1 ! mjpegsink timeout=3`;
//! * clients that come and go: normal readers, slow readers, readers that
//!   vanish mid-stream (RST or FIN), readers that never read (dropped by the
//!   sink's timeout) and snapshot pollers. Every JPEG a client receives is
//!   checked byte for byte against what the camera sent.
//!
//! Prints frames in and out, drops by reason, reconnects by reason, RSS at
//! start, middle and end, peak RSS, open descriptors and threads. Exits
//! non-zero if RSS at the end exceeds the middle by more than 20 %, if
//! descriptors or threads did not return to their starting count once the
//! clients are gone, if a client received a frame that is not one the camera
//! sent, or if the relay posted an error.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;

const FPS: u64 = 30;
const POOL_FRAMES: u32 = 48;
/// `max-frame-size` of the relay's source; oversized parts are larger.
const MAX_FRAME: u32 = 256 * 1024;
const OVERSIZED_INDEX: u32 = 999_999;
const SRC_TIMEOUT_S: u32 = 1;
const SINK_TIMEOUT_S: u32 = 3;
const SINK_BOUNDARY: &str = "boundarydonotcross";
/// Bound on every blocking socket operation of the clients and the camera.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// SplitMix64: deterministic, seedable, good enough for a schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (hi exclusive, hi > lo).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    proc_status("VmRSS")
}

fn peak_rss_kib() -> u64 {
    proc_status("VmHWM")
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

fn fds() -> usize {
    count_dir("/proc/self/fd")
}

fn threads() -> usize {
    count_dir("/proc/self/task")
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    /// Peak RSS so far (VmHWM).
    peak_kib: u64,
    fds: usize,
    threads: usize,
}

fn sample(t0: Instant) -> Sample {
    Sample {
        at: t0.elapsed(),
        rss_kib: rss_kib(),
        peak_kib: peak_rss_kib(),
        fds: fds(),
        threads: threads(),
    }
}

fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

/// A baseline-JPEG-shaped frame: SOI, COM "soak NNNNNNNN", SOF0 with the
/// size, SOS, `len` entropy-coded bytes (no 0xFF, no '-'), EOI.
fn jpeg(index: u32, width: u16, height: u16, len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x0F];
    v.extend_from_slice(format!("soak {index:08}").as_bytes());
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00,
    ]);
    let mut rng = Rng(u64::from(index) * 7919 + 1);
    while v.len() < len {
        let b = (rng.next() >> 24) as u8;
        if b != 0xFF && b != b'-' {
            v.push(b);
        }
    }
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// The index in a frame's COM segment.
fn frame_index(data: &[u8]) -> Option<u32> {
    let com = data.get(6..19)?;
    std::str::from_utf8(com.strip_prefix(b"soak ")?)
        .ok()?
        .parse()
        .ok()
}

struct Frames {
    pool: Vec<Vec<u8>>,
    oversized: Vec<u8>,
}

impl Frames {
    fn new() -> Self {
        let pool = (0..POOL_FRAMES)
            .map(|i| {
                let (w, h) = if i % 16 == 15 { (320, 240) } else { (640, 480) };
                jpeg(i, w, h, 20_000 + (i as usize * 7_919) % 40_000)
            })
            .collect();
        let oversized = jpeg(OVERSIZED_INDEX, 640, 480, MAX_FRAME as usize + 40_000);
        Frames { pool, oversized }
    }

    /// Whether `data` is exactly one of the frames the camera sends whole.
    fn is_known(&self, data: &[u8]) -> bool {
        frame_index(data)
            .and_then(|i| self.pool.get(i as usize))
            .is_some_and(|f| f.as_slice() == data)
    }
}

// ---------------------------------------------------------------------------
// The misbehaving camera
// ---------------------------------------------------------------------------

#[derive(Default)]
struct CameraStats {
    connections: AtomicU64,
    frames_sent: AtomicU64,
    http_503: AtomicU64,
    junk: AtomicU64,
    non_jpeg: AtomicU64,
    oversized: AtomicU64,
    end_fin: AtomicU64,
    end_fin_mid_frame: AtomicU64,
    end_rst_mid_frame: AtomicU64,
    end_stall: AtomicU64,
    end_close_delimiter: AtomicU64,
}

struct Camera {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<CameraStats>,
    accept: Option<JoinHandle<()>>,
}

impl Camera {
    fn start(frames: Arc<Frames>, seed: u64) -> io::Result<Camera> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(CameraStats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let accept = std::thread::Builder::new()
            .name("soak-camera".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn = stats2.connections.fetch_add(1, Ordering::SeqCst);
                    let (frames, stop, stats) = (frames.clone(), stop2.clone(), stats2.clone());
                    let _ = std::thread::Builder::new()
                        .name("soak-camera-conn".into())
                        .spawn(move || {
                            let mut rng = Rng(seed ^ conn.wrapping_mul(0x2545_F491_4F6C_DD1D));
                            let _ =
                                camera_connection(stream, conn, &mut rng, &frames, &stop, &stats);
                        });
                }
            })?;
        Ok(Camera {
            addr,
            stop,
            stats,
            accept: Some(accept),
        })
    }

    fn url(&self) -> String {
        format!("http://{}/video.mjpg", self.addr)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn read_request(s: &mut TcpStream) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut tmp)?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Ok(())
}

/// How a connection frames its parts.
#[derive(Clone, Copy)]
enum Framing {
    /// `--B` first, then headers with Content-Length, JPEG, `\r\n--B\r\n`.
    BoundaryAfter,
    /// `\r\n--B\r\n`, headers with Content-Length, JPEG (ESP32 style).
    BoundaryBefore,
    /// No Content-Length: parts end at the delimiter.
    NoLength,
}

fn part(framing: Framing, boundary: &str, ctype: &str, body: &[u8], first: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 128);
    match framing {
        Framing::BoundaryAfter | Framing::NoLength if first => {
            v.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        }
        Framing::BoundaryBefore => v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes()),
        _ => {}
    }
    v.extend_from_slice(format!("Content-Type: {ctype}\r\n").as_bytes());
    if !matches!(framing, Framing::NoLength) {
        v.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    if !matches!(framing, Framing::BoundaryBefore) {
        v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    }
    v
}

fn camera_connection(
    mut s: TcpStream,
    conn: u64,
    rng: &mut Rng,
    frames: &Frames,
    stop: &AtomicBool,
    stats: &CameraStats,
) -> io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = s.set_nodelay(true);
    read_request(&mut s)?;
    if conn % 8 == 5 {
        stats.http_503.fetch_add(1, Ordering::Relaxed);
        s.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        let _ = s.shutdown(Shutdown::Write);
        return Ok(());
    }
    let boundary = format!("soak{:x}", rng.next() & 0xFFFF_FFFF);
    let framing = match rng.range(0, 3) {
        0 => Framing::BoundaryAfter,
        1 => Framing::BoundaryBefore,
        _ => Framing::NoLength,
    };
    s.write_all(
        format!(
            "HTTP/1.0 200 OK\r\nServer: soak-camera\r\nConnection: close\r\n\
             Content-Type: multipart/x-mixed-replace; boundary={boundary}\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let n = rng.range(3 * FPS, 12 * FPS);
    let period = Duration::from_micros(1_000_000 / FPS);
    let mut next = Instant::now();
    let mut first = true;
    for _ in 0..n {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Junk between parts (after a part, before the next delimiter).
        if !first && rng.chance(20) {
            stats.junk.fetch_add(1, Ordering::Relaxed);
            let len = rng.range(16, 4096) as usize;
            let junk: Vec<u8> = (0..len).map(|i| b"garbage! "[i % 9]).collect();
            // Always in a header position, right after a delimiter line:
            // the source resyncs on the next delimiter. (Junk before a
            // delimiter would legally belong to a part without length.)
            let mut j = Vec::new();
            if matches!(framing, Framing::BoundaryBefore) {
                j.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
            }
            j.extend_from_slice(&junk);
            if matches!(framing, Framing::BoundaryAfter | Framing::NoLength) {
                j.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
            }
            s.write_all(&j)?;
        }
        if rng.chance(15) {
            stats.non_jpeg.fetch_add(1, Ordering::Relaxed);
            s.write_all(&part(
                framing,
                &boundary,
                "text/plain",
                b"motion=0\r\n",
                first,
            ))?;
            first = false;
        }
        if rng.chance(10) {
            stats.oversized.fetch_add(1, Ordering::Relaxed);
            s.write_all(&part(
                framing,
                &boundary,
                "image/jpeg",
                &frames.oversized,
                first,
            ))?;
            first = false;
        }
        let f = &frames.pool[rng.range(0, u64::from(POOL_FRAMES)) as usize];
        s.write_all(&part(framing, &boundary, "image/jpeg", f, first))?;
        first = false;
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let f = &frames.pool[0];
    let cut = part(framing, &boundary, "image/jpeg", f, first);
    let cut = &cut[..cut.len() / 2];
    match rng.range(0, 5) {
        0 => {
            stats.end_fin.fetch_add(1, Ordering::Relaxed);
            let _ = s.shutdown(Shutdown::Write);
        }
        1 => {
            stats.end_fin_mid_frame.fetch_add(1, Ordering::Relaxed);
            s.write_all(cut)?;
            let _ = s.shutdown(Shutdown::Write);
        }
        2 => {
            stats.end_rst_mid_frame.fetch_add(1, Ordering::Relaxed);
            s.write_all(cut)?;
            reset(&s);
            return Ok(());
        }
        3 => {
            // Longer than the source's timeout: it gives up and reconnects.
            stats.end_stall.fetch_add(1, Ordering::Relaxed);
            let until =
                Instant::now() + Duration::from_millis(u64::from(SRC_TIMEOUT_S) * 1000 + 600);
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        _ => {
            stats.end_close_delimiter.fetch_add(1, Ordering::Relaxed);
            s.write_all(format!("\r\n--{boundary}--\r\n").as_bytes())?;
            let _ = s.shutdown(Shutdown::Write);
        }
    }
    // Let the client read what was sent before the socket goes.
    let mut tmp = [0u8; 256];
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    while matches!(s.read(&mut tmp), Ok(n) if n > 0) {}
    Ok(())
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

#[derive(Default)]
struct ClientStats {
    connects: AtomicU64,
    connect_errors: AtomicU64,
    frames_ok: AtomicU64,
    frames_bad: AtomicU64,
    bytes: AtomicU64,
    vanished_rst: AtomicU64,
    vanished_fin: AtomicU64,
    stuck: AtomicU64,
    streams_ended_by_server: AtomicU64,
    snapshots_ok: AtomicU64,
    snapshots_503: AtomicU64,
    snapshots_bad: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Normal,
    Slow,
    Vanishing,
    Stuck,
    Snapshot,
}

/// A reader that hands out at most 4 KiB per 50 ms (80 KB/s).
struct Throttled(TcpStream);

impl Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(50));
        let n = buf.len().min(4096);
        self.0.read(&mut buf[..n])
    }
}

fn connect(port: u16, path: &str, stats: &ClientStats) -> Option<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(mut s) => {
            stats.connects.fetch_add(1, Ordering::Relaxed);
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            let _ = s.set_write_timeout(Some(IO_TIMEOUT));
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: soak\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).ok()?;
            Some(s)
        }
        Err(_) => {
            stats.connect_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Read a multipart stream for `dur`, checking every frame.
fn read_stream<R: Read>(
    r: R,
    dur: Duration,
    frames: &Frames,
    stats: &ClientStats,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut r = BufReader::with_capacity(8192, r);
    let until = Instant::now() + dur;
    let mut line = String::new();
    // Response head.
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line.trim_end().is_empty() {
            break;
        }
    }
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let mut len: Option<usize> = None;
        let mut headers = 0;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                stats
                    .streams_ended_by_server
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let t = line.trim_end();
            if t.is_empty() {
                if headers > 0 {
                    break;
                }
                continue;
            }
            if t.starts_with("--") {
                if t == format!("--{SINK_BOUNDARY}--") {
                    stats
                        .streams_ended_by_server
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                continue;
            }
            headers += 1;
            if let Some((k, v)) = t.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().ok();
            }
        }
        let Some(len) = len.filter(|&l| l <= 8 << 20) else {
            stats.frames_bad.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if frames.is_known(&body) {
            stats.frames_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.frames_bad.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "BAD FRAME: {} bytes, head {:02x?}",
                body.len(),
                &body[..body.len().min(24)]
            );
        }
    }
    Ok(())
}

fn snapshot(port: u16, frames: &Frames, stats: &ClientStats) {
    let Some(mut s) = connect(port, "/snapshot", stats) else {
        return;
    };
    let mut resp = Vec::new();
    if let Err(e) = s.read_to_end(&mut resp) {
        stats.snapshots_bad.fetch_add(1, Ordering::Relaxed);
        eprintln!("BAD SNAPSHOT: {e} after {} bytes", resp.len());
        return;
    }
    let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        stats.snapshots_bad.fetch_add(1, Ordering::Relaxed);
        eprintln!("BAD SNAPSHOT: no response head in {} bytes", resp.len());
        return;
    };
    let head = String::from_utf8_lossy(&resp[..end]);
    let body = &resp[end + 4..];
    if head.starts_with("HTTP/1.1 200") && frames.is_known(body) {
        stats.snapshots_ok.fetch_add(1, Ordering::Relaxed);
    } else if head.starts_with("HTTP/1.1 503") {
        stats.snapshots_503.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.snapshots_bad.fetch_add(1, Ordering::Relaxed);
        eprintln!("BAD SNAPSHOT: {head:?}, {} bytes", body.len());
    }
}

fn client(
    kind: Kind,
    id: u64,
    port: u16,
    frames: Arc<Frames>,
    stats: Arc<ClientStats>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = Rng(seed ^ (id + 1).wrapping_mul(0x9E37_79B9));
    let pause = |ms: u64| {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match kind {
            Kind::Normal => {
                if let Some(s) = connect(port, "/stream", &stats) {
                    let dur = Duration::from_millis(rng.range(2_000, 20_000));
                    let _ = read_stream(&s, dur, &frames, &stats, &stop);
                }
                pause(rng.range(0, 500));
            }
            Kind::Slow => {
                if let Some(s) = connect(port, "/stream", &stats) {
                    let dur = Duration::from_millis(rng.range(5_000, 20_000));
                    let _ = read_stream(Throttled(s), dur, &frames, &stats, &stop);
                }
                pause(rng.range(0, 500));
            }
            Kind::Vanishing => {
                if let Some(mut s) = connect(port, "/stream", &stats) {
                    let mut left = rng.range(0, 300_000) as usize;
                    let mut tmp = [0u8; 16 * 1024];
                    while left > 0 {
                        match s.read(&mut tmp[..left.min(16 * 1024)]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => left -= n,
                        }
                    }
                    if rng.chance(500) {
                        reset(&s);
                        stats.vanished_rst.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.vanished_fin.fetch_add(1, Ordering::Relaxed);
                    }
                }
                pause(rng.range(0, 300));
            }
            Kind::Stuck => {
                if let Some(s) = connect(port, "/stream", &stats) {
                    stats.stuck.fetch_add(1, Ordering::Relaxed);
                    // Never read; the sink drops us after its timeout.
                    pause(u64::from(SINK_TIMEOUT_S) * 1000 + 5_000);
                    drop(s);
                }
            }
            Kind::Snapshot => {
                snapshot(port, &frames, &stats);
                pause(100);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

struct Args {
    minutes: f64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        minutes: 10.0,
        seed: 0x5EED,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--minutes" => a.minutes = v.parse().map_err(|e| format!("--minutes {v}: {e}"))?,
            "--seed" => a.seed = v.parse().map_err(|e| format!("--seed {v}: {e}"))?,
            _ => {
                return Err(format!(
                    "unknown option {k}; usage: soak [--minutes N] [--seed S]"
                ));
            }
        }
    }
    if a.minutes.is_nan() || a.minutes <= 0.0 {
        return Err("--minutes must be positive".into());
    }
    Ok(a)
}

fn u64_field(s: &gst::Structure, f: &str) -> u64 {
    s.get::<u64>(f).unwrap_or(0)
}

/// Bus bookkeeping of the relay.
#[derive(Default)]
struct BusLog {
    errors: Vec<String>,
    warnings: u64,
    reconnect_reasons: BTreeMap<String, u64>,
}

impl BusLog {
    fn drain(&mut self, bus: &gst::Bus) {
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let text = format!("{} ({:?})", e.error(), e.debug());
                    eprintln!("ERROR from the relay: {text}");
                    self.errors.push(text);
                }
                gst::MessageView::Warning(_) => self.warnings += 1,
                gst::MessageView::Element(_) => {
                    if let Some(s) = msg.structure()
                        && s.name() == "mjpegsrc-reconnect"
                    {
                        let reason = s.get::<String>("reason").unwrap_or_default();
                        // Group by the reason's kind, not its details.
                        let kind = reason
                            .split([':', '(', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        *self.reconnect_reasons.entry(kind).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("SOAK FAILED");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args = parse_args()?;
    gst::init()?;
    gstmjpeg::plugin_register_static()?;
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let t0 = Instant::now();

    let frames = Arc::new(Frames::new());
    let camera = Camera::start(frames.clone(), args.seed)?;

    let src = gst::ElementFactory::make("mjpegsrc")
        .property("location", camera.url())
        .property("timeout", SRC_TIMEOUT_S)
        .property("connect-timeout", 2u32)
        .property("retry-delay", 50u32)
        .property("retry-delay-max", 1000u32)
        .property("max-frame-size", MAX_FRAME)
        .build()?;
    let sink = gst::ElementFactory::make("mjpegsink")
        .property("host", "127.0.0.1")
        .property("port", 0i32)
        .property("timeout", SINK_TIMEOUT_S)
        .build()?;
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([&src, &sink])?;
    src.link(&sink)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut log = BusLog::default();
    pipeline.set_state(gst::State::Playing)?;
    let port = u16::try_from(sink.property::<i32>("current-port"))?;
    println!(
        "soak: {:.1} min, seed {}, camera {} -> relay http://127.0.0.1:{port}/stream",
        args.minutes,
        args.seed,
        camera.url()
    );

    // Warm-up: frames flow through the relay, then the quiet baseline.
    let deadline = Instant::now() + Duration::from_secs(15);
    while u64_field(&sink.property::<gst::Structure>("stats"), "frames-in") < 10 {
        log.drain(&bus);
        if Instant::now() > deadline || !log.errors.is_empty() {
            pipeline.set_state(gst::State::Null)?;
            return Err("no frames through the relay within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let warmup = (total / 20).min(Duration::from_secs(5));
    std::thread::sleep(warmup);
    log.drain(&bus);
    let start = sample(t0);

    // The client churn.
    let stop = Arc::new(AtomicBool::new(false));
    let cstats = Arc::new(ClientStats::default());
    let kinds = [
        (Kind::Normal, 4),
        (Kind::Slow, 2),
        (Kind::Vanishing, 3),
        (Kind::Stuck, 1),
        (Kind::Snapshot, 2),
    ];
    let mut handles = Vec::new();
    let mut id = 0;
    for (kind, n) in kinds {
        for _ in 0..n {
            let (frames, cstats, stop) = (frames.clone(), cstats.clone(), stop.clone());
            let seed = args.seed;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("soak-client-{id}"))
                    .spawn(move || client(kind, id, port, frames, cstats, stop, seed))?,
            );
            id += 1;
        }
    }

    let progress_every = if total >= Duration::from_secs(300) {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    };
    let mut next_progress = Instant::now() + progress_every;
    let middle_at = t0 + warmup + (total.saturating_sub(warmup)) / 2;
    let end_at = t0 + total.max(warmup + Duration::from_secs(2));
    let mut middle: Option<Sample> = None;
    while Instant::now() < end_at {
        std::thread::sleep(Duration::from_millis(100));
        log.drain(&bus);
        if middle.is_none() && Instant::now() >= middle_at {
            middle = Some(sample(t0));
        }
        if Instant::now() >= next_progress {
            next_progress += progress_every;
            let s = src.property::<gst::Structure>("stats");
            let k = sink.property::<gst::Structure>("stats");
            println!(
                "[{:>6.1} s] rss {} KiB, fds {}, threads {} | src received {} pushed {} dropped {} reconnects {} | sink clients {} out {} skipped {} | client frames ok {} bad {}",
                t0.elapsed().as_secs_f64(),
                rss_kib(),
                fds(),
                threads(),
                u64_field(&s, "frames-received"),
                u64_field(&s, "frames-pushed"),
                u64_field(&s, "frames-dropped"),
                u64_field(&s, "reconnects"),
                u64_field(&k, "clients"),
                u64_field(&k, "frames-out"),
                u64_field(&k, "frames-skipped"),
                cstats.frames_ok.load(Ordering::Relaxed),
                cstats.frames_bad.load(Ordering::Relaxed),
            );
        }
    }
    let end_live = sample(t0);
    let middle = middle.unwrap_or(end_live);

    // Stop the churn; every client socket has a bounded timeout.
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while u64_field(&sink.property::<gst::Structure>("stats"), "clients") > 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Descriptors and threads back to where they were before the clients.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut end = sample(t0);
    while (end.fds > start.fds || end.threads > start.threads) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        end = sample(t0);
    }
    log.drain(&bus);

    let s = src.property::<gst::Structure>("stats");
    let k = sink.property::<gst::Structure>("stats");
    let cam = &camera.stats;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!();
    println!(
        "==== soak report ({:.1} min, seed {}) ====",
        t0.elapsed().as_secs_f64() / 60.0,
        args.seed
    );
    println!(
        "camera: {} connections ({} answered 503), {} frames sent whole; injected {} junk runs, {} non-JPEG parts, {} oversized parts",
        ld(&cam.connections),
        ld(&cam.http_503),
        ld(&cam.frames_sent),
        ld(&cam.junk),
        ld(&cam.non_jpeg),
        ld(&cam.oversized)
    );
    println!(
        "camera endings: {} FIN at a part boundary, {} FIN mid-frame, {} RST mid-frame, {} stalls > timeout, {} closing delimiters",
        ld(&cam.end_fin),
        ld(&cam.end_fin_mid_frame),
        ld(&cam.end_rst_mid_frame),
        ld(&cam.end_stall),
        ld(&cam.end_close_delimiter)
    );
    println!(
        "mjpegsrc: frames received {}, pushed {}, dropped {} (no-buffer {}, too-big {}, queue-full {}), overruns {}, skipped parts {}, resyncs {}, reconnects {}, bytes {}",
        u64_field(&s, "frames-received"),
        u64_field(&s, "frames-pushed"),
        u64_field(&s, "frames-dropped"),
        u64_field(&s, "dropped-no-buffer"),
        u64_field(&s, "dropped-too-big"),
        u64_field(&s, "dropped-queue-full"),
        u64_field(&s, "overruns"),
        u64_field(&s, "skipped-parts"),
        u64_field(&s, "resyncs"),
        u64_field(&s, "reconnects"),
        u64_field(&s, "bytes-received"),
    );
    println!("reconnect reasons: {:?}", log.reconnect_reasons);
    println!(
        "mjpegsink: frames in {}, frames out {}, skipped {}, resent {}, clients total {}, dropped for timeout {}, snapshot requests {}, invalid requests {}, bytes out {}",
        u64_field(&k, "frames-in"),
        u64_field(&k, "frames-out"),
        u64_field(&k, "frames-skipped"),
        u64_field(&k, "frames-resent"),
        u64_field(&k, "clients-total"),
        u64_field(&k, "clients-dropped-timeout"),
        u64_field(&k, "requests-snapshot"),
        u64_field(&k, "requests-invalid"),
        u64_field(&k, "bytes-out"),
    );
    println!(
        "clients: {} connections ({} failed), frames ok {}, BAD {}, {} MB, vanished {} RST / {} FIN, {} stuck, {} streams ended by the server, snapshots ok {} / 503 {} / BAD {}",
        ld(&cstats.connects),
        ld(&cstats.connect_errors),
        ld(&cstats.frames_ok),
        ld(&cstats.frames_bad),
        ld(&cstats.bytes) >> 20,
        ld(&cstats.vanished_rst),
        ld(&cstats.vanished_fin),
        ld(&cstats.stuck),
        ld(&cstats.streams_ended_by_server),
        ld(&cstats.snapshots_ok),
        ld(&cstats.snapshots_503),
        ld(&cstats.snapshots_bad),
    );
    println!(
        "relay bus: {} warnings, {} errors",
        log.warnings,
        log.errors.len()
    );
    println!(
        "RSS KiB (peak so far): start {} ({}) at {:.0} s, middle {} ({}) at {:.0} s, end {} ({}) at {:.0} s",
        start.rss_kib,
        start.peak_kib,
        start.at.as_secs_f64(),
        middle.rss_kib,
        middle.peak_kib,
        middle.at.as_secs_f64(),
        end_live.rss_kib,
        end_live.peak_kib,
        end_live.at.as_secs_f64(),
    );
    println!(
        "open fds: start {}, middle {}, end (clients gone) {} | threads: start {}, middle {}, end (clients gone) {}",
        start.fds, middle.fds, end.fds, start.threads, middle.threads, end.threads
    );

    let mut ok = true;
    let mut fail = |why: String| {
        println!("FAIL: {why}");
        ok = false;
    };
    if end_live.rss_kib * 100 > middle.rss_kib * 120 {
        fail(format!(
            "RSS grew from {} KiB (middle) to {} KiB (end), more than 20 %",
            middle.rss_kib, end_live.rss_kib
        ));
    }
    if end.fds > start.fds {
        fail(format!(
            "open descriptors grew: {} -> {}",
            start.fds, end.fds
        ));
    }
    if end.threads > start.threads {
        fail(format!(
            "threads grew: {} -> {}",
            start.threads, end.threads
        ));
    }
    if ld(&cstats.frames_bad) > 0 || ld(&cstats.snapshots_bad) > 0 {
        fail("a client received bytes that are not a frame the camera sent".into());
    }
    if !log.errors.is_empty() {
        fail(format!("the relay posted errors: {:?}", log.errors));
    }
    if ld(&cstats.frames_ok) == 0 || u64_field(&k, "frames-in") == 0 {
        fail("no frames flowed".into());
    }
    pipeline.set_state(gst::State::Null)?;
    drop(camera);
    println!("{}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}
