// SPDX-License-Identifier: MPL-2.0
//! Multipart parser throughput on a stream of ~100 KB frames, fed in the
//! chunk sizes an HTTP client hands over; `content-length-direct` reads the
//! counted bodies straight into a frame buffer and reports them with
//! `Parser::feed_direct`, as `mjpegsrc` does on its one-copy path.
//!
//! `cargo bench --bench parser`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gstmjpeg::internals::multipart::{Handler, Limits, Parser, PartInfo};

const FRAME_SIZE: usize = 100 * 1024;
const FRAMES: usize = 20;

/// Counts what a consumer would copy.
#[derive(Default)]
struct Count {
    bytes: usize,
    frames: usize,
}

impl Handler for Count {
    fn part_start(&mut self, _info: &PartInfo) -> bool {
        true
    }
    fn part_data(&mut self, data: &[u8]) -> bool {
        self.bytes += data.len();
        true
    }
    fn part_end(&mut self) {
        self.frames += 1;
    }
    fn part_abort(&mut self) {}
    fn event(&mut self, _ev: gstmjpeg::internals::multipart::Event) {}
}

/// Builds frames the way the source does: counted bodies are copied in by
/// the reader (standing in for the socket read), the rest through
/// `part_data`.
struct Frames {
    frame: Vec<u8>,
    len: usize,
    frames: usize,
}

impl Frames {
    fn new() -> Self {
        Self {
            frame: vec![0; 2 * FRAME_SIZE],
            len: 0,
            frames: 0,
        }
    }
}

impl Handler for Frames {
    fn part_start(&mut self, _info: &PartInfo) -> bool {
        self.len = 0;
        true
    }
    fn part_data(&mut self, data: &[u8]) -> bool {
        self.frame[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        true
    }
    fn part_end(&mut self) {
        self.frames += 1;
    }
    fn part_abort(&mut self) {}
    fn event(&mut self, _ev: gstmjpeg::internals::multipart::Event) {}
    fn part_bytes(&self) -> Option<&[u8]> {
        Some(&self.frame[..self.len])
    }
    fn part_truncate(&mut self, len: usize) {
        self.len = len;
    }
}

/// Reads `body` in reads of at most `chunk_size`, straight into the frame
/// inside counted parts.
fn parse_direct(content_type: &str, body: &[u8], chunk_size: usize) -> usize {
    let mut parser = Parser::new(Some(content_type), Limits::default());
    let mut frames = Frames::new();
    let mut rest = body;
    while !rest.is_empty() {
        match parser.direct_remaining() {
            Some(due) => {
                let n = (due as usize).min(chunk_size).min(rest.len());
                let at = frames.len;
                frames.frame[at..at + n].copy_from_slice(&rest[..n]);
                frames.len += n;
                let mut last = [0u8; 64];
                let tail = &frames.frame[frames.len.saturating_sub(64)..frames.len];
                last[..tail.len()].copy_from_slice(tail);
                let used = tail.len();
                rest = &rest[n..];
                parser
                    .feed_direct(n, &last[..used], &mut frames)
                    .expect("valid stream");
            }
            None => {
                let n = chunk_size.min(rest.len());
                parser.feed(&rest[..n], &mut frames).expect("valid stream");
                rest = &rest[n..];
            }
        }
    }
    parser.finish(&mut frames);
    frames.frames
}

/// A JPEG-shaped frame: SOI, one SOS segment, pseudo-random entropy-coded
/// bytes (with FF 00 stuffing, like a real encoder), EOI.
fn frame(seed: u32) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 0x3F, 0];
    let mut x = seed | 1;
    while j.len() < FRAME_SIZE - 2 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let byte = x as u8;
        j.push(byte);
        if byte == 0xFF {
            j.push(0);
        }
    }
    j.extend_from_slice(&[0xFF, 0xD9]);
    j
}

/// (name, Content-Type, body) of each stream variant.
fn streams() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let frames: Vec<Vec<u8>> = (0..FRAMES as u32).map(frame).collect();
    let mut with_length = b"--frame\r\n".to_vec();
    let mut without_length = b"--frame\r\n".to_vec();
    let mut raw = Vec::new();
    for f in &frames {
        let headers = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: 1712345678.123456\r\n\r\n",
            f.len()
        );
        with_length.extend_from_slice(headers.as_bytes());
        with_length.extend_from_slice(f);
        with_length.extend_from_slice(b"\r\n--frame\r\n");
        without_length.extend_from_slice(b"Content-Type: image/jpeg\r\n\r\n");
        without_length.extend_from_slice(f);
        without_length.extend_from_slice(b"\r\n--frame\r\n");
        raw.extend_from_slice(f);
    }
    let multipart = "multipart/x-mixed-replace;boundary=frame";
    vec![
        ("content-length", multipart, with_length),
        ("no-length", multipart, without_length),
        ("raw-jpeg", "image/jpeg", raw),
    ]
}

fn parse(content_type: &str, body: &[u8], chunk_size: usize) -> Count {
    let mut parser = Parser::new(Some(content_type), Limits::default());
    let mut count = Count::default();
    for chunk in body.chunks(chunk_size) {
        parser.feed(chunk, &mut count).expect("valid stream");
    }
    parser.finish(&mut count);
    count
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("parser");
    for (name, content_type, body) in streams() {
        let check = parse(content_type, &body, 8192);
        assert_eq!(check.frames, FRAMES, "{name}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        if name == "content-length" {
            assert_eq!(parse_direct(content_type, &body, 8192), FRAMES);
            for chunk_size in [8 * 1024, 64 * 1024] {
                group.bench_with_input(
                    BenchmarkId::new("content-length-direct", format!("{}KiB", chunk_size / 1024)),
                    &chunk_size,
                    |b, &chunk_size| {
                        b.iter(|| black_box(parse_direct(content_type, &body, chunk_size)))
                    },
                );
            }
        }
        for chunk_size in [8 * 1024, 64 * 1024] {
            group.bench_with_input(
                BenchmarkId::new(name, format!("{}KiB", chunk_size / 1024)),
                &chunk_size,
                |b, &chunk_size| b.iter(|| black_box(parse(content_type, &body, chunk_size))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
