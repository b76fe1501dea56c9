// SPDX-License-Identifier: MPL-2.0

//! One connection: open the stream, then read and parse it until something
//! ends it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::auth::Auth;
use super::open::open;
use super::{Config, Event, Events, FrameSink, Outcome, Progress};
use crate::mjpegsrc::stats::Stats;
use crate::multipart::{self, Handler, Limits, Parser, PartInfo};
use crate::runtime::lock;

/// Passes the parser's callbacks on to the sink, reports the parser's
/// events, and notes the closing delimiter, which ends the session.
struct Tap<'a, S> {
    sink: &'a mut S,
    events: &'a Events,
    closed: bool,
}

impl<S: FrameSink> Handler for Tap<'_, S> {
    fn part_start(&mut self, info: &PartInfo) -> bool {
        self.sink.part_start(info)
    }

    fn part_data(&mut self, data: &[u8]) -> bool {
        self.sink.part_data(data)
    }

    fn part_end(&mut self) {
        self.sink.part_end()
    }

    fn part_abort(&mut self) {
        self.sink.part_abort()
    }

    fn part_bytes(&self) -> Option<&[u8]> {
        self.sink.part_bytes()
    }

    fn part_truncate(&mut self, len: usize) {
        self.sink.part_truncate(len)
    }

    fn disagreement(&mut self, d: multipart::Disagreement) {
        self.sink.disagreement(d)
    }

    fn event(&mut self, ev: multipart::Event) {
        if ev == multipart::Event::Closed {
            self.closed = true;
        }
        (self.events)(Event::Parser(ev.clone()));
        self.sink.event(ev);
    }
}

fn lost(reason: impl Into<String>) -> Outcome {
    Outcome::Lost {
        reason: reason.into(),
    }
}

/// One connection: open, then read and parse until something ends it.
/// Returns how it ended and what it delivered.
pub(super) async fn session<S: FrameSink>(
    config: &Config,
    auth: &mut Auth,
    sink: &mut S,
    stats: &Mutex<Stats>,
    events: &Events,
) -> (Outcome, Progress) {
    let before = sink.frames_completed();
    let mut progress = Progress::default();
    let outcome = read(config, auth, sink, stats, events, before, &mut progress).await;
    progress.update(sink.frames_completed() - before);
    (outcome, progress)
}

async fn read<S: FrameSink>(
    config: &Config,
    auth: &mut Auth,
    sink: &mut S,
    stats: &Mutex<Stats>,
    events: &Events,
    before: u64,
    progress: &mut Progress,
) -> Outcome {
    let (url, mut resp) = match open(config, auth, events).await {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let content_type = resp.header("content-type").map(str::to_owned);
    progress.snapshot = content_type.as_deref().is_some_and(|t| {
        t.trim_start()
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("image/"))
    });
    let mut parser = Parser::new(content_type.as_deref(), Limits::default());
    lock(stats).connected = true;
    events(Event::Connected {
        url,
        version: resp.version,
        status: resp.status,
        reason: resp.reason.clone(),
        boundary: content_type
            .as_deref()
            .and_then(multipart::boundary_param)
            .unwrap_or_default()
            .to_owned(),
        content_type,
    });
    let mut tap = Tap {
        sink,
        events,
        closed: false,
    };

    loop {
        // Inside a frame of known length, read from the socket straight into
        // the frame's buffer: the kernel's copy is the only one.
        if resp.body.can_read_direct()
            && let Some(remaining) = parser.direct_remaining()
            && let Some(dst) = tap.sink.spare(remaining)
        {
            let n = match stall_guard(config.timeout, resp.body.read_direct(dst)).await {
                Ok(Ok(0)) => {
                    parser.finish(&mut tap);
                    return lost("the server closed the stream");
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return lost(e.to_string()),
                Err(stalled) => return stalled,
            };
            lock(stats).bytes_received += n as u64;
            let (last, len) = tap.sink.commit_direct(n);
            if let Err(e) = parser.feed_direct(n, &last[..len], &mut tap) {
                return lost(format!("unrecoverable stream: {e}"));
            }
            progress.update(tap.sink.frames_completed() - before);
            continue;
        }

        let chunk = match stall_guard(config.timeout, resp.body.chunk()).await {
            Ok(chunk) => chunk,
            Err(stalled) => return stalled,
        };
        match chunk {
            Ok(Some(data)) => {
                tap.sink.set_arrival(Instant::now());
                lock(stats).bytes_received += data.len() as u64;
                if let Err(e) = parser.feed(data, &mut tap) {
                    return lost(format!("unrecoverable stream: {e}"));
                }
                progress.update(tap.sink.frames_completed() - before);
                if tap.closed {
                    return lost("the server ended the stream (closing boundary)");
                }
            }
            Ok(None) => {
                parser.finish(&mut tap);
                return lost("the server closed the stream");
            }
            Err(e) => return lost(e.to_string()),
        }
    }
}

/// Await a read, or report a stall after `timeout` without data.
async fn stall_guard<F: std::future::Future>(
    timeout: Option<Duration>,
    read: F,
) -> Result<F::Output, Outcome> {
    match timeout {
        Some(t) => tokio::time::timeout(t, read)
            .await
            .map_err(|_| lost(format!("stalled: no data for {} s", t.as_secs()))),
        None => Ok(read.await),
    }
}
