//! The HTTP side of `mjpegsink`: a hyper 1 server on the plugin's shared
//! tokio runtime, routing, and the per-client fan-out. No GStreamer types.
//!
//! # Fan-out
//! The streaming thread calls [`Server::publish`], which lays the frame out
//! once (`writer::Frame`) and stores it in a `watch` channel: it never waits on a
//! client. Every streaming client is a hyper response whose body is a
//! stream polled by hyper only when the connection can take more data; each
//! poll yields the *newest* frame not yet sent to that client, as one
//! `Bytes` (part headers + JPEG + delimiter). Frames published while the
//! client was busy are skipped and counted.
//!
//! # Keeping slow clients near live
//! What may wait per client is bounded at every layer: hyper's write buffer
//! (`max_buf_size` 16 KiB, so hyper asks for the next frame only when the
//! previous one is almost all in the kernel), and the kernel's unsent queue
//! (`TCP_NOTSENT_LOWAT`, the `unsent-limit` property), which unlike a small
//! `SO_SNDBUF` does not limit throughput on long fat links. A client that
//! cannot keep up therefore receives fewer frames, each about two frames'
//! transmission time old (the client's own receive buffer holds about one),
//! instead of building seconds of backlog: a 100 kB/s viewer of 720p30 is
//! ~2 s behind live instead of 7-30 s.
//!
//! # Wire format
//! Streams are answered `HTTP/1.0 200 OK` with `Connection: close` and a
//! close-delimited body (no chunked encoding, like mjpg-streamer and
//! ustreamer): the bytes on the socket are exactly the multipart body.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::multipart::writer::{self, Frame};
use crate::runtime::{RUNTIME, lock};

/// Default multipart boundary: mjpg-streamer's and ustreamer's, which some
/// clients hard-code.
pub const DEFAULT_BOUNDARY: &str = "boundarydonotcross";

/// Pending listen() connections (many clients may connect at once).
const LISTEN_BACKLOG: i32 = 1024;
/// hyper's per-connection buffer limit (its minimum is 8 KiB). Also bounds
/// request heads.
const MAX_BUF_SIZE: usize = 16 * 1024;
/// A connection that does not send a complete request head in this time is
/// closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `/snapshot` waits for a first frame.
const SNAPSHOT_MAX_WAIT: Duration = Duration::from_secs(5);
/// Basic auth realm.
const REALM: &str = "mjpegsink";

const CACHE_CONTROL: &str = "no-store, no-cache, must-revalidate, max-age=0";

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Server settings, fixed for the life of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Multipart boundary, without the leading `--` (see
    /// [`writer::valid_boundary`]).
    pub boundary: String,
    /// Streaming clients served at once; further ones get 503. 0 = no limit.
    pub max_clients: u32,
    /// Basic auth `(user, password)` required on every endpoint, if any.
    pub credentials: Option<(String, String)>,
    /// `Access-Control-Allow-Origin` value, if any.
    pub allow_origin: Option<String>,
    /// Drop a client whose socket accepts nothing for this long.
    pub timeout: Option<Duration>,
    /// Resend the newest frame to a client that got nothing new for this long.
    pub resend_interval: Option<Duration>,
    /// `TCP_NOTSENT_LOWAT` on streaming sockets; 0 = OS default.
    pub unsent_limit: u32,
    /// Which stream requests without an `advance_headers` query parameter
    /// get the next part's headers in advance.
    pub advance_headers: AdvanceHeaders,
}

/// Who gets ustreamer's `advance_headers` framing by default (a request's
/// `?advance_headers=0/1` always wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdvanceHeaders {
    /// Nobody.
    Never,
    /// Clients whose `User-Agent` names a Chromium-based browser (`Chrome/`
    /// or `Chromium/`: Chrome, Chromium, Edge, Opera, Brave ...).
    #[default]
    Chromium,
    /// Everybody.
    Always,
}

impl AdvanceHeaders {
    fn applies(self, user_agent: Option<&HeaderValue>) -> bool {
        match self {
            AdvanceHeaders::Never => false,
            AdvanceHeaders::Always => true,
            AdvanceHeaders::Chromium => user_agent.is_some_and(|ua| {
                let ua = ua.as_bytes();
                memchr::memmem::find(ua, b"Chrome/").is_some()
                    || memchr::memmem::find(ua, b"Chromium/").is_some()
            }),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            boundary: DEFAULT_BOUNDARY.to_string(),
            max_clients: 0,
            credentials: None,
            allow_origin: None,
            timeout: Some(Duration::from_secs(10)),
            resend_interval: Some(Duration::from_secs(1)),
            unsent_limit: 32 * 1024,
            advance_headers: AdvanceHeaders::default(),
        }
    }
}

/// Negotiated format, reported by `/state`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Format {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second from the caps (0 = variable / unknown).
    pub framerate: Option<f64>,
}

/// Why a streaming client went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Got the closing delimiter after EOS.
    Eos,
    /// Its socket accepted nothing for `timeout`.
    Timeout,
    /// The peer closed or reset the connection, or the server stopped.
    Closed,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Eos => "eos",
            DisconnectReason::Timeout => "timeout",
            DisconnectReason::Closed => "closed",
        }
    }
}

/// What the server tells its owner (the element maps these to signals and
/// debug logs). Called from runtime threads: keep handlers short.
#[derive(Debug)]
pub enum ServerEvent {
    /// A streaming client was accepted.
    ClientConnected {
        peer: SocketAddr,
        advance_headers: bool,
    },
    /// A streaming client left.
    ClientDisconnected {
        peer: SocketAddr,
        reason: DisconnectReason,
        frames_sent: u64,
        frames_skipped: u64,
    },
    /// A request was answered (any endpoint).
    Request {
        peer: SocketAddr,
        method: Method,
        uri: String,
        status: StatusCode,
    },
    /// A connection ended with an error (malformed request, reset ...).
    ConnectionError { peer: SocketAddr, error: String },
    /// `accept()` failed (e.g. out of file descriptors).
    AcceptError(String),
}

pub type EventHandler = Arc<dyn Fn(ServerEvent) + Send + Sync>;

#[derive(Default)]
struct Counters {
    clients: AtomicU64,
    clients_total: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    frames_resent: AtomicU64,
    frames_skipped: AtomicU64,
    bytes_out: AtomicU64,
    clients_dropped_timeout: AtomicU64,
    clients_rejected_max: AtomicU64,
    requests_unauthorized: AtomicU64,
    requests_snapshot: AtomicU64,
    requests_state: AtomicU64,
    requests_invalid: AtomicU64,
}

/// A consistent-enough copy of the server's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Streaming clients connected now.
    pub clients: u64,
    /// Streaming clients accepted since start.
    pub clients_total: u64,
    /// Frames published by the pipeline.
    pub frames_in: u64,
    /// Parts handed to clients (summed over clients, resends included).
    pub frames_out: u64,
    /// Parts that were resends of an unchanged frame (`resend-interval`).
    pub frames_resent: u64,
    /// Frames a busy client did not get (summed over clients).
    pub frames_skipped: u64,
    /// Bytes written to sockets (all endpoints, HTTP headers included).
    pub bytes_out: u64,
    /// Clients dropped because their socket accepted nothing for `timeout`.
    pub clients_dropped_timeout: u64,
    /// Stream requests answered 503 because of `max-clients`.
    pub clients_rejected_max: u64,
    /// Requests answered 401.
    pub requests_unauthorized: u64,
    /// `/snapshot` requests.
    pub requests_snapshot: u64,
    /// `/state` requests.
    pub requests_state: u64,
    /// Requests answered 400 (malformed), 404 or 405.
    pub requests_invalid: u64,
    /// Seconds since the server started.
    pub uptime: f64,
    /// Whether EOS was reached.
    pub eos: bool,
    pub format: Format,
}

impl Stats {
    /// Counter fields by name (the names of the element's `stats` structure
    /// and of the `/state` JSON).
    pub fn counters(&self) -> [(&'static str, u64); 13] {
        [
            ("clients", self.clients),
            ("clients-total", self.clients_total),
            ("frames-in", self.frames_in),
            ("frames-out", self.frames_out),
            ("frames-resent", self.frames_resent),
            ("frames-skipped", self.frames_skipped),
            ("bytes-out", self.bytes_out),
            ("clients-dropped-timeout", self.clients_dropped_timeout),
            ("clients-rejected-max", self.clients_rejected_max),
            ("requests-unauthorized", self.requests_unauthorized),
            ("requests-snapshot", self.requests_snapshot),
            ("requests-state", self.requests_state),
            ("requests-invalid", self.requests_invalid),
        ]
    }

    /// The `/state` document.
    pub fn to_json(&self, boundary: &str) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, v) in self.counters() {
            m.insert(k.to_string(), v.into());
        }
        m.insert("uptime".into(), self.uptime.into());
        m.insert("eos".into(), self.eos.into());
        m.insert("width".into(), self.format.width.into());
        m.insert("height".into(), self.format.height.into());
        m.insert("framerate".into(), self.format.framerate.into());
        m.insert("boundary".into(), boundary.into());
        serde_json::Value::Object(m)
    }
}

#[derive(Clone, Default)]
struct Published {
    frame: Option<Arc<Frame>>,
    eos: bool,
}

struct Shared {
    config: Config,
    /// `user:password` expected in a Basic `Authorization`, if auth is on.
    expected_auth: Option<Vec<u8>>,
    frames: watch::Sender<Published>,
    counters: Counters,
    format: Mutex<Format>,
    started: Instant,
    events: EventHandler,
}

impl Shared {
    fn stats(&self) -> Stats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            clients: l(&c.clients),
            clients_total: l(&c.clients_total),
            frames_in: l(&c.frames_in),
            frames_out: l(&c.frames_out),
            frames_resent: l(&c.frames_resent),
            frames_skipped: l(&c.frames_skipped),
            bytes_out: l(&c.bytes_out),
            clients_dropped_timeout: l(&c.clients_dropped_timeout),
            clients_rejected_max: l(&c.clients_rejected_max),
            requests_unauthorized: l(&c.requests_unauthorized),
            requests_snapshot: l(&c.requests_snapshot),
            requests_state: l(&c.requests_state),
            requests_invalid: l(&c.requests_invalid),
            uptime: self.started.elapsed().as_secs_f64(),
            eos: self.frames.borrow().eos,
            format: *lock(&self.format),
        }
    }

    fn emit(&self, ev: ServerEvent) {
        (self.events)(ev)
    }
}

/// Resolve `host` and bind a listening socket on the first address that
/// works (IPv4 first), non-blocking, ready for [`Server::start`].
pub fn bind(host: &str, port: u16) -> io::Result<StdTcpListener> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(|a| a.is_ipv6());
    let mut last_err = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("{host} resolves to no address"),
    );
    for addr in addrs {
        match bind_one(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

fn bind_one(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A running server. Dropping it stops it.
pub struct Server {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl Server {
    /// Serve on `listener` (from [`bind`]) on the shared runtime.
    pub fn start(
        listener: StdTcpListener,
        config: Config,
        events: EventHandler,
    ) -> io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let listener = {
            let _guard = RUNTIME.enter();
            TcpListener::from_std(listener)?
        };
        let expected_auth = config
            .credentials
            .as_ref()
            .map(|(u, p)| format!("{u}:{p}").into_bytes());
        let shared = Arc::new(Shared {
            config,
            expected_auth,
            frames: watch::Sender::new(Published::default()),
            counters: Counters::default(),
            format: Mutex::new(Format::default()),
            started: Instant::now(),
            events,
        });
        let task = RUNTIME.spawn(accept_loop(listener, shared.clone()));
        Ok(Server {
            shared,
            task: Some(task),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Publish a frame to every client (copies `jpeg` once) and return at
    /// once.
    pub fn publish(&self, jpeg: &[u8]) -> u64 {
        let seq = self
            .shared
            .counters
            .frames_in
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let f = Frame::new(
            seq,
            jpeg,
            &self.shared.config.boundary,
            writer::timestamp_string(SystemTime::now()),
        );
        let f = Arc::new(f);
        self.shared.frames.send_modify(|p| p.frame = Some(f));
        seq
    }

    /// End (or, after a flush, un-end) the stream: at EOS every client gets
    /// the closing delimiter and is disconnected.
    pub fn set_eos(&self, eos: bool) {
        self.shared.frames.send_if_modified(|p| {
            let changed = p.eos != eos;
            p.eos = eos;
            changed
        });
    }

    pub fn set_format(&self, f: Format) {
        *lock(&self.shared.format) = f;
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Serve one already connected byte stream (e.g. one end of a
    /// `tokio::io::duplex`) exactly as an accepted socket is served, minus
    /// the TCP socket options; `peer` is what events report. For fuzzing
    /// and tests: the returned future is not owned by the server, so
    /// [`Server::stop`] does not end it. Runs on whichever tokio runtime
    /// polls it (timers included).
    #[doc(hidden)]
    pub fn serve_io<S>(&self, io: S, peer: SocketAddr) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        serve_io(io, peer, self.shared.clone())
    }

    /// Stop accepting, close every connection and free the port. Waits
    /// (bounded) for the listener to be closed unless called from a runtime
    /// thread.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if tokio::runtime::Handle::try_current().is_err() {
                let _ = RUNTIME
                    .block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await });
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections; owns every connection task, so aborting it closes
/// every connection.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    conns.spawn(serve_connection(stream, peer, shared.clone()));
                }
                Err(e) => {
                    shared.emit(ServerEvent::AcceptError(e.to_string()));
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Per-connection flags shared by the socket wrapper and the response body.
#[derive(Default)]
struct ConnFlags {
    timed_out: AtomicBool,
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    set_unsent_limit(&stream, shared.config.unsent_limit);
    serve_io(crate::net::NoSigPipe(stream), peer, shared).await
}

/// One HTTP/1 connection over any byte stream, from the first request byte
/// until the connection ends.
async fn serve_io<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let flags = Arc::new(ConnFlags::default());
    let io = ClientIo {
        inner: stream,
        timeout: shared.config.timeout,
        stall: None,
        shared: shared.clone(),
        flags: flags.clone(),
    };
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = svc_shared.clone();
        let flags = flags.clone();
        async move {
            let method = req.method().clone();
            let uri = req.uri().to_string();
            let resp = handle(&shared, req, peer, flags).await;
            shared.emit(ServerEvent::Request {
                peer,
                method,
                uri,
                status: resp.status(),
            });
            Ok::<_, Infallible>(resp)
        }
    });
    let res = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // A client may shut down its sending side right after the request
        // (`nc -N`, `printf ... | nc`) and still read: answer it. hyper's
        // default treats that EOF as an abort and closes without a word.
        // The cost: a stream client that vanished is noticed at the next
        // write (next frame or resend) instead of at its FIN.
        .half_close(true)
        .max_buf_size(MAX_BUF_SIZE)
        .writev(true)
        .title_case_headers(true)
        .auto_date_header(false)
        .serve_connection(TokioIo::new(io), svc)
        .await;
    if let Err(e) = res {
        if e.is_parse() || e.is_parse_too_large() {
            shared
                .counters
                .requests_invalid
                .fetch_add(1, Ordering::Relaxed);
        }
        shared.emit(ServerEvent::ConnectionError {
            peer,
            error: e.to_string(),
        });
    }
}

fn set_unsent_limit(stream_fd: &TcpStream, limit: u32) {
    if limit == 0 {
        return;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let sock = socket2::SockRef::from(stream_fd);
        let _ = sock.set_tcp_notsent_lowat(limit);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // No TCP_NOTSENT_LOWAT: bound the whole send buffer instead.
        let sock = socket2::SockRef::from(stream_fd);
        let _ = sock.set_send_buffer_size(limit as usize * 2);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Stream { advance_headers: Option<bool> },
    Snapshot,
    State,
    NotFound,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn route(path: &str, query: Option<&str>) -> Route {
    let mut action = None;
    let mut advance_headers = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "action" => action = Some(v.into_owned()),
            "advance_headers" => advance_headers = parse_bool(&v),
            _ => {}
        }
    }
    match (path, action.as_deref()) {
        ("/", None | Some("stream")) | ("/stream", _) => Route::Stream { advance_headers },
        ("/", Some("snapshot")) | ("/snapshot", _) => Route::Snapshot,
        ("/state", _) => Route::State,
        _ => Route::NotFound,
    }
}

/// Whether the `Authorization` header carries the expected Basic
/// credentials (`user:password` bytes), compared in constant time.
fn authorized(expected: &[u8], header: Option<&HeaderValue>) -> bool {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let Some(value) = header else { return false };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, token) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return false;
    }
    let token = token.trim_ascii();
    let Ok(given) = STANDARD
        .decode(token)
        .or_else(|_| STANDARD_NO_PAD.decode(token))
    else {
        return false;
    };
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// Common headers for every response.
fn base_response(shared: &Shared, status: StatusCode) -> http::response::Builder {
    let mut b = Response::builder().status(status);
    if let Some(origin) = &shared.config.allow_origin
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        b = b.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    b
}

fn text_response(shared: &Shared, status: StatusCode, text: &str, head: bool) -> Response<Body> {
    let body = if head {
        empty()
    } else {
        full(text.to_string())
    };
    base_response(shared, status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

async fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    flags: Arc<ConnFlags>,
) -> Response<Body> {
    let c = &shared.counters;
    let method = req.method();
    let head = method == Method::HEAD;

    // CORS preflight (sent without credentials by browsers).
    if method == Method::OPTIONS && shared.config.allow_origin.is_some() {
        return base_response(shared, StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization")
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .body(empty())
            .unwrap_or_else(|_| Response::new(empty()));
    }

    if let Some(expected) = &shared.expected_auth
        && !authorized(expected, req.headers().get(header::AUTHORIZATION))
    {
        c.requests_unauthorized.fetch_add(1, Ordering::Relaxed);
        let text = "401 Unauthorized\n";
        return base_response(shared, StatusCode::UNAUTHORIZED)
            .header(
                header::WWW_AUTHENTICATE,
                format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
            )
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CONTENT_LENGTH, text.len())
            .body(if head { empty() } else { full(text) })
            .unwrap_or_else(|_| Response::new(empty()));
    }

    if method != Method::GET && !head {
        c.requests_invalid.fetch_add(1, Ordering::Relaxed);
        let mut r = text_response(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n",
            false,
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }

    match route(req.uri().path(), req.uri().query()) {
        Route::Stream { advance_headers } => {
            let advance = advance_headers.unwrap_or_else(|| {
                shared
                    .config
                    .advance_headers
                    .applies(req.headers().get(header::USER_AGENT))
            });
            stream_response(shared, peer, advance, head, flags)
        }
        Route::Snapshot => {
            c.requests_snapshot.fetch_add(1, Ordering::Relaxed);
            snapshot_response(shared, head).await
        }
        Route::State => {
            c.requests_state.fetch_add(1, Ordering::Relaxed);
            let json = shared.stats().to_json(&shared.config.boundary).to_string();
            let len = json.len();
            base_response(shared, StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, len)
                .header(header::CACHE_CONTROL, CACHE_CONTROL)
                .body(if head { empty() } else { full(json) })
                .unwrap_or_else(|_| Response::new(empty()))
        }
        Route::NotFound => {
            c.requests_invalid.fetch_add(1, Ordering::Relaxed);
            text_response(shared, StatusCode::NOT_FOUND, "404 Not Found\n", head)
        }
    }
}

async fn snapshot_response(shared: &Arc<Shared>, head: bool) -> Response<Body> {
    let mut rx = shared.frames.subscribe();
    let wait = shared
        .config
        .timeout
        .map_or(SNAPSHOT_MAX_WAIT, |t| t.min(SNAPSHOT_MAX_WAIT));
    let got = tokio::time::timeout(wait, rx.wait_for(|p| p.frame.is_some() || p.eos)).await;
    let frame = match got {
        Ok(Ok(p)) => p.frame.clone(),
        _ => None,
    };
    let Some(frame) = frame else {
        return text_response(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "503 No frame available yet\n",
            head,
        );
    };
    let jpeg = frame.jpeg();
    base_response(shared, StatusCode::OK)
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_LENGTH, jpeg.len())
        .header("X-Timestamp", &frame.timestamp)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(header::PRAGMA, "no-cache")
        .body(if head { empty() } else { full(jpeg) })
        .unwrap_or_else(|_| Response::new(empty()))
}

fn stream_response(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    advance_headers: bool,
    head: bool,
    flags: Arc<ConnFlags>,
) -> Response<Body> {
    let builder = || {
        base_response(shared, StatusCode::OK)
            .version(Version::HTTP_10)
            .header(
                header::CONTENT_TYPE,
                format!(
                    "multipart/x-mixed-replace;boundary={}",
                    shared.config.boundary
                ),
            )
            .header(header::CACHE_CONTROL, CACHE_CONTROL)
            .header(header::PRAGMA, "no-cache")
            .header(header::CONNECTION, "close")
    };
    if head {
        return builder()
            .body(empty())
            .unwrap_or_else(|_| Response::new(empty()));
    }

    // Reserve a client slot.
    let max = u64::from(shared.config.max_clients);
    let c = &shared.counters;
    if c.clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (max == 0 || n < max).then_some(n + 1)
        })
        .is_err()
    {
        c.clients_rejected_max.fetch_add(1, Ordering::Relaxed);
        let mut r = text_response(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Too many clients\n",
            false,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    c.clients_total.fetch_add(1, Ordering::Relaxed);

    let guard = ClientGuard {
        shared: shared.clone(),
        peer,
        flags,
        reason: DisconnectReason::Closed,
        frames_sent: 0,
        frames_skipped: 0,
    };
    shared.emit(ServerEvent::ClientConnected {
        peer,
        advance_headers,
    });
    let state = ClientStream {
        rx: shared.frames.subscribe(),
        last_seq: 0,
        last_frame: None,
        advance_headers,
        phase: Phase::Preamble,
        guard,
    };
    let stream = futures_util::stream::unfold(state, next_chunk)
        .map(|b| Ok::<_, Infallible>(hyper::body::Frame::data(b)));
    builder()
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| Response::new(empty()))
}

/// Counts a streaming client out and reports it, whenever and however its
/// response body is dropped.
struct ClientGuard {
    shared: Arc<Shared>,
    peer: SocketAddr,
    flags: Arc<ConnFlags>,
    reason: DisconnectReason,
    frames_sent: u64,
    frames_skipped: u64,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.shared.counters.clients.fetch_sub(1, Ordering::AcqRel);
        let reason = if self.flags.timed_out.load(Ordering::Relaxed) {
            DisconnectReason::Timeout
        } else {
            self.reason
        };
        self.shared.emit(ServerEvent::ClientDisconnected {
            peer: self.peer,
            reason,
            frames_sent: self.frames_sent,
            frames_skipped: self.frames_skipped,
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preamble,
    Streaming,
    Done,
}

struct ClientStream {
    rx: watch::Receiver<Published>,
    last_seq: u64,
    last_frame: Option<Arc<Frame>>,
    advance_headers: bool,
    phase: Phase,
    guard: ClientGuard,
}

impl ClientStream {
    fn part(&self, f: &Frame) -> Bytes {
        if self.advance_headers {
            f.advance_part()
        } else {
            f.part()
        }
    }
}

/// The next chunk of a client's body. Polled by hyper only when the
/// connection can take more, so it always yields the newest frame.
async fn next_chunk(mut s: ClientStream) -> Option<(Bytes, ClientStream)> {
    let shared = s.guard.shared.clone();
    let boundary = &shared.config.boundary;
    match s.phase {
        Phase::Done => return None,
        Phase::Preamble => {
            s.phase = Phase::Streaming;
            return Some((writer::preamble(boundary, s.advance_headers), s));
        }
        Phase::Streaming => {}
    }
    let c = &shared.counters;
    loop {
        let (newest, eos) = {
            let p = s.rx.borrow_and_update();
            (p.frame.clone(), p.eos)
        };
        if let Some(f) = newest
            && f.seq > s.last_seq
        {
            if s.last_seq != 0 {
                let skipped = f.seq - s.last_seq - 1;
                if skipped > 0 {
                    s.guard.frames_skipped += skipped;
                    c.frames_skipped.fetch_add(skipped, Ordering::Relaxed);
                }
            }
            s.last_seq = f.seq;
            s.guard.frames_sent += 1;
            c.frames_out.fetch_add(1, Ordering::Relaxed);
            let part = s.part(&f);
            s.last_frame = Some(f);
            return Some((part, s));
        }
        if eos {
            s.phase = Phase::Done;
            s.guard.reason = DisconnectReason::Eos;
            return Some((writer::closing(boundary, s.advance_headers), s));
        }
        let changed = match (shared.config.resend_interval, &s.last_frame) {
            (Some(interval), Some(last)) => {
                match tokio::time::timeout(interval, s.rx.changed()).await {
                    Ok(r) => r,
                    Err(_) => {
                        // Quiet pipeline: send the newest frame again.
                        c.frames_out.fetch_add(1, Ordering::Relaxed);
                        c.frames_resent.fetch_add(1, Ordering::Relaxed);
                        let part = s.part(last);
                        return Some((part, s));
                    }
                }
            }
            _ => s.rx.changed().await,
        };
        if changed.is_err() {
            // Server gone.
            return None;
        }
    }
}

/// The socket as hyper sees it: counts bytes written and fails a write that
/// makes no progress for `timeout` (the socket accepted nothing).
struct ClientIo<S> {
    inner: S,
    timeout: Option<Duration>,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    shared: Arc<Shared>,
    flags: Arc<ConnFlags>,
}

impl<S> ClientIo<S> {
    fn account(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                self.stall = None;
                self.shared
                    .counters
                    .bytes_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(t) = self.timeout else {
                    return Poll::Pending;
                };
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                if stall.as_mut().poll(cx).is_ready() {
                    if !self.flags.timed_out.swap(true, Ordering::Relaxed) {
                        self.shared
                            .counters
                            .clients_dropped_timeout
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client accepted no data within the timeout",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.account(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.account(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let s = |a| Route::Stream { advance_headers: a };
        assert_eq!(route("/", None), s(None));
        assert_eq!(route("/stream", None), s(None));
        assert_eq!(route("/", Some("action=stream")), s(None));
        assert_eq!(route("/stream", Some("advance_headers=1")), s(Some(true)));
        assert_eq!(
            route("/", Some("action=stream&advance_headers=0")),
            s(Some(false))
        );
        assert_eq!(route("/snapshot", None), Route::Snapshot);
        assert_eq!(route("/", Some("action=snapshot")), Route::Snapshot);
        assert_eq!(route("/state", None), Route::State);
        assert_eq!(route("/", Some("action=bogus")), Route::NotFound);
        assert_eq!(route("/other", None), Route::NotFound);
    }

    /// A client that half-closes after its request (`nc -N`, `printf ... |
    /// nc`) still gets the answer; hyper's default closed such connections
    /// without answering.
    #[test]
    fn half_closed_request_is_answered() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = bind("127.0.0.1", 0).expect("bind");
        let server = Server::start(listener, Config::default(), Arc::new(|_| {})).expect("start");
        let jpeg = b"\xFF\xD8jpeg\xFF\xD9";
        server.publish(jpeg);
        let limit = Duration::from_secs(5);
        for request in [
            &b"GET /snapshot HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /snapshot HTTP/1.0\r\n\r\n",
        ] {
            let (mut client, io) = tokio::io::duplex(64 * 1024);
            let conn = RUNTIME.spawn(server.serve_io(io, ([127, 0, 0, 1], 1).into()));
            let out = RUNTIME.block_on(async {
                client.write_all(request).await.expect("write");
                client.shutdown().await.expect("half-close");
                let mut out = Vec::new();
                tokio::time::timeout(limit, client.read_to_end(&mut out))
                    .await
                    .expect("answer and close in time")
                    .expect("read");
                tokio::time::timeout(limit, conn)
                    .await
                    .expect("connection ends")
                    .expect("no panic");
                out
            });
            assert!(out.starts_with(b"HTTP/1."), "{out:?}");
            assert!(out.ends_with(jpeg), "{out:?}");
            assert_eq!(&out[9..12], b"200");
        }
    }

    #[test]
    fn basic_auth() {
        let expected = b"user:pw";
        let h = |s: &str| HeaderValue::from_str(s).ok();
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:pw")
        );
        assert!(authorized(&expected[..], h(&good).as_ref()));
        assert!(authorized(
            &expected[..],
            h(&good.replace("Basic", "basic")).as_ref()
        ));
        assert!(!authorized(&expected[..], None));
        assert!(!authorized(&expected[..], h("Basic").as_ref()));
        assert!(authorized(&expected[..], h("Basic dXNlcjpwdw").as_ref()));
        assert!(!authorized(&expected[..], h("Basic dXNlcjpwdx==").as_ref()));
        assert!(!authorized(
            &expected[..],
            h("Bearer dXNlcjpwdw==").as_ref()
        ));
        assert!(!authorized(
            &expected[..],
            h("Basic dXNlcjpwdw==x").as_ref()
        ));
    }
}
