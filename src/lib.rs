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
use gst::glib;

pub mod jpeg;
pub mod mjpegsink;
pub mod mjpegsrc;
pub mod multipart;
pub mod runtime;

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
