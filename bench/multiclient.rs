// SPDX-License-Identifier: MPL-2.0

//! Many MJPEG viewers in one process, for benchmarking servers.
//!
//! Opens `--clients K` connections to `--url`, reads every stream as fast as
//! the connection gives it (optionally plus `--slow N` viewers rate-limited
//! to `--slow-rate` bytes/s), and after `--warmup` seconds measures for
//! `--duration` seconds: frames per second per client and how far behind
//! live each frame arrives. Prints one JSON object.
//!
//! Latency ("behind live"): arrival time minus the part's `X-Timestamp`
//! (wall clock, same host) when present; otherwise (servers that send no
//! timestamps, e.g. `multipartmux ! tcpserversink`) estimated as arrival
//! time minus the time the n-th frame after connecting was due at `--fps`,
//! which is exact only for a server that never drops frames.
//!
//! `--raw` connects without sending an HTTP request (for tcpserversink).
//! An `https://` URL reads over TLS, trusting the CA certificate(s) of
//! `--cacert PEM`.
//! Connections are spread over `--ramp` seconds (keep it below `--warmup`).
//!
//! ```text
//! cargo run --release --example multiclient -- --url http://127.0.0.1:8080/stream --clients 100
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

// The crate internals this tool uses (the multipart parser): the one line
// that names their path.
use gstmjpeg::internals::multipart::{Event, Handler, Limits, Parser, PartInfo};
/// A plain or TLS connection.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone)]
struct Args {
    host: String,
    port: u16,
    path: String,
    clients: usize,
    slow: usize,
    slow_rate: f64,
    warmup: f64,
    duration: f64,
    fps: f64,
    raw: bool,
    threads: usize,
    ramp: f64,
    https: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Each client opens its own HTTP/2 connection (ALPN `h2`, https only).
    h2: bool,
    /// HTTP/2 receive window per stream, the connection's 2.5 times it (as
    /// Chromium's 6 MiB / 15 MiB); h2's defaults (64 KiB each) without.
    h2_window: Option<u32>,
}

/// A client configuration trusting the certificates of a PEM file.
fn tls_config(cacert: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cacert).unwrap_or_else(|e| {
        eprintln!("--cacert {cacert}: {e}");
        std::process::exit(2)
    }) {
        let cert = cert.unwrap_or_else(|e| {
            eprintln!("--cacert {cacert}: {e}");
            std::process::exit(2)
        });
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn usage() -> ! {
    eprintln!(
        "usage: multiclient --url http://HOST:PORT/PATH [--clients K] [--slow N] \
         [--slow-rate BYTES_PER_S] [--warmup S] [--duration S] [--fps F] [--raw] [--threads T] \
         [--ramp S] [--cacert PEM] [--h2] [--h2-window BYTES]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 8080,
        path: "/stream".into(),
        clients: 1,
        slow: 0,
        slow_rate: 100_000.0,
        warmup: 2.0,
        duration: 10.0,
        fps: 30.0,
        raw: false,
        h2_window: None,
        threads: 1,
        ramp: 1.0,
        https: false,
        tls: None,
        h2: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--url" => {
                let u = url::Url::parse(&val()).unwrap_or_else(|_| usage());
                a.https = u.scheme() == "https";
                a.host = u.host_str().unwrap_or("127.0.0.1").to_string();
                a.port = u.port_or_known_default().unwrap_or(80);
                a.path = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                };
            }
            "--clients" => a.clients = val().parse().unwrap_or_else(|_| usage()),
            "--slow" => a.slow = val().parse().unwrap_or_else(|_| usage()),
            "--slow-rate" => a.slow_rate = val().parse().unwrap_or_else(|_| usage()),
            "--warmup" => a.warmup = val().parse().unwrap_or_else(|_| usage()),
            "--duration" => a.duration = val().parse().unwrap_or_else(|_| usage()),
            "--fps" => a.fps = val().parse().unwrap_or_else(|_| usage()),
            "--threads" => a.threads = val().parse().unwrap_or_else(|_| usage()),
            "--ramp" => a.ramp = val().parse().unwrap_or_else(|_| usage()),
            "--raw" => a.raw = true,
            "--h2" => a.h2 = true,
            "--h2-window" => a.h2_window = Some(val().parse().unwrap_or_else(|_| usage())),
            "--cacert" => a.tls = Some(tls_config(&val())),
            _ => usage(),
        }
    }
    a
}

#[derive(Default, Debug, Clone)]
struct ClientResult {
    /// Frames completed inside the measurement window.
    frames: u64,
    /// Seconds behind live of each frame completed in the window.
    lags: Vec<f64>,
    bytes: u64,
    error: Option<String>,
    connected: bool,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Counts the parts of a stream with the crate's multipart parser (bodies
/// are not kept), after skipping the HTTP response head unless `--raw`.
struct Reader {
    /// The response head read so far, until the parser exists.
    head: Vec<u8>,
    parser: Option<Parser>,
    /// The X-Timestamp of the part being read: a part spans many reads.
    ts: Option<f64>,
}

impl Reader {
    fn new(raw: bool) -> Self {
        Self {
            head: Vec::new(),
            // Without a response head the parser learns the boundary from
            // the body.
            parser: raw.then(|| Parser::new(None, Limits::default())),
            ts: None,
        }
    }

    /// Feed bytes; calls `on_frame(x_timestamp)` for every completed part.
    fn feed(&mut self, data: &[u8], on_frame: &mut impl FnMut(Option<f64>)) {
        let mut data = data;
        if self.parser.is_none() {
            let start = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(data);
            let Some(end) = memchr::memmem::find(&self.head[start..], b"\r\n\r\n") else {
                if self.head.len() > 64 * 1024 {
                    self.head.clear();
                }
                return;
            };
            let end = start + end + 4;
            data = &data[data.len() - (self.head.len() - end)..];
            let head = String::from_utf8_lossy(&self.head[..end]).into_owned();
            let content_type = head.split("\r\n").find_map(|line| {
                let (k, v) = line.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-type")
                    .then(|| v.trim().to_string())
            });
            self.parser = Some(Parser::new(content_type.as_deref(), Limits::default()));
            self.head = Vec::new();
        }
        if let Some(parser) = &mut self.parser {
            let mut parts = Parts {
                ts: &mut self.ts,
                on_frame,
            };
            // A parse error leaves the parser failed: no more frames.
            let _ = parser.feed(data, &mut parts);
        }
    }
}

/// The parser's callbacks: a frame is counted when its part ends.
struct Parts<'a, F: FnMut(Option<f64>)> {
    ts: &'a mut Option<f64>,
    on_frame: &'a mut F,
}

impl<F: FnMut(Option<f64>)> Handler for Parts<'_, F> {
    fn part_start(&mut self, info: &PartInfo) -> bool {
        *self.ts = info.timestamp;
        true
    }
    fn part_data(&mut self, _data: &[u8]) -> bool {
        true
    }
    fn part_end(&mut self) {
        (self.on_frame)(self.ts.take());
    }
    fn part_abort(&mut self) {
        *self.ts = None;
    }
    fn event(&mut self, _ev: Event) {}
}

/// The body of `GET path` over an HTTP/2 connection on `s`, as a byte
/// stream: a task moves it into a 16 KiB pipe and opens the stream's
/// window (h2's default 64 KiB) only for what the pipe took, so a slow
/// reader is flow-controlled as over HTTP/1.
async fn h2_stream(s: Box<dyn Io>, a: &Args) -> Result<Box<dyn Io>, String> {
    let mut b = h2::client::Builder::new();
    if let Some(w) = a.h2_window {
        b.initial_window_size(w)
            .initial_connection_window_size(w.saturating_mul(5) / 2);
    }
    let (send, conn) = b
        .handshake::<_, bytes::Bytes>(s)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::get(format!("https://{}:{}{}", a.host, a.port, a.path))
        .header("user-agent", "multiclient")
        .body(())
        .map_err(|e| e.to_string())?;
    let (resp, _) = send.send_request(req, true).map_err(|e| e.to_string())?;
    let resp = resp.await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = resp.into_body();
    let (mut tx, rx) = tokio::io::duplex(16 * 1024);
    tokio::spawn(async move {
        let _keep = send;
        while let Some(Ok(d)) = body.data().await {
            if tx.write_all(&d).await.is_err() {
                break;
            }
            let _ = body.flow_control().release_capacity(d.len());
        }
    });
    Ok(Box::new(rx))
}

async fn run_client(
    a: Arc<Args>,
    index: usize,
    slow: bool,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> ClientResult {
    let mut r = ClientResult::default();
    // Spread connections over --ramp seconds (small listen backlogs).
    let total = (a.clients + a.slow).max(1) as f64;
    tokio::time::sleep(Duration::from_secs_f64(a.ramp * index as f64 / total)).await;
    let tcp = match TcpStream::connect((a.host.as_str(), a.port)).await {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("connect: {e}"));
            return r;
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut s: Box<dyn Io> = if a.https {
        let Some(mut config) = a.tls.clone() else {
            r.error = Some("https needs --cacert".into());
            return r;
        };
        if a.h2 {
            let mut c = (*config).clone();
            c.alpn_protocols = vec![b"h2".to_vec()];
            config = Arc::new(c);
        }
        let Ok(name) = rustls::pki_types::ServerName::try_from(a.host.clone()) else {
            r.error = Some(format!("bad TLS name {}", a.host));
            return r;
        };
        match tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
        {
            Ok(t) => Box::new(t),
            Err(e) => {
                r.error = Some(format!("TLS: {e}"));
                return r;
            }
        }
    } else {
        Box::new(tcp)
    };
    if a.h2 {
        match h2_stream(s, &a).await {
            Ok(body) => s = body,
            Err(e) => {
                r.error = Some(format!("h2: {e}"));
                return r;
            }
        }
    } else if !a.raw {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: multiclient\r\n\r\n",
            a.path, a.host, a.port
        );
        if let Err(e) = s.write_all(req.as_bytes()).await {
            r.error = Some(format!("request: {e}"));
            return r;
        }
    }
    r.connected = true;
    let win_start = a.warmup;
    let win_end = a.warmup + a.duration;
    let connected_at = t0.elapsed().as_secs_f64();
    let mut nth = 0u64;
    let mut parser = Reader::new(a.raw || a.h2);
    let mut buf = vec![0u8; if slow { 4096 } else { 256 * 1024 }];
    let slow_start = Instant::now();
    let mut slow_bytes = 0f64;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if slow {
            // Token bucket: never read ahead of the allowed rate.
            let allowed = slow_start.elapsed().as_secs_f64() * a.slow_rate;
            if slow_bytes >= allowed {
                let wait = (slow_bytes - allowed) / a.slow_rate;
                tokio::time::sleep(Duration::from_secs_f64(wait.max(0.001))).await;
                continue;
            }
        }
        let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) => {
                r.error = Some("EOF".into());
                break;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                r.error = Some(e.to_string());
                break;
            }
            Err(_) => {
                if t0.elapsed().as_secs_f64() > win_end {
                    break;
                }
                continue;
            }
        };
        slow_bytes += n as f64;
        let t = t0.elapsed().as_secs_f64();
        let in_window = t >= win_start && t < win_end;
        if in_window {
            r.bytes += n as u64;
        }
        parser.feed(&buf[..n], &mut |ts| {
            nth += 1;
            if in_window {
                r.frames += 1;
                let lag = match ts {
                    Some(ts) => now_unix() - ts,
                    None => (t - connected_at) - (nth - 1) as f64 / a.fps,
                };
                r.lags.push(lag);
            }
        });
        if t >= win_end {
            break;
        }
    }
    r
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

fn summary(results: &[ClientResult], duration: f64) -> serde_json::Value {
    let mut fps: Vec<f64> = results.iter().map(|r| r.frames as f64 / duration).collect();
    let mut lags: Vec<f64> = results.iter().flat_map(|r| r.lags.clone()).collect();
    let mut max_lags: Vec<f64> = results
        .iter()
        .map(|r| r.lags.iter().copied().fold(f64::NAN, f64::max))
        .collect();
    let errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    let mbps = results.iter().map(|r| r.bytes).sum::<u64>() as f64 / duration / 1e6;
    serde_json::json!({
        "clients": results.len(),
        "connected": results.iter().filter(|r| r.connected).count(),
        "fps_min": pct(&mut fps, 0.0),
        "fps_p50": pct(&mut fps, 0.5),
        "fps_mean": fps.iter().sum::<f64>() / fps.len().max(1) as f64,
        "fps_max": pct(&mut fps, 1.0),
        "lag_p50_s": pct(&mut lags, 0.5),
        "lag_p95_s": pct(&mut lags, 0.95),
        "lag_max_s": pct(&mut max_lags, 1.0),
        "mb_per_s": mbps,
        "errors": errors.len(),
        "first_error": errors.first(),
    })
}

fn main() {
    let a = Arc::new(parse_args());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(async {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for i in 0..a.clients + a.slow {
            let slow = i >= a.clients;
            handles.push(tokio::spawn(run_client(
                a.clone(),
                i,
                slow,
                t0,
                stop.clone(),
            )));
        }
        let end = a.warmup + a.duration + 0.5;
        tokio::time::sleep(Duration::from_secs_f64(end)).await;
        stop.store(true, Ordering::Relaxed);
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            let r = match tokio::time::timeout(Duration::from_secs(10), h).await {
                Ok(Ok(r)) => r,
                _ => ClientResult {
                    error: Some("client task did not finish".into()),
                    ..Default::default()
                },
            };
            if i >= a.clients {
                slow.push(r);
            } else {
                fast.push(r);
            }
        }
        let mut out = serde_json::json!({ "fast": summary(&fast, a.duration) });
        if !slow.is_empty() {
            out["slow"] = summary(&slow, a.duration);
        }
        out
    });
    println!("{out}");
}
