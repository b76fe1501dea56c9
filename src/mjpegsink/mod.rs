// SPDX-License-Identifier: MPL-2.0

/**
 * SECTION:element-mjpegsink
 *
 * `mjpegsink` serves the JPEG frames of a pipeline to any number of HTTP
 * clients at once as an MJPEG stream (`multipart/x-mixed-replace`), the
 * format browsers show in an `<img>` and every MJPEG viewer reads. It also
 * answers `/snapshot` (the newest JPEG) and `/state` (JSON statistics).
 *
 * Endpoints: `/`, `/stream` and `/?action=stream` (the stream; `?fps=N`
 * limits a viewer to N frames a second), `/snapshot` and
 * `/?action=snapshot` (with `ETag`/304, `Last-Modified`, `Age`; `?wait=1`
 * and `?max_age=S` ask for a fresh frame), `/state`, `/metrics`
 * (Prometheus text format). `HEAD` works everywhere.
 *
 * The read-only `clients` property counts streaming clients, with
 * `notify::clients` emitted from a thread of the element's when it changes
 * (e.g. to connect a camera only while someone watches: see
 * `examples/on_demand.rs`). On static scenes `drop-same-frames` does not
 * resend identical frames.
 *
 * Chrome shows a multipart image only once the *next* part's headers have
 * arrived, i.e. one frame late. With ustreamer's `advance_headers` framing
 * (each delimiter is followed at once by the next part's headers, without
 * Content-Length) it shows each frame as it arrives: measured in headless
 * Chromium 156 at 10 fps, 8 ms instead of 107 ms from push to display. It is
 * therefore the default for Chromium User-Agents (`advance-headers`
 * property); `?advance_headers=0` or `=1` on the URL overrides it.
 *
 * The streaming thread never waits on a client: `render()` publishes the
 * newest frame and returns. Every client is sent whole parts, always the
 * newest frame its connection can take; a slow client skips frames (counted
 * in `stats`) and stays close to live, never slowing the pipeline or the
 * other clients. At EOS every client receives the closing delimiter and is
 * disconnected; in NULL the port is free.
 *
 * Exposed to a network: connections are bounded (`max-connections`, by
 * default half the process's open-file limit); at the limit the oldest
 * connection that is neither streaming nor answering a request is closed
 * for the newcomer, so idle sockets cannot lock viewers out, and streams
 * are never closed for a newcomer. As DNS-rebinding protection, a sink
 * bound to a loopback address answers only requests naming a loopback host
 * (`localhost`, `*.localhost`, 127.0.0.0/8, ::1) or an `allowed-hosts`
 * entry (403 otherwise); bound elsewhere, a non-empty `allowed-hosts`
 * restricts it. Behind a reverse proxy that forwards the public host, list
 * that name. With `tls-cert` and `tls-key` (PEM files) the sink serves
 * HTTPS only; plain HTTP to that port gets a 400 saying so.
 * With `user-id`/`user-pw`, every endpoint asks for HTTP Basic credentials;
 * an address with 10 failed logins within a minute gets 429 for the rest of
 * the minute (`trusted-proxies` names reverse proxies whose
 * `X-Forwarded-For` is believed). With `link-secret`, the `sign-url` action
 * signal returns links such as `/stream?exp=…&sig=…` that open one path
 * without credentials until they expire, for embedding in a web page.
 * `client-connected` and `client-disconnected` are emitted from a thread of
 * the element's own, never from the network threads.
 *
 * ## Example pipelines
 * ```bash
 * # A test stream on http://localhost:8080/
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=1280,height=720,framerate=30/1 \
 *     ! jpegenc quality=85 ! mjpegsink port=8080
 *
 * # A webcam for the whole LAN, with a password
 * gst-launch-1.0 v4l2src ! image/jpeg,width=1280,height=720 ! mjpegsink host=0.0.0.0 \
 *     user-id=admin user-pw=secret
 *
 * # HTTPS for the LAN name cam.lan (see the README for the certificate)
 * gst-launch-1.0 v4l2src ! image/jpeg ! mjpegsink host=0.0.0.0 tls-cert=cam.pem \
 *     tls-key=cam.key allowed-hosts='<"cam.lan">'
 *
 * # Relay a one-client camera to many viewers
 * gst-launch-1.0 mjpegsrc location=http://camera/video ! mjpegsink port=8090
 * ```
 *
 * Since: plugins-rs-0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod imp;
pub(crate) mod server;
mod settings;
mod signals;

glib::wrapper! {
    pub struct MjpegSink(ObjectSubclass<imp::MjpegSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "mjpegsink",
        gst::Rank::NONE,
        MjpegSink::static_type(),
    )
}
