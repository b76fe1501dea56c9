// SPDX-License-Identifier: MPL-2.0

//! One listening socket and what every mount on it shares ([`Listener`]):
//! admission, Host rules, the login throttle, the port-wide counters and
//! the mounts, longest path first. The registry (`registry.rs`) binds,
//! shares and closes them; connections (`conn`, `routes`) read them.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::admission::Admission;
use super::config::{Config, connection_limit};
use super::event::{EventHandler, ServerEvent};
use super::host::HostRules;
use super::shared::Shared;
use super::stats::Counters;
use super::throttle::Throttle;
use crate::runtime::lock;

/// Why a sink could not serve.
#[derive(Debug)]
pub enum JoinError {
    /// The port could not be bound.
    Bind(io::Error),
    /// The server could not start on the bound port.
    Start(io::Error),
    /// A listener-level setting differs from the one of `other`, which
    /// serves on this port already.
    Conflict {
        setting: &'static str,
        other: String,
    },
    /// `other` serves this mount on this port already.
    MountTaken { mount: String, other: String },
    /// Not a mount path (see `mount::normalize`).
    BadMount(String),
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Bind(e) | JoinError::Start(e) => e.fmt(f),
            JoinError::Conflict { setting, other } => write!(
                f,
                "{setting} differs from the one of {other}, which serves on this port; \
                 sinks sharing a port must agree on tls-cert, tls-key, max-connections, \
                 allowed-hosts, trusted-proxies, timeout and unsent-limit"
            ),
            JoinError::MountTaken { mount, other } => {
                write!(f, "mount {mount} is served by {other} on this port already")
            }
            JoinError::BadMount(m) => write!(
                f,
                "mount {m:?} is not / or /name/... (names of A-Z a-z 0-9 - . _ ~)"
            ),
        }
    }
}

/// The accept loop of a listener while it runs.
pub(crate) struct Run {
    pub(crate) task: JoinHandle<()>,
    pub(crate) shutdown: oneshot::Sender<()>,
    /// Told once the accept loop has closed the listening socket.
    pub(crate) closed: std::sync::mpsc::Receiver<()>,
}

/// One listening socket and what every mount on it shares.
pub(crate) struct Listener {
    /// Listener-level settings: those of the sink that bound the port.
    pub(crate) config: Config,
    pub(crate) admission: Arc<Admission>,
    /// Which hosts requests may name.
    pub(crate) hosts: HostRules,
    /// Failed logins per client address, whichever mount they tried.
    pub(crate) throttle: Throttle,
    /// What is counted before a request reaches a mount.
    pub(crate) counters: Arc<Counters>,
    pub(crate) local_addr: SocketAddr,
    /// The mounts, longest path first.
    mounts: RwLock<Vec<Arc<Shared>>>,
    run: Mutex<Option<Run>>,
}

impl Listener {
    /// A listener bound to `local_addr` with no mount and no accept loop
    /// yet (see `registry::start`).
    pub(crate) fn new(local_addr: SocketAddr, config: Config) -> Arc<Listener> {
        Arc::new(Listener {
            admission: Arc::new(Admission::new(connection_limit(config.max_connections))),
            hosts: HostRules::new(local_addr, &config.allowed_hosts),
            throttle: Throttle::default(),
            counters: Arc::default(),
            local_addr,
            mounts: RwLock::default(),
            run: Mutex::default(),
            config,
        })
    }

    /// The accept loop now serving this listener.
    pub(crate) fn set_run(&self, run: Run) {
        *lock(&self.run) = Some(run);
    }

    /// The mount `path` belongs to and the endpoint path below it.
    pub(crate) fn route<'p>(&self, path: &'p str) -> Option<(Arc<Shared>, &'p str)> {
        let mounts = self.mounts.read().unwrap_or_else(|e| e.into_inner());
        mounts
            .iter()
            .find_map(|m| super::mount::strip(&m.mount, path).map(|rest| (m.clone(), rest)))
    }

    /// The mounts, longest path first.
    pub(crate) fn mounts(&self) -> Vec<Arc<Shared>> {
        self.mounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Report a listener event to every mount's owner.
    pub(crate) fn emit(&self, ev: impl Fn() -> ServerEvent) {
        for m in self.mounts() {
            m.emit(ev());
        }
    }

    /// What this port counts for all its mounts (connections, bytes,
    /// requests no mount took ...).
    pub(crate) fn stats(&self) -> super::stats::Stats {
        self.counters.snapshot(0.0, false, Default::default())
    }

    /// Register a new mount for `config`.
    pub(crate) fn add(
        &self,
        mut config: Config,
        events: EventHandler,
        owner: String,
    ) -> Result<Arc<Shared>, JoinError> {
        config.mount = super::mount::normalize(&config.mount)
            .ok_or_else(|| JoinError::BadMount(config.mount.clone()))?;
        let mut mounts = self.mounts.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = mounts.iter().find(|m| m.mount == config.mount) {
            return Err(JoinError::MountTaken {
                mount: m.mount.clone(),
                other: m.owner.clone(),
            });
        }
        let shared = Arc::new(Shared::new(config, events, owner, self.counters.clone()));
        mounts.push(shared.clone());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.mount.len()));
        Ok(shared)
    }

    /// Unregister `mount`; whether it was the last one.
    pub(crate) fn remove(&self, mount: &Arc<Shared>) -> bool {
        let mut mounts = self.mounts.write().unwrap_or_else(|e| e.into_inner());
        mounts.retain(|m| !Arc::ptr_eq(m, mount));
        mounts.is_empty()
    }

    /// Tell the accept loop to stop and wait (bounded, and not on a
    /// runtime thread) until it closed the socket; the task, whose
    /// connections may still be ending.
    pub(crate) fn close_port(&self, wait: Duration) -> Option<JoinHandle<()>> {
        let run = lock(&self.run).take()?;
        let _ = run.shutdown.send(());
        if tokio::runtime::Handle::try_current().is_err() {
            let _ = run.closed.recv_timeout(wait);
        }
        Some(run.task)
    }
}
