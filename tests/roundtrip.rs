//! End to end: `videotestsrc ! jpegenc ! mjpegsink` read back by `mjpegsrc`,
//! directly and through a relay (`mjpegsrc ! mjpegsink`), frames
//! byte-identical to what jpegenc produced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

const FRAMES: usize = 30;
const WAIT: Duration = Duration::from_secs(20);

fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst init");
        gstmjpeg::plugin_register_static().expect("register plugin");
    });
}

fn pipeline(desc: &str) -> gst::Pipeline {
    gst::parse::launch(desc)
        .expect("valid pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

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

fn sink_clients(sink: &gst::Element) -> u64 {
    sink.property::<gst::Structure>("stats")
        .get::<u64>("clients")
        .unwrap_or(0)
}

/// A paused test-pattern server whose encoded frames are recorded.
fn camera() -> (gst::Pipeline, gst::Element, Arc<Mutex<Vec<Vec<u8>>>>) {
    let server = pipeline(&format!(
        "videotestsrc is-live=true num-buffers={FRAMES} pattern=ball ! \
         video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! \
         mjpegsink name=sink host=127.0.0.1 port=0"
    ));
    let sink = server.by_name("sink").expect("sink");
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sent2 = sent.clone();
    sink.static_pad("sink").expect("sink pad").add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if let Some(buffer) = info.buffer() {
                let map = buffer.map_readable().expect("readable");
                sent2.lock().unwrap().push(map.to_vec());
            }
            gst::PadProbeReturn::Ok
        },
    );
    // PAUSED: the port is bound, a live source produces nothing yet.
    server.set_state(gst::State::Paused).expect("paused");
    (server, sink, sent)
}

fn port(sink: &gst::Element) -> i32 {
    let p: i32 = sink.property("current-port");
    assert!(p > 0, "sink bound no port");
    p
}

fn reader(url: &str) -> (gst::Pipeline, gst_app::AppSink) {
    let p = pipeline(&format!(
        "mjpegsrc location={url} retry-delay=10 ! appsink name=out sync=false"
    ));
    let appsink = p
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    p.set_state(gst::State::Playing).expect("playing");
    (p, appsink)
}

fn pull_frames(appsink: &gst_app::AppSink, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let sample = appsink
            .try_pull_sample(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
            .unwrap_or_else(|| panic!("only {} of {n} frames arrived", got.len()));
        let caps = sample
            .caps()
            .expect("caps")
            .structure(0)
            .expect("structure")
            .to_owned();
        assert_eq!(caps.get::<i32>("width").ok(), Some(320), "{caps}");
        assert_eq!(caps.get::<i32>("height").ok(), Some(240), "{caps}");
        let buffer = sample.buffer().expect("buffer");
        got.push(buffer.map_readable().expect("readable").to_vec());
    }
    got
}

#[test]
fn sink_to_src_byte_identical() {
    init();
    let (server, sink, sent) = camera();
    let url = format!("http://127.0.0.1:{}/stream", port(&sink));
    let (client, appsink) = reader(&url);
    wait_until("the client", &[&server, &client], || {
        sink_clients(&sink) == 1
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
    let camera_url = format!("http://127.0.0.1:{}/stream", port(&sink));
    let relay = pipeline(&format!(
        "mjpegsrc location={camera_url} retry-delay=10 ! mjpegsink name=relay host=127.0.0.1 port=0"
    ));
    relay.set_state(gst::State::Playing).expect("playing");
    let relay_sink = relay.by_name("relay").expect("relay sink");
    let relay_url = format!("http://127.0.0.1:{}/stream", port(&relay_sink));
    wait_until("the relay", &[&server, &relay], || sink_clients(&sink) == 1);

    let (viewer, appsink) = reader(&relay_url);
    wait_until("the viewer", &[&relay, &viewer], || {
        sink_clients(&relay_sink) == 1
    });
    server.set_state(gst::State::Playing).expect("playing");

    let got = pull_frames(&appsink, FRAMES);
    let sent = sent.lock().unwrap().clone();
    assert!(got == sent, "relayed frames differ from the camera's");

    viewer.set_state(gst::State::Null).expect("null");
    relay.set_state(gst::State::Null).expect("null");
    server.set_state(gst::State::Null).expect("null");
}
