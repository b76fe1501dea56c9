// SPDX-License-Identifier: MPL-2.0
//! The multipart / raw-JPEG parser on arbitrary bytes in arbitrary chunks.
//!
//! Input layout: byte 0 picks the response Content-Type, byte 1 seeds the
//! chunk sizes, the rest is the body. Invariants: no panic; callbacks come in
//! a valid order; no frame exceeds the part limit; every frame is exactly a
//! run of bytes of the input (a part body or a SOI..EOI run, never with a
//! foreign tail); reading counted bodies directly (`feed_direct`, as the
//! source does) gives the same frames as feeding them.
#![no_main]

use gstmjpeg::internals::multipart::{Disagreement, Event, Handler, Limits, Parser, PartInfo};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("multipart/x-mixed-replace;boundary=frame"),
    Some("multipart/x-mixed-replace; boundary=--myboundary"),
    Some("multipart/x-mixed-replace; boundary=\"MOBOTIX_Fast_Serverpush\""),
    Some("multipart/mixed; Boundary=data-boundary--"),
    Some("multipart/x-mixed-replace"),
    Some("image/jpeg"),
    Some("application/octet-stream"),
];

const LIMITS: Limits = Limits {
    max_header_size: 256,
    max_part_size: 4096,
    max_garbage: 8192,
};

#[derive(Default)]
struct Check {
    open: Option<Vec<u8>>,
    frames: Vec<Vec<u8>>,
}

impl Handler for Check {
    fn part_start(&mut self, _info: &PartInfo) -> bool {
        assert!(self.open.is_none(), "part_start inside a part");
        self.open = Some(Vec::new());
        true
    }
    fn part_data(&mut self, data: &[u8]) -> bool {
        let open = self.open.as_mut().expect("part_data outside a part");
        open.extend_from_slice(data);
        assert!(open.len() <= LIMITS.max_part_size, "part over the limit");
        true
    }
    fn part_end(&mut self) {
        let frame = self.open.take().expect("part_end outside a part");
        self.frames.push(frame);
    }
    fn part_abort(&mut self) {
        self.open = None;
    }
    fn event(&mut self, _ev: Event) {}
    fn part_bytes(&self) -> Option<&[u8]> {
        self.open.as_deref()
    }
    fn part_truncate(&mut self, len: usize) {
        let open = self.open.as_mut().expect("part_truncate outside a part");
        assert!(0 < len && len < open.len(), "part_truncate to {len}");
        open.truncate(len);
    }
    fn disagreement(&mut self, _d: Disagreement) {}
}

/// Chunk sizes from a seed.
struct Sizes(u32);

impl Sizes {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 as usize % 97 + 1
    }
}

/// Feeds `body` in chunks; with `direct`, counted bodies are copied into
/// the open frame by the caller and reported with `feed_direct`.
fn run(content_type: Option<&str>, seed: u32, body: &[u8], direct: bool) -> Vec<Vec<u8>> {
    let mut parser = Parser::new(content_type, LIMITS);
    let mut check = Check::default();
    let mut sizes = Sizes(seed);
    let mut rest = body;
    while !rest.is_empty() {
        let n = sizes.next().min(rest.len());
        let result = match (parser.direct_remaining(), check.open.as_mut()) {
            (Some(due), Some(open)) if direct => {
                let n = usize::try_from(due).unwrap_or(usize::MAX).min(n);
                open.extend_from_slice(&rest[..n]);
                assert!(open.len() <= LIMITS.max_part_size, "part over the limit");
                let last = open[open.len().saturating_sub(64)..].to_vec();
                rest = &rest[n..];
                parser.feed_direct(n, &last, &mut check)
            }
            _ => {
                let result = parser.feed(&rest[..n], &mut check);
                rest = &rest[n..];
                result
            }
        };
        if result.is_err() {
            break;
        }
    }
    parser.finish(&mut check);
    check.frames
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let content_type = CONTENT_TYPES[data[0] as usize % CONTENT_TYPES.len()];
    let seed = u32::from(data[1]) | 1;
    let body = &data[2..];
    let frames = run(content_type, seed, body, false);
    for frame in &frames {
        assert!(
            frame.is_empty() || memchr::memmem::find(body, frame).is_some(),
            "a frame that is not a run of the input"
        );
    }
    assert_eq!(
        run(content_type, seed, body, true),
        frames,
        "direct reads changed the frames"
    );
});
