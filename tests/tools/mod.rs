//! Helpers for the tests that use the plugin the way an application does:
//! the built `libgstmjpeg.so` loaded from `GST_PLUGIN_PATH` by
//! `gst-launch-1.0`, `gst-inspect-1.0` or an example program in another
//! language, a local camera (`videotestsrc ! jpegenc ! mjpegsink` in this
//! process), raw HTTP reads, child processes with bounded waits, and
//! temporary directories.
//!
//! Everything listens on 127.0.0.1 and every wait is bounded.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Upper bound of every wait for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(30);
/// Poll period of bounded waits.
pub const POLL: Duration = Duration::from_millis(20);

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gstmjpeg::plugin_register_static().expect("register the mjpeg plugin");
    });
}

/// The directory holding the `libgstmjpeg.so` that cargo built with this
/// test: `target/<profile>/`, the parent of the test binary's `deps/`.
pub fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    for dir in exe.ancestors().skip(1) {
        if dir.join("libgstmjpeg.so").is_file() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "libgstmjpeg.so not found next to {}: the cdylib is built with the library \
         (crate-type cdylib + rlib)",
        exe.display()
    );
}

/// `target/<profile>/`: where cargo puts the examples (`examples/`) and
/// the libraries of the crate.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("test binary directory");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile directory")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// The registry file used by the child processes of this test binary, so
/// that they neither depend on nor write into the user's registry cache.
/// GStreamer rescans a plugin whose file changed, so it can be reused.
pub fn registry() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::env::temp_dir().join(format!("gst-mjpeg-registry-{stem}.bin"))
}

/// Point a child process at the freshly built plugin.
pub fn gst_env(cmd: &mut Command) -> &mut Command {
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", registry())
        .env_remove("GST_PLUGIN_PATH_1_0")
}

/// A directory under the system temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "gst-mjpeg-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP port that was free a moment ago (bound to port 0, then released),
/// for programs that take a port number rather than a socket.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Poll `cond` every [`POLL`] until it holds; false after `timeout`.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// A local camera: videotestsrc ! jpegenc ! mjpegsink in this process.

pub struct Camera {
    pipeline: gst::Pipeline,
    sink: gst::Element,
}

impl Camera {
    /// 320x240 at 30 fps; `credentials` turns on the sink's Basic auth.
    pub fn start(credentials: Option<(&str, &str)>) -> Camera {
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
        let cam = Camera { pipeline, sink };
        assert!(
            wait_for(WAIT, || cam.stat("frames-in") > 0),
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

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP.

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
    use gstmjpeg::internals::multipart::{Event, Handler, Limits, Parser, PartInfo};
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
    let resp = http_get(port, path, headers, WAIT, |body| {
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

/// Whether `data` is one whole JPEG.
pub fn is_jpeg(data: &[u8]) -> bool {
    data.len() > 4 && data.starts_with(&[0xFF, 0xD8]) && data.ends_with(&[0xFF, 0xD9])
}

// ---------------------------------------------------------------------------
// Child processes.

/// A child process in its own process group, stdout/stderr captured to
/// files; the whole group is killed on drop.
pub struct Proc {
    child: Child,
    name: String,
    out: PathBuf,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawn `cmd`; output goes to files in `dir` named after `name`.
    pub fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Proc {
        let out = dir.join(format!("{name}.stdout"));
        let err = dir.join(format!("{name}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            child,
            name: name.to_string(),
            out,
            err,
            status: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Wait (bounded) for the process to end.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || self.try_status().is_some());
        self.status
    }

    /// SIGINT to the process (what Ctrl-C sends).
    pub fn interrupt(&self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The tail of both outputs, for assertion messages.
    pub fn output_tail(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            tail(self.stdout()),
            self.name,
            tail(self.stderr())
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
