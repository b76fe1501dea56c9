// SPDX-License-Identifier: MPL-2.0

//! The one helper module of the integration tests, split by concern:
//! - [`jpeg`]: synthetic JPEGs;
//! - [`wire`]: HTTP and multipart bytes as cameras send them, paced scripts;
//! - [`camera`]: the scripted fake camera (raw TCP or TLS) and the local
//!   real camera (`videotestsrc ! jpegenc ! mjpegsink` in this process);
//! - [`http`]: HTTP client helpers (raw GET, dechunk, multipart frames);
//! - [`pipeline`]: the element under test in a pipeline or a harness;
//! - [`process`]: child processes, the built plugin, temporary directories;
//! - [`sink`]: a live `mjpegsink` in this process ([`LiveSink`]).
//!
//! Every test file has `mod common;` and `use common::*;`. Everything
//! listens on 127.0.0.1, every wait is bounded and nothing sleeps to
//! synchronise: the fake camera paces its writes on what the test has pulled
//! (`Step::AwaitPulled`), so a test never depends on how fast the element's
//! streaming thread runs.
#![allow(dead_code, unused_imports)]

pub mod attack;
pub mod camera;
pub mod h2client;
pub mod hostile;
pub mod http;
pub mod jpeg;
pub mod logins;
pub mod mounts;
pub mod pipeline;
pub mod process;
pub mod proxy;
pub mod sink;
pub mod viewers;
pub mod wire;

pub use camera::*;
pub use http::*;
pub use jpeg::*;
pub use pipeline::*;
pub use process::*;
pub use sink::LiveSink;
pub use wire::*;

use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

/// The crate internals the tests use (the multipart parser): the one place
/// that names their path.
pub mod internals {
    pub use gstmjpeg::internals::multipart::{Event, Handler, Limits, Parser, PartInfo};
}

/// Upper bound of every wait for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);
/// Upper bound of waits on child processes, real encoders and proxies.
pub const LONG_WAIT: Duration = Duration::from_secs(30);
/// Poll period of bounded waits.
pub const POLL: Duration = Duration::from_millis(10);

/// Initialise GStreamer and register the plugin statically, once.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gstmjpeg::plugin_register_static().expect("register the mjpeg plugin");
    });
}

/// Lock, ignoring poisoning (a failed test must not fail the next ones).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Poll `f` every [`POLL`] until it returns `Some`, for at most `limit`.
pub fn poll_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Poll `cond` every [`POLL`] until it holds; false after `timeout`.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll_until(timeout, || cond().then_some(())).is_some()
}

/// Serialise the tests of one binary that measure the process (memory,
/// file descriptors, timing): hold the guard for the whole test.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    lock(&SERIAL)
}

/// Like [`wait_for`] bounded by [`WAIT`]; panics naming `what` if `cond`
/// never holds.
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    assert!(wait_for(WAIT, cond), "timed out waiting for {what}");
}
