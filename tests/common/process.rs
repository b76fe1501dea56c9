// SPDX-License-Identifier: MPL-2.0

//! The plugin used the way an application does: the built `libgstmjpeg.so`
//! loaded from `GST_PLUGIN_PATH` by child processes (`gst-launch-1.0`,
//! `gst-inspect-1.0`, example programs), with bounded waits, captured output
//! and temporary directories.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::wait_for;

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

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0,
/// then released): connecting to it is refused until something binds it
/// again; also for programs that take a port number rather than a socket.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
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

/// A file of `tests/fixtures/`.
/// A Python interpreter that can `import` `module` (Debian's first: that
/// is where python3-gi and python3-prometheus-client install), or `None`.
pub fn python_with(module: &str) -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
