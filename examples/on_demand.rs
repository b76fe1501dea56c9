// SPDX-License-Identifier: MPL-2.0

//! Serve a camera on demand: connect to it only while someone watches.
//!
//! ```text
//! cargo run --release --example on_demand -- http://camera/video.mjpg \
//!     [--port 8080] [--host 127.0.0.1] [--linger 10]
//! ```
//! Viewers open `http://HOST:PORT/stream` (or `/snapshot`, `/metrics` ...).
//! The camera is not connected until the first viewer arrives, and is
//! disconnected `--linger` seconds (default 10) after the last one leaves;
//! a viewer who comes back within that time finds the camera still there.
//!
//! Two pipelines, joined by `appsink`/`appsrc`:
//!
//! ```text
//! camera:  mjpegsrc location=URL ! appsink        (NULL <-> PLAYING on demand)
//! server:  appsrc is-live=true ! mjpegsink        (always PLAYING)
//! ```
//! Two pipelines because the server must keep serving (and counting
//! viewers) while the camera's source is stopped: inside one pipeline a
//! source held in NULL would keep the sink from prerolling and going to
//! PLAYING. The frames cross without a copy (the buffer is shared), each
//! restamped on the server pipeline's clock by `appsrc do-timestamp`.
//!
//! The sink's `notify::clients` drives it all; it arrives on a thread of
//! the element's, so the handler only forwards the count to the main
//! thread, which starts and stops the camera.
//!
//! While the camera is off, a new viewer first gets the last frame of the
//! previous session (the sink keeps the newest frame it has), then the
//! camera's first new frame as soon as it is delivered.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;

const USAGE: &str = "usage: on_demand URL [--port PORT] [--host HOST] [--linger SECONDS]  \
                     (PORT 0 = any free port)";

struct Args {
    location: String,
    port: u16,
    host: String,
    linger: Duration,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut location = None;
    let mut port = 8080u16;
    let mut host = "127.0.0.1".to_string();
    let mut linger = Duration::from_secs(10);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(USAGE);
        match a.as_str() {
            "--port" => port = value()?.parse()?,
            "--host" => host = value()?,
            "--linger" => linger = Duration::try_from_secs_f64(value()?.parse()?)?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ if location.is_none() && !a.starts_with("--") => location = Some(a),
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}").into()),
        }
    }
    Ok(Args {
        location: location.ok_or(USAGE)?,
        port,
        host,
        linger,
    })
}

/// Stop on the first error of either pipeline; print warnings.
fn check_bus(pipeline: &gst::Pipeline, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    let Some(bus) = pipeline.bus() else {
        return Ok(());
    };
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => {
                return Err(format!("{what}: {} ({:?})", e.error(), e.debug()).into());
            }
            gst::MessageView::Warning(w) => {
                eprintln!("{what} warning: {} ({:?})", w.error(), w.debug())
            }
            _ => {}
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gst::init()?;
    gstmjpeg::plugin_register_static()?;
    let args = parse_args()?;

    // The server: always up.
    let appsrc = gst_app::AppSrc::builder()
        .is_live(true)
        .do_timestamp(true)
        .format(gst::Format::Time)
        .caps(&gst::Caps::builder("image/jpeg").build())
        .build();
    let sink = gst::ElementFactory::make("mjpegsink")
        .property("host", &args.host)
        .property("port", i32::from(args.port))
        // A relay: send each frame as it comes, no clock wait.
        .property("sync", false)
        .build()?;
    let server = gst::Pipeline::new();
    server.add_many([appsrc.upcast_ref(), &sink])?;
    appsrc.link(&sink)?;

    // The camera: built once, PLAYING only while someone watches.
    let src = gst::ElementFactory::make("mjpegsrc")
        .property("location", &args.location)
        .build()?;
    let appsink = gst_app::AppSink::builder().sync(false).build();
    let camera = gst::Pipeline::new();
    camera.add_many([&src, appsink.upcast_ref()])?;
    src.link(&appsink)?;
    let to_server = appsrc.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(caps) = sample.caps()
                    && to_server.caps().as_deref() != Some(caps)
                {
                    to_server.set_caps(Some(&caps.to_owned()));
                }
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                // Same memory, new metadata: appsrc stamps it on arrival.
                let mut buffer = buffer.copy();
                {
                    let b = buffer.make_mut();
                    b.set_pts(gst::ClockTime::NONE);
                    b.set_dts(gst::ClockTime::NONE);
                }
                // The server pipeline never blocks; a flushing appsrc (we
                // are stopping) is not the camera's problem.
                let _ = to_server.push_buffer(buffer);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    // notify::clients arrives on a thread of the sink's: forward it.
    let (tx, rx) = mpsc::channel::<u32>();
    let tx = std::sync::Mutex::new(tx);
    sink.connect_notify(Some("clients"), move |sink, _| {
        let n = sink.property::<u32>("clients");
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(n);
        }
    });

    server.set_state(gst::State::Playing)?;
    let port: i32 = sink.property("current-port");
    println!(
        "serving http://{}:{port}/stream; camera {} on demand, kept {:.1} s after the last viewer",
        args.host,
        args.location,
        args.linger.as_secs_f64()
    );

    let mut camera_on = false;
    // When the camera goes off unless a viewer comes back.
    let mut off_at: Option<Instant> = None;
    loop {
        check_bus(&server, "server")?;
        check_bus(&camera, "camera")?;
        let wait = off_at.map_or(Duration::from_millis(500), |t| {
            t.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500))
        });
        match rx.recv_timeout(wait) {
            Ok(viewers) => {
                println!("viewers: {viewers}");
                if viewers > 0 {
                    off_at = None;
                    if !camera_on {
                        println!("camera: connecting");
                        camera.set_state(gst::State::Playing)?;
                        camera_on = true;
                    }
                } else if camera_on && off_at.is_none() {
                    off_at = Some(Instant::now() + args.linger);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if off_at.is_some_and(|t| Instant::now() >= t) {
            off_at = None;
            camera.set_state(gst::State::Null)?;
            camera_on = false;
            println!(
                "camera: disconnected, no viewer for {:.1} s",
                args.linger.as_secs_f64()
            );
        }
    }
    camera.set_state(gst::State::Null)?;
    server.set_state(gst::State::Null)?;
    Ok(())
}
