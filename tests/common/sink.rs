// SPDX-License-Identifier: MPL-2.0

//! A live `mjpegsink` in this process: a moving 160x120 picture served on
//! port 0, with its port once the first frame reached the sink.

use gst::prelude::*;

use super::{LONG_WAIT, wait_for};

/// A live 160x120 ball pipeline into an `mjpegsink` with `props` (which
/// name the `host`: tests serve on loopback), playing, with its port, once
/// the sink has a frame. Set to NULL when dropped.
pub struct LiveSink {
    pub pipeline: gst::Pipeline,
    pub sink: gst::Element,
    pub port: u16,
}

impl LiveSink {
    pub fn start(props: &str) -> LiveSink {
        super::init();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true pattern=ball ! \
             video/x-raw,width=160,height=120,framerate=30/1 ! \
             jpegenc ! mjpegsink name=sink port=0 {props}"
        ))
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
        let sink = pipeline.by_name("sink").expect("sink");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let port = u16::try_from(sink.property::<i32>("current-port")).expect("port");
        let s = LiveSink {
            port,
            pipeline,
            sink,
        };
        assert!(
            wait_for(LONG_WAIT, || s.stat("frames-in") > 0),
            "no frame reached the sink"
        );
        s
    }

    /// A `u64` field of the sink's `stats`.
    pub fn stat(&self, field: &str) -> u64 {
        self.sink
            .property::<gst::Structure>("stats")
            .get::<u64>(field)
            .unwrap_or_else(|e| panic!("stats field {field}: {e}"))
    }
}

impl Drop for LiveSink {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
