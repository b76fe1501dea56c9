// SPDX-License-Identifier: MPL-2.0

/**
 * SECTION:element-mjpegsrc
 *
 * `mjpegsrc` is a live source that reads an MJPEG stream over HTTP or HTTPS
 * (IP cameras, ESP32-CAM, mjpg-streamer, ustreamer, OctoPrint, another
 * `mjpegsink`) and pushes one `image/jpeg` buffer per frame, with `width`
 * and `height` read from the JPEG header in the caps.
 *
 * It reads every MJPEG variant cameras send (`multipart/x-mixed-replace` or
 * `multipart/mixed`, boundary before or after each frame, missing first
 * boundary, missing or wrong boundary parameter, no or wrong Content-Length,
 * LF-only lines, chunked on HTTP/1.0, raw concatenated JPEGs ...), and
 * releases each frame the moment its last byte is in.
 *
 * The network is read on its own task into a bounded pool of `pool-size`
 * buffers of `max-frame-size` bytes: when downstream is slow, frames are
 * dropped and counted instead of piling up latency or memory.
 *
 * After a disconnect, a stall (`timeout`), an HTTP 5xx or garbage it
 * reconnects with a doubling back-off (`retry-delay` up to
 * `retry-delay-max`), posting a warning and a `mjpegsrc-reconnect` element
 * message each time; `retries` bounds the attempts. 401/403 (after trying
 * the credentials) and 404 on the first connection are errors.
 *
 * The `stats` property (a `mjpegsrc-stats` structure) and the
 * `mjpegsrc-connected` / `mjpegsrc-reconnect` element messages report what
 * it is doing. `GST_DEBUG=mjpegsrc:5` logs the whole session.
 *
 * ## Example pipelines
 * ```bash
 * # View a camera
 * gst-launch-1.0 mjpegsrc location=http://camera/video.mjpg ! jpegdec ! autovideosink
 *
 * # A camera with a password, recorded to Matroska without re-encoding
 * gst-launch-1.0 -e mjpegsrc location=http://camera/cgi-bin/mjpg/video.cgi \
 *     user-id=admin user-pw=secret ! matroskamux ! filesink location=camera.mkv
 *
 * # One frame to a file
 * gst-launch-1.0 mjpegsrc location=http://camera/video.mjpg num-buffers=1 ! filesink location=snapshot.jpg
 *
 * # Relay a one-client camera to many viewers
 * gst-launch-1.0 mjpegsrc location=http://camera/video.mjpg ! mjpegsink port=8090
 * ```
 *
 * Since: plugins-rs-0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod assembler;
mod client;
#[cfg(feature = "internals")]
pub(crate) mod http1 {
    pub(crate) use super::client::parse_response_bytes;
}
mod imp;
mod pool;
mod settings;
mod stats;

glib::wrapper! {
    pub struct MjpegSrc(ObjectSubclass<imp::MjpegSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

pub(crate) fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "mjpegsrc",
        // Below souphttpsrc: playbin keeps using it for http:// URIs.
        gst::Rank::MARGINAL,
        MjpegSrc::static_type(),
    )
}
