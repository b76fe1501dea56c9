//! An MJPEG viewer that prints py-mjpeg-style statistics once a second,
//! read from mjpegsrc's `stats` property, and reports the source's bus
//! messages (connected, reconnecting, errors).
//!
//! ```text
//! cargo run --release --example viewer -- URL [--seconds N] [--display]
//! ```
//! Without `--display` frames go to a fakesink (a headless client); with it
//! they are decoded and shown. `--seconds 0` (the default) runs until the
//! stream ends or fails.
//!
//! Each line reads: URL, fps, buffer overruns, reconnects, total frames
//! (received), discarded frames (dropped), free buffers.

use std::time::{Duration, Instant};

use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = None;
    let mut seconds = 0u64;
    let mut display = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().ok_or("--seconds needs a value")?.parse()?,
            "--display" => display = true,
            _ if url.is_none() && !a.starts_with("--") => url = Some(a),
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let url = url.ok_or("usage: viewer URL [--seconds N] [--display]")?;

    gst::init()?;
    gstmjpeg::plugin_register_static()?;

    let src = gst::ElementFactory::make("mjpegsrc")
        .name("src")
        .property("location", &url)
        .build()?;
    let pipeline = gst::Pipeline::new();
    if display {
        let dec = gst::ElementFactory::make("jpegdec").build()?;
        let conv = gst::ElementFactory::make("videoconvert").build()?;
        let sink = gst::ElementFactory::make("autovideosink").build()?;
        pipeline.add_many([&src, &dec, &conv, &sink])?;
        gst::Element::link_many([&src, &dec, &conv, &sink])?;
    } else {
        let sink = gst::ElementFactory::make("fakesink").build()?;
        pipeline.add_many([&src, &sink])?;
        src.link(&sink)?;
    }
    pipeline.set_state(gst::State::Playing)?;

    let bus = pipeline.bus().ok_or("pipeline without bus")?;
    let start = Instant::now();
    let mut next_report = Duration::from_secs(1);
    let mut result = Ok(());
    'run: loop {
        // Handle bus messages until the next report is due.
        while let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(
            next_report.saturating_sub(start.elapsed()).as_millis() as u64,
        )) {
            match msg.view() {
                gst::MessageView::Element(e) => {
                    let Some(s) = e.structure() else { continue };
                    match s.name().as_str() {
                        "mjpegsrc-connected" => println!(
                            "connected: HTTP {} {} (boundary {:?})",
                            s.get::<u32>("status").unwrap_or(0),
                            s.get::<&str>("content-type").unwrap_or(""),
                            s.get::<&str>("boundary").unwrap_or(""),
                        ),
                        "mjpegsrc-reconnect" => println!(
                            "reconnecting in {} ms (attempt {}): {}",
                            s.get::<u64>("delay-ms").unwrap_or(0),
                            s.get::<u32>("attempt").unwrap_or(0),
                            s.get::<&str>("reason").unwrap_or(""),
                        ),
                        _ => {}
                    }
                }
                gst::MessageView::Error(e) => {
                    result = Err(format!(
                        "error: {} ({})",
                        e.error(),
                        e.debug().unwrap_or_default()
                    ));
                    break 'run;
                }
                gst::MessageView::Eos(_) => {
                    println!("end of stream");
                    break 'run;
                }
                _ => {}
            }
        }
        print_stats(&src, &url);
        if seconds > 0 && next_report >= Duration::from_secs(seconds) {
            break;
        }
        next_report += Duration::from_secs(1);
    }
    pipeline.set_state(gst::State::Null)?;
    result.map_err(Into::into)
}

fn print_stats(src: &gst::Element, url: &str) {
    let stats = src.property::<gst::Structure>("stats");
    let u64_of = |f: &str| stats.get::<u64>(f).unwrap_or(0);
    println!(
        "URL: {url} | fps: {:.1} | buffer overruns: {} | reconnects: {} | total frames: {} | \
         discarded frames: {} | free buffers: {}",
        stats.get::<f64>("fps").unwrap_or(0.0),
        u64_of("overruns"),
        u64_of("reconnects"),
        u64_of("frames-received"),
        u64_of("frames-dropped"),
        stats.get::<u32>("free-buffers").unwrap_or(0),
    );
}
