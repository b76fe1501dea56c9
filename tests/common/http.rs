// SPDX-License-Identifier: MPL-2.0

//! HTTP client helpers: a raw GET with a bounded read, chunked decoding,
//! whole frames out of a multipart body (with the crate's parser), and the
//! credentials encodings of Basic and Digest auth.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::internals::{Event, Handler, Limits, Parser, PartInfo};
use super::{LONG_WAIT, find};

/// A response read by [`http_get`]: the head and as much body as was read.
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// GET `path` from 127.0.0.1:`port` and read until `enough(body)` holds, the
/// server closes, or `timeout`; None if nothing could be read at all.
pub fn http_get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    mut enough: impl FnMut(&[u8]) -> bool,
) -> Option<Response> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut head_end = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).ok()?;
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        if head_end.is_none() {
            head_end = memchr::memmem::find(&data, b"\r\n\r\n").map(|i| i + 4);
        }
        if let Some(h) = head_end {
            let chunked = is_chunked(&data[..h]);
            let done = if chunked {
                enough(&dechunk(&data[h..]))
            } else {
                enough(&data[h..])
            };
            if done {
                break;
            }
        }
    }
    let h = head_end.or_else(|| memchr::memmem::find(&data, b"\r\n\r\n").map(|i| i + 4))?;
    let head = String::from_utf8_lossy(&data[..h]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = if is_chunked(&data[..h]) {
        dechunk(&data[h..])
    } else {
        data[h..].to_vec()
    };
    Some(Response { status, head, body })
}

fn is_chunked(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    })
}

/// The payload of a chunked body, as far as it has arrived (a proxy such
/// as nginx answers an HTTP/1.1 client with chunked encoding).
pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    while let Some(eol) = memchr::memmem::find(data, b"\r\n") {
        let line = String::from_utf8_lossy(&data[..eol]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 {
            break;
        }
        let rest = &data[eol + 2..];
        let take = size.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        if rest.len() < size + 2 {
            break;
        }
        data = &rest[size + 2..];
    }
    out
}

/// Whole JPEG frames in a multipart body (read with the crate's parser),
/// each checked to start with SOI and end with EOI.
pub fn multipart_frames(content_type: Option<&str>, body: &[u8]) -> Vec<Vec<u8>> {
    #[derive(Default)]
    struct Collect {
        cur: Vec<u8>,
        done: Vec<Vec<u8>>,
    }
    impl Handler for Collect {
        fn part_start(&mut self, _info: &PartInfo) -> bool {
            self.cur.clear();
            true
        }
        fn part_data(&mut self, data: &[u8]) -> bool {
            self.cur.extend_from_slice(data);
            true
        }
        fn part_end(&mut self) {
            let f = std::mem::take(&mut self.cur);
            if f.starts_with(&[0xFF, 0xD8]) && f.ends_with(&[0xFF, 0xD9]) {
                self.done.push(f);
            }
        }
        fn part_abort(&mut self) {
            self.cur.clear();
        }
        fn event(&mut self, _ev: Event) {}
    }
    let mut parser = Parser::new(content_type, Limits::default());
    let mut c = Collect::default();
    let _ = parser.feed(body, &mut c);
    c.done
}

/// Read the stream at `path` until `n` whole frames arrived (bounded).
pub fn stream_frames(port: u16, path: &str, n: usize, headers: &[(&str, &str)]) -> Response {
    let resp = http_get(port, path, headers, LONG_WAIT, |body| {
        multipart_frames(Some("multipart/x-mixed-replace"), body).len() >= n
    })
    .unwrap_or_else(|| panic!("no HTTP response from 127.0.0.1:{port}{path}"));
    let got = multipart_frames(resp.header("content-type"), &resp.body).len();
    assert!(
        got >= n,
        "{path} on port {port}: {got} of {n} frames (status {}, {} body bytes)",
        resp.status,
        resp.body.len()
    );
    resp
}

/// Lower-case hex MD5 of `s` (Digest auth).
pub fn md5_hex(s: &str) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 of `data` (Basic auth).
pub fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Status code and header lines of a response head (`raw` up to the blank
/// line); 0 if the status line has none.
pub fn parse_head(raw: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = raw.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// First value of header `name` (case-insensitive) in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
