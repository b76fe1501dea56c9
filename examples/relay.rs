//! Relay a camera to many viewers: `mjpegsrc ! mjpegsink`.
//!
//! ```text
//! cargo run --release --example relay -- http://camera/video.mjpg [PORT] [HOST]
//! ```
//! A camera that serves one client (or serves many slowly) is read once;
//! every viewer of `http://HOST:PORT/stream` gets the newest frame at its own
//! pace. The camera's reconnects and the viewers come and go without
//! stopping the relay. Prints both elements' statistics every second.

use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gst::init()?;
    gstmjpeg::plugin_register_static()?;
    let mut args = std::env::args().skip(1);
    let location = args
        .next()
        .ok_or("usage: relay URL [PORT] [HOST]  (PORT 0 = any free port)")?;
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(8080);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());

    let src = gst::ElementFactory::make("mjpegsrc")
        .property("location", &location)
        .build()?;
    let sink = gst::ElementFactory::make("mjpegsink")
        .property("host", &host)
        .property("port", i32::from(port))
        .build()?;
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([&src, &sink])?;
    src.link(&sink)?;
    pipeline.set_state(gst::State::Playing)?;
    let bound: i32 = sink.property("current-port");
    println!("relaying {location} at http://{host}:{bound}/stream");

    let bus = pipeline.bus().ok_or("no bus")?;
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::SECOND) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    pipeline.set_state(gst::State::Null)?;
                    return Err(format!("{}: {:?}", e.error(), e.debug()).into());
                }
                gst::MessageView::Warning(w) => {
                    eprintln!("warning: {} ({:?})", w.error(), w.debug())
                }
                gst::MessageView::Eos(_) => break,
                _ => {}
            }
            continue;
        }
        let s = src.property::<gst::Structure>("stats");
        let k = sink.property::<gst::Structure>("stats");
        println!(
            "camera: {:.1} fps, {} frames, {} dropped, {} reconnects | viewers: {}, {} frames out, {} skipped",
            s.get::<f64>("fps").unwrap_or(0.0),
            s.get::<u64>("frames-pushed").unwrap_or(0),
            s.get::<u64>("frames-dropped").unwrap_or(0),
            s.get::<u64>("reconnects").unwrap_or(0),
            k.get::<u64>("clients").unwrap_or(0),
            k.get::<u64>("frames-out").unwrap_or(0),
            k.get::<u64>("frames-skipped").unwrap_or(0),
        );
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(())
}
