// SPDX-License-Identifier: MPL-2.0

//! A camera that only offers a snapshot URL (`image/jpeg`, one frame per
//! response) is polled: every response gives a frame, and the next request
//! follows after `retry-delay`.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Instant;

use gst::prelude::*;

#[test]
fn snapshot_url_is_polled() {
    init();
    let jpeg = std::fs::read(fixture("j0.jpg")).expect("seed JPEG");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let served = jpeg.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(5) {
            let Ok(mut conn) = conn else { return };
            let mut req = [0u8; 2048];
            let _ = conn.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                served.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&served);
        }
    });

    let pipeline = launch(&format!(
        "mjpegsrc location=http://127.0.0.1:{port}/snapshot.jpg retry-delay=10 num-buffers=3 ! appsink name=out sync=false"
    ));
    let appsink = by_name::<gst_app::AppSink>(&pipeline, "out");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let deadline = Instant::now() + WAIT;
    for i in 0..3 {
        let sample =
            pull_until(&appsink, deadline).unwrap_or_else(|| panic!("snapshot {i} did not arrive"));
        let buffer = sample.buffer().expect("buffer");
        assert_eq!(buffer.map_readable().expect("map").as_slice(), &jpeg[..]);
    }
    let stats = pipeline
        .by_name("mjpegsrc0")
        .expect("src")
        .property::<gst::Structure>("stats");
    assert!(stats.get::<u64>("reconnects").unwrap_or(0) >= 2, "{stats}");
    pipeline.set_state(gst::State::Null).expect("null");
}
