// SPDX-License-Identifier: MPL-2.0

//! The HTTP side of `mjpegsink`: a hyper 1 server on the plugin's shared
//! tokio runtime, routing, and the per-client fan-out. No GStreamer types:
//! what happens is reported as [`ServerEvent`]s.
//!
//! # Fan-out
//! The streaming thread calls [`Server::publish`], which lays the frame out
//! once (`multipart::writer::Frame`) and stores it in a `watch` channel: it
//! never waits on a client. Every streaming client is a hyper response whose body is a
//! stream polled by hyper only when the connection can take more data; each
//! poll yields the *newest* frame not yet sent to that client, as one
//! `Bytes` (part headers + JPEG + delimiter). Frames published while the
//! client was busy are skipped and counted.
//!
//! # Keeping slow clients near live
//! What may wait per client is bounded at every layer: hyper's write buffer
//! (`max_buf_size` 16 KiB, so hyper asks for the next frame only when the
//! previous one is almost all in the kernel), and the kernel's unsent queue
//! (`TCP_NOTSENT_LOWAT`, the `unsent-limit` property), which unlike a small
//! `SO_SNDBUF` does not limit throughput on long fat links. A client that
//! cannot keep up therefore receives fewer frames, each about two frames'
//! transmission time old (the client's own receive buffer holds about one),
//! instead of building seconds of backlog: a 100 kB/s viewer of 720p30 is
//! ~2 s behind live instead of 7-30 s.
//!
//! # Wire format
//! Streams are answered `HTTP/1.0 200 OK` with `Connection: close` and a
//! close-delimited body (no chunked encoding, like mjpg-streamer and
//! ustreamer): the bytes on the socket are exactly the multipart body.
//!
//! # Layout
//! A connection travels down this list; each concern has one module.
//! - `registry`: several servers (sinks) of one process on one port. A
//!   process-wide map from bound address to `Listener`: the socket and
//!   accept loop, admission, TLS, Host rules, login throttle, and the
//!   per-socket `timeout` and `unsent_limit` (listener-level settings, which
//!   servers sharing a port must agree on); and its mounts, one per server
//!   ([`Shared`]: frames, auth, CORS, counters). [`Server::join`] binds or
//!   joins, [`Server::stop`] leaves; the last one out closes the port.
//! - `mount`: mount paths and the longest-prefix match on a `/` boundary.
//! - `index`: `/` and `/streams` of a port with no server mounted at `/`.
//! - `listener`: `bind` and the accept loop, which owns every connection.
//!   `activation`: a listening socket passed by the parent (`listen-fd`).
//! - `admission`: the first check: the connection limit, eviction of the
//!   oldest idle connection for a newcomer (never a stream).
//! - `conn`: one connection: socket options, TLS (`tls`: the acceptor and
//!   the rustls configuration from PEM files, ALPN `h2` and `http/1.1`),
//!   hyper's HTTP/1 builder or, when TLS negotiated `h2`, its HTTP/2 one
//!   (`h2`: about one frame buffered per stream, a stalled stream dropped
//!   after `timeout` without its connection), eviction and the keep-alive
//!   lifetime.
//! - `host`: the authority check (DNS-rebinding protection), the first
//!   step of `routes`.
//! - `io`: the byte stream under hyper: byte accounting, write-stall timeout.
//! - `routes`: routing (to a mount, then to its endpoint), CORS and the
//!   response of each endpoint; the
//!   security checks in order: login throttle (`throttle`: failed logins per
//!   address, `trusted-proxies`), then auth (`auth`: Basic credentials as
//!   SHA-256 digests compared in constant time, or a signed link from
//!   `signed`).
//! - `fanout`: a streaming client's body (newest frame, skips, resends, EOS).
//! - `rate`: what a client is sent less of: `?fps` pacing, `drop-same-frames`.
//! - `snapshot`: `/snapshot` with ETag/304, `Age`, `?wait=1`, `?max_age=S`.
//! - `metrics`: `/metrics` in the Prometheus text format.
//! - `shared`: one mount's state: config, frame channel, counters.
//! - `config`, `stats`, `event`: settings and the sink's defaults, counters
//!   and `/state`, what the owner is told.
//!
//! The part layout itself is `multipart::writer`. The imports form no
//! cycle: this file uses the others and none uses it; `config`, `stats` and
//! `event` are leaves, and `shared` is built on them alone.
//!
//! The checks are a layer, in this order: admission (`listener` asks
//! `admission` before a connection is served) → request head limits
//! (hyper's, in `conn`) → authority (`host`, first in `routes::handle`) →
//! throttle → auth → route.
//!
//! Where growth lands: HTTP/2 in `h2` (chosen by ALPN in `conn`);
//! throttling and signed links in `routes`, after the Host check and
//! before auth; per-viewer frame rate in `fanout`; `/metrics` from `stats`
//! via a route of the mount (its `Shared::mount` is the label; the
//! listener's counters are `port::Listener::counters`).

mod activation;
mod admission;
mod auth;
mod config;
mod conn;
mod event;
mod fanout;
mod h2;
mod host;
mod index;
mod io;
mod listener;
mod metrics;
mod mount;
mod port;
mod rate;
mod registry;
mod response;
mod routes;
mod shared;
mod signed;
mod snapshot;
mod stats;
mod throttle;
mod tls;

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

pub use activation::inherited;
pub(crate) use config::DEFAULT_DROP_SAME_FRAMES;
pub use config::{AdvanceHeaders, Config};
pub(crate) use config::{
    DEFAULT_ADVANCE_HEADERS, DEFAULT_BOUNDARY, DEFAULT_LISTEN_FD, DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MOUNT, DEFAULT_RESEND_INTERVAL_MS, DEFAULT_TIMEOUT_SECS,
    DEFAULT_UNSENT_LIMIT, resend_interval_from_ms, timeout_from_secs,
};
pub use event::{EventHandler, ServerEvent};
#[cfg(any(test, feature = "internals"))]
pub use listener::bind;
pub use mount::normalize as normalize_mount;
pub use port::JoinError;
pub use stats::{Format, Stats};
pub use tls::{TlsError, load as load_tls};

use crate::multipart::writer::Frame;
use crate::runtime::{RUNTIME, lock};
use port::Listener;
use shared::Shared;

/// Longest [`Server::stop`] waits for the connections to end before
/// aborting the accept loop.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// A signed link for `path` valid for `ttl_seconds` from now:
/// `<path>?exp=<unix seconds>&sig=<hex HMAC-SHA256 of "<path>\n<exp>">`
/// (see `signed`). `None` for an empty secret or a `path` that is not an
/// absolute path without query or fragment.
pub fn sign_url(secret: &[u8], path: &str, ttl_seconds: u32) -> Option<String> {
    let key = signed::LinkKey::new(secret)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    signed::sign_url(&key, path, ttl_seconds, now)
}

/// A running server: one mount on a listener, which other servers of
/// this process may share (see `registry`). Dropping it stops it.
pub struct Server {
    listener: Arc<Listener>,
    shared: Arc<Shared>,
    running: bool,
}

impl Server {
    /// Serve `config.mount` on `listener` (from [`bind`]) on the shared
    /// runtime, alone: no other server joins this listener. For tests,
    /// fuzzing and benchmarks; the element uses [`Server::join`].
    #[cfg(any(test, feature = "internals"))]
    pub fn start(
        listener: std::net::TcpListener,
        config: Config,
        events: EventHandler,
    ) -> std::io::Result<Server> {
        let listener = registry::start(listener, config.clone())?;
        let shared = listener
            .add(config, events, String::new())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Server {
            listener,
            shared,
            running: true,
        })
    }

    /// Serve `config.mount` on `host:port`, sharing the listener another
    /// server of this process runs there (its listener-level settings must
    /// agree with `config`'s), or binding the port. Port 0 binds a new
    /// ephemeral port, which later servers join by its number. `owner`
    /// names this server in other servers' errors.
    pub fn join(
        host: &str,
        port: u16,
        config: Config,
        events: EventHandler,
        owner: &str,
    ) -> Result<Server, JoinError> {
        let (listener, shared) = registry::join(host, port, config, events, owner.to_string())?;
        Ok(Server {
            listener,
            shared,
            running: true,
        })
    }

    /// Like [`Server::join`], on `socket`, a listening socket passed by the
    /// parent (see [`inherited`]).
    pub fn join_socket(
        socket: StdTcpListener,
        config: Config,
        events: EventHandler,
        owner: &str,
    ) -> Result<Server, JoinError> {
        let (listener, shared) = registry::join_socket(socket, config, events, owner.to_string())?;
        Ok(Server {
            listener,
            shared,
            running: true,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr
    }

    /// The connection limit in force (`max_connections`, or the one sized
    /// from the descriptor limit).
    pub fn connection_limit(&self) -> usize {
        self.listener.admission.limit()
    }

    /// How many servers share this one's listener (itself included).
    pub fn mounts(&self) -> usize {
        self.listener.mounts().len()
    }

    /// Publish a frame to every client (copies `jpeg` once) and return at
    /// once.
    pub fn publish(&self, jpeg: &[u8]) -> u64 {
        let seq = self
            .shared
            .counters
            .frames_in
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let f = Frame::new(seq, jpeg, &self.shared.config.boundary, SystemTime::now());
        // Hashed once here, for every client, and only if anyone compares.
        let f = if self.shared.config.drop_same_frames > 0 {
            f.with_digest()
        } else {
            f
        };
        let f = Arc::new(f);
        self.shared.frames.send_modify(|p| p.frame = Some(f));
        seq
    }

    /// End (or, after a flush, un-end) the stream: at EOS every client gets
    /// the closing delimiter and is disconnected.
    pub fn set_eos(&self, eos: bool) {
        self.shared.frames.send_if_modified(|p| {
            let changed = p.eos != eos;
            p.eos = eos;
            changed
        });
    }

    pub fn set_format(&self, f: Format) {
        *lock(&self.shared.format) = f;
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Streaming clients connected now.
    pub fn clients(&self) -> u64 {
        self.shared.counters.clients.load(Ordering::Acquire)
    }

    /// Serve one already connected byte stream (e.g. one end of a
    /// `tokio::io::duplex`) exactly as an accepted socket is served, minus
    /// the TCP socket options; `peer` is what events report. For fuzzing
    /// and tests: the returned future is not owned by the server, so
    /// [`Server::stop`] does not end it. Runs on whichever tokio runtime
    /// polls it (timers included).
    #[cfg(any(test, feature = "internals"))]
    pub fn serve_io<S>(&self, io: S, peer: SocketAddr) -> impl Future<Output = ()> + Send + 'static
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        conn::serve_io(io, peer, self.listener.clone())
    }

    /// Leave the listener. The last server on it stops accepting, frees
    /// the port and ends every connection task; any other ends its own
    /// streams (closing delimiter) and leaves the listener serving the
    /// others. Unless called from a runtime thread, returns once those
    /// have ended (bounded: after [`STOP_WAIT`] the last server aborts
    /// what is left), so no event is reported and no counter moves after
    /// it returns.
    pub fn stop(&mut self) {
        if !std::mem::take(&mut self.running) {
            return;
        }
        let Some(mut task) = registry::leave(&self.listener, &self.shared, STOP_WAIT) else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Cannot wait here: the accept loop ends its connections on its
            // own; aborting it would drop them unawaited.
            return;
        }
        RUNTIME.block_on(async {
            if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that half-closes after its request (`nc -N`, `printf ... |
    /// nc`) still gets the answer; hyper's default closed such connections
    /// without answering.
    #[test]
    fn half_closed_request_is_answered() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = bind("127.0.0.1", 0).expect("bind");
        let server = Server::start(listener, Config::default(), Arc::new(|_| {})).expect("start");
        let jpeg = b"\xFF\xD8jpeg\xFF\xD9";
        server.publish(jpeg);
        let limit = Duration::from_secs(5);
        for request in [
            &b"GET /snapshot HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
            b"GET /snapshot HTTP/1.0\r\n\r\n",
        ] {
            let (mut client, io) = tokio::io::duplex(64 * 1024);
            let conn = RUNTIME.spawn(server.serve_io(io, ([127, 0, 0, 1], 1).into()));
            let out = RUNTIME.block_on(async {
                client.write_all(request).await.expect("write");
                client.shutdown().await.expect("half-close");
                let mut out = Vec::new();
                tokio::time::timeout(limit, client.read_to_end(&mut out))
                    .await
                    .expect("answer and close in time")
                    .expect("read");
                tokio::time::timeout(limit, conn)
                    .await
                    .expect("connection ends")
                    .expect("no panic");
                out
            });
            assert!(out.starts_with(b"HTTP/1."), "{out:?}");
            assert!(out.ends_with(jpeg), "{out:?}");
            assert_eq!(&out[9..12], b"200");
        }
    }
}
