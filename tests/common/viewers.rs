// SPDX-License-Identifier: MPL-2.0

//! Helpers of the viewer-facing sink tests: a stream reader that timestamps
//! every part, a one-shot GET that returns when the server closes, the
//! Python `prometheus_client` parser, and a live fake camera that records
//! when its connections open and close.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{LONG_WAIT, Response, WAIT, find, http_get, jpeg, lock};

/// One part of a stream, as a client read it.
#[derive(Clone, Debug)]
pub struct TimedPart {
    pub received: Instant,
    pub jpeg: Vec<u8>,
}

/// A streaming client reading whole parts (Content-Length framing; the
/// request is not a browser's, so no advance headers).
pub struct PartReader {
    s: TcpStream,
    buf: Vec<u8>,
    pub status: u16,
    pub head: String,
}

impl PartReader {
    /// GET `path` (with `headers`) and read the response head.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> PartReader {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("read timeout");
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("send request");
        let mut r = PartReader {
            s,
            buf: Vec::new(),
            status: 0,
            head: String::new(),
        };
        let head = r
            .read_until(b"\r\n\r\n", Instant::now() + WAIT)
            .expect("head");
        r.head = String::from_utf8_lossy(&head).into_owned();
        r.status = r
            .head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        r
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.s.local_addr().expect("local address")
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = self.s.set_read_timeout(Some(left));
        let mut tmp = [0u8; 64 * 1024];
        match self.s.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    fn read_until(&mut self, marker: &[u8], deadline: Instant) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, marker, 0) {
                return Some(self.buf.drain(..i + marker.len()).collect());
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    fn read_exact(&mut self, n: usize, deadline: Instant) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill(deadline) {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The next whole part, or None if none completes before `deadline`.
    pub fn next_part(&mut self, deadline: Instant) -> Option<TimedPart> {
        loop {
            let headers = self.read_until(b"\r\n\r\n", deadline)?;
            let headers = String::from_utf8_lossy(&headers).into_owned();
            let Some(len) = headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            }) else {
                // The first delimiter line ends with the part's headers.
                continue;
            };
            let jpeg = self.read_exact(len, deadline)?;
            let received = Instant::now();
            return Some(TimedPart { received, jpeg });
        }
    }

    /// Every part completed within `window`.
    pub fn parts_for(&mut self, window: Duration) -> Vec<TimedPart> {
        let deadline = Instant::now() + window;
        std::iter::from_fn(|| self.next_part(deadline)).collect()
    }
}

/// Frames per second of `parts` from the first to the last arrival.
pub fn measured_fps(parts: &[TimedPart]) -> f64 {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return 0.0;
    };
    let span = last.received.duration_since(first.received).as_secs_f64();
    if span <= 0.0 {
        return 0.0;
    }
    (parts.len() - 1) as f64 / span
}

/// GET `path` and read the whole answer (the request says
/// `Connection: close`); panics if there is none within `limit`.
pub fn get_once(port: u16, path: &str, headers: &[(&str, &str)], limit: Duration) -> Response {
    http_get(port, path, headers, limit, |_| false)
        .unwrap_or_else(|| panic!("no answer to {path} on port {port}"))
}

/// The families of a Prometheus text exposition as the Python
/// `prometheus_client` parser reads them: `(name, type, samples)` with each
/// sample `(name, labels, value)`. `Err` with a message when python3 or
/// the module is missing (the test then skips).
pub type Family = (String, String, Vec<(String, Vec<(String, String)>, f64)>);

pub fn parse_prometheus(text: &str) -> Result<Vec<Family>, String> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    print("IMPORT: %s" % e, file=sys.stderr)
    sys.exit(3)
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    out.append([fam.name, fam.type,
                [[s.name, sorted(s.labels.items()), s.value] for s in fam.samples]])
print(json.dumps(out))
"#;
    let python = super::python_with("prometheus_client").unwrap_or("python3");
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .map_err(|e| format!("writing to python3: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("python3: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(3) {
        return Err(format!(
            "python3 cannot import prometheus_client ({}); `make deps` installs \
             python3-prometheus-client",
            stderr.trim()
        ));
    }
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {stderr}\n{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("parser output");
    let families = v
        .as_array()
        .expect("list")
        .iter()
        .map(|f| {
            let samples = f[2]
                .as_array()
                .expect("samples")
                .iter()
                .map(|s| {
                    let labels = s[1]
                        .as_array()
                        .expect("labels")
                        .iter()
                        .map(|kv| {
                            (
                                kv[0].as_str().unwrap_or("").to_string(),
                                kv[1].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect();
                    (
                        s[0].as_str().unwrap_or("").to_string(),
                        labels,
                        s[2].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect();
            (
                f[0].as_str().unwrap_or("").to_string(),
                f[1].as_str().unwrap_or("").to_string(),
                samples,
            )
        })
        .collect();
    Ok(families)
}

/// What a [`LiveCamera`] saw of one connection.
#[derive(Clone, Debug)]
pub struct CameraConnection {
    pub opened: Instant,
    /// When a write first failed (the client had gone), if it has.
    pub closed: Option<Instant>,
    pub frames_written: usize,
}

/// A camera that streams a small JPEG about 30 times a second to every
/// connection until the connection fails, and records when each opened and
/// closed (for on-demand tests).
pub struct LiveCamera {
    port: u16,
    conns: Arc<Mutex<Vec<CameraConnection>>>,
    down: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl LiveCamera {
    pub fn start() -> LiveCamera {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind camera");
        let port = listener.local_addr().expect("camera address").port();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (c, d) = (conns.clone(), down.clone());
        let accept = std::thread::spawn(move || {
            for s in listener.incoming() {
                if d.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                let idx = {
                    let mut v = lock(&c);
                    v.push(CameraConnection {
                        opened: Instant::now(),
                        closed: None,
                        frames_written: 0,
                    });
                    v.len() - 1
                };
                let (c, d) = (c.clone(), d.clone());
                std::thread::spawn(move || serve_live(s, idx, &c, &d));
            }
        });
        LiveCamera {
            port,
            conns,
            down,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/video.mjpg", self.port)
    }

    pub fn connections(&self) -> Vec<CameraConnection> {
        lock(&self.conns).clone()
    }
}

fn serve_live(
    mut s: TcpStream,
    idx: usize,
    conns: &Mutex<Vec<CameraConnection>>,
    down: &AtomicBool,
) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(WAIT));
    let _ = s.set_write_timeout(Some(WAIT));
    let mut req = Vec::new();
    let mut tmp = [0u8; 4096];
    while find(&req, b"\r\n\r\n", 0).is_none() {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&tmp[..n]),
        }
    }
    let mut ok = s
        .write_all(
            b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=cam\r\n\r\n",
        )
        .is_ok();
    let deadline = Instant::now() + LONG_WAIT * 4;
    let mut n = 0u32;
    while ok && !down.load(Ordering::SeqCst) && Instant::now() < deadline {
        let j = jpeg(64, 48, n);
        let part = [
            format!(
                "--cam\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                j.len()
            )
            .into_bytes(),
            j,
            b"\r\n".to_vec(),
        ]
        .concat();
        ok = s.write_all(&part).is_ok();
        if ok {
            lock(conns)[idx].frames_written += 1;
        }
        n += 1;
        // Pacing of a 30 fps camera (no synchronisation depends on it).
        std::thread::sleep(Duration::from_millis(33));
    }
    lock(conns)[idx].closed = Some(Instant::now());
}

impl Drop for LiveCamera {
    fn drop(&mut self) {
        self.down.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        );
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
