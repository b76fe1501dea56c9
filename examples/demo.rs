//! The demo behind `make demo`: a local `mjpegsink` fed by `videotestsrc`,
//! read back over HTTP by `mjpegsrc`, printing frames, fps and the source's
//! statistics once a second.
//!
//! ```text
//! cargo run --release --example demo [-- SECONDS]   (default 10; 0 = until Ctrl-C)
//! ```
//! While it runs, the stream can also be opened in a browser at the printed
//! URL.

use std::time::{Duration, Instant};

use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gst::init()?;
    gstmjpeg::plugin_register_static()?;
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);

    let server = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball ! \
         video/x-raw,width=640,height=480,framerate=30/1 ! \
         clockoverlay ! jpegenc quality=85 ! mjpegsink name=sink host=127.0.0.1 port=0",
    )
    .or_else(|_| {
        // clockoverlay lives in plugins-base's pango plugin, which may be absent.
        gst::parse::launch(
            "videotestsrc is-live=true pattern=ball ! \
             video/x-raw,width=640,height=480,framerate=30/1 ! \
             jpegenc quality=85 ! mjpegsink name=sink host=127.0.0.1 port=0",
        )
    })?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    server.set_state(gst::State::Playing)?;
    let sink = server.by_name("sink").ok_or("no sink")?;
    let port: i32 = sink.property("current-port");
    let url = format!("http://127.0.0.1:{port}/stream");
    println!("mjpegsink serving videotestsrc at {url} (open it in a browser)");

    let client = gst::parse::launch(&format!(
        "mjpegsrc name=src location={url} ! fakesink name=out"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let src = client.by_name("src").ok_or("no src")?;
    client.set_state(gst::State::Playing)?;

    let start = Instant::now();
    let bus = client.bus().ok_or("no bus")?;
    let mut next_report = Duration::from_secs(1);
    let mut result = Ok(());
    loop {
        let now = start.elapsed();
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(
            next_report.saturating_sub(now).as_millis() as u64,
        )) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    result = Err(format!("{}: {}", e.error(), e.debug().unwrap_or_default()));
                    break;
                }
                gst::MessageView::Eos(_) => break,
                _ => {}
            }
            continue;
        }
        let stats = src.property::<gst::Structure>("stats");
        let get = |f: &str| stats.get::<u64>(f).unwrap_or(0);
        println!(
            "{:>4}s  frames {:>5}  fps {:>5.1}  dropped {:>3}  reconnects {}  free buffers {}  {}",
            next_report.as_secs(),
            get("frames-pushed"),
            stats.get::<f64>("fps").unwrap_or(0.0),
            get("frames-dropped"),
            get("reconnects"),
            stats.get::<u32>("free-buffers").unwrap_or(0),
            if stats.get::<bool>("connected").unwrap_or(false) {
                "connected"
            } else {
                "connecting"
            },
        );
        next_report += Duration::from_secs(1);
        if seconds > 0 && next_report > Duration::from_secs(seconds) {
            break;
        }
    }
    let stats = src.property::<gst::Structure>("stats");
    println!("final stats: {stats}");
    client.set_state(gst::State::Null)?;
    server.set_state(gst::State::Null)?;
    result.map_err(Into::into)
}
