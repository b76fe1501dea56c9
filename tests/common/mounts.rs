// SPDX-License-Identifier: MPL-2.0

//! Several `mjpegsink`s on one port: pipelines of `videotestsrc ! jpegenc !
//! mjpegsink mount=...` whose later sinks join the first's port, and the
//! requests the mount tests make.

use std::time::Duration;

use gst::prelude::*;

use super::{LONG_WAIT, WAIT, by_name, current_port, http_get, launch, multipart_frames};

/// One camera branch: `videotestsrc ! WxH ! jpegenc ! mjpegsink name=NAME
/// mount=MOUNT` plus `extra` sink properties (`key=value ...`), on
/// 127.0.0.1 and `port` (0: an ephemeral one).
pub fn camera_branch(name: &str, mount: &str, size: (u32, u32), port: u16, extra: &str) -> String {
    let (w, h) = size;
    format!(
        "videotestsrc is-live=true ! video/x-raw,width={w},height={h},framerate=15/1 ! \
         jpegenc quality=50 ! mjpegsink name={name} mount={mount} host=127.0.0.1 port={port} \
         sync=false {extra}"
    )
}

/// A pipeline of `branches`; `first` (a sink's name) is started alone so
/// its port is known, the other sinks are pointed at that port, then the
/// whole pipeline plays. Returns the pipeline and the port.
pub fn play_sharing(branches: &[String], first: &str, others: &[&str]) -> (gst::Pipeline, u16) {
    let pipeline = launch(&branches.join("  "));
    let sink: gst::Element = by_name(&pipeline, first);
    sink.set_state(gst::State::Ready)
        .expect("the first sink binds a port");
    let port = current_port(&sink);
    for name in others {
        let other: gst::Element = by_name(&pipeline, name);
        other.set_property("port", i32::from(port));
    }
    pipeline
        .set_state(gst::State::Playing)
        .expect("pipeline plays");
    (pipeline, port)
}

/// A pipeline of one camera branch joining `port`, playing.
pub fn play_joining(
    name: &str,
    mount: &str,
    size: (u32, u32),
    port: u16,
    extra: &str,
) -> gst::Pipeline {
    let pipeline = launch(&camera_branch(name, mount, size, port, extra));
    pipeline
        .set_state(gst::State::Playing)
        .expect("pipeline plays");
    pipeline
}

/// GET `path` and read the whole (closed) response.
pub fn get(port: u16, path: &str) -> super::Response {
    get_with(port, path, &[])
}

/// GET `path` with `headers` and read the whole (closed) response.
pub fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> super::Response {
    http_get(port, path, headers, WAIT, |_| false)
        .unwrap_or_else(|| panic!("no response to {path} on port {port}"))
}

/// The size of the first whole frame of the stream at `path`.
pub fn stream_size(port: u16, path: &str) -> (u32, u32) {
    let resp = http_get(port, path, &[], LONG_WAIT, |body| {
        !multipart_frames(Some("multipart/x-mixed-replace"), body).is_empty()
    })
    .unwrap_or_else(|| panic!("no response to {path} on port {port}"));
    assert_eq!(resp.status, 200, "{path}: {}", resp.head);
    let frames = multipart_frames(resp.header("content-type"), &resp.body);
    let first = frames
        .first()
        .unwrap_or_else(|| panic!("{path}: no whole frame ({} bytes)", resp.body.len()));
    gstmjpeg::internals::jpeg::dimensions(first).unwrap_or_else(|| panic!("{path}: not a JPEG"))
}

/// The size of the snapshot at `path` (200 expected).
pub fn snapshot_size(port: u16, path: &str) -> (u32, u32) {
    let resp = get(port, path);
    assert_eq!(resp.status, 200, "{path}: {}", resp.head);
    gstmjpeg::internals::jpeg::dimensions(&resp.body)
        .unwrap_or_else(|| panic!("{path}: not a JPEG ({} bytes)", resp.body.len()))
}

/// The first error on `pipeline`'s bus within `timeout`: (message, debug).
pub fn bus_error(pipeline: &gst::Pipeline, timeout: Duration) -> Option<(String, String)> {
    let bus = pipeline.bus()?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
        &[gst::MessageType::Error],
    )?;
    match msg.view() {
        gst::MessageView::Error(e) => Some((
            e.error().to_string(),
            e.debug().map(|d| d.to_string()).unwrap_or_default(),
        )),
        _ => None,
    }
}

/// Whether `port` on 127.0.0.1 can be bound (nobody listens there).
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
