// SPDX-License-Identifier: MPL-2.0

//! A small, lenient HTTP/1.x client for streaming bodies.
//!
//! Cameras speak HTTP loosely: HTTP/1.0 responses with `Transfer-Encoding:
//! chunked` (TP-Link Kasa), bodies read to EOF, stray spaces in headers, bare
//! LF line endings. General purpose clients reject some of these (hyper
//! refuses HTTP/1.0 + chunked outright), and they hand bodies over in small
//! pieces. This client does one thing: send a GET (directly, through an HTTP
//! proxy, or tunnelled with CONNECT for https), parse the response head
//! leniently with `httparse`, and hand the body out as slices of one large
//! read buffer, de-chunked in place, so the caller copies each byte once.
//!
//! Authentication, redirects and reconnects are the caller's policy
//! (`open.rs`, `mod.rs`); this module only reports what the server said.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use super::proxy::{Proxies, Proxy, ProxyKind, socks5_connect};
use super::tls::tls_config;

/// Size of the body read buffer: large reads keep the syscall count per
/// frame low (a 100 kB JPEG arrives in two reads on a fast link).
const READ_BUFFER_SIZE: usize = 64 * 1024;
/// Cap on a response head (status line and headers).
const MAX_HEAD_SIZE: usize = 64 * 1024;
/// Cap on headers in one response head.
const MAX_HEADERS: usize = 96;
/// Cap on a chunk-size line.
const MAX_CHUNK_LINE: usize = 1024;
/// Interim (1xx) responses skipped before the real one.
const MAX_INTERIM_RESPONSES: usize = 8;

/// Everything that can go wrong between us and the server.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// The URL cannot be requested (scheme, host).
    InvalidUrl(String),
    /// TCP connect, DNS or proxy tunnel failure.
    Connect(io::Error),
    /// The TLS handshake failed (certificate refused, protocol error).
    Tls(io::Error),
    /// No answer within the allotted time.
    Timeout(&'static str),
    /// The peer sent something that is not HTTP.
    Protocol(String),
    /// A read or write failed after the connection was up.
    Io(io::Error),
    /// The proxy answered 407 (to CONNECT or to a proxied GET).
    ProxyAuth(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidUrl(s) => write!(f, "invalid URL: {s}"),
            HttpError::Connect(e) => write!(f, "connection failed: {e}"),
            HttpError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            HttpError::Timeout(what) => write!(f, "timed out {what}"),
            HttpError::Protocol(s) => write!(f, "protocol error: {s}"),
            HttpError::Io(e) => write!(f, "I/O error: {e}"),
            HttpError::ProxyAuth(s) => write!(f, "the proxy refused the credentials ({s})"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Connection-level settings, fixed for the life of a source.
#[derive(Clone)]
pub(crate) struct HttpOptions {
    pub(crate) user_agent: String,
    pub(crate) connect_timeout: Option<Duration>,
    /// The proxy (property or environment) for each URL.
    pub(crate) proxies: Proxies,
    /// Extra request headers (name, value), cookies included.
    pub(crate) extra_headers: Vec<(String, String)>,
    ssl_strict: bool,
    /// `ssl-ca-file`: certificates trusted besides the system's.
    pub(crate) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Built on the first https connection: loading the root store costs
    /// milliseconds that a plain-http camera should not pay.
    tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
}

impl HttpOptions {
    pub(crate) fn new(ssl_strict: bool) -> Self {
        HttpOptions {
            user_agent: String::new(),
            connect_timeout: None,
            proxies: Proxies::Direct,
            extra_headers: Vec::new(),
            ssl_strict,
            extra_roots: Vec::new(),
            tls: std::sync::OnceLock::new(),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A response head and its body reader.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) version: u8,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
}

impl Response {
    /// The last value of a header (name compared case-insensitively).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        last_header(&self.headers, name)
    }

    /// Every value of a header, in order.
    pub(crate) fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The last value of a header (name compared case-insensitively).
fn last_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Send `GET url` with an optional `Authorization` header and read the
/// response head. The whole exchange is bounded by `connect_timeout`.
pub(crate) async fn get(
    config: &HttpOptions,
    url: &Url,
    authorization: Option<&str>,
) -> Result<Response, HttpError> {
    let exchange = async {
        let proxy = config.proxies.for_url(url).map_err(HttpError::InvalidUrl)?;
        let (mut stream, absolute_form) = connect(config, proxy.as_ref(), url).await?;
        let proxy_authorization = proxy
            .as_ref()
            .filter(|_| absolute_form)
            .and_then(Proxy::http_authorization);
        let request = request_head(
            config,
            url,
            authorization,
            absolute_form,
            proxy_authorization.as_deref(),
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(HttpError::Io)?;
        stream.flush().await.map_err(HttpError::Io)?;
        let resp = read_response(stream).await?;
        if absolute_form && resp.status == 407 {
            return Err(HttpError::ProxyAuth(format!("407 {}", resp.reason)));
        }
        Ok(resp)
    };
    match config.connect_timeout {
        Some(t) => tokio::time::timeout(t, exchange)
            .await
            .map_err(|_| HttpError::Timeout("waiting for the server's response"))?,
        None => exchange.await,
    }
}

fn host_port(url: &Url) -> Result<(String, u16), HttpError> {
    let host = url
        .host_str()
        .ok_or_else(|| HttpError::InvalidUrl(format!("{url} has no host")))?;
    // IPv6 literals come bracketed from the URL; sockets want them bare.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| HttpError::InvalidUrl(format!("{url} has no port")))?;
    Ok((host, port))
}

async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, HttpError> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(HttpError::Connect)?;
    // Requests are tiny; latency matters more than coalescing.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Open the transport to `url` (through the proxy if any). Returns the
/// stream and whether the request must use the absolute URI form (plain
/// HTTP through a proxy).
async fn connect(
    config: &HttpOptions,
    proxy: Option<&Proxy>,
    url: &Url,
) -> Result<(Box<dyn Io>, bool), HttpError> {
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(HttpError::InvalidUrl(format!("unsupported scheme {other}"))),
    };
    let (host, port) = host_port(url)?;

    let (tcp, absolute_form) = match proxy {
        None => (tcp_connect(&host, port).await?, false),
        Some(proxy) if matches!(proxy.kind, ProxyKind::Socks5 { .. }) => (
            socks5_connect(proxy, &host, port)
                .await
                .map_err(HttpError::Connect)?,
            false,
        ),
        Some(proxy) => {
            let mut tcp = tcp_connect(&proxy.host, proxy.port).await?;
            if tls {
                tunnel(proxy, &mut tcp, &host, port).await?;
                (tcp, false)
            } else {
                (tcp, true)
            }
        }
    };

    let tcp = crate::net::NoSigPipe(tcp);
    if !tls {
        return Ok((Box::new(tcp), absolute_form));
    }
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| HttpError::InvalidUrl(format!("bad TLS server name {host}: {e}")))?;
    let tls_config = config
        .tls
        .get_or_init(|| tls_config(config.ssl_strict, &config.extra_roots))
        .clone();
    let connector = tokio_rustls::TlsConnector::from(tls_config);
    let stream = connector.connect(name, tcp).await.map_err(HttpError::Tls)?;
    Ok((Box::new(stream), false))
}

/// Ask an HTTP proxy for a tunnel to `host:port`.
async fn tunnel(
    proxy: &Proxy,
    tcp: &mut TcpStream,
    host: &str,
    port: u16,
) -> Result<(), HttpError> {
    let authority = authority(host, port);
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy.http_authorization() {
        req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes())
        .await
        .map_err(HttpError::Connect)?;
    let mut buf = Vec::with_capacity(1024);
    let head_len = read_head(tcp, &mut buf).await?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    parser_config()
        .parse_response(&mut resp, &buf[..head_len])
        .map_err(|e| HttpError::Protocol(format!("bad proxy response: {e}")))?;
    match resp.code {
        Some(200..=299) => Ok(()),
        Some(407) => Err(HttpError::ProxyAuth(format!(
            "407 {}",
            resp.reason.unwrap_or("")
        ))),
        Some(code) => Err(HttpError::Connect(io::Error::other(format!(
            "proxy refused the tunnel: {code} {}",
            resp.reason.unwrap_or("")
        )))),
        None => Err(HttpError::Protocol("incomplete proxy response".into())),
    }
}

/// The request target of `url` in origin form: its path and query.
pub(crate) fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_owned(),
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The GET request head; `proxy_authorization` is set for a proxied
/// (absolute-form) request only.
fn request_head(
    config: &HttpOptions,
    url: &Url,
    authorization: Option<&str>,
    absolute_form: bool,
    proxy_authorization: Option<&str>,
) -> String {
    let target = if absolute_form {
        // Credentials never travel in the request line.
        let mut u = url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_fragment(None);
        u.to_string()
    } else {
        path_and_query(url)
    };
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    };
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept: */*\r\nConnection: close\r\n",
        config.user_agent
    );
    if let Some(auth) = authorization {
        req.push_str(&format!("Authorization: {auth}\r\n"));
    }
    if let Some(auth) = proxy_authorization {
        req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    for (name, value) in &config.extra_headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req
}

fn parser_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true);
    c
}

/// Read until the end of a response head (a blank line, CRLF or bare LF).
/// Returns the head length; bytes after it stay in `buf`.
async fn read_head<R: AsyncRead + Unpin + ?Sized>(
    stream: &mut R,
    buf: &mut Vec<u8>,
) -> Result<usize, HttpError> {
    let mut scanned = 0;
    loop {
        if let Some(end) = head_end(buf, scanned) {
            return Ok(end);
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() >= MAX_HEAD_SIZE {
            return Err(HttpError::Protocol(format!(
                "response head larger than {MAX_HEAD_SIZE} bytes"
            )));
        }
        let old = buf.len();
        buf.resize(old + 4096, 0);
        let n = stream.read(&mut buf[old..]).await.map_err(HttpError::Io)?;
        buf.truncate(old + n);
        if n == 0 {
            return Err(HttpError::Protocol(
                "connection closed before the response head ended".into(),
            ));
        }
    }
}

/// Position just after the first empty line (`\n\n` or `\n\r\n`) at or
/// after `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = memchr::memchr(b'\n', &buf[i..]) {
        let nl = i + p;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// Read a response head, skipping interim (1xx) responses, and set up the
/// body reader. A response without a status line is HTTP/0.9 (the body
/// from the first byte) only when it starts like an MJPEG body: `--` (a
/// delimiter) or FF D8 (a JPEG); anything else is an error.
async fn read_response(mut stream: Box<dyn Io>) -> Result<Response, HttpError> {
    let mut buf = Vec::with_capacity(READ_BUFFER_SIZE);
    while buf.len() < 2 {
        let old = buf.len();
        buf.resize(old + 4096, 0);
        let n = stream.read(&mut buf[old..]).await.map_err(HttpError::Io)?;
        buf.truncate(old + n);
        if n == 0 {
            return Err(HttpError::Protocol(
                "connection closed before the response head ended".into(),
            ));
        }
    }
    if buf.starts_with(b"--") || buf.starts_with(&[0xFF, 0xD8]) {
        let headers = if buf.starts_with(b"--") {
            Vec::new()
        } else {
            vec![("Content-Type".to_owned(), "image/jpeg".to_owned())]
        };
        return Ok(Response {
            status: 200,
            reason: "HTTP/0.9".into(),
            version: 0,
            headers,
            body: Body::new(stream, buf, Framing::Close),
        });
    }
    let mut interim = 0;
    let (status, reason, version, headers, head_len) = loop {
        let head_len = read_head(&mut stream, &mut buf).await?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match parser_config().parse_response(&mut resp, &buf[..head_len]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::Protocol("incomplete response head".into()));
            }
            Err(e) => {
                let line_end = memchr::memchr(b'\n', &buf).unwrap_or(buf.len()).min(80);
                return Err(HttpError::Protocol(format!(
                    "bad response head ({e}): {:?}",
                    String::from_utf8_lossy(&buf[..line_end])
                )));
            }
        }
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) {
            // 100 Continue, 102 Processing, 103 Early Hints: the real
            // response follows. 101 would switch protocols, never asked for.
            interim += 1;
            if status == 101 || interim > MAX_INTERIM_RESPONSES {
                return Err(HttpError::Protocol(format!(
                    "unexpected interim response {status}"
                )));
            }
            buf.drain(..head_len);
            continue;
        }
        let reason = resp.reason.unwrap_or("").to_owned();
        let version = resp.version.unwrap_or(1);
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).trim().to_owned(),
                )
            })
            .collect();
        break (status, reason, version, headers, head_len);
    };

    let find = |name: &str| last_header(&headers, name);
    // Chunked wins whatever the version says (HTTP/1.0 + chunked exists).
    // A multipart stream is read to EOF even if it claims a length: some
    // servers put a bogus Content-Length on endless streams.
    let is_multipart = find("content-type")
        .map(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        })
        .unwrap_or(false);
    let framing = if find("transfer-encoding")
        .map(|te| te.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false)
    {
        Framing::Chunked(ChunkState::Size)
    } else if let Some(len) = find("content-length")
        .filter(|_| !is_multipart)
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Framing::Length(len)
    } else {
        Framing::Close
    };

    // Keep the bytes that followed the head: they are the body's start.
    buf.drain(..head_len);
    Ok(Response {
        status,
        reason,
        version,
        headers,
        body: Body::new(stream, buf, framing),
    })
}

enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// Expecting the line end after a chunk's data.
    DataEnd,
    /// The zero-size chunk arrived.
    Done,
}

enum Framing {
    Close,
    Length(u64),
    Chunked(ChunkState),
}

/// A response body, handed out as slices of one read buffer.
pub(crate) struct Body {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    framing: Framing,
    eof: bool,
}

impl Body {
    /// A body whose first bytes (read with the head) are `buffered`.
    fn new(stream: Box<dyn Io>, mut buffered: Vec<u8>, framing: Framing) -> Body {
        let end = buffered.len();
        buffered.resize(READ_BUFFER_SIZE.max(end), 0);
        Body {
            stream,
            buf: buffered,
            start: 0,
            end,
            framing,
            eof: false,
        }
    }

    /// Read more bytes into the buffer; false at EOF. A buffer that is
    /// still full after compaction is an error, never a 0-byte read taken
    /// for EOF.
    async fn fill(&mut self) -> Result<bool, HttpError> {
        if self.eof {
            return Ok(false);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            // Only for a partial chunk-size line: move it to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(HttpError::Protocol(format!(
                "read buffer full ({} bytes) without a complete line",
                self.buf.len()
            )));
        }
        let n = self
            .stream
            .read(&mut self.buf[self.end..])
            .await
            .map_err(HttpError::Io)?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end += n;
        Ok(true)
    }

    /// Whether [`Body::read_direct`] can be used now: nothing is buffered
    /// and the framing has body bytes due (not a chunk-size line).
    pub(crate) fn can_read_direct(&self) -> bool {
        self.start == self.end
            && !self.eof
            && match &self.framing {
                Framing::Close => true,
                Framing::Length(left) => *left > 0,
                Framing::Chunked(ChunkState::Data(left)) => *left > 0,
                Framing::Chunked(_) => false,
            }
    }

    /// Read body bytes straight from the socket into `dst` (no buffer in
    /// between). Returns 0 at the end of the body. Only valid when
    /// [`Body::can_read_direct`] said so.
    pub(crate) async fn read_direct(&mut self, dst: &mut [u8]) -> Result<usize, HttpError> {
        let limit = match &self.framing {
            Framing::Close => dst.len(),
            Framing::Length(left) | Framing::Chunked(ChunkState::Data(left)) => {
                usize::try_from(*left).map_or(dst.len(), |l| l.min(dst.len()))
            }
            Framing::Chunked(_) => 0,
        };
        if limit == 0 || self.start != self.end {
            return Ok(0);
        }
        let n = self
            .stream
            .read(&mut dst[..limit])
            .await
            .map_err(HttpError::Io)?;
        match &mut self.framing {
            Framing::Close => {}
            Framing::Length(left) => *left -= n as u64,
            Framing::Chunked(state) => {
                if n == 0 {
                    return Err(HttpError::Protocol(
                        "connection closed inside a chunk".into(),
                    ));
                }
                if let ChunkState::Data(left) = state {
                    *left -= n as u64;
                    if *left == 0 {
                        *state = ChunkState::DataEnd;
                    }
                }
            }
        }
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// The next piece of the body, `None` at its end. The slice is valid
    /// until the next call.
    pub(crate) async fn chunk(&mut self) -> Result<Option<&[u8]>, HttpError> {
        loop {
            match &mut self.framing {
                Framing::Close => {
                    if self.start == self.end && !self.fill().await? {
                        return Ok(None);
                    }
                    let (s, e) = (self.start, self.end);
                    self.start = e;
                    return Ok(Some(&self.buf[s..e]));
                }
                Framing::Length(left) => {
                    if *left == 0 {
                        return Ok(None);
                    }
                    if self.start == self.end && !self.fill().await? {
                        return Ok(None);
                    }
                    let Framing::Length(left) = &mut self.framing else {
                        unreachable!()
                    };
                    let n =
                        (self.end - self.start).min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    let s = self.start;
                    self.start += n;
                    return Ok(Some(&self.buf[s..s + n]));
                }
                Framing::Chunked(state) => match state {
                    ChunkState::Done => return Ok(None),
                    ChunkState::Data(left) => {
                        if self.start == self.end {
                            if !self.fill().await? {
                                return Err(HttpError::Protocol(
                                    "connection closed inside a chunk".into(),
                                ));
                            }
                            continue;
                        }
                        let n = (self.end - self.start)
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= n as u64;
                        if *left == 0 {
                            *state = ChunkState::DataEnd;
                        }
                        let s = self.start;
                        self.start += n;
                        return Ok(Some(&self.buf[s..s + n]));
                    }
                    ChunkState::Size | ChunkState::DataEnd => {
                        let data = &self.buf[self.start..self.end];
                        let Some(nl) = memchr::memchr(b'\n', data) else {
                            if data.len() > MAX_CHUNK_LINE {
                                return Err(HttpError::Protocol("chunk-size line too long".into()));
                            }
                            if !self.fill().await? {
                                return Ok(None);
                            }
                            continue;
                        };
                        let line = &data[..nl];
                        self.start += nl + 1;
                        if matches!(state, ChunkState::DataEnd) {
                            // Lenient: the CRLF after chunk data may be a bare LF.
                            *state = ChunkState::Size;
                            if line.iter().all(|b| b.is_ascii_whitespace()) {
                                continue;
                            }
                        }
                        let size = parse_chunk_size(line).ok_or_else(|| {
                            HttpError::Protocol(format!(
                                "bad chunk-size line {:?}",
                                String::from_utf8_lossy(&line[..line.len().min(40)])
                            ))
                        })?;
                        let Framing::Chunked(state) = &mut self.framing else {
                            unreachable!()
                        };
                        *state = match size {
                            None => continue,
                            Some(0) => ChunkState::Done,
                            Some(n) => ChunkState::Data(n),
                        };
                    }
                },
            }
        }
    }
}

/// Parse `bytes` as a server's answer (response head, interim responses,
/// HTTP/0.9, chunked or length-framed body) and drain the body. Returns the
/// status and the body length, or the error. For the fuzz target.
#[cfg(feature = "internals")]
pub(crate) async fn parse_response_bytes(bytes: Vec<u8>) -> Result<(u16, usize), String> {
    let stream = tokio::io::join(std::io::Cursor::new(bytes), tokio::io::sink());
    let mut resp = read_response(Box::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let mut len = 0;
    while let Some(piece) = resp.body.chunk().await.map_err(|e| e.to_string())? {
        len += piece.len();
    }
    Ok((resp.status, len))
}

/// Parse a chunk-size line: hex digits, optional `;extensions`. Returns
/// `Some(None)` for a blank line (tolerated), `None` when unparseable.
fn parse_chunk_size(line: &[u8]) -> Option<Option<u64>> {
    let text = std::str::from_utf8(line).ok()?;
    let digits = text.split(';').next().unwrap_or("").trim();
    if digits.is_empty() {
        return Some(None);
    }
    u64::from_str_radix(digits, 16).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(bytes: &'static [u8], framing: Framing) -> Body {
        let (client, mut server) = tokio::io::duplex(64);
        crate::runtime::RUNTIME.spawn(async move {
            let _ = server.write_all(bytes).await;
        });
        Body {
            stream: Box::new(client),
            buf: vec![0; 16],
            start: 0,
            end: 0,
            framing,
            eof: false,
        }
    }

    fn collect(mut body: Body) -> Result<Vec<u8>, HttpError> {
        crate::runtime::RUNTIME.block_on(async move {
            let mut out = Vec::new();
            while let Some(c) = body.chunk().await? {
                out.extend_from_slice(c);
            }
            Ok(out)
        })
    }

    #[test]
    fn chunked_body_is_decoded() {
        let body = body_of(
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
            Framing::Chunked(ChunkState::Size),
        );
        assert_eq!(collect(body).unwrap(), b"hello world");
    }

    #[test]
    fn chunked_body_with_bare_lf() {
        let body = body_of(b"3\nabc\n2\nde\n0\n\n", Framing::Chunked(ChunkState::Size));
        assert_eq!(collect(body).unwrap(), b"abcde");
    }

    #[test]
    fn bad_chunk_size_is_an_error() {
        let body = body_of(b"zz\r\nabc", Framing::Chunked(ChunkState::Size));
        assert!(matches!(collect(body), Err(HttpError::Protocol(_))));
    }

    #[test]
    fn length_body_stops_at_length() {
        let body = body_of(b"abcdefgh", Framing::Length(5));
        assert_eq!(collect(body).unwrap(), b"abcde");
    }

    fn response_of(bytes: &'static [u8]) -> Result<(Response, Vec<u8>), HttpError> {
        crate::runtime::RUNTIME.block_on(async move {
            let stream = tokio::io::join(std::io::Cursor::new(bytes), tokio::io::sink());
            let mut resp = read_response(Box::new(stream)).await?;
            let mut body = Vec::new();
            while let Some(c) = resp.body.chunk().await? {
                body.extend_from_slice(c);
            }
            Ok((resp, body))
        })
    }

    #[test]
    fn interim_responses_are_skipped() {
        let (resp, body) = response_of(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\nLink: x\n\nHTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef",
        )
        .expect("response");
        assert_eq!((resp.status, resp.version), (200, 0));
        assert_eq!(body, b"abc");
    }

    #[test]
    fn endless_interim_responses_are_an_error() {
        let err = response_of(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("protocol error: unexpected interim response 100")
        );
    }

    #[test]
    fn http09_body_only_for_mjpeg_starts() {
        let (resp, body) =
            response_of(b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\nxx").expect("0.9");
        assert_eq!((resp.status, resp.reason.as_str()), (200, "HTTP/0.9"));
        assert_eq!(resp.header("content-type"), None);
        assert_eq!(body, b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\nxx");
        let (resp, body) = response_of(b"\xFF\xD8\xFF\xE0rest").expect("0.9");
        assert_eq!(resp.header("content-type"), Some("image/jpeg"));
        assert_eq!(body, b"\xFF\xD8\xFF\xE0rest");
        for garbage in [&b"garbage\r\n\r\n"[..], b"-x\r\n\r\n", b"\xFF\xD9\r\n\r\n"] {
            let garbage: &'static [u8] = Box::leak(garbage.to_vec().into_boxed_slice());
            assert!(
                matches!(response_of(garbage), Err(HttpError::Protocol(_))),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn a_full_buffer_is_never_eof() {
        // A chunk-size line longer than the whole buffer: an error, not
        // the body's end (the buffer here is 16 bytes, the line cap 1024).
        let body = body_of(
            b"000000000000000000000000000000",
            Framing::Chunked(ChunkState::Size),
        );
        let err = collect(body).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("protocol error: read buffer full (16 bytes) without a complete line")
        );
    }

    #[test]
    fn head_end_finds_crlf_and_lf() {
        assert_eq!(head_end(b"HTTP/1.0 200 OK\r\n\r\nxx", 0), Some(19));
        assert_eq!(head_end(b"HTTP/1.0 200 OK\n\nxx", 0), Some(17));
        assert_eq!(head_end(b"HTTP/1.0 200 OK\r\nA: b\r\n", 0), None);
    }
}
