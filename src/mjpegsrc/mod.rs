//! `mjpegsrc`: a live source reading MJPEG over HTTP(S).
//!
//! ```text
//! gst-launch-1.0 mjpegsrc location=http://camera/video.mjpg ! jpegdec ! autovideosink
//! gst-launch-1.0 mjpegsrc location=http://admin:secret@camera/cgi-bin/mjpg/video.cgi ! \
//!     jpegdec ! videoconvert ! x264enc tune=zerolatency ! matroskamux ! filesink location=cam.mkv
//! gst-launch-1.0 mjpegsrc location=http://camera/stream ! mjpegsink port=8080
//! ```
//!
//! It reads every MJPEG variant cameras send (boundary before or after each
//! frame, missing first boundary, no Content-Length, wrong Content-Length,
//! LF-only lines, chunked on HTTP/1.0, raw concatenated JPEGs ...), releases
//! each frame the moment its last byte is in, and reconnects after a
//! disconnect, a stall or an HTTP error. The network is read on its own task
//! into a bounded pool: when downstream is slow, frames are dropped and
//! counted instead of piling up latency. The `stats` property and
//! `mjpegsrc-connected` / `mjpegsrc-reconnect` element messages report what
//! it is doing.
use gst::glib;
use gst::prelude::*;

mod auth;
mod http;
mod imp;
mod pool;
mod reader;

glib::wrapper! {
    pub struct MjpegSrc(ObjectSubclass<imp::MjpegSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "mjpegsrc",
        // Below souphttpsrc: playbin keeps using it for http:// URIs.
        gst::Rank::MARGINAL,
        MjpegSrc::static_type(),
    )
}
