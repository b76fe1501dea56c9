// SPDX-License-Identifier: MPL-2.0

//! A bare reqwest reader of an MJPEG stream: the floor an HTTP stack built on
//! reqwest sets for `mjpegsrc`. It reads the body chunk by chunk as hyper
//! hands it over and, unless `--no-copy`, copies every byte once (part
//! headers into a small buffer, JPEG bodies into a reused frame buffer, as an
//! element copies into its pool), locating frames by their `Content-Length`.
//! It prints `frames=F bytes=B` when the body ends or after `--frames N`.
//!
//! It only understands the framing of `bench_server` (Content-Length on every
//! part); it is a measuring stick, not a parser.
//!
//! Usage: `cargo run --release --example reqwest_reader -- URL [--frames N]
//! [--no-copy]`

use std::time::Instant;

use memchr::memmem;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Longest header block between two bodies.
const MAX_HEADERS: usize = 16 * 1024;

/// Splits the body into header blocks and `Content-Length` bodies, copying
/// each byte once.
struct Framer {
    copy: bool,
    headers: Vec<u8>,
    frame: Vec<u8>,
    /// Body bytes still expected for the current part.
    remaining: usize,
    frames: u64,
}

impl Framer {
    fn new(copy: bool) -> Self {
        Framer {
            copy,
            headers: Vec::with_capacity(MAX_HEADERS),
            frame: Vec::with_capacity(1 << 20),
            remaining: 0,
            frames: 0,
        }
    }

    fn content_length(headers: &[u8]) -> Option<usize> {
        headers.split(|&b| b == b'\n').find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            if !name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
                return None;
            }
            std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
        })
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                if self.copy {
                    self.frame.extend_from_slice(&data[..n]);
                }
                self.remaining -= n;
                data = &data[n..];
                if self.remaining == 0 {
                    self.frames += 1;
                    self.frame.clear();
                }
                continue;
            }
            // In a header block: find its end, including an end that
            // straddles two chunks, and keep only the header bytes.
            let kept = self.headers.len();
            let mut joint = [0u8; 6];
            let tail = &self.headers[kept.saturating_sub(3)..];
            let head = &data[..data.len().min(3)];
            joint[..tail.len()].copy_from_slice(tail);
            joint[tail.len()..tail.len() + head.len()].copy_from_slice(head);
            let end = match memmem::find(&joint[..tail.len() + head.len()], b"\r\n\r\n") {
                Some(pos) => Some(pos + 4 - tail.len()),
                None => memmem::find(data, b"\r\n\r\n").map(|pos| pos + 4),
            };
            match end {
                Some(end) => {
                    self.headers.extend_from_slice(&data[..end]);
                    let len = Self::content_length(&self.headers)
                        .ok_or("a part without Content-Length")?;
                    data = &data[end..];
                    self.headers.clear();
                    if len == 0 {
                        self.frames += 1;
                    }
                    self.remaining = len;
                }
                None => {
                    self.headers.extend_from_slice(data);
                    if self.headers.len() > MAX_HEADERS {
                        return Err("header block too large".into());
                    }
                    data = &[];
                }
            }
        }
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut url = None;
    let mut limit = None;
    let mut copy = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--frames" => limit = Some(args.next().ok_or("--frames needs a value")?.parse()?),
            "--no-copy" => copy = false,
            "-h" | "--help" => {
                println!("usage: reqwest_reader URL [--frames N] [--no-copy]");
                return Ok(());
            }
            other if url.is_none() => url = Some(other.to_owned()),
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    let url = url.ok_or("usage: reqwest_reader URL [--frames N] [--no-copy]")?;
    let client = reqwest::Client::builder().build()?;
    let start = Instant::now();
    let mut resp = client.get(&url).send().await?.error_for_status()?;
    let mut framer = Framer::new(copy);
    let mut bytes = 0u64;
    let mut chunks = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
        chunks += 1;
        framer.feed(&chunk)?;
        if limit.is_some_and(|n| framer.frames >= n) {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "frames={} bytes={} chunks={} mean-chunk={} secs={:.3}",
        framer.frames,
        bytes,
        chunks,
        bytes / chunks.max(1),
        secs
    );
    Ok(())
}
