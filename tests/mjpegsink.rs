// SPDX-License-Identifier: MPL-2.0

//! mjpegsink element tests: exact wire format read by raw TCP clients,
//! fan-out to many clients, slow and stalled clients, endpoints, auth,
//! limits, state changes, and interop with souphttpsrc ! multipartdemux.
//!
//! Every server binds port 0 on 127.0.0.1; every wait is bounded.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

/// Upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// A raw HTTP client that sees exactly the bytes on the wire.

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Head {
    raw: String,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

#[derive(Debug, Clone)]
struct Part {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("read timeout");
        s.set_write_timeout(Some(WAIT)).expect("write timeout");
        Client { s, buf: Vec::new() }
    }

    /// Send `request` verbatim.
    fn raw(port: u16, request: &str) -> Client {
        let mut c = Client::connect(port);
        c.s.write_all(request.as_bytes()).expect("send request");
        c
    }

    fn get(port: u16, path: &str) -> Client {
        Client::raw(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n"),
        )
    }

    fn local_addr(&self) -> SocketAddr {
        self.s.local_addr().expect("local addr")
    }

    /// Read more bytes; Ok(0) at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.s.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn read_until(&mut self, pat: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                return self.buf.drain(..i + pat.len()).collect();
            }
            let n = self.fill().expect("read");
            assert!(
                n > 0,
                "EOF while waiting for {:?}; have {:?}",
                String::from_utf8_lossy(pat),
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let got = self.fill().expect("read");
            assert!(got > 0, "EOF after {} of {n} bytes", self.buf.len());
        }
        self.buf.drain(..n).collect()
    }

    fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().expect("read") > 0 {}
        std::mem::take(&mut self.buf)
    }

    fn head(&mut self) -> Head {
        let raw = String::from_utf8(self.read_until(b"\r\n\r\n")).expect("ascii head");
        let (status, headers) = parse_head(&raw);
        Head {
            raw,
            status,
            headers,
        }
    }

    /// Response head plus the first delimiter line of a stream.
    fn stream_start(&mut self, boundary: &str) -> Head {
        let head = self.head();
        assert_eq!(head.status, 200, "{}", head.raw);
        let first = self.read_exact(boundary.len() + 4);
        assert_eq!(first, format!("--{boundary}\r\n").as_bytes());
        head
    }

    /// Next part of a normal (Content-Length) stream, None at the close
    /// delimiter (then EOF is checked).
    fn next_part(&mut self, boundary: &str) -> Option<Part> {
        let first = self.read_until(b"\r\n");
        if first == format!("--{boundary}--\r\n").as_bytes() {
            let rest = self.read_to_end();
            assert!(rest.is_empty(), "bytes after close delimiter: {rest:?}");
            return None;
        }
        let mut block = first;
        if block != b"\r\n" {
            block.extend(self.read_until(b"\r\n\r\n"));
        }
        let text = String::from_utf8(block).expect("ascii part headers");
        let headers: Vec<(String, String)> = text
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .expect("Content-Length");
        let body = self.read_exact(len);
        let delim = self.read_exact(boundary.len() + 6);
        assert_eq!(delim, format!("\r\n--{boundary}\r\n").as_bytes());
        Some(Part { headers, body })
    }

    /// Every part until the close delimiter and EOF.
    fn all_parts(&mut self, boundary: &str) -> Vec<Part> {
        let mut v = Vec::new();
        while let Some(p) = self.next_part(boundary) {
            v.push(p);
        }
        v
    }
}

fn fake_jpeg(n: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n)));
    v.extend([0xFF, 0xD9]);
    v
}

/// A harness around a fresh mjpegsink on 127.0.0.1, port 0, already
/// PLAYING with caps set.
fn harness(props: &[(&str, glib::Value)]) -> (gst_check::Harness, u16) {
    // Configure before the harness starts the element.
    let e = test_sink(props);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), None);
    h.play();
    h.set_src_caps_str("image/jpeg,width=320,height=240,framerate=30/1");
    let port = h
        .element()
        .expect("element")
        .property::<i32>("current-port");
    assert!(port > 0, "current-port {port}");
    (h, port as u16)
}

fn signal_channel(e: &gst::Element, name: &str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    e.connect(name, false, move |args| {
        if let Ok(peer) = args[1].get::<String>() {
            let _ = tx.lock().map(|t| t.send(peer));
        }
        None
    });
    rx
}

/// Wait (bounded) for the signal naming `peer`; other peers' signals seen
/// meanwhile are kept in `seen`.
fn wait_signal(rx: &mpsc::Receiver<String>, peer: SocketAddr) {
    wait_signals(rx, &[peer]);
}

fn wait_signals(rx: &mpsc::Receiver<String>, peers: &[SocketAddr]) {
    let mut missing: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    let deadline = Instant::now() + WAIT;
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no signal for {missing:?}"));
        missing.retain(|p| *p != got);
    }
}

/// Wait (bounded) until a stats counter reaches `value` (counters are
/// updated by server threads, after the bytes a client sees).
fn wait_stat(e: &gst::Element, field: &str, value: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = stat(e, field);
        if v == value {
            return;
        }
        assert!(Instant::now() < deadline, "{field} = {v}, expected {value}");
        std::thread::yield_now();
    }
}

fn stats(e: &gst::Element) -> gst::Structure {
    e.property::<gst::Structure>("stats")
}

fn stat(e: &gst::Element, field: &str) -> u64 {
    stats(e).get::<u64>(field).expect(field)
}

fn is_timestamp(s: &str) -> bool {
    let Some((secs, micros)) = s.split_once('.') else {
        return false;
    };
    !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && micros.len() == 6
        && micros.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------

#[test]
fn property_metadata() {
    init();
    let e = gst::ElementFactory::make("mjpegsink")
        .build()
        .expect("mjpegsink");
    let factory = e.factory().expect("factory");
    assert_eq!(
        factory.metadata(gst::ELEMENT_METADATA_LONGNAME),
        Some("MJPEG HTTP server sink")
    );
    assert_eq!(
        factory.metadata(gst::ELEMENT_METADATA_KLASS),
        Some("Sink/Network/HTTP")
    );
    assert_eq!(factory.rank(), gst::Rank::NONE);

    // Every property of the element, with its exact type, default and
    // flags: a property added, removed, retyped, given another default or
    // another mutability fails here.
    let rw = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY;
    let ro = glib::ParamFlags::READABLE;
    let none = None::<String>;
    let table: Vec<(&str, glib::Type, glib::Value, glib::ParamFlags)> = vec![
        ("host", glib::Type::STRING, "localhost".to_value(), rw),
        ("port", glib::Type::I32, 8080i32.to_value(), rw),
        ("current-port", glib::Type::I32, 0i32.to_value(), ro),
        (
            "boundary",
            glib::Type::STRING,
            "boundarydonotcross".to_value(),
            rw,
        ),
        ("max-clients", glib::Type::U32, 0u32.to_value(), rw),
        ("user-id", glib::Type::STRING, none.to_value(), rw),
        ("user-pw", glib::Type::STRING, none.to_value(), rw),
        ("allow-origin", glib::Type::STRING, none.to_value(), rw),
        ("timeout", glib::Type::U32, 10u32.to_value(), rw),
        ("resend-interval", glib::Type::U32, 1000u32.to_value(), rw),
        ("unsent-limit", glib::Type::U32, 32768u32.to_value(), rw),
        (
            "advance-headers",
            glib::Type::from_name("GstMjpegSinkAdvanceHeaders").expect("enum type"),
            glib::EnumClass::with_type(
                glib::Type::from_name("GstMjpegSinkAdvanceHeaders").expect("enum type"),
            )
            .and_then(|c| c.to_value_by_nick("chromium"))
            .expect("chromium"),
            rw,
        ),
        (
            "stats",
            gst::Structure::static_type(),
            None::<gst::Structure>.to_value(),
            ro,
        ),
        (
            "trusted-proxies",
            gst::Array::static_type(),
            gst::Array::new(Vec::<String>::new()).to_value(),
            rw,
        ),
        ("link-secret", glib::Type::STRING, none.to_value(), rw),
        ("max-connections", glib::Type::U32, 0u32.to_value(), rw),
        (
            "allowed-hosts",
            gst::Array::static_type(),
            gst::Array::new(Vec::<String>::new()).to_value(),
            rw,
        ),
        ("tls-cert", glib::Type::STRING, none.to_value(), rw),
        ("tls-key", glib::Type::STRING, none.to_value(), rw),
        ("drop-same-frames", glib::Type::U32, 0u32.to_value(), rw),
        ("clients", glib::Type::U32, 0u32.to_value(), ro),
        ("mount", glib::Type::STRING, Some("/").to_value(), rw),
        ("listen-fd", glib::Type::I32, (-1i32).to_value(), rw),
    ];
    let own: Vec<glib::ParamSpec> = e
        .list_properties()
        .iter()
        .filter(|p| p.owner_type() == e.type_())
        .cloned()
        .collect();
    let rows: HashMap<&str, &glib::Type> = table.iter().map(|r| (r.0, &r.1)).collect();
    assert_eq!(rows.len(), table.len(), "a property twice in the table");
    let mut names: Vec<&str> = own.iter().map(|p| p.name()).collect();
    let mut want: Vec<&str> = table.iter().map(|r| r.0).collect();
    names.sort_unstable();
    want.sort_unstable();
    assert_eq!(names, want, "the element's own properties");
    for (name, ty, default, flags) in &table {
        let p = e.find_property(name).expect("property");
        assert_eq!(p.value_type(), *ty, "{name}: type");
        assert_eq!(p.flags(), *flags, "{name}: flags");
        assert_eq!(p.default_value().type_(), *ty, "{name}: default's type");
        if *name == "stats" {
            // (The debug print of a NULL structure is a GStreamer critical.)
            let d = p.default_value().get::<Option<gst::Structure>>();
            assert!(matches!(d, Ok(None)), "stats: pspec default {d:?}");
        } else {
            assert_eq!(
                format!("{:?}", p.default_value()),
                format!("{default:?}"),
                "{name}: pspec default"
            );
        }
        assert!(!p.nick().is_empty(), "{name}: nick");
        let blurb = p.blurb().unwrap_or_default();
        assert!(blurb.len() > 20, "{name}: blurb {blurb:?}");
        assert!(
            !blurb.contains("(default") && !blurb.contains("(read-only)"),
            "{name}: the blurb repeats what gst-inspect prints: {blurb:?}"
        );
        if *name != "stats" {
            assert_eq!(
                format!("{:?}", e.property_value(name)),
                format!("{default:?}"),
                "{name}: initial value"
            );
        }
    }
    for name in ["port", "current-port"] {
        let p = e
            .find_property(name)
            .and_then(|p| p.downcast::<glib::ParamSpecInt>().ok())
            .expect("int");
        assert_eq!((p.minimum(), p.maximum()), (0, 65535), "{name}: range");
    }
    // The stats blurb names every field of the structure.
    let stats_blurb = e
        .find_property("stats")
        .and_then(|p| p.blurb().map(str::to_string))
        .unwrap_or_default();
    for (field, _) in stats(&e).iter() {
        assert!(
            stats_blurb.contains(field.as_str()),
            "stats blurb misses {field}"
        );
    }

    // Round trips of the writable properties.
    let sets: Vec<(&str, glib::Value)> = vec![
        ("host", "0.0.0.0".to_value()),
        ("port", 9999i32.to_value()),
        ("boundary", "my-boundary_1".to_value()),
        ("max-clients", 7u32.to_value()),
        ("user-id", Some("u").to_value()),
        ("user-pw", Some("p").to_value()),
        ("allow-origin", Some("*").to_value()),
        ("timeout", 3u32.to_value()),
        ("resend-interval", 250u32.to_value()),
        ("unsent-limit", 4096u32.to_value()),
    ];
    for (k, v) in &sets {
        e.set_property_from_value(k, v);
        assert_eq!(
            format!("{:?}", e.property_value(k)),
            format!("{v:?}"),
            "{k}: round trip"
        );
    }
    // Invalid boundary is refused and the old one kept.
    e.set_property("boundary", "bad boundary;");
    assert_eq!(e.property::<String>("boundary"), "my-boundary_1");

    let s = stats(&e);
    assert_eq!(s.name(), "mjpegsink-stats");
    for f in [
        "clients",
        "clients-total",
        "frames-in",
        "frames-out",
        "frames-resent",
        "frames-skipped",
        "bytes-out",
        "clients-dropped-timeout",
        "clients-rejected-max",
        "requests-unauthorized",
        "requests-snapshot",
        "requests-state",
        "requests-invalid",
        "logins-failed",
        "requests-throttled",
    ] {
        assert_eq!(s.get::<u64>(f), Ok(0), "{f}");
    }
}

#[test]
fn wire_format_is_byte_exact() {
    let (mut h, port) = harness(&[("boundary", "testb".to_value())]);
    let e = h.element().expect("element");
    let connected = signal_channel(&e, "client-connected");
    let disconnected = signal_channel(&e, "client-disconnected");

    // Client 1 (HTTP/1.1) connects before any frame.
    let mut c1 = Client::get(port, "/stream");
    let head = c1.head();
    assert_eq!(
        head.raw,
        "HTTP/1.0 200 OK\r\n\
         Content-Type: multipart/x-mixed-replace;boundary=testb\r\n\
         Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n\
         Pragma: no-cache\r\n\
         Connection: close\r\n\r\n"
    );
    assert_eq!(c1.read_exact(9), b"--testb\r\n");
    wait_signal(&connected, c1.local_addr());
    assert_eq!(stat(&e, "clients"), 1);

    let read_part = |c: &mut Client, jpeg: &[u8]| {
        let headers = String::from_utf8(c.read_until(b"\r\n\r\n")).expect("ascii");
        let ts = headers
            .strip_prefix(&format!(
                "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: ",
                jpeg.len()
            ))
            .and_then(|r| r.strip_suffix("\r\n\r\n"))
            .unwrap_or_else(|| panic!("part headers {headers:?}"))
            .to_string();
        assert!(is_timestamp(&ts), "X-Timestamp {ts:?}");
        let mut expected = jpeg.to_vec();
        expected.extend_from_slice(b"\r\n--testb\r\n");
        assert_eq!(c.read_exact(expected.len()), expected);
        ts
    };

    let f1 = fake_jpeg(1, 5000);
    h.push(gst::Buffer::from_slice(f1.clone())).expect("push");
    read_part(&mut c1, &f1);

    let f2 = fake_jpeg(2, 7000);
    h.push(gst::Buffer::from_slice(f2.clone())).expect("push");
    let ts2 = read_part(&mut c1, &f2);

    // A new (HTTP/1.0) client gets the newest frame at once.
    let mut c2 = Client::raw(port, "GET /?action=stream HTTP/1.0\r\n\r\n");
    let head2 = c2.head();
    assert_eq!(head2.raw, head.raw);
    assert_eq!(c2.read_exact(9), b"--testb\r\n");
    assert_eq!(read_part(&mut c2, &f2), ts2, "same frame, same timestamp");

    // advance_headers: the next part's headers follow each delimiter.
    let mut c3 = Client::get(port, "/stream?advance_headers=1");
    assert_eq!(c3.head().raw, head.raw);
    let adv = b"--testb\r\nContent-Type: image/jpeg\r\n\r\n";
    assert_eq!(c3.read_exact(adv.len()), adv);
    let mut expected = f2.clone();
    expected.extend_from_slice(b"\r\n--testb\r\nContent-Type: image/jpeg\r\n\r\n");
    assert_eq!(c3.read_exact(expected.len()), expected);

    // A Chromium User-Agent gets advance headers by default, unless it
    // asks otherwise.
    let chrome_ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                     Chrome/120.0.0.0 Safari/537.36";
    let mut c4 = Client::raw(
        port,
        &format!("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {chrome_ua}\r\n\r\n"),
    );
    c4.head();
    assert_eq!(c4.read_exact(adv.len()), adv);
    let mut c5 = Client::raw(
        port,
        &format!(
            "GET /?advance_headers=0 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {chrome_ua}\r\n\r\n"
        ),
    );
    c5.head();
    assert_eq!(c5.read_exact(9), b"--testb\r\n");
    read_part(&mut c5, &f2);
    assert_eq!(c4.read_exact(expected.len()), expected);

    let f3 = fake_jpeg(3, 100);
    h.push(gst::Buffer::from_slice(f3.clone())).expect("push");
    read_part(&mut c1, &f3);
    read_part(&mut c2, &f3);
    read_part(&mut c5, &f3);
    let mut expected3 = f3.clone();
    expected3.extend_from_slice(b"\r\n--testb\r\nContent-Type: image/jpeg\r\n\r\n");
    assert_eq!(c3.read_exact(expected3.len()), expected3);
    assert_eq!(c4.read_exact(expected3.len()), expected3);

    // EOS: close delimiter, then the connection is closed.
    assert!(h.push_event(gst::event::Eos::new()));
    for c in [&mut c1, &mut c2, &mut c5] {
        assert_eq!(c.read_to_end(), b"--testb--\r\n");
    }
    for c in [&mut c3, &mut c4] {
        assert_eq!(c.read_to_end(), b"\r\n--testb--\r\n");
    }
    let peers: Vec<SocketAddr> = [&c1, &c2, &c3, &c4, &c5]
        .iter()
        .map(|c| c.local_addr())
        .collect();
    wait_signals(&disconnected, &peers);
    let s = stats(&e);
    assert_eq!(s.get::<u64>("frames-in"), Ok(3));
    assert_eq!(s.get::<u64>("clients"), Ok(0));
    assert_eq!(s.get::<u64>("clients-total"), Ok(5));
    assert_eq!(s.get::<bool>("eos"), Ok(true));
}

#[test]
fn snapshot_state_and_errors() {
    let (mut h, port) = harness(&[("timeout", 1u32.to_value())]);
    let e = h.element().expect("element");

    // No frame yet: 503 after a bounded wait.
    let mut c = Client::get(port, "/snapshot");
    assert_eq!(c.head().status, 503);

    let f = fake_jpeg(9, 3000);
    h.push(gst::Buffer::from_slice(f.clone())).expect("push");

    for path in ["/snapshot", "/?action=snapshot"] {
        let mut c = Client::raw(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        );
        let head = c.head();
        assert_eq!(head.status, 200, "{}", head.raw);
        assert_eq!(head.header("Content-Type"), Some("image/jpeg"));
        assert_eq!(head.header("Content-Length"), Some("3004"));
        assert!(is_timestamp(head.header("X-Timestamp").unwrap_or("")));
        assert_eq!(c.read_to_end(), f);
    }

    // Keep-alive: HEAD then GET on one connection.
    let mut c = Client::raw(
        port,
        "HEAD /snapshot HTTP/1.1\r\nHost: localhost\r\n\r\nGET /state HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let head = c.head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("3004"));
    let head = c.head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("application/json"));
    let len: usize = head
        .header("Content-Length")
        .and_then(|l| l.parse().ok())
        .expect("length");
    let json: serde_json::Value =
        serde_json::from_slice(&c.read_exact(len)).expect("state is JSON");
    assert_eq!(json["frames-in"], 1);
    assert_eq!(json["width"], 320);
    assert_eq!(json["height"], 240);
    assert_eq!(json["framerate"], 30.0);
    assert_eq!(json["clients"], 0);
    assert_eq!(json["requests-snapshot"], 4);
    assert!(json["uptime"].as_f64().is_some_and(|u| u > 0.0));
    assert_eq!(json["boundary"], "boundarydonotcross");

    // HEAD on the stream: headers only, no client.
    let mut c = Client::raw(port, "HEAD /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = c.head();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Type"),
        Some("multipart/x-mixed-replace;boundary=boundarydonotcross")
    );
    assert_eq!(c.read_to_end(), b"");

    let status = |req: &str| {
        let mut c = Client::raw(port, req);
        let head = c.head();
        (head.status, head)
    };
    assert_eq!(
        status("GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n").0,
        404
    );
    assert_eq!(
        status("GET /?action=nope HTTP/1.1\r\nHost: localhost\r\n\r\n").0,
        404
    );
    let (st, head) =
        status("POST /stream HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(st, 405);
    assert_eq!(head.header("Allow"), Some("GET, HEAD"));
    assert_eq!(status("GARBAGE\r\n\r\n").0, 400);
    assert_eq!(status("GET / HTTP/1.1\r\nBad Header\r\n\r\n").0, 400);

    // None of this disturbed the element.
    wait_stat(&e, "requests-invalid", 5);
    assert_eq!(stat(&e, "requests-state"), 1);
    h.push(gst::Buffer::from_slice(fake_jpeg(10, 10)))
        .expect("push");
}

#[test]
fn basic_auth() {
    let (mut h, port) = harness(&[
        ("user-id", "user".to_value()),
        ("user-pw", "s3cret".to_value()),
    ]);
    let e = h.element().expect("element");
    let f = fake_jpeg(4, 2000);
    h.push(gst::Buffer::from_slice(f.clone())).expect("push");

    for path in ["/", "/stream", "/snapshot", "/state"] {
        for auth in ["", "Authorization: Basic dXNlcjp3cm9uZw==\r\n"] {
            let mut c = Client::raw(
                port,
                &format!(
                    "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
                ),
            );
            let head = c.head();
            assert_eq!(head.status, 401, "{path} {auth}");
            assert_eq!(
                head.header("WWW-Authenticate"),
                Some("Basic realm=\"mjpegsink\", charset=\"UTF-8\"")
            );
            let rest = c.read_to_end();
            let all = [head.raw.as_bytes(), &rest].concat();
            assert!(
                !all.windows(2).any(|w| w == [0xFF, 0xD8]),
                "frame bytes leaked to an unauthenticated client"
            );
            assert!(!all.windows(64).any(|w| w == &f[100..164]));
        }
    }
    assert_eq!(stat(&e, "requests-unauthorized"), 8);
    assert_eq!(stat(&e, "clients-total"), 0);

    // user:s3cret
    let mut c = Client::raw(
        port,
        "GET /stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic dXNlcjpzM2NyZXQ=\r\n\r\n",
    );
    c.stream_start("boundarydonotcross");
    let p = c.next_part("boundarydonotcross").expect("part");
    assert_eq!(p.body, f);
    let mut s = Client::raw(
        port,
        "GET /snapshot HTTP/1.1\r\nHost: localhost\r\nAuthorization: basic dXNlcjpzM2NyZXQ=\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(s.head().status, 200);
    assert_eq!(s.read_to_end(), f);
}

#[test]
fn max_clients_gets_503() {
    let (mut h, port) = harness(&[
        ("max-clients", 2u32.to_value()),
        ("resend-interval", 50u32.to_value()),
    ]);
    let e = h.element().expect("element");
    let disconnected = signal_channel(&e, "client-disconnected");
    let b = "boundarydonotcross";
    h.push(gst::Buffer::from_slice(fake_jpeg(1, 100)))
        .expect("push");

    let mut c1 = Client::get(port, "/stream");
    c1.stream_start(b);
    let mut c2 = Client::get(port, "/stream");
    c2.stream_start(b);
    let mut c3 = Client::get(port, "/stream");
    let head = c3.head();
    assert_eq!(head.status, 503, "{}", head.raw);
    assert_eq!(stat(&e, "clients-rejected-max"), 1);
    // Snapshots are not streaming clients.
    let mut s = Client::get(port, "/snapshot");
    assert_eq!(s.head().status, 200);

    // When one leaves (noticed at the next resend), a new one fits.
    let gone = c1.local_addr();
    drop(c1);
    wait_signal(&disconnected, gone);
    let mut c4 = Client::get(port, "/stream");
    c4.stream_start(b);
    assert!(c4.next_part(b).is_some());
    assert!(c2.next_part(b).is_some());
    assert_eq!(stat(&e, "clients"), 2);
}

#[test]
fn busy_port_is_an_error_and_null_frees_the_port() {
    init();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let p = gst::parse::launch(&format!(
        "videotestsrc ! jpegenc ! mjpegsink host=127.0.0.1 port={port}"
    ))
    .expect("pipeline");
    assert!(p.set_state(gst::State::Paused).is_err());
    let bus = p.bus().expect("bus");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(WAIT.as_secs()),
            &[gst::MessageType::Error],
        )
        .expect("error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    assert!(
        err.error().matches(gst::ResourceError::Busy),
        "{:?}",
        err.error()
    );
    assert!(
        err.error().message().contains(&port.to_string()),
        "{}",
        err.error().message()
    );
    p.set_state(gst::State::Null).expect("null");
    drop(taken);

    // port=0, then NULL: the port is free again.
    let p = gst::parse::launch(
        "videotestsrc is-live=true ! jpegenc ! mjpegsink name=s host=127.0.0.1 port=0",
    )
    .expect("pipeline");
    let bin = p.clone().downcast::<gst::Bin>().expect("bin");
    let sink = bin.by_name("s").expect("sink");
    p.set_state(gst::State::Paused).expect("paused");
    let port = sink.property::<i32>("current-port") as u16;
    assert!(port > 0);
    assert!(TcpListener::bind(("127.0.0.1", port)).is_err());
    // A client connected at shutdown must not keep the port.
    let mut c = Client::get(port, "/stream");
    c.stream_start("boundarydonotcross");
    p.set_state(gst::State::Null).expect("null");
    assert_eq!(sink.property::<i32>("current-port"), 0);
    TcpListener::bind(("127.0.0.1", port)).expect("port free after NULL");
    assert_eq!(c.read_to_end(), b"");
}

/// A live pipeline `videotestsrc ! jpegenc ! mjpegsink` whose sink input is
/// captured by a pad probe.
struct Source {
    pipeline: gst::Element,
    sink: gst::Element,
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    port: u16,
}

impl Source {
    fn new(num_buffers: i32, caps: &str, src_props: &str, sink_props: &str) -> Source {
        init();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true num-buffers={num_buffers} {src_props} ! {caps} ! jpegenc ! \
             mjpegsink name=sink host=127.0.0.1 port=0 resend-interval=0 {sink_props}"
        ))
        .expect("pipeline");
        let bin = pipeline.clone().downcast::<gst::Bin>().expect("bin");
        let sink = bin.by_name("sink").expect("sink");
        let captured = capture_input(&sink);
        // Live: PAUSED starts the server but produces nothing yet.
        assert_eq!(
            pipeline.set_state(gst::State::Paused),
            Ok(gst::StateChangeSuccess::NoPreroll)
        );
        let port = sink.property::<i32>("current-port") as u16;
        Source {
            pipeline,
            sink,
            captured,
            port,
        }
    }

    fn play(&self) {
        self.pipeline.set_state(gst::State::Playing).expect("play");
    }

    fn wait_eos(&self) {
        let bus = self.pipeline.bus().expect("bus");
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("EOS within 30 s");
        assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        self.captured.lock().expect("lock").clone()
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[test]
fn round_trip_jpegenc_byte_identical() {
    let src = Source::new(
        20,
        "video/x-raw,width=320,height=240,framerate=30/1",
        "pattern=ball",
        "",
    );
    let b = "boundarydonotcross";
    let mut c = Client::get(src.port, "/stream");
    c.stream_start(b);
    src.play();
    let parts = c.all_parts(b);
    src.wait_eos();
    let frames = src.frames();
    assert_eq!(frames.len(), 20);
    for p in &parts {
        assert_eq!(p.header("Content-Type"), Some("image/jpeg"));
        assert!(is_timestamp(p.header("X-Timestamp").unwrap_or("")));
    }
    let got: Vec<Vec<u8>> = parts.into_iter().map(|p| p.body).collect();
    assert_eq!(got.len(), frames.len());
    assert!(got == frames, "frames differ from what jpegenc produced");
    assert_eq!(stat(&src.sink, "frames-skipped"), 0);
}

/// 100 viewers that keep up each get every frame of a live 30 fps
/// pipeline, byte for byte, and none is skipped. (The rate they get it at
/// is measured by `bench/sink_bench.py`, not asserted here.)
#[test]
fn hundred_clients_get_every_frame() {
    const N: usize = 45;
    const K: usize = 100;
    let src = Source::new(
        N as i32,
        "video/x-raw,width=160,height=120,framerate=30/1",
        "pattern=ball",
        "",
    );
    let b = "boundarydonotcross";
    let mut clients = Vec::new();
    for _ in 0..K {
        let mut c = Client::get(src.port, "/stream");
        c.stream_start(b);
        clients.push(c);
    }
    assert_eq!(stat(&src.sink, "clients"), K as u64);
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| std::thread::spawn(move || c.all_parts(b)))
        .collect();
    src.play();
    src.wait_eos();
    let frames = src.frames();
    assert_eq!(frames.len(), N);
    for t in threads {
        let parts = t.join().expect("client thread");
        assert_eq!(parts.len(), N, "a client missed frames");
        assert!(parts.iter().zip(&frames).all(|(p, f)| &p.body == f));
    }
    let s = stats(&src.sink);
    assert_eq!(s.get::<u64>("frames-skipped"), Ok(0));
    assert_eq!(s.get::<u64>("frames-out"), Ok((N * K) as u64));
}

#[test]
fn stalled_client_slows_nobody_and_is_dropped() {
    // Incompressible 640x480 frames (~6 MB/s) fill a non-reading client's
    // buffers within a frame or two.
    let src = Source::new(
        -1,
        "video/x-raw,width=640,height=480,framerate=30/1",
        "pattern=snow",
        "timeout=1",
    );
    let port = src.port;
    let disconnected = signal_channel(&src.sink, "client-disconnected");
    let b = "boundarydonotcross";

    // The stalled client: tiny receive buffer, never reads after the request.
    let stalled = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.set_recv_buffer_size(4096).expect("rcvbuf");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        s.connect(&addr.into()).expect("connect");
        let mut s: TcpStream = s.into();
        s.write_all(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("request");
        s
    };
    let stalled_addr = stalled.local_addr().expect("addr");

    let mut healthy = Client::get(port, "/stream");
    healthy.stream_start(b);
    let reader = std::thread::spawn(move || healthy.all_parts(b));

    let t0 = Instant::now();
    src.play();
    wait_signal(&disconnected, stalled_addr);
    let dropped_after = t0.elapsed();
    // Let the pipeline run on a little after the drop, then end it.
    let frames_at_drop = stat(&src.sink, "frames-in");
    let deadline = Instant::now() + WAIT;
    while stat(&src.sink, "frames-in") < frames_at_drop + 15 {
        assert!(Instant::now() < deadline, "pipeline stopped after the drop");
        std::thread::yield_now();
    }
    assert!(src.pipeline.send_event(gst::event::Eos::new()));
    src.wait_eos();
    let elapsed = t0.elapsed().as_secs_f64();
    let parts = reader.join().expect("reader");

    let s = stats(&src.sink);
    let frames_in = s.get::<u64>("frames-in").expect("frames-in");
    assert_eq!(s.get::<u64>("clients-dropped-timeout"), Ok(1));
    assert!(
        dropped_after < Duration::from_secs(6),
        "stalled client dropped only after {dropped_after:?}"
    );
    let rate = frames_in as f64 / elapsed;
    assert!(rate > 24.0, "pipeline slowed to {rate:.1} fps");
    assert_eq!(
        parts.len() as u64,
        frames_in,
        "the healthy client missed frames"
    );
    let frames = src.frames();
    assert!(parts.iter().zip(&frames).all(|(p, f)| &p.body == f));
    drop(stalled);
}

#[test]
fn souphttpsrc_multipartdemux_reads_it_byte_identical() {
    init();
    if gst::ElementFactory::find("souphttpsrc").is_none()
        || gst::ElementFactory::find("multipartdemux").is_none()
    {
        panic!("souphttpsrc and multipartdemux (gst-plugins-good) are required");
    }
    let src = Source::new(
        15,
        "video/x-raw,width=320,height=240,framerate=30/1",
        "pattern=ball",
        "",
    );
    let connected = signal_channel(&src.sink, "client-connected");
    let reader = gst::parse::launch(&format!(
        "souphttpsrc location=http://127.0.0.1:{}/stream ! multipartdemux ! \
         appsink name=out sync=false emit-signals=false",
        src.port
    ))
    .expect("reader pipeline");
    let out = reader
        .clone()
        .downcast::<gst::Bin>()
        .expect("bin")
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    reader.set_state(gst::State::Playing).expect("reader play");
    connected.recv_timeout(WAIT).expect("souphttpsrc connected");
    src.play();
    let mut got = Vec::new();
    while let Some(sample) = out.try_pull_sample(gst::ClockTime::from_seconds(WAIT.as_secs())) {
        let buf = sample.buffer().expect("buffer");
        got.push(buf.map_readable().expect("map").to_vec());
        if out.is_eos() {
            break;
        }
    }
    src.wait_eos();
    reader.set_state(gst::State::Null).expect("reader null");
    let frames = src.frames();
    assert_eq!(frames.len(), 15);
    assert_eq!(got.len(), frames.len(), "multipartdemux output count");
    assert!(got == frames, "multipartdemux output differs");
}
