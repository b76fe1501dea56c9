// SPDX-License-Identifier: MPL-2.0

//! A fast MJPEG server for the client benchmark (`bench/src_bench.py`).
//!
//! It encodes 30 frames of `videotestsrc pattern=smpte` at 1280x720 with
//! `jpegenc quality=85` once (or loads `*.jpg` from `--frames-dir`), builds
//! every part (headers, JPEG, trailing delimiter) once, and then writes them
//! at the maximum rate to each client, one thread per connection:
//!
//! ```text
//! HTTP/1.0 200 OK
//! Content-Type: multipart/x-mixed-replace;boundary=frame
//!
//! --frame
//! Content-Type: image/jpeg
//! Content-Length: 61234
//!
//! <jpeg>
//! --frame
//! ...
//! ```
//!
//! The body is close-delimited HTTP/1.0, or chunked HTTP/1.1 (one chunk per
//! part) with `--chunked` or `?chunked=1`. Query parameters of any path:
//! `frames=N` serves exactly N frames, then closes (default: unlimited);
//! `hold=1` keeps the connection open after the last frame until the client
//! closes it (for clients that stop by themselves and would otherwise
//! reconnect).
//!
//! The port is printed on the first line of stdout; one line per finished
//! connection goes to stderr:
//! `served path=/stream?frames=10 frames=10 bytes=612345 complete=1`.
//!
//! Usage: `cargo run --release --example bench_server -- [--chunked]
//! [--frames-dir DIR] [--port P]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;

const BOUNDARY: &str = "frame";
/// Longest request head accepted.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long a `hold=1` connection is kept open after its last frame.
const HOLD_MAX: Duration = Duration::from_secs(120);

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    chunked: bool,
    frames_dir: Option<PathBuf>,
    port: u16,
}

fn parse_args() -> Result<Options, Error> {
    let mut opts = Options {
        chunked: false,
        frames_dir: None,
        port: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--chunked" => opts.chunked = true,
            "--frames-dir" => {
                opts.frames_dir = Some(args.next().ok_or("--frames-dir needs a value")?.into())
            }
            "--port" => opts.port = args.next().ok_or("--port needs a value")?.parse()?,
            "-h" | "--help" => {
                println!(
                    "usage: bench_server [--chunked] [--frames-dir DIR] [--port P]\n\
                     GET /anything?frames=N&hold=1&chunked=1"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(opts)
}

/// 30 frames of 720p SMPTE bars at quality 85, encoded once.
fn encode_frames() -> Result<Vec<Vec<u8>>, Error> {
    gst::init()?;
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=30 pattern=smpte ! video/x-raw,width=1280,height=720 \
         ! jpegenc quality=85 ! appsink name=sink sync=false",
    )?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sink = pipeline
        .by_name("sink")
        .ok_or("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "not an appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().ok_or("sample without buffer")?;
        let map = buffer.map_readable()?;
        frames.push(map.as_slice().to_vec());
    }
    pipeline.set_state(gst::State::Null)?;
    if frames.is_empty() {
        return Err("the encoder produced no frame".into());
    }
    Ok(frames)
}

fn load_frames(dir: &PathBuf) -> Result<Vec<Vec<u8>>, Error> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    paths.sort();
    let frames = paths
        .iter()
        .map(std::fs::read)
        .collect::<Result<Vec<_>, _>>()?;
    if frames.is_empty() {
        return Err(format!("no *.jpg in {}", dir.display()).into());
    }
    Ok(frames)
}

/// Each part ready to write: headers, JPEG, and the delimiter line after it.
fn build_parts(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|jpeg| {
            let mut part = format!(
                "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            )
            .into_bytes();
            part.extend_from_slice(jpeg);
            part.extend_from_slice(format!("\r\n--{BOUNDARY}\r\n").as_bytes());
            part
        })
        .collect()
}

/// The same parts wrapped as one HTTP chunk each.
fn chunk_parts(parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    parts
        .iter()
        .map(|part| {
            let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
            chunk.extend_from_slice(part);
            chunk.extend_from_slice(b"\r\n");
            chunk
        })
        .collect()
}

struct Request {
    path: String,
    frames: Option<u64>,
    hold: bool,
    chunked: Option<bool>,
}

fn read_request(stream: &TcpStream) -> Result<Request, Error> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_HEAD as u64));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed request line")?
        .to_owned();
    // Skip the headers.
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut req = Request {
        path: path.clone(),
        frames: None,
        hold: false,
        chunked: None,
    };
    if let Some((_, query)) = path.split_once('?') {
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "frames" => req.frames = Some(value.parse()?),
                "hold" => req.hold = value != "0",
                "chunked" => req.chunked = Some(value != "0"),
                _ => {}
            }
        }
    }
    Ok(req)
}

struct Stream {
    parts: Vec<Vec<u8>>,
    chunks: Vec<Vec<u8>>,
    default_chunked: bool,
}

fn serve(mut stream: TcpStream, data: &Stream) -> Result<(), Error> {
    let req = read_request(&stream)?;
    let chunked = req.chunked.unwrap_or(data.default_chunked);
    let (head, parts) = if chunked {
        (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary={BOUNDARY}\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\nCache-Control: no-cache\r\n\r\n{:x}\r\n--{BOUNDARY}\r\n\r\n",
                BOUNDARY.len() + 4
            ),
            &data.chunks,
        )
    } else {
        (
            format!(
                "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary={BOUNDARY}\r\n\
                 Connection: close\r\nCache-Control: no-cache\r\n\r\n--{BOUNDARY}\r\n"
            ),
            &data.parts,
        )
    };
    let mut bytes = head.len() as u64;
    let mut sent = 0u64;
    stream.write_all(head.as_bytes())?;
    let result = (|| -> std::io::Result<()> {
        for part in parts.iter().cycle() {
            if req.frames.is_some_and(|n| sent >= n) {
                break;
            }
            stream.write_all(part)?;
            sent += 1;
            bytes += part.len() as u64;
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n")?;
            bytes += 5;
        }
        stream.flush()
    })();
    let complete = result.is_ok() && req.frames.is_some_and(|n| sent >= n);
    eprintln!(
        "served path={} frames={} bytes={} complete={}",
        req.path, sent, bytes, complete as u8
    );
    result?;
    if req.hold {
        // Wait for the client to hang up (it stops by itself after N frames).
        stream.set_read_timeout(Some(HOLD_MAX))?;
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let opts = parse_args()?;
    let frames = match &opts.frames_dir {
        Some(dir) => load_frames(dir)?,
        None => encode_frames()?,
    };
    let parts = build_parts(&frames);
    let chunks = chunk_parts(&parts);
    let total: usize = frames.iter().map(Vec::len).sum();
    eprintln!(
        "frames={} mean-jpeg-bytes={} mean-part-bytes={}",
        frames.len(),
        total / frames.len(),
        parts.iter().map(Vec::len).sum::<usize>() / parts.len()
    );
    let data = Arc::new(Stream {
        parts,
        chunks,
        default_chunked: opts.chunked,
    });
    let listener = TcpListener::bind(("127.0.0.1", opts.port))?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        let data = data.clone();
        std::thread::spawn(move || {
            if let Err(err) = serve(stream, &data) {
                eprintln!("connection error: {err}");
            }
        });
    }
    Ok(())
}
