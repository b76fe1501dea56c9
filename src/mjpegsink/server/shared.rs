// SPDX-License-Identifier: MPL-2.0

//! What the [`Server`](super::Server) handle, the connections and the
//! streaming clients of one server share: its configuration, the channel
//! the newest frame is published on, the counters and the event handler.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use super::config::Config;
use super::event::{EventHandler, ServerEvent};
use super::stats::{Counters, Format, Stats};
use crate::multipart::writer::Frame;
use crate::runtime::lock;

/// The value of the frame channel: the newest frame, and whether the stream
/// has ended.
#[derive(Clone, Default)]
pub(crate) struct Published {
    pub(crate) frame: Option<Arc<Frame>>,
    pub(crate) eos: bool,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    /// `user:password` expected in a Basic `Authorization`, if auth is on.
    pub(crate) expected_auth: Option<Vec<u8>>,
    pub(crate) frames: watch::Sender<Published>,
    pub(crate) counters: Counters,
    pub(crate) format: Mutex<Format>,
    /// This start's epoch in snapshot entity tags (see `snapshot`).
    pub(crate) epoch: String,
    started: Instant,
    events: EventHandler,
}

impl Shared {
    pub(crate) fn new(config: Config, events: EventHandler) -> Self {
        let expected_auth = config
            .credentials
            .as_ref()
            .map(|(u, p)| format!("{u}:{p}").into_bytes());
        Shared {
            config,
            expected_auth,
            frames: watch::Sender::new(Published::default()),
            counters: Counters::default(),
            format: Mutex::new(Format::default()),
            epoch: super::snapshot::epoch(SystemTime::now()),
            started: Instant::now(),
            events,
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        self.counters.snapshot(
            self.started.elapsed().as_secs_f64(),
            self.frames.borrow().eos,
            *lock(&self.format),
        )
    }

    /// Seconds since the newest frame was published, if there is one.
    pub(crate) fn newest_frame_age(&self) -> Option<f64> {
        let p = self.frames.borrow();
        p.frame
            .as_ref()
            .map(|f| f.published_at.elapsed().as_secs_f64())
    }

    pub(crate) fn emit(&self, ev: ServerEvent) {
        (self.events)(ev)
    }
}
