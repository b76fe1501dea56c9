// SPDX-License-Identifier: MPL-2.0

//! Cameras for the tests: [`FakeCamera`], a scripted MJPEG server on raw
//! TCP (plain or TLS) that writes exact bytes so tests can inject truncation,
//! stalls, garbage and disconnects; and [`LocalCamera`], a real
//! `videotestsrc ! jpegenc ! mjpegsink` in this process.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::wire::find;
use super::{LONG_WAIT, init, lock, wait_for};

/// How long the fake camera holds a stalled / gated connection at most.
const SERVER_HOLD: Duration = Duration::from_secs(60);
/// Poll period used by server threads to notice a shutdown.
const POLL: Duration = Duration::from_millis(50);

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
        super::header(&self.headers, name)
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
                    drain_until_closed(s.tcp(), Duration::from_secs(5), || sh.down());
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

/// Read and discard what the peer sends until it closes (or the read
/// fails), `stop()` holds or `limit` has passed. The socket's read timeout
/// is the poll period.
pub fn drain_until_closed(s: &TcpStream, limit: Duration, stop: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    let mut tmp = [0u8; 1024];
    while Instant::now() < deadline && !stop() {
        match (&*s).read(&mut tmp) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------
// A local camera: videotestsrc ! jpegenc ! mjpegsink in this process.
// ---------------------------------------------------------------------------

pub struct LocalCamera {
    pipeline: gst::Pipeline,
    sink: gst::Element,
}

impl LocalCamera {
    /// 320x240 at 30 fps; `credentials` turns on the sink's Basic auth.
    pub fn start(credentials: Option<(&str, &str)>) -> LocalCamera {
        init();
        let auth = credentials
            .map(|(u, p)| format!("user-id={u} user-pw={p}"))
            .unwrap_or_default();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true pattern=ball ! \
             video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! \
             mjpegsink name=sink host=127.0.0.1 port=0 {auth}"
        ))
        .expect("camera pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
        let sink = pipeline.by_name("sink").expect("sink");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let cam = LocalCamera { pipeline, sink };
        assert!(
            wait_for(LONG_WAIT, || cam.stat("frames-in") > 0),
            "the local camera produced no frame"
        );
        cam
    }

    pub fn port(&self) -> u16 {
        let p: i32 = self.sink.property("current-port");
        assert!(p > 0, "camera bound no port");
        p as u16
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream", self.port())
    }

    /// A u64 counter of the sink's `stats`.
    pub fn stat(&self, field: &str) -> u64 {
        self.sink
            .property::<gst::Structure>("stats")
            .get::<u64>(field)
            .unwrap_or(0)
    }

    pub fn sink(&self) -> &gst::Element {
        &self.sink
    }
}

impl Drop for LocalCamera {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
