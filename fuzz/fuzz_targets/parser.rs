//! The multipart / raw-JPEG parser on arbitrary bytes in arbitrary chunks.
//!
//! Input layout: byte 0 picks the response Content-Type, byte 1 seeds the
//! chunk sizes, the rest is the body. Invariants: no panic; callbacks come in
//! a valid order; no frame exceeds the part limit; every frame is exactly a
//! run of bytes of the input (a part body or a SOI..EOI run).
#![no_main]

use gstmjpeg::multipart::{Event, Handler, Limits, Parser, PartInfo};
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
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let content_type = CONTENT_TYPES[data[0] as usize % CONTENT_TYPES.len()];
    let mut seed = u32::from(data[1]) | 1;
    let body = &data[2..];
    let mut parser = Parser::new(content_type, LIMITS);
    let mut check = Check::default();
    let mut rest = body;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 97 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        if parser.feed(chunk, &mut check).is_err() {
            break;
        }
        rest = tail;
    }
    parser.finish(&mut check);
    for frame in &check.frames {
        assert!(
            frame.is_empty() || memchr::memmem::find(body, frame).is_some(),
            "a frame that is not a run of the input"
        );
    }
});
