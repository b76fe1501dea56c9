// SPDX-License-Identifier: MPL-2.0

//! Raw-socket helpers for attacking a local `mjpegsink`: many idle
//! connections, raw requests read to the end with a bound, the first JPEG
//! of a stream with its delay, and a child's CPU time. Everything talks to
//! 127.0.0.1 and every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Open up to `n` connections that send nothing (every other one sends
/// half a request head, as slowloris does); the ones that could not be
/// made (the server's backlog full) are skipped.
pub fn hold_idle(port: u16, n: usize) -> Vec<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            continue;
        };
        if i % 2 == 1 {
            let _ = s.write_all(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n");
        }
        held.push(s);
    }
    held
}

/// How many of `conns` the server has closed (EOF or reset), looking
/// without blocking.
pub fn closed_count(conns: &[TcpStream]) -> usize {
    let mut buf = [0u8; 1024];
    conns
        .iter()
        .filter(|s| {
            let _ = s.set_nonblocking(true);
            let closed = loop {
                match (&**s).read(&mut buf) {
                    Ok(0) => break true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            let _ = s.set_nonblocking(false);
            closed
        })
        .count()
}

/// Send `request` and read until the server closes or `limit` passes.
/// `Err` says which of the two did not happen.
pub fn exchange(port: u16, request: &[u8], limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no close within {limit:?}; got {:?}",
                String::from_utf8_lossy(&out[..out.len().min(300)])
            ));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // A reset after the answer still leaves what was read.
            Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(out);
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The status code of every response in `data` (pipelined answers), in
/// order.
pub fn statuses(data: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(data);
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text[i..].get(9..12)?.parse().ok())
        .collect()
}

/// The first status code in `data`, 0 if none.
pub fn status(data: &[u8]) -> u16 {
    statuses(data).first().copied().unwrap_or(0)
}

/// GET the stream with `host` and return how long the first whole JPEG
/// took, or why there was none within `limit`.
pub fn first_frame(port: u16, host: &str, limit: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    write!(s, "GET /stream HTTP/1.1\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = limit.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return Err(format!(
                "no whole JPEG within {limit:?}; got {} bytes: {:?}",
                data.len(),
                String::from_utf8_lossy(&data[..data.len().min(200)])
            ));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {} bytes", data.len())),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        if let Some(soi) = super::find(&data, &[0xFF, 0xD8], 0)
            && super::find(&data[soi..], &[0xFF, 0xD9], 0).is_some()
        {
            return Ok(t0.elapsed());
        }
    }
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}
