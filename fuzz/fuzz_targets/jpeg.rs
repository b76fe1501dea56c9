// SPDX-License-Identifier: MPL-2.0

//! The JPEG header reader and frame splitter on arbitrary bytes: no panic,
//! and the splitter always makes progress and never consumes past its input.
#![no_main]

use gstmjpeg::internals::jpeg::{self, FrameSplitter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jpeg::dimensions(data);
    let _ = jpeg::starts_with_soi(data);
    let mut splitter = FrameSplitter::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (used, _mark) = splitter.scan(rest);
        assert!(used <= rest.len(), "consumed past the input");
        assert!(used > 0, "no progress");
        rest = &rest[used..];
    }
});
