// SPDX-License-Identifier: MPL-2.0

//! Several sinks on one port: the process-wide registry of listeners,
//! keyed by the bound address, each a [`Listener`] (`port.rs`).
//!
//! A listener is shared, a mount is per sink. The listener owns what is
//! decided before a request names a path: the socket and accept loop,
//! admission (`max-connections`), TLS (`tls-cert`, `tls-key`), the Host
//! rules (`allowed-hosts`), the login throttle and who may speak for a
//! client (`trusted-proxies`), and the per-socket settings `timeout`
//! (write stall) and `unsent-limit`. Sinks sharing a port must agree on
//! these ([`conflict`]). Everything else is the mount's ([`Shared`]):
//! frames, boundary, `max-clients`, credentials, signed links,
//! `allow-origin`, `resend-interval`, `advance-headers`, counters.
//!
//! Lock order: `REGISTRY`, then a listener's `mounts`, then its `run`.
//! `REGISTRY` is held while a port is bound and while it is closed (not
//! while its connections end), so a sink that starts right after the last
//! one stopped finds the port free.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::Config;
use super::event::EventHandler;
use super::listener::{accept_loop, bind};
use super::port::{JoinError, Listener, Run};
use super::shared::Shared;
use crate::runtime::{RUNTIME, lock};

/// Every listener some sink may join, by bound address.
static REGISTRY: LazyLock<Mutex<HashMap<SocketAddr, Arc<Listener>>>> =
    LazyLock::new(Mutex::default);

/// The first listener-level setting on which `a` and `b` differ.
pub(crate) fn conflict(a: &Config, b: &Config) -> Option<&'static str> {
    let tls = |c: &Config| c.tls_files.clone();
    if tls(a).map(|f| f.0) != tls(b).map(|f| f.0) {
        Some("tls-cert")
    } else if tls(a).map(|f| f.1) != tls(b).map(|f| f.1) {
        Some("tls-key")
    } else if a.max_connections != b.max_connections {
        Some("max-connections")
    } else if a.allowed_hosts != b.allowed_hosts {
        Some("allowed-hosts")
    } else if a.trusted_proxies != b.trusted_proxies {
        Some("trusted-proxies")
    } else if a.timeout != b.timeout {
        Some("timeout")
    } else if a.unsent_limit != b.unsent_limit {
        Some("unsent-limit")
    } else {
        None
    }
}

/// Serve on `socket` (from [`bind`]) on the shared runtime, with no mount
/// yet.
pub(crate) fn start(socket: StdTcpListener, config: Config) -> io::Result<Arc<Listener>> {
    let local_addr = socket.local_addr()?;
    let socket = {
        let _guard = RUNTIME.enter();
        TcpListener::from_std(socket)?
    };
    let listener = Listener::new(local_addr, config);
    let (shutdown, stop) = oneshot::channel();
    let (closed_tx, closed) = std::sync::mpsc::channel();
    let task = RUNTIME.spawn(accept_loop(socket, listener.clone(), stop, closed_tx));
    listener.set_run(Run {
        task,
        shutdown,
        closed,
    });
    Ok(listener)
}

/// Add `config.mount` to a registered `listener`, whose listener-level
/// settings must agree with `config`'s.
fn add_to(
    listener: &Arc<Listener>,
    config: Config,
    events: EventHandler,
    owner: String,
) -> Result<(Arc<Listener>, Arc<Shared>), JoinError> {
    if let Some(first) = listener.mounts().first()
        && let Some(setting) = conflict(&listener.config, &config)
    {
        return Err(JoinError::Conflict {
            setting,
            other: first.owner.clone(),
        });
    }
    let shared = listener.add(config, events, owner)?;
    Ok((listener.clone(), shared))
}

/// Serve `config.mount` on `host:port`: join the listener already bound
/// there (its listener-level settings must agree), or bind one. Port 0
/// always binds a new (ephemeral) port, which later sinks join by its
/// number.
pub(crate) fn join(
    host: &str,
    port: u16,
    config: Config,
    events: EventHandler,
    owner: String,
) -> Result<(Arc<Listener>, Arc<Shared>), JoinError> {
    if super::mount::normalize(&config.mount).is_none() {
        return Err(JoinError::BadMount(config.mount));
    }
    let mut addrs: Vec<SocketAddr> = if port == 0 {
        Vec::new()
    } else {
        (host, port)
            .to_socket_addrs()
            .map_err(JoinError::Bind)?
            .collect()
    };
    addrs.sort_by_key(|a| a.is_ipv6());
    let mut registry = lock(&REGISTRY);
    if let Some(listener) = addrs.iter().find_map(|a| registry.get(a)) {
        return add_to(listener, config, events, owner);
    }
    let socket = bind(host, port).map_err(JoinError::Bind)?;
    let listener = start(socket, config.clone()).map_err(JoinError::Start)?;
    let shared = listener.add(config, events, owner)?;
    registry.insert(listener.local_addr, listener.clone());
    Ok((listener, shared))
}

/// Serve `config.mount` on `socket`, a listening socket passed by the
/// parent (`listen-fd`): join the listener already serving its address, or
/// start one on it.
pub(crate) fn join_socket(
    socket: StdTcpListener,
    config: Config,
    events: EventHandler,
    owner: String,
) -> Result<(Arc<Listener>, Arc<Shared>), JoinError> {
    if super::mount::normalize(&config.mount).is_none() {
        return Err(JoinError::BadMount(config.mount));
    }
    let addr = socket.local_addr().map_err(JoinError::Bind)?;
    let mut registry = lock(&REGISTRY);
    if let Some(listener) = registry.get(&addr) {
        return add_to(listener, config, events, owner);
    }
    let listener = start(socket, config.clone()).map_err(JoinError::Start)?;
    let shared = listener.add(config, events, owner)?;
    registry.insert(listener.local_addr, listener.clone());
    Ok((listener, shared))
}

/// Unregister `mount` from `listener`. The last mount out closes the port
/// (before this returns) and gets the accept loop's task to wait for; any
/// other ends the streams of its mount (they get the closing delimiter)
/// and waits, at most `wait`, until they have gone.
pub(crate) fn leave(
    listener: &Arc<Listener>,
    mount: &Arc<Shared>,
    wait: Duration,
) -> Option<JoinHandle<()>> {
    {
        let mut registry = lock(&REGISTRY);
        if listener.remove(mount) {
            let key = listener.local_addr;
            if registry.get(&key).is_some_and(|l| Arc::ptr_eq(l, listener)) {
                registry.remove(&key);
            }
            return listener.close_port(wait);
        }
    }
    mount.frames.send_modify(|p| p.eos = true);
    if tokio::runtime::Handle::try_current().is_err() {
        RUNTIME.block_on(async {
            let _ = tokio::time::timeout(wait, mount.frames.closed()).await;
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::Server;
    use super::*;

    fn config(mount: &str) -> Config {
        Config {
            mount: mount.to_string(),
            ..Config::default()
        }
    }

    fn join(port: u16, config: Config, owner: &str) -> Result<Server, JoinError> {
        Server::join("127.0.0.1", port, config, Arc::new(|_| {}), owner)
    }

    /// Sinks join the listener on their port, conflicting settings and a
    /// taken mount are refused naming the other sink, the last one out
    /// frees the port.
    #[test]
    fn join_conflict_leave() {
        let a = join(0, config("/a"), "a").expect("a binds");
        let port = a.local_addr().port();
        let b = join(port, config("/b"), "b").expect("b joins");
        assert_eq!((a.mounts(), b.mounts()), (2, 2));
        assert_eq!(b.local_addr(), a.local_addr());

        let c = Config {
            max_connections: 5,
            ..config("/c")
        };
        match join(port, c, "c") {
            Err(JoinError::Conflict { setting, other }) => {
                assert_eq!(setting, "max-connections");
                assert!(other == "a" || other == "b", "{other}");
            }
            other => panic!("{:?}", other.map(|s| s.local_addr())),
        }
        match join(port, config("/a/"), "a2") {
            Err(e @ JoinError::MountTaken { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "mount /a is served by a on this port already"
                );
            }
            other => panic!("{:?}", other.map(|s| s.local_addr())),
        }

        let (ra, rb) = (
            a.listener
                .route("/a/stream")
                .map(|(m, r)| (m.mount.clone(), r)),
            a.listener.route("/b").map(|(m, r)| (m.mount.clone(), r)),
        );
        assert_eq!(ra, Some(("/a".to_string(), "/stream")));
        assert_eq!(rb, Some(("/b".to_string(), "/")));
        assert!(a.listener.route("/ab").is_none());

        drop(a);
        assert_eq!(b.mounts(), 1);
        assert!(
            StdTcpListener::bind(("127.0.0.1", port)).is_err(),
            "b holds it"
        );
        drop(b);
        assert!(StdTcpListener::bind(("127.0.0.1", port)).is_ok(), "freed");
    }

    #[test]
    fn listener_settings_conflict() {
        let base = Config::default();
        let differs = |c: Config| conflict(&base, &c);
        assert_eq!(differs(config("/x")), None);
        assert_eq!(
            differs(Config {
                resend_interval: None,
                max_clients: 3,
                ..Config::default()
            }),
            None,
            "per-mount settings may differ"
        );
        assert_eq!(
            differs(Config {
                tls_files: Some(("c".into(), "k".into())),
                ..Config::default()
            }),
            Some("tls-cert")
        );
        assert_eq!(
            differs(Config {
                allowed_hosts: vec!["x".into()],
                ..Config::default()
            }),
            Some("allowed-hosts")
        );
        assert_eq!(
            differs(Config {
                timeout: None,
                ..Config::default()
            }),
            Some("timeout")
        );
        assert_eq!(
            differs(Config {
                unsent_limit: 1,
                ..Config::default()
            }),
            Some("unsent-limit")
        );
    }
}
