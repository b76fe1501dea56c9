// SPDX-License-Identifier: MPL-2.0

//! # gst-mjpeg
//!
//! A GStreamer plugin for MJPEG over HTTP:
//!
//! * `mjpegsrc` — a live source that reads an HTTP(S) MJPEG stream
//!   (`multipart/x-mixed-replace` and the sloppy variants real cameras send),
//!   pushes `image/jpeg` frames from a bounded buffer pool, drops frames
//!   instead of building latency when downstream is slow, and reconnects by
//!   itself.
//! * `mjpegsink` — serves a pipeline's JPEG frames to many HTTP clients at
//!   once as `multipart/x-mixed-replace`, plus a snapshot and a state
//!   endpoint; a slow client never stalls the pipeline or the other clients.
//!
//! The parts without GStreamer types (the multipart parser, the JPEG header
//! reader) are plain Rust modules, usable and testable on their own.
//!
//! Applications written in Rust link the crate and call
//! [`plugin_register_static()`] after `gst::init()`; everyone else loads
//! `libgstmjpeg.so` from `GST_PLUGIN_PATH` or the system plugin directory:
//!
//! ```text
//! cargo build --release
//! GST_PLUGIN_PATH=$PWD/target/release gst-inspect-1.0 mjpeg
//! gst-launch-1.0 videotestsrc is-live=true ! jpegenc ! mjpegsink port=8080
//! gst-launch-1.0 mjpegsrc location=http://127.0.0.1:8080/ ! jpegdec ! autovideosink
//! ```
//!
//! The crate's public API is the plugin (`plugin_register_static()`, and
//! `libgstmjpeg.so`); the elements are used through GStreamer. The internals
//! that the fuzz targets, benchmarks and tests drive directly are reachable
//! through `internals` with the `internals` feature, without any promise
//! of stability.
//!
//! Where things live (`src/`):
//! * `mjpegsrc/` — the source: `imp.rs` (the element, the only file that
//!   speaks GStreamer), `client/` (HTTP, auth, redirects, reconnects, the
//!   read loop; no GStreamer types), `assembler.rs` (frames into pool
//!   buffers, the hand-over to `create()`), `pool.rs`, `settings.rs`,
//!   `stats.rs`;
//! * `mjpegsink/` — the sink: `imp.rs` (the element), `server/` (the hyper
//!   server split by concern; no GStreamer types);
//! * `multipart/` — the body parser and the part writer (pure Rust);
//! * `jpeg.rs` — SOI/SOF/EOI inspection (pure Rust);
//! * `runtime.rs` — the shared tokio runtime and the cancellable wait;
//!   `net.rs` — the SIGPIPE-free socket wrapper.
#![forbid(unsafe_code)]

use gst::glib;

mod jpeg;
mod mjpegsink;
mod mjpegsrc;
mod multipart;
mod net;
mod runtime;

/// Internals for fuzz targets, benchmarks and tests: not a stable API.
#[cfg(feature = "internals")]
pub mod internals {
    /// The multipart body parser.
    pub mod multipart {
        pub use crate::multipart::{
            Disagreement, Event, Handler, Limits, ParseError, Parser, PartInfo, SkipReason,
            boundary_param,
        };
    }
    /// JPEG header inspection and the raw-JPEG splitter.
    pub mod jpeg {
        pub use crate::jpeg::{FrameSplitter, Mark, dimensions, starts_with_soi};
    }
    /// The source's answers to `WWW-Authenticate` challenges.
    pub mod auth {
        pub use crate::mjpegsrc::client::auth::{Auth, Credentials, Verdict};
    }
    /// The source's HTTP/1.x response reader.
    pub mod http1 {
        /// Parse `bytes` as a server's answer and drain its body: the
        /// status and the body length, or the error's text.
        pub fn parse_response(bytes: &[u8]) -> Result<(u16, usize), String> {
            crate::runtime::RUNTIME.block_on(crate::mjpegsrc::client::parse_response_bytes(
                bytes.to_vec(),
            ))
        }
    }
    /// The sink's HTTP server, without the element.
    pub mod sink {
        pub use crate::mjpegsink::server::{Config, Server, Stats, bind};
    }
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    mjpegsrc::register(plugin)?;
    mjpegsink::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    mjpeg,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
