// SPDX-License-Identifier: MPL-2.0

//! `listen-fd`: `gst-launch-1.0` started as systemd starts a socket-
//! activated service (a listening socket as descriptor 3, `LISTEN_FDS=1`,
//! `LISTEN_PID` its own pid) serves on that socket.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;

use common::*;

/// Binds 127.0.0.1:0, prints the port, puts the socket on descriptor 3
/// and execs the rest of the command line with systemd's variables.
const ACTIVATE: &str = r#"
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execvp(sys.argv[1], sys.argv[1:])
"#;

fn read_frame(port: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET /snapshot HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn gst_launch_serves_on_the_passed_socket() {
    let dir = TempDir::new("listen-fd");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", ACTIVATE, "gst-launch-1.0", "-q"]).args(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! \
             jpegenc ! mjpegsink listen-fd=3"
            .split(' '),
    );
    gst_env(&mut cmd);
    let mut child = Proc::spawn("gst-launch", &mut cmd, dir.path());
    let port: u16 = poll_until(LONG_WAIT, || {
        child.stdout().lines().next()?.trim().parse().ok()
    })
    .expect("the wrapper printed its port");
    let got = poll_until(LONG_WAIT, || {
        let got = read_frame(port);
        got.starts_with(b"HTTP/1.0 200").then_some(got)
    })
    .unwrap_or_else(|| panic!("no frame on the passed socket: {}", child.output_tail()));
    assert!(got.starts_with(b"HTTP/1.0 200"), "{}", child.output_tail());
    assert!(got.ends_with(b"\xFF\xD9"));
    child.interrupt();
    let _ = child.wait(WAIT);
}

/// Runs a pipeline on the passed socket through NULL → PLAYING → NULL →
/// PLAYING in one process, fetching a fresh snapshot (`?wait=1`) in each
/// PLAYING; prints one line per cycle.
const CYCLE: &str = r#"
import os, socket, sys, urllib.request
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
with socket.socket(fileno=os.dup(3)) as s:
    port = s.getsockname()[1]
p = Gst.parse_launch(
    "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! "
    "jpegenc ! mjpegsink listen-fd=3")
for cycle in (1, 2):
    if p.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = p.get_bus().pop_filtered(Gst.MessageType.ERROR)
        print("cycle %d: PLAYING failed: %s" % (cycle, msg.parse_error()[0].message if msg else "?"))
        sys.exit(1)
    with urllib.request.urlopen("http://127.0.0.1:%d/snapshot?wait=1" % port, timeout=10) as r:
        body = r.read()
        print("cycle %d status %d jpeg %s etag %s" % (
            cycle, r.status, body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9", r.headers["ETag"]),
            flush=True)
    p.set_state(Gst.State.NULL)
"#;

/// The element keeps the passed socket and serves a duplicate per start, so
/// an application can stop its pipeline and start it again on the same
/// inherited port; each start is a new epoch of snapshot tags.
#[test]
fn null_playing_null_playing_serves_again_on_the_passed_socket() {
    let dir = TempDir::new("listen-fd-cycle");
    let python = python_with("gi; gi.require_version('Gst', '1.0')")
        .expect("no python3 with PyGObject: apt-get install python3-gi gir1.2-gstreamer-1.0");
    let mut cmd = Command::new(python);
    cmd.args(["-c", ACTIVATE, python, "-c", CYCLE]);
    gst_env(&mut cmd);
    let mut child = Proc::spawn("python3", &mut cmd, dir.path());
    let status = child.wait(LONG_WAIT);
    let out = child.stdout();
    assert!(
        status.is_some_and(|s| s.success()),
        "the cycle script failed: {}",
        child.output_tail()
    );
    let tags: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("cycle "))
        .map(|l| {
            assert!(
                l.contains("status 200 jpeg True"),
                "{l}\n{}",
                child.output_tail()
            );
            l.rsplit(' ').next().unwrap_or_default()
        })
        .collect();
    assert_eq!(tags.len(), 2, "two PLAYING cycles: {out}");
    assert_ne!(tags[0], tags[1], "a restart is a new epoch of tags");
}
