// SPDX-License-Identifier: MPL-2.0

//! Things that sit between `mjpegsrc` and a fake camera: an HTTP proxy
//! (absolute-form GET and CONNECT, optionally demanding credentials), a
//! SOCKS5 server (no auth or user/password), and a TLS front with a fresh
//! self-signed certificate whose PEM the test can hand to `ssl-ca-file`.
//! Each records what it received; every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::lock;

/// How long a relay or handshake read may block before giving up.
const HOLD: Duration = Duration::from_secs(30);

/// A listener on 127.0.0.1:0 whose accept loop hands each connection to
/// `serve` on its own thread, until dropped.
struct Listener {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local_addr");
        let down = Arc::new(AtomicBool::new(false));
        let d = down.clone();
        let serve = Arc::new(serve);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if d.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(HOLD));
                let _ = stream.set_write_timeout(Some(HOLD));
                let serve = serve.clone();
                std::thread::spawn(move || serve(stream));
            }
        });
        Listener {
            addr,
            down,
            accept: Some(accept),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.down.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copy both ways between `a` and `b` until either side ends.
fn relay(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pipe(a2, b2));
    pipe(b, a);
    let _ = up.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Read up to the end of a request head (`\r\n\r\n`); bytes after it are
/// returned too.
fn read_head(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(p + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

const PROXY_407: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// An HTTP proxy: `GET http://host:port/path` is forwarded in origin form,
/// `CONNECT host:port` opens a tunnel. With `require` set, a request whose
/// `Proxy-Authorization` differs gets a 407.
pub struct FakeHttpProxy {
    listener: Listener,
    rx: Mutex<mpsc::Receiver<String>>,
}

impl FakeHttpProxy {
    pub fn start(require: Option<String>) -> FakeHttpProxy {
        let (tx, rx) = mpsc::channel::<String>();
        let tx = Mutex::new(tx);
        let listener = Listener::start(move |mut client| {
            let Some((head, rest)) = read_head(&mut client) else {
                return;
            };
            let _ = lock(&tx).send(head.clone());
            if let Some(want) = &require
                && header(&head, "proxy-authorization") != Some(want.as_str())
            {
                let _ = client.write_all(PROXY_407);
                let _ = client.shutdown(Shutdown::Write);
                return;
            }
            let mut words = head.split_whitespace();
            let (Some(method), Some(target)) = (words.next(), words.next()) else {
                return;
            };
            if method == "CONNECT" {
                let Ok(upstream) = TcpStream::connect(target) else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                relay(client, upstream);
                return;
            }
            let Some(after) = target.strip_prefix("http://") else {
                return;
            };
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            let Ok(mut upstream) = TcpStream::connect(authority) else {
                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                return;
            };
            let path = if path.is_empty() { "/" } else { path };
            let forwarded = head.replacen(target, path, 1);
            if upstream.write_all(forwarded.as_bytes()).is_err()
                || upstream.write_all(&rest).is_err()
            {
                return;
            }
            relay(client, upstream);
        });
        FakeHttpProxy {
            listener,
            rx: Mutex::new(rx),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listener.addr.port())
    }

    /// The next request head received, waiting at most `timeout`.
    pub fn next_request(&self, timeout: Duration) -> Option<String> {
        lock(&self.rx).recv_timeout(timeout).ok()
    }

    /// Request heads received so far and not yet taken.
    pub fn take_requests(&self) -> Vec<String> {
        lock(&self.rx).try_iter().collect()
    }
}

/// What a SOCKS5 client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksRequest {
    /// Authentication methods offered.
    pub methods: Vec<u8>,
    /// User name and password, when user/password authentication ran.
    pub credentials: Option<(String, String)>,
    /// The destination as sent: `host:port`.
    pub target: String,
    /// Whether the destination was a domain name (remote DNS).
    pub by_name: bool,
}

/// A SOCKS5 server (RFC 1928, CONNECT only). With `require`, only
/// user/password authentication with these credentials is accepted.
pub struct FakeSocks5 {
    listener: Listener,
    rx: Mutex<mpsc::Receiver<SocksRequest>>,
}

impl FakeSocks5 {
    pub fn start(require: Option<(String, String)>) -> FakeSocks5 {
        let (tx, rx) = mpsc::channel::<SocksRequest>();
        let tx = Mutex::new(tx);
        let listener = Listener::start(move |mut client| {
            let Some(req) = socks_handshake(&mut client, require.as_ref()) else {
                return;
            };
            let target = req.clone();
            let _ = lock(&tx).send(req);
            let Ok(upstream) = TcpStream::connect(target.target.as_str()) else {
                let _ = client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
                return;
            };
            if client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).is_ok() {
                relay(client, upstream);
            }
        });
        FakeSocks5 {
            listener,
            rx: Mutex::new(rx),
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.addr.port()
    }

    /// The next CONNECT request, waiting at most `timeout`.
    pub fn next_request(&self, timeout: Duration) -> Option<SocksRequest> {
        lock(&self.rx).recv_timeout(timeout).ok()
    }
}

fn read_exact(s: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut v = vec![0; n];
    s.read_exact(&mut v).ok()?;
    Some(v)
}

fn socks_handshake(s: &mut TcpStream, require: Option<&(String, String)>) -> Option<SocksRequest> {
    let hello = read_exact(s, 2)?;
    if hello[0] != 5 {
        return None;
    }
    let methods = read_exact(s, hello[1].into())?;
    let mut credentials = None;
    match require {
        None if methods.contains(&0) => s.write_all(&[5, 0]).ok()?,
        Some(want) if methods.contains(&2) => {
            s.write_all(&[5, 2]).ok()?;
            let v = read_exact(s, 2)?;
            let user = read_exact(s, v[1].into())?;
            let plen = read_exact(s, 1)?;
            let pw = read_exact(s, plen[0].into())?;
            let got = (
                String::from_utf8_lossy(&user).into_owned(),
                String::from_utf8_lossy(&pw).into_owned(),
            );
            let ok = &got == want;
            s.write_all(&[1, if ok { 0 } else { 1 }]).ok()?;
            if !ok {
                return None;
            }
            credentials = Some(got);
        }
        _ => {
            let _ = s.write_all(&[5, 0xFF]);
            return None;
        }
    }
    let req = read_exact(s, 4)?;
    if req[0] != 5 || req[1] != 1 {
        return None;
    }
    let (host, by_name) = match req[3] {
        1 => {
            let a = read_exact(s, 4)?;
            (format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]), false)
        }
        3 => {
            let len = read_exact(s, 1)?;
            let name = read_exact(s, len[0].into())?;
            (String::from_utf8_lossy(&name).into_owned(), true)
        }
        4 => {
            let a: [u8; 16] = read_exact(s, 16)?.try_into().ok()?;
            (format!("[{}]", std::net::Ipv6Addr::from(a)), false)
        }
        _ => return None,
    };
    let port = read_exact(s, 2)?;
    Some(SocksRequest {
        methods,
        credentials,
        target: format!("{host}:{}", u16::from_be_bytes([port[0], port[1]])),
        by_name,
    })
}

/// TLS in front of a plain server: terminates TLS with a fresh self-signed
/// certificate for 127.0.0.1 and localhost and forwards the plaintext to
/// `127.0.0.1:backend`.
pub struct TlsFront {
    listener: Listener,
    /// The certificate, PEM encoded.
    pub cert_pem: String,
}

impl TlsFront {
    pub fn start(backend: u16) -> TlsFront {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("self-signed certificate");
        let cert_pem = ck.cert.pem();
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("TLS certificate"),
        );
        let listener = Listener::start(move |client| {
            let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else {
                return;
            };
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", backend)) else {
                return;
            };
            let _ = upstream.set_read_timeout(Some(Duration::from_millis(20)));
            let _ = client.set_read_timeout(Some(Duration::from_millis(20)));
            let mut tls = rustls::StreamOwned::new(conn, client);
            let mut up = upstream;
            let mut buf = [0u8; 16 * 1024];
            let deadline = std::time::Instant::now() + HOLD;
            // One thread, both directions, short read timeouts: rustls'
            // stream is not split between threads.
            while std::time::Instant::now() < deadline {
                match tls.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if up.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => return,
                }
                match up.read(&mut buf) {
                    Ok(0) => {
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                        return;
                    }
                    Ok(n) => {
                        if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                            return;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => return,
                }
            }
        });
        TlsFront { listener, cert_pem }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.listener.addr.port())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
