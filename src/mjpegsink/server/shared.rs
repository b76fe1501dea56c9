// SPDX-License-Identifier: MPL-2.0

//! What the [`Server`](super::Server) handle, the connections and the
//! streaming clients of one server share: its configuration, the channel
//! the newest frame is published on, the counters and the event handler.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use super::admission::Admission;
use super::auth::Auth;
use super::config::{Config, connection_limit};
use super::event::{EventHandler, ServerEvent};
use super::host::HostRules;
use super::stats::{Counters, Format, Stats};
use super::throttle::Throttle;
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
    /// Credentials and signed links.
    pub(crate) auth: Auth,
    /// Failed logins per address.
    pub(crate) throttle: Throttle,
    pub(crate) frames: watch::Sender<Published>,
    pub(crate) counters: Arc<Counters>,
    /// The connection limit and eviction.
    pub(crate) admission: Arc<Admission>,
    /// Which hosts requests may name.
    pub(crate) hosts: HostRules,
    pub(crate) format: Mutex<Format>,
    /// This start's epoch in snapshot entity tags (see `snapshot`).
    pub(crate) epoch: String,
    started: Instant,
    events: EventHandler,
}

impl Shared {
    /// The state of a server bound to `local`.
    pub(crate) fn new(config: Config, events: EventHandler, local: SocketAddr) -> Self {
        let admission = Arc::new(Admission::new(connection_limit(config.max_connections)));
        let hosts = HostRules::new(local, &config.allowed_hosts);
        Shared {
            auth: Auth::new(&config),
            throttle: Throttle::default(),
            frames: watch::Sender::new(Published::default()),
            counters: Arc::default(),
            admission,
            hosts,
            config,
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
