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
//! - `listener`: [`bind`] and the accept loop, which owns every connection;
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
//! - `routes`: routing, CORS and the response of each endpoint; the
//!   security checks in order: login throttle (`throttle`: failed logins per
//!   address, `trusted-proxies`), then auth (`auth`: Basic credentials as
//!   SHA-256 digests compared in constant time, or a signed link from
//!   `signed`).
//! - `fanout`: a streaming client's body (newest frame, skips, resends, EOS).
//! - `shared`: what all of the above share: config, frame channel, counters.
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
//! Where growth lands: throttling and signed links in `routes`, after the Host check and
//! before auth; several mounts on one port as a registry of
//! listeners keyed by address, each routing to a mount (`Shared`); per-viewer
//! frame rate in `fanout`; `/metrics` from `stats` via a route.

mod activation;
mod admission;
mod auth;
mod config;
mod conn;
mod event;
mod fanout;
mod h2;
mod host;
mod io;
mod listener;
mod routes;
mod shared;
mod signed;
mod stats;
mod throttle;
mod tls;

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use activation::inherited;
pub use config::{AdvanceHeaders, Config};
pub(crate) use config::{
    DEFAULT_ADVANCE_HEADERS, DEFAULT_BOUNDARY, DEFAULT_LISTEN_FD, DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_RESEND_INTERVAL_MS, DEFAULT_TIMEOUT_SECS,
    DEFAULT_UNSENT_LIMIT, resend_interval_from_ms, timeout_from_secs,
};
pub use event::{EventHandler, ServerEvent};
pub use listener::bind;
pub use stats::{Format, Stats};
pub use tls::{TlsError, load as load_tls};

use crate::multipart::writer::{self, Frame};
use crate::runtime::{RUNTIME, lock};
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

/// A running server. Dropping it stops it.
pub struct Server {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    /// Tells the accept loop to close the port and end every connection.
    shutdown: Option<oneshot::Sender<()>>,
    local_addr: SocketAddr,
}

impl Server {
    /// Serve on `listener` (from [`bind`]) on the shared runtime.
    pub fn start(
        listener: StdTcpListener,
        config: Config,
        events: EventHandler,
    ) -> std::io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let listener = {
            let _guard = RUNTIME.enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared::new(config, events, local_addr));
        let (shutdown, stop) = oneshot::channel();
        let task = RUNTIME.spawn(listener::accept_loop(listener, shared.clone(), stop));
        Ok(Server {
            shared,
            task: Some(task),
            shutdown: Some(shutdown),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connection limit in force (`max_connections`, or the one sized
    /// from the descriptor limit).
    pub fn connection_limit(&self) -> usize {
        self.shared.admission.limit()
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
        let f = Frame::new(
            seq,
            jpeg,
            &self.shared.config.boundary,
            writer::timestamp_string(SystemTime::now()),
        );
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
        conn::serve_io(io, peer, self.shared.clone())
    }

    /// Stop accepting, free the port and end every connection task. Unless
    /// called from a runtime thread, returns once every connection task has
    /// ended (bounded: after [`STOP_WAIT`] it aborts what is left), so no
    /// event is reported and no counter moves after it returns.
    pub fn stop(&mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
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
