// SPDX-License-Identifier: MPL-2.0

//! One mount's state, shared by its [`Server`](super::Server) handle, the
//! requests routed to it and its streaming clients: its configuration, the
//! channel the newest frame is published on, the counters and the event
//! handler. What a port's mounts share (socket, admission, TLS, Host rules,
//! login throttle) is the `registry::Listener`.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::auth::Auth;
use super::config::Config;
use super::event::{EventHandler, ServerEvent};
use super::stats::{Counters, Format, Stats, add_listener_counters};
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
    /// Where this mount is served (`config.mount`, normalized): `/` or
    /// `/cam1`. Also the `mount` label of per-mount metrics.
    pub(crate) mount: String,
    /// Who registered the mount (the element's name), for error messages.
    pub(crate) owner: String,
    /// Credentials and signed links.
    pub(crate) auth: Auth,
    pub(crate) frames: watch::Sender<Published>,
    pub(crate) counters: Arc<Counters>,
    /// The listener's counters (connections, bytes ...), added to this
    /// mount's in [`Shared::stats`].
    pub(crate) listener_counters: Arc<Counters>,
    pub(crate) format: Mutex<Format>,
    /// This start's epoch in snapshot entity tags (see `snapshot`).
    pub(crate) epoch: String,
    started: Instant,
    events: EventHandler,
}

impl Shared {
    /// A mount served by a listener counting into `listener_counters`.
    pub(crate) fn new(
        config: Config,
        events: EventHandler,
        owner: String,
        listener_counters: Arc<Counters>,
    ) -> Self {
        Shared {
            auth: Auth::new(&config),
            mount: config.mount.clone(),
            owner,
            frames: watch::Sender::new(Published::default()),
            counters: Arc::default(),
            listener_counters,
            config,
            format: Mutex::new(Format::default()),
            epoch: epoch(SystemTime::now()),
            started: Instant::now(),
            events,
        }
    }

    /// This mount's counters with its listener's added: the element's
    /// `stats`.
    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.mount_stats();
        add_listener_counters(&mut s, &self.listener_counters);
        s
    }

    /// This mount's own counters.
    pub(crate) fn mount_stats(&self) -> Stats {
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

/// The server's epoch in entity tags: its start as Unix nanoseconds in hex.
pub(crate) fn epoch(start: SystemTime) -> String {
    let nanos = start
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos:x}")
}
