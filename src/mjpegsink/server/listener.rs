// SPDX-License-Identifier: MPL-2.0

//! The listening socket: [`bind`] (synchronous, so a busy port is a clean
//! error in the element's `start()`) and the accept loop that owns every
//! connection task.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::conn::serve_connection;
use super::event::ServerEvent;
use super::port::Listener;

/// Pending listen() connections (many clients may connect at once).
const LISTEN_BACKLOG: i32 = 1024;
/// First and longest pause after a failed `accept()` (doubling between).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Resolve `host` and bind a listening socket on the first address that
/// works (IPv4 first), non-blocking, ready for
/// [`Server::start`](super::Server::start).
pub fn bind(host: &str, port: u16) -> io::Result<StdTcpListener> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(|a| a.is_ipv6());
    let mut last_err = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("{host} resolves to no address"),
    );
    for addr in addrs {
        match bind_one(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

fn bind_one(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Accepts connections; owns every connection task, so aborting it closes
/// every connection. Admission (limit, eviction) is the first check a
/// connection meets. On `stop` it closes the port, then aborts every
/// connection task and waits until each has ended.
pub(crate) async fn accept_loop(
    socket: TcpListener,
    listener: Arc<Listener>,
    mut stop: oneshot::Receiver<()>,
    closed: std::sync::mpsc::Sender<()>,
) {
    let mut conns = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            res = socket.accept() => match res {
                Ok((stream, peer)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    // Refused: every admitted connection is busy; closing
                    // the socket is the answer.
                    if let Some(ticket) = listener.admission.admit(&listener.counters) {
                        conns.spawn(serve_connection(stream, peer, listener.clone(), ticket));
                    }
                }
                Err(e) => {
                    listener.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    listener.emit(|| ServerEvent::AcceptError(e.to_string()));
                    // EMFILE and friends: free a descriptor held by an idle
                    // connection, and back off instead of spinning.
                    listener.admission.evict_idle(&listener.counters);
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(socket);
    let _ = closed.send(());
    conns.shutdown().await;
}
