// SPDX-License-Identifier: MPL-2.0

//! The gst-check tests shown in README.md ("Testing your pipeline with
//! gst-check"), one module per element. `tests/readme.rs` checks that the
//! README's code blocks are these modules' bodies byte for byte (here
//! indented one level), so the README cannot drift from what runs.

mod mjpegsrc_in_a_harness {
    use gst::prelude::*;
    use gst_check::Harness;

    #[test]
    fn mjpegsrc_gives_whole_jpeg_frames() {
        gst::init().unwrap();
        gstmjpeg::plugin_register_static().unwrap();

        // A local camera: a test pattern served by mjpegsink on a free port.
        let camera = gst::parse::launch(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240 ! jpegenc \
             ! mjpegsink name=sink host=127.0.0.1 port=0",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        camera.set_state(gst::State::Playing).unwrap();
        let port = camera
            .by_name("sink")
            .unwrap()
            .property::<i32>("current-port");

        let mut h = Harness::new("mjpegsrc");
        let src = h.element().unwrap();
        src.set_property("location", format!("http://127.0.0.1:{port}/stream"));
        h.play();
        for _ in 0..3 {
            let frame = h.pull().unwrap(); // waits 60 s at most
            let jpeg = frame.map_readable().unwrap();
            assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
        }
        let caps = h.sinkpad().unwrap().current_caps().unwrap();
        assert_eq!(caps.structure(0).unwrap().get::<i32>("width"), Ok(320));
        camera.set_state(gst::State::Null).unwrap();
    }
}

mod mjpegsink_in_a_harness {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use gst::prelude::*;
    use gst_check::Harness;

    #[test]
    fn mjpegsink_serves_the_frame_it_was_given() {
        gst::init().unwrap();
        gstmjpeg::plugin_register_static().unwrap();

        let sink = gst::ElementFactory::make("mjpegsink")
            .property("host", "127.0.0.1")
            .property("port", 0i32) // any free port
            .property("sync", false)
            .property("async", false)
            .build()
            .unwrap();
        let mut h = Harness::with_element(&sink, Some("sink"), None);
        h.add_src_parse(
            "videotestsrc ! video/x-raw,width=320,height=240 ! jpegenc",
            false,
        );
        h.play();
        h.push_from_src().unwrap();

        let port = sink.property::<i32>("current-port") as u16;
        let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
        http.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        http.write_all(b"GET /snapshot HTTP/1.0\r\n\r\n").unwrap();
        let mut response = Vec::new();
        http.read_to_end(&mut response).unwrap(); // the server closes after it
        assert!(response.starts_with(b"HTTP/1.0 200 OK\r\n"));
        assert!(response.ends_with(&[0xFF, 0xD9]), "a whole JPEG");
    }
}
