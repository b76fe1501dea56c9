//! Shared helpers for the `mjpegsrc` integration tests: synthetic JPEGs,
//! multipart / HTTP byte builders, a scripted fake camera on raw TCP (plain
//! or TLS) and a small pipeline wrapper (`mjpegsrc ! appsink`) with bounded
//! waits for frames, bus messages and stats.
//!
//! Every wait here is bounded; nothing sleeps to synchronise. The fake camera
//! paces its writes on what the test has pulled (`Step::AwaitPulled`), so a
//! test never depends on how fast the element's streaming thread runs.
#![allow(dead_code)]

pub mod proxy;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Upper bound of every wait for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long the fake camera holds a stalled / gated connection at most.
const SERVER_HOLD: Duration = Duration::from_secs(60);
/// Poll period used by server threads to notice a shutdown.
const POLL: Duration = Duration::from_millis(50);

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gstmjpeg::plugin_register_static().expect("register the mjpeg plugin");
    });
}

// ---------------------------------------------------------------------------
// Synthetic JPEGs
// ---------------------------------------------------------------------------

/// Pseudo-random entropy-coded bytes: never 0xFF (so no marker can appear)
/// and never b'-' (so no multipart delimiter can appear by chance).
fn entropy(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(0x9E37_79B9);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = (x >> 24) as u8;
        if b != 0xFF && b != b'-' {
            out.push(b);
        }
    }
    out
}

fn push_app0(v: &mut Vec<u8>) {
    v.extend_from_slice(&[
        0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ]);
}

fn push_sof0_sos(v: &mut Vec<u8>, width: u16, height: u16) {
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00,
    ]);
}

/// A small well-formed-looking baseline JPEG (SOI, APP0, COM with the seed,
/// SOF0 with the given size, SOS, entropy bytes, EOI), distinct per seed.
pub fn jpeg(width: u16, height: u16, seed: u32) -> Vec<u8> {
    jpeg_with_len(width, height, seed, 150 + (seed as usize * 37) % 211)
}

/// Like [`jpeg`] with `entropy_len` entropy-coded bytes.
pub fn jpeg_with_len(width: u16, height: u16, seed: u32, entropy_len: usize) -> Vec<u8> {
    jpeg_with_entropy(width, height, seed, &entropy(seed, entropy_len))
}

/// Like [`jpeg`], with the given bytes placed in the middle of the entropy
/// data (they must not contain 0xFF to keep the JPEG valid).
pub fn jpeg_containing(width: u16, height: u16, seed: u32, inner: &[u8]) -> Vec<u8> {
    assert!(!inner.contains(&0xFF));
    let mut e = entropy(seed, 80);
    e.extend_from_slice(inner);
    e.extend_from_slice(&entropy(seed + 1, 80));
    jpeg_with_entropy(width, height, seed, &e)
}

fn jpeg_with_entropy(width: u16, height: u16, seed: u32, entropy: &[u8]) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    push_app0(&mut v);
    let com = format!("frame {seed}");
    v.extend_from_slice(&[0xFF, 0xFE]);
    v.extend_from_slice(&((com.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(com.as_bytes());
    push_sof0_sos(&mut v, width, height);
    v.extend_from_slice(entropy);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// A JPEG whose EXIF APP1 segment carries a thumbnail, itself a complete JPEG
/// (nested FF D8 .. FF D9): a naive SOI/EOI splitter cuts it in the wrong place.
pub fn jpeg_with_exif_thumbnail(width: u16, height: u16, seed: u32) -> Vec<u8> {
    let thumb = jpeg(16, 12, seed ^ 0x5A5A);
    let mut app1 = Vec::new();
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    app1.extend_from_slice(&[0, 0]); // IFD0 with zero entries
    app1.extend_from_slice(&thumb);
    app1.extend_from_slice(&[0, 0, 0, 0]);
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
    v.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(&app1);
    push_app0(&mut v);
    push_sof0_sos(&mut v, width, height);
    v.extend_from_slice(&entropy(seed, 120 + seed as usize % 50));
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// `n` distinct frames of one size, seeds starting at `seed`.
pub fn frames(n: usize, width: u16, height: u16, seed: u32) -> Vec<Vec<u8>> {
    (0..n as u32)
        .map(|i| jpeg(width, height, seed + i))
        .collect()
}

// ---------------------------------------------------------------------------
// HTTP and multipart byte builders
// ---------------------------------------------------------------------------

/// Concatenate byte slices.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn mjpeg_type(boundary: &str) -> String {
    format!("multipart/x-mixed-replace; boundary={boundary}")
}

/// A response head: status line, the given header lines, blank line.
pub fn head(status_line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{status_line}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// HTTP/1.0, `Connection: close`, no length (mjpg-streamer, ustreamer, Axis).
pub fn head_http10(content_type: &str) -> Vec<u8> {
    head(
        "HTTP/1.0 200 OK",
        &[
            ("Server", "fake-camera"),
            ("Connection", "close"),
            ("Cache-Control", "no-cache"),
            ("Content-Type", content_type),
        ],
    )
}

/// HTTP/1.1 with neither length nor chunking: the body runs to EOF (Tasmota).
pub fn head_http11_eof(content_type: &str) -> Vec<u8> {
    head("HTTP/1.1 200 OK", &[("Content-Type", content_type)])
}

/// HTTP/1.1 chunked (esp_http_server, motion, Flask).
pub fn head_http11_chunked(content_type: &str) -> Vec<u8> {
    head(
        "HTTP/1.1 200 OK",
        &[
            ("Content-Type", content_type),
            ("Transfer-Encoding", "chunked"),
        ],
    )
}

/// HTTP/1.0 **with** `Transfer-Encoding: chunked` (TP-Link Kasa).
pub fn head_http10_chunked(content_type: &str) -> Vec<u8> {
    head(
        "HTTP/1.0 200 OK",
        &[
            ("Content-Type", content_type),
            ("Transfer-Encoding", "chunked"),
        ],
    )
}

/// `Content-Type: image/jpeg\r\nContent-Length: N\r\n\r\n<J>`.
pub fn std_part(jpeg: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    v.extend_from_slice(jpeg);
    v
}

/// Framing order 1 (mjpg-streamer, ustreamer, Axis): body starts `--B\r\n`,
/// then per frame headers, JPEG, `\r\n--B\r\n`.
pub fn boundary_after(boundary: &str, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("--{boundary}\r\n").into_bytes();
    for f in frames {
        v.extend_from_slice(&std_part(f));
        v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    }
    v
}

/// Framing order 2 (ESP32 CameraWebServer, IP Webcam, VLC): per frame
/// `\r\n--B\r\n`, headers, JPEG, and nothing more until the next frame.
pub fn boundary_before(boundary: &str, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        v.extend_from_slice(&std_part(f));
    }
    v
}

/// Framing order 3 (old ESP32 sketches, Tasmota 2021, motion 4.1): the body
/// starts with part headers; `\r\n--B\r\n` after every part.
pub fn first_boundary_missing(boundary: &str, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        v.extend_from_slice(&std_part(f));
        v.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    }
    v
}

/// Chunked transfer coding of `data` in chunks of at most `piece` bytes
/// (without the terminating zero chunk).
pub fn chunked(data: &[u8], piece: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for c in data.chunks(piece.max(1)) {
        v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        v.extend_from_slice(c);
        v.extend_from_slice(b"\r\n");
    }
    v
}

pub const CHUNK_END: &[u8] = b"0\r\n\r\n";

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Cut `body` into one segment per expected frame plus a remainder: segment
/// `k` ends right after frame `k`'s bytes, or (with `marker`) after the first
/// `marker` that follows them — the bytes a client needs to release frame `k`
/// when it cannot use a Content-Length. Panics if a frame is not in `body`.
pub fn segments(body: &[u8], frames: &[Vec<u8>], marker: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut search = 0;
    for (i, f) in frames.iter().enumerate() {
        let at = find(body, f, search).unwrap_or_else(|| panic!("frame {i} not found in body"));
        let end = at + f.len();
        let cut = match marker {
            None => end,
            Some(m) => find(body, m, end).map_or(body.len(), |p| p + m.len()),
        };
        out.push(body[pos..cut].to_vec());
        pos = cut;
        search = end;
    }
    out.push(body[pos..].to_vec());
    out
}

/// Transfer coding of a paced stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// Bytes as they are (close-delimited body).
    Identity,
    /// Each write wrapped in chunks of at most this many bytes.
    Chunked(usize),
}

impl Coding {
    fn encode(self, data: &[u8]) -> Vec<u8> {
        match self {
            Coding::Identity => data.to_vec(),
            Coding::Chunked(n) => chunked(data, n),
        }
    }
}

/// A script that writes `head`, then the body frame by frame: after the
/// bytes that complete frame `k` it waits until the test has pulled
/// `base + k + 1` frames. The remainder is written last. Append the ending
/// (`Step::Stall`, `Step::Close`, ...) yourself.
pub fn paced(
    head: &[u8],
    body: &[u8],
    frames: &[Vec<u8>],
    marker: Option<&[u8]>,
    coding: Coding,
    base: usize,
) -> Vec<Step> {
    let mut steps = vec![Step::Write(head.to_vec())];
    let segs = segments(body, frames, marker);
    let n = frames.len();
    for (k, seg) in segs.into_iter().enumerate() {
        if !seg.is_empty() {
            steps.push(Step::Write(coding.encode(&seg)));
        }
        if k < n {
            steps.push(Step::AwaitPulled(base + k + 1));
        }
    }
    steps
}

// ---------------------------------------------------------------------------
// Gates and the pull counter
// ---------------------------------------------------------------------------

/// A one-shot gate: `open()` releases every present and future `wait()`.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&self) {
        *lock(&self.0.0) = true;
        self.0.1.notify_all();
    }

    pub fn is_open(&self) -> bool {
        *lock(&self.0.0)
    }

    /// Wait until open; false on timeout.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = lock(&self.0.0);
        let (guard, _) = self
            .0
            .1
            .wait_timeout_while(guard, timeout, |open| !*open)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// Counts frames the test has pulled; the fake camera waits on it.
#[derive(Clone, Default)]
pub struct Pacer(Arc<(Mutex<usize>, Condvar)>);

impl Pacer {
    pub fn bump(&self) {
        *lock(&self.0.0) += 1;
        self.0.1.notify_all();
    }

    pub fn get(&self) -> usize {
        *lock(&self.0.0)
    }

    /// Wait until at least `n` frames were pulled; false on timeout.
    pub fn wait(&self, n: usize, timeout: Duration) -> bool {
        let guard = lock(&self.0.0);
        let (guard, _) = self
            .0
            .1
            .wait_timeout_while(guard, timeout, |c| *c < n)
            .unwrap_or_else(|e| e.into_inner());
        *guard >= n
    }

    fn wake(&self) {
        self.0.1.notify_all();
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The fake camera
// ---------------------------------------------------------------------------

/// One action of a connection script, run after the request was read.
pub enum Step {
    /// Write these bytes (one write call) and flush.
    Write(Vec<u8>),
    /// Write in pieces of `piece` bytes, pausing between pieces (a camera
    /// that trickles; pacing only, correctness never depends on it).
    Trickle {
        data: Vec<u8>,
        piece: usize,
        pause: Duration,
    },
    /// Hold until the gate opens (or the camera is dropped).
    WaitFor(Gate),
    /// Hold until the test has pulled this many frames in total.
    AwaitPulled(usize),
    /// Pause (pacing only).
    Pause(Duration),
    /// Graceful close (FIN; close_notify first with TLS).
    Close,
    /// Abortive close: SO_LINGER 0, the peer sees a reset.
    Reset,
    /// Keep the socket open without writing until the camera is dropped.
    Stall,
}

/// A request as the fake camera received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// 0-based connection number.
    pub conn: usize,
    /// 0-based request number over all connections.
    pub index: usize,
    pub raw: Vec<u8>,
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn parse(raw: Vec<u8>, conn: usize, index: usize) -> Self {
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut it = first.split(' ');
        let method = it.next().unwrap_or_default().to_string();
        let target = it.next().unwrap_or_default().to_string();
        let version = it.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        Self {
            conn,
            index,
            raw,
            method,
            target,
            version,
            headers,
        }
    }

    /// First value of a header, name case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header, name case-insensitive.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path part of the request target (absolute-form through a proxy).
    pub fn path(&self) -> &str {
        let t = self.target.as_str();
        if let Some(rest) = t
            .strip_prefix("http://")
            .or_else(|| t.strip_prefix("https://"))
        {
            rest.find('/').map_or("/", |p| &rest[p..])
        } else {
            t
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

type Handler = dyn Fn(&Request) -> Vec<Step> + Send + Sync;

struct Shared {
    shutdown: AtomicBool,
    connections: AtomicUsize,
    requests: AtomicUsize,
    tls_failures: AtomicUsize,
    pacer: Pacer,
    handler: Box<Handler>,
    tls: Option<Arc<rustls::ServerConfig>>,
    tx: Mutex<mpsc::Sender<Request>>,
}

impl Shared {
    fn down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
}

/// A scripted MJPEG camera on 127.0.0.1: for each request it reads, it runs
/// the steps its handler returns. A script that does not close the
/// connection leaves it open for a next request (keep-alive).
pub struct FakeCamera {
    addr: SocketAddr,
    shared: Arc<Shared>,
    rx: Mutex<mpsc::Receiver<Request>>,
    accept: Option<JoinHandle<()>>,
}

impl FakeCamera {
    /// Serve every request with `handler`.
    pub fn start<F>(handler: F) -> Self
    where
        F: Fn(&Request) -> Vec<Step> + Send + Sync + 'static,
    {
        Self::bind(0, None, Box::new(handler))
    }

    /// Request `i` (over all connections) gets `scripts[i]`; any later
    /// request is read and then held open without an answer.
    pub fn scripted(scripts: Vec<Vec<Step>>) -> Self {
        Self::start(script_handler(scripts))
    }

    /// Like [`FakeCamera::start`] on a given port (refused-then-up tests).
    pub fn start_on<F>(port: u16, handler: F) -> Self
    where
        F: Fn(&Request) -> Vec<Step> + Send + Sync + 'static,
    {
        Self::bind(port, None, Box::new(handler))
    }

    /// Like [`FakeCamera::scripted`] over TLS with a fresh self-signed
    /// certificate for 127.0.0.1 / localhost.
    pub fn scripted_tls(scripts: Vec<Vec<Step>>) -> Self {
        Self::bind(0, Some(tls_config()), Box::new(script_handler(scripts)))
    }

    fn bind(port: u16, tls: Option<Arc<rustls::ServerConfig>>, handler: Box<Handler>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            shutdown: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            tls_failures: AtomicUsize::new(0),
            pacer: Pacer::default(),
            handler,
            tls,
            tx: Mutex::new(tx),
        });
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fake-camera-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if sh.down() {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn = sh.connections.fetch_add(1, Ordering::SeqCst);
                    let sh2 = sh.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("fake-camera-conn-{conn}"))
                        .spawn(move || serve(stream, conn, sh2));
                }
            })
            .expect("spawn accept thread");
        Self {
            addr,
            shared,
            rx: Mutex::new(rx),
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port())
    }

    /// The counter the scripts' `AwaitPulled` steps wait on.
    pub fn pacer(&self) -> Pacer {
        self.shared.pacer.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes (or TLS reads before a request) that failed.
    pub fn tls_failures(&self) -> usize {
        self.shared.tls_failures.load(Ordering::SeqCst)
    }

    /// The next request received, in order, waiting at most `timeout`.
    pub fn next_request(&self, timeout: Duration) -> Option<Request> {
        lock(&self.rx).recv_timeout(timeout).ok()
    }

    /// Requests received so far and not yet taken.
    pub fn take_requests(&self) -> Vec<Request> {
        lock(&self.rx).try_iter().collect()
    }
}

impl Drop for FakeCamera {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.pacer.wake();
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn script_handler(scripts: Vec<Vec<Step>>) -> impl Fn(&Request) -> Vec<Step> + Send + Sync {
    let scripts: Mutex<VecDeque<Vec<Step>>> = Mutex::new(scripts.into());
    move |_req| {
        lock(&scripts)
            .pop_front()
            .unwrap_or_else(|| vec![Step::Stall])
    }
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("TLS certificate");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// A server-side connection, plain or TLS.
trait Io: Read + Write {
    fn tcp(&self) -> &TcpStream;
    fn close(&mut self);
}

impl Io for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn close(&mut self) {
        let _ = self.flush();
        let _ = self.shutdown(Shutdown::Write);
    }
}

type TlsStream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

impl Io for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

fn serve(stream: TcpStream, conn: usize, sh: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(SERVER_HOLD));
    match sh.tls.clone() {
        None => serve_io(stream, conn, &sh),
        Some(cfg) => {
            let Ok(tls) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            serve_io(rustls::StreamOwned::new(tls, stream), conn, &sh);
        }
    }
}

enum ReadOutcome {
    Request(Vec<u8>),
    Gone,
}

fn read_request<S: Io>(s: &mut S, sh: &Shared, first: bool) -> ReadOutcome {
    let deadline = Instant::now() + SERVER_HOLD;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if sh.down() || Instant::now() > deadline || buf.len() > 256 * 1024 {
            return ReadOutcome::Gone;
        }
        match s.read(&mut tmp) {
            Ok(0) => return ReadOutcome::Gone,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                if let Some(p) = find(&buf, b"\r\n\r\n", 0) {
                    buf.truncate(p + 4);
                    return ReadOutcome::Request(buf);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                if first && buf.is_empty() && sh.tls.is_some() {
                    sh.tls_failures.fetch_add(1, Ordering::SeqCst);
                }
                return ReadOutcome::Gone;
            }
        }
    }
}

fn wait_until(sh: &Shared, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SERVER_HOLD;
    while !sh.down() && Instant::now() < deadline && !done() {}
}

fn serve_io<S: Io>(mut s: S, conn: usize, sh: &Shared) {
    let mut first = true;
    loop {
        let raw = match read_request(&mut s, sh, first) {
            ReadOutcome::Request(r) => r,
            ReadOutcome::Gone => return,
        };
        first = false;
        let index = sh.requests.fetch_add(1, Ordering::SeqCst);
        let req = Request::parse(raw, conn, index);
        let steps = (sh.handler)(&req);
        let _ = lock(&sh.tx).send(req);
        for step in steps {
            match step {
                Step::Write(d) => {
                    if s.write_all(&d).and_then(|_| s.flush()).is_err() {
                        return;
                    }
                }
                Step::Trickle { data, piece, pause } => {
                    for c in data.chunks(piece.max(1)) {
                        if sh.down() || s.write_all(c).and_then(|_| s.flush()).is_err() {
                            return;
                        }
                        std::thread::sleep(pause);
                    }
                }
                Step::WaitFor(g) => wait_until(sh, || g.wait(POLL)),
                Step::AwaitPulled(n) => {
                    let p = sh.pacer.clone();
                    wait_until(sh, || p.wait(n, POLL));
                }
                Step::Pause(d) => std::thread::sleep(d),
                Step::Close => {
                    s.close();
                    // Let the peer read everything before the socket goes:
                    // wait for its FIN (bounded), never sending a reset.
                    let mut tmp = [0u8; 1024];
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < deadline && !sh.down() {
                        match s.tcp().read(&mut tmp) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                    return;
                }
                Step::Reset => {
                    let _ = socket2::SockRef::from(s.tcp()).set_linger(Some(Duration::ZERO));
                    return;
                }
                Step::Stall => {
                    wait_until(sh, || {
                        // Holds until shutdown; notice the peer leaving.
                        let mut b = [0u8; 1];
                        match s.tcp().peek(&mut b) {
                            Ok(0) => true,
                            Ok(_) => {
                                // Drain whatever it sends (e.g. nothing).
                                let _ = s.tcp().read(&mut b);
                                false
                            }
                            Err(e) => !matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ),
                        }
                    });
                    return;
                }
            }
        }
    }
}

/// Bind and immediately release a port on 127.0.0.1: connecting to it is
/// refused until something binds it again.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------
// The element under test: mjpegsrc ! appsink
// ---------------------------------------------------------------------------

/// A frame as it came out of the element.
pub struct Frame {
    pub buffer: gst::Buffer,
    pub data: Vec<u8>,
    pub caps: Option<gst::Caps>,
}

impl Frame {
    pub fn discont(&self) -> bool {
        self.buffer.flags().contains(gst::BufferFlags::DISCONT)
    }

    pub fn pts(&self) -> Option<gst::ClockTime> {
        self.buffer.pts()
    }

    pub fn offset(&self) -> u64 {
        self.buffer.offset()
    }

    /// (width, height) from the caps.
    pub fn size(&self) -> Option<(i32, i32)> {
        let s = self.caps.as_ref()?.structure(0)?;
        Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({} bytes, pts {:?}, offset {}, flags {:?})",
            self.data.len(),
            self.pts(),
            self.offset(),
            self.buffer.flags()
        )
    }
}

/// The `stats` structure with typed getters that fail loudly.
#[derive(Clone, Debug)]
pub struct Stats(pub gst::Structure);

impl Stats {
    pub fn u64(&self, f: &str) -> u64 {
        self.0
            .get::<u64>(f)
            .unwrap_or_else(|e| panic!("stats field {f} (u64): {e:?} in {}", self.0))
    }
    pub fn u32(&self, f: &str) -> u32 {
        self.0
            .get::<u32>(f)
            .unwrap_or_else(|e| panic!("stats field {f} (u32): {e:?} in {}", self.0))
    }
    pub fn f64(&self, f: &str) -> f64 {
        self.0
            .get::<f64>(f)
            .unwrap_or_else(|e| panic!("stats field {f} (f64): {e:?} in {}", self.0))
    }
    pub fn bool(&self, f: &str) -> bool {
        self.0
            .get::<bool>(f)
            .unwrap_or_else(|e| panic!("stats field {f} (bool): {e:?} in {}", self.0))
    }
    pub fn str(&self, f: &str) -> String {
        self.0
            .get::<Option<String>>(f)
            .unwrap_or_else(|e| panic!("stats field {f} (str): {e:?} in {}", self.0))
            .unwrap_or_default()
    }
}

/// `mjpegsrc ! appsink` in a pipeline, with a bounded way to wait for every
/// observable: frames, bus messages, stats.
pub struct Src {
    pub pipeline: gst::Pipeline,
    pub element: gst::Element,
    pub sink: gst_app::AppSink,
    bus: gst::Bus,
    /// Every bus message seen, with a taken flag.
    seen: Mutex<Vec<(gst::Message, bool)>>,
    pacers: Vec<Pacer>,
}

impl Src {
    /// An element with `location` set and every other property at its default.
    pub fn new(location: &str) -> Self {
        init();
        let element = gst::ElementFactory::make("mjpegsrc")
            .property("location", location)
            .build()
            .expect("create mjpegsrc (is the element registered?)");
        let sink = gst_app::AppSink::builder().sync(false).build();
        sink.set_enable_last_sample(false);
        let pipeline = gst::Pipeline::new();
        pipeline
            .add_many([&element, sink.upcast_ref()])
            .expect("add to pipeline");
        element.link(&sink).expect("link mjpegsrc ! appsink");
        let bus = pipeline.bus().expect("pipeline bus");
        Self {
            pipeline,
            element,
            sink,
            bus,
            seen: Mutex::new(Vec::new()),
            pacers: Vec::new(),
        }
    }

    /// Short timings for tests: retry-delay 10 ms (max 100 ms), a pool large
    /// enough that paced tests never run out of buffers.
    pub fn fast(location: &str) -> Self {
        Self::new(location)
            .set("retry-delay", 10u32)
            .set("retry-delay-max", 100u32)
            .set("pool-size", 16u32)
            .set("max-frame-size", 1024u32 * 1024)
    }

    /// `fast()` reading from `cam`, whose `AwaitPulled` steps follow the
    /// frames this wrapper pulls.
    pub fn for_camera(cam: &FakeCamera, path: &str) -> Self {
        Self::fast(&cam.url(path)).paced_by(cam)
    }

    pub fn set(self, name: &str, value: impl Into<glib::Value>) -> Self {
        self.element.set_property_from_value(name, &value.into());
        self
    }

    pub fn paced_by(mut self, cam: &FakeCamera) -> Self {
        self.pacers.push(cam.pacer());
        self
    }

    pub fn src_pad(&self) -> gst::Pad {
        self.element.static_pad("src").expect("src pad")
    }

    pub fn play(self) -> Self {
        self.pipeline
            .set_state(gst::State::Playing)
            .expect("set pipeline to PLAYING");
        self
    }

    /// Set the pipeline to NULL; how long that took.
    pub fn stop(&self) -> Duration {
        let t = Instant::now();
        self.pipeline
            .set_state(gst::State::Null)
            .expect("set pipeline to NULL");
        t.elapsed()
    }

    fn drain_bus(&self) {
        while let Some(m) = self.bus.pop() {
            lock(&self.seen).push((m, false));
        }
    }

    /// The first error posted so far, if any (not consumed).
    pub fn posted_error(&self) -> Option<String> {
        self.drain_bus();
        lock(&self.seen).iter().find_map(|(m, _)| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        })
    }

    /// The next frame, waiting at most `timeout`; None on timeout, EOS or
    /// after an error was posted.
    pub fn frame(&self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let step = left.min(Duration::from_millis(100));
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_nseconds(step.as_nanos() as u64))
            {
                // A deep copy: the test never holds a buffer of the
                // element's pool, so keeping frames cannot starve it.
                let buffer = sample
                    .buffer()
                    .expect("sample without buffer")
                    .copy_deep()
                    .expect("deep copy of the buffer");
                let caps = sample.caps_owned();
                drop(sample);
                let data = buffer
                    .map_readable()
                    .expect("map buffer readable")
                    .as_slice()
                    .to_vec();
                for p in &self.pacers {
                    p.bump();
                }
                return Some(Frame { buffer, data, caps });
            }
            if self.sink.is_eos() || self.posted_error().is_some() || left.is_zero() {
                return None;
            }
        }
    }

    /// Exactly `n` frames, each within [`WAIT`]; panics with context if not.
    pub fn frames(&self, n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            match self.frame(WAIT) {
                Some(f) => out.push(f),
                None => panic!(
                    "frame {i} of {n} did not arrive (eos {}, error {:?}, got {:?}), stats {}",
                    self.sink.is_eos(),
                    self.posted_error(),
                    out,
                    self.stats().0
                ),
            }
        }
        out
    }

    /// Frames' bytes.
    pub fn frame_data(&self, n: usize) -> Vec<Vec<u8>> {
        self.frames(n).into_iter().map(|f| f.data).collect()
    }

    /// Take the first not-yet-taken bus message matching `pred`.
    pub fn message(
        &self,
        timeout: Duration,
        pred: impl Fn(&gst::Message) -> bool,
    ) -> Option<gst::Message> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_bus();
            {
                let mut seen = lock(&self.seen);
                if let Some((m, taken)) = seen.iter_mut().find(|(m, t)| !*t && pred(m)) {
                    *taken = true;
                    return Some(m.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let step = left.min(Duration::from_millis(100));
            if let Some(m) = self
                .bus
                .timed_pop(gst::ClockTime::from_nseconds(step.as_nanos() as u64))
            {
                lock(&self.seen).push((m, false));
            }
        }
    }

    /// The next element message with this structure name.
    pub fn element_message(&self, name: &str, timeout: Duration) -> Option<gst::Structure> {
        self.message(timeout, |m| is_element_message(m, name))
            .and_then(|m| m.structure().map(|s| s.to_owned()))
    }

    /// Every element message with this name seen so far (taken or not).
    pub fn element_messages_seen(&self, name: &str) -> Vec<gst::Structure> {
        self.drain_bus();
        lock(&self.seen)
            .iter()
            .filter(|(m, _)| is_element_message(m, name))
            .filter_map(|(m, _)| m.structure().map(|s| s.to_owned()))
            .collect()
    }

    /// Warnings seen so far.
    pub fn warnings_seen(&self) -> usize {
        self.drain_bus();
        lock(&self.seen)
            .iter()
            .filter(|(m, _)| matches!(m.view(), gst::MessageView::Warning(_)))
            .count()
    }

    /// The next error message: (error, debug string).
    pub fn error(&self, timeout: Duration) -> Option<(glib::Error, String)> {
        let m = self.message(timeout, |m| matches!(m.view(), gst::MessageView::Error(_)))?;
        match m.view() {
            gst::MessageView::Error(e) => Some((
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default(),
            )),
            _ => None,
        }
    }

    /// Wait for EOS on the bus.
    pub fn eos(&self, timeout: Duration) -> bool {
        self.message(timeout, |m| matches!(m.view(), gst::MessageView::Eos(_)))
            .is_some()
    }

    pub fn stats(&self) -> Stats {
        Stats(self.element.property::<gst::Structure>("stats"))
    }

    /// Poll `stats` until `pred` holds (bounded by [`WAIT`]); panics with the
    /// last value and `what` if it never does.
    pub fn wait_stats(&self, what: &str, pred: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("stats never satisfied `{what}`: {}", s.0);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Src {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

pub fn is_element_message(m: &gst::Message, name: &str) -> bool {
    matches!(m.view(), gst::MessageView::Element(_))
        && m.structure().is_some_and(|s| s.name() == name)
}

/// Assert that `got` equals `want` byte for byte, with a readable diff.
pub fn assert_frames(got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert_eq!(
        got.len(),
        want.len(),
        "frame count: got {} want {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let first = g.iter().zip(w).position(|(a, b)| a != b);
            panic!(
                "frame {i} differs: got {} bytes, want {} bytes, first difference at {:?}\n got head {:02x?}\n got tail {:02x?}\nwant tail {:02x?}",
                g.len(),
                w.len(),
                first,
                &g[..g.len().min(24)],
                &g[g.len().saturating_sub(24)..],
                &w[w.len().saturating_sub(24)..]
            );
        }
    }
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

pub fn md5_hex(s: &str) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
