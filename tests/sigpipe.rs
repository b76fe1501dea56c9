// SPDX-License-Identifier: MPL-2.0

//! A viewer that goes away must not kill a C host program: in
//! `gst-launch-1.0` (which, unlike Rust programs, does not ignore SIGPIPE)
//! a write to a closed client socket used to end the whole process.

mod common;

use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Open a stream, read a few frames' worth, drain what has arrived and
/// close (a FIN, not a RST): the server's next write is accepted, the
/// peer answers it with a RST, and the write after that fails with EPIPE.
fn vanish(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut buf = [0u8; 4096];
    let mut got = 0;
    while got < 20_000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got > 0, "no stream bytes");
    s.set_nonblocking(true).expect("nonblocking");
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

#[test]
fn gst_launch_survives_vanishing_clients() {
    init();
    let dir = TempDir::new("sigpipe");
    let port = free_port();
    let mut proc = Proc::spawn(
        "server",
        gst_env(&mut Command::new("gst-launch-1.0")).args([
            "videotestsrc",
            "is-live=true",
            "pattern=snow",
            "!",
            "video/x-raw,width=320,height=240,framerate=30/1",
            "!",
            "jpegenc",
            "!",
            "mjpegsink",
            "host=127.0.0.1",
            &format!("port={port}"),
        ]),
        dir.path(),
    );
    assert!(
        wait_for(WAIT, || TcpStream::connect(("127.0.0.1", port)).is_ok()
            || proc.try_status().is_some()),
        "server never listened"
    );
    for _ in 0..20 {
        vanish(port);
    }
    // Still alive and serving after the server wrote to the dead sockets.
    let resp = stream_frames(port, "/stream", 3, &[]);
    let frames = multipart_frames(resp.header("content-type"), &resp.body);
    assert!(
        frames.len() >= 3 && proc.try_status().is_none(),
        "gst-launch-1.0 died ({:?}):\n{}",
        proc.try_status(),
        proc.output_tail()
    );
}
