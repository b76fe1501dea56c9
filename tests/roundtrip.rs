// SPDX-License-Identifier: MPL-2.0

//! End to end: `videotestsrc ! jpegenc ! mjpegsink` read back by `mjpegsrc`,
//! directly and through a relay (`mjpegsrc ! mjpegsink`), frames
//! byte-identical to what jpegenc produced.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

const FRAMES: usize = 30;
const WAIT: Duration = Duration::from_secs(20);

/// Wait (bounded) until `cond` holds, polling the pipelines' buses for errors.
fn wait_until(what: &str, pipelines: &[&gst::Pipeline], mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        for p in pipelines {
            if let Some(msg) = p
                .bus()
                .expect("bus")
                .pop_filtered(&[gst::MessageType::Error])
            {
                panic!("error while waiting for {what}: {msg:?}");
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A paused test-pattern server whose encoded frames are recorded.
fn camera() -> (gst::Pipeline, gst::Element, Arc<Mutex<Vec<Vec<u8>>>>) {
    let server = launch(&format!(
        "videotestsrc is-live=true num-buffers={FRAMES} pattern=ball ! \
         video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! \
         mjpegsink name=sink host=127.0.0.1 port=0"
    ));
    let sink = server.by_name("sink").expect("sink");
    let sent = capture_input(&sink);
    // PAUSED: the port is bound, a live source produces nothing yet.
    server.set_state(gst::State::Paused).expect("paused");
    (server, sink, sent)
}

fn reader(url: &str) -> (gst::Pipeline, gst_app::AppSink) {
    let p = launch(&format!(
        "mjpegsrc location={url} retry-delay=10 ! appsink name=out sync=false"
    ));
    let appsink = by_name::<gst_app::AppSink>(&p, "out");
    p.set_state(gst::State::Playing).expect("playing");
    (p, appsink)
}

fn pull_frames(appsink: &gst_app::AppSink, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        let sample = pull_until(appsink, deadline)
            .unwrap_or_else(|| panic!("only {} of {n} frames arrived", got.len()));
        assert_eq!(
            sample_size(&sample),
            Some((320, 240)),
            "{:?}",
            sample.caps()
        );
        let buffer = sample.buffer().expect("buffer");
        got.push(buffer.map_readable().expect("readable").to_vec());
    }
    got
}

#[test]
fn sink_to_src_byte_identical() {
    init();
    let (server, sink, sent) = camera();
    let url = format!("http://127.0.0.1:{}/stream", current_port(&sink));
    let (client, appsink) = reader(&url);
    wait_until("the client", &[&server, &client], || {
        stat_u64(&sink, "clients") == 1
    });
    server.set_state(gst::State::Playing).expect("playing");

    let got = pull_frames(&appsink, FRAMES);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), FRAMES);
    assert!(got == sent, "frames differ from what jpegenc produced");

    client.set_state(gst::State::Null).expect("null");
    server.set_state(gst::State::Null).expect("null");
}

#[test]
fn relay_byte_identical() {
    init();
    let (server, sink, sent) = camera();
    let camera_url = format!("http://127.0.0.1:{}/stream", current_port(&sink));
    let relay = launch(&format!(
        "mjpegsrc location={camera_url} retry-delay=10 ! mjpegsink name=relay host=127.0.0.1 port=0"
    ));
    relay.set_state(gst::State::Playing).expect("playing");
    let relay_sink = relay.by_name("relay").expect("relay sink");
    let relay_url = format!("http://127.0.0.1:{}/stream", current_port(&relay_sink));
    wait_until("the relay", &[&server, &relay], || {
        stat_u64(&sink, "clients") == 1
    });

    let (viewer, appsink) = reader(&relay_url);
    wait_until("the viewer", &[&relay, &viewer], || {
        stat_u64(&relay_sink, "clients") == 1
    });
    server.set_state(gst::State::Playing).expect("playing");

    let got = pull_frames(&appsink, FRAMES);
    let sent = sent.lock().unwrap().clone();
    assert!(got == sent, "relayed frames differ from the camera's");

    viewer.set_state(gst::State::Null).expect("null");
    relay.set_state(gst::State::Null).expect("null");
    server.set_state(gst::State::Null).expect("null");
}
