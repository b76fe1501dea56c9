//! Serve a test pattern as MJPEG over HTTP:
//! `videotestsrc ! jpegenc ! mjpegsink`, then print the URLs to open.
//!
//! ```text
//! cargo run --example server -- [--host 127.0.0.1] [--port 8080] [--width 1280]
//!     [--height 720] [--fps 30] [--quality 85] [--num-buffers -1]
//! ```
//! Port 0 picks a free port. Stops at EOS (after `--num-buffers`), on error,
//! or when killed.

use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut host = "127.0.0.1".to_string();
    let mut port = 8080u16;
    let (mut width, mut height, mut fps, mut quality) = (1280u32, 720u32, 30u32, 85u32);
    let mut num_buffers = -1i32;
    let mut args = std::env::args().skip(1);
    while let Some(k) = args.next() {
        let v = args.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--host" => host = v,
            "--port" => port = v.parse()?,
            "--width" => width = v.parse()?,
            "--height" => height = v.parse()?,
            "--fps" => fps = v.parse()?,
            "--quality" => quality = v.parse()?,
            "--num-buffers" => num_buffers = v.parse()?,
            _ => return Err(format!("unknown option {k}").into()),
        }
    }

    gst::init()?;
    gstmjpeg::plugin_register_static()?;

    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=smpte horizontal-speed=4 num-buffers={num_buffers} \
         ! video/x-raw,width={width},height={height},framerate={fps}/1 ! timeoverlay \
         ! jpegenc quality={quality} ! mjpegsink name=sink host={host} port={port}"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sink = pipeline.by_name("sink").ok_or("no sink")?;
    sink.connect("client-connected", false, |args| {
        if let Ok(peer) = args[1].get::<String>() {
            println!("client connected: {peer}");
        }
        None
    });
    sink.connect("client-disconnected", false, |args| {
        if let Ok(peer) = args[1].get::<String>() {
            println!("client disconnected: {peer}");
        }
        None
    });

    pipeline.set_state(gst::State::Playing)?;
    let bound = sink.property::<i32>("current-port");
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    println!("MJPEG stream: http://{shown}:{bound}/");
    println!("snapshot:     http://{shown}:{bound}/snapshot");
    println!("state:        http://{shown}:{bound}/state");

    let bus = pipeline.bus().ok_or("no bus")?;
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                result = Err(format!("{}: {:?}", e.error(), e.debug()).into());
                break;
            }
            _ => {}
        }
    }
    println!("stats: {}", sink.property::<gst::Structure>("stats"));
    pipeline.set_state(gst::State::Null)?;
    result
}
