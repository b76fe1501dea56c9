// SPDX-License-Identifier: MPL-2.0

//! The source's HTTP/1.x response reader on arbitrary server bytes: the
//! response head (interim 1xx responses skipped, HTTP/0.9 only for an MJPEG
//! start, lenient header syntax), then the body drained through its framing
//! (chunked with extensions and bare LF, Content-Length, or to EOF).
//!
//! Invariants: no panic, no hang (the input ends, so every read ends); an
//! accepted response is never interim (1xx) and its body is never longer
//! than the input.
#![no_main]

use gstmjpeg::internals::http1::parse_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((status, body_len)) = parse_response(data) {
        assert!(!(100..200).contains(&status), "interim {status} taken");
        assert!(body_len <= data.len(), "{body_len} > {}", data.len());
    }
});
