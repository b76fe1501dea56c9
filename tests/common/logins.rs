// SPDX-License-Identifier: MPL-2.0

//! Helpers for the `mjpegsink` login, signed-link and signal tests: a sink
//! in a `gst_check::Harness`, raw HTTP requests from a chosen loopback
//! address (127.0.0.1, 127.0.0.2 ...), and a stream reader that timestamps
//! every part. Every read is bounded by [`super::WAIT`].

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;

use super::WAIT;

/// An `mjpegsink` on 127.0.0.1, port 0, in a harness; `props` are set
/// before it starts (READY-only properties).
pub struct Sink {
    pub h: gst_check::Harness,
    pub port: u16,
    seq: u32,
}

impl Sink {
    pub fn start(props: &[(&str, glib::Value)]) -> Sink {
        let e = super::test_sink(props);
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), None);
        h.play();
        h.set_src_caps_str("image/jpeg,width=320,height=240,framerate=30/1");
        let port = e.property::<i32>("current-port");
        assert!(port > 0, "current-port {port}");
        Sink {
            h,
            port: port as u16,
            seq: 0,
        }
    }

    pub fn element(&self) -> gst::Element {
        self.h.element().expect("element")
    }

    /// Push the next synthetic frame.
    pub fn push(&mut self) {
        self.seq += 1;
        let buf = gst::Buffer::from_slice(super::jpeg(320, 240, self.seq));
        self.h.push(buf).expect("push");
    }

    pub fn stat(&self, field: &str) -> u64 {
        self.element()
            .property::<gst::Structure>("stats")
            .get::<u64>(field)
            .expect(field)
    }

    /// The `sign-url` action signal.
    pub fn sign_url(&self, path: &str, ttl: u32) -> Option<String> {
        self.element()
            .emit_by_name::<Option<String>>("sign-url", &[&path, &ttl])
    }
}

/// `Authorization: Basic ...\r\n`.
pub fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// A TCP connection to 127.0.0.1:`port` from `from` (a loopback address),
/// with bounded reads and writes.
pub fn connect_from(from: IpAddr, port: u16) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(from, 0).into())
        .expect("bind source");
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    s.connect_timeout(&to.into(), WAIT).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    let _ = s.set_nodelay(true);
    s
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET target` from `from` with `Connection: close` and `extra` header
/// lines; the whole response (the head only for a stream).
pub fn get_from(from: IpAddr, port: u16, target: &str, extra: &str) -> Response {
    let mut s = connect_from(from, port);
    let req =
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).expect("read response head");
        assert!(n > 0, "closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {head:?}"));
    let mut r = Response {
        status,
        head,
        body: buf[head_end..].to_vec(),
    };
    if r.header("Content-Type")
        .is_some_and(|t| t.starts_with("multipart/"))
    {
        return r;
    }
    let len: Option<usize> = r.header("Content-Length").and_then(|l| l.parse().ok());
    while len.is_none_or(|l| r.body.len() < l) {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => r.body.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading the body: {e}"),
        }
    }
    r
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A streaming client that records when each part arrived, on its own
/// thread, until the server closes or the test drops it.
pub struct StreamReader {
    pub addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    closed: mpsc::Receiver<()>,
    stream: TcpStream,
}

impl StreamReader {
    /// Open `/stream` from `from` and read its response head.
    pub fn open(from: IpAddr, port: u16) -> StreamReader {
        let mut s = connect_from(from, port);
        s.write_all(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n")
            .expect("write request");
        let addr = s.local_addr().expect("addr");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while find(&head, b"\r\n\r\n").is_none() {
            let n = s.read(&mut byte).expect("read head");
            assert!(n == 1, "closed before the head: {head:?}");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.0 200"),
            "{:?}",
            String::from_utf8_lossy(&head)
        );
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (tx, closed) = mpsc::channel();
        let reader = s.try_clone().expect("clone");
        let a = arrivals.clone();
        std::thread::spawn(move || {
            let _ = read_parts(reader, &a);
            let _ = tx.send(());
        });
        StreamReader {
            addr,
            arrivals,
            closed,
            stream: s,
        }
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        super::lock(&self.arrivals).clone()
    }

    /// Wait (bounded) until at least `n` parts arrived.
    pub fn wait_parts(&self, n: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.arrivals().len() >= n {
                return true;
            }
            std::thread::yield_now();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        false
    }

    /// Whether the server closed the stream within `WAIT`.
    pub fn wait_closed(&self) -> bool {
        self.closed.recv_timeout(WAIT).is_ok()
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Read `Content-Length` parts and note when each body was complete.
fn read_parts(mut s: TcpStream, arrivals: &Mutex<Vec<Instant>>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        // Part headers end; the length is in them.
        while let Some(h) = find(&buf, b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&buf[..h]).into_owned();
            let Some(len) = headers.split("\r\n").find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            }) else {
                // The preamble or a delimiter line: skip past it.
                buf.drain(..h + 4);
                continue;
            };
            if buf.len() < h + 4 + len {
                break;
            }
            super::lock(arrivals).push(Instant::now());
            buf.drain(..h + 4 + len);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
