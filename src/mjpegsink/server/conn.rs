// SPDX-License-Identifier: MPL-2.0

//! One connection: socket options, TLS, the byte-stream wrapper and hyper's
//! HTTP/1 connection, or its HTTP/2 one when TLS negotiated `h2` (see
//! `h2`), which hands every request to [`super::routes`]; it closes when
//! admission evicts it, and stops taking requests once it is
//! `keep_alive_max` old.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::pin::Pin;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::admission::{Busy, Slot, Ticket};
use super::event::ServerEvent;
use super::h2::{StallBody, StreamExec};
use super::io::{ClientIo, ConnFlags};
use super::port::Listener;
use super::routes::handle;

/// hyper's per-connection buffer limit (its minimum is 8 KiB). Also bounds
/// request heads.
const MAX_BUF_SIZE: usize = 16 * 1024;
/// A connection that does not send a complete request head in this time is
/// closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS client that has not completed its handshake in this time is
/// closed.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One accepted TCP connection, admitted (`ticket`), until it ends.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    ticket: Ticket,
) {
    let _ = stream.set_nodelay(true);
    set_unsent_limit(&stream, listener.config.unsent_limit);
    let slot = ticket.slot().clone();
    let Some(tls) = listener.config.tls.clone() else {
        return serve_http(crate::net::NoSigPipe(stream), peer, listener, slot).await;
    };
    // The handshake is idle time: evictable and bounded.
    let handshake = tokio::select! {
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, super::tls::accept(stream, tls)) => r,
        () = slot.evicted() => return,
    };
    match handshake {
        Ok(Ok(stream)) => {
            let h2 = stream.get_ref().1.alpn_protocol() == Some(super::tls::H2);
            if h2 {
                serve_h2(stream, peer, listener, slot).await
            } else {
                serve_http(stream, peer, listener, slot).await
            }
        }
        Ok(Err(e)) => {
            if e.kind() == std::io::ErrorKind::InvalidData {
                listener
                    .counters
                    .requests_invalid
                    .fetch_add(1, Ordering::Relaxed);
            }
            listener.emit(|| ServerEvent::ConnectionError {
                peer,
                error: format!("TLS: {e}"),
            });
        }
        Err(_) => listener.emit(|| ServerEvent::ConnectionError {
            peer,
            error: "TLS handshake timed out".into(),
        }),
    }
}

/// One HTTP/1 connection over any byte stream, outside admission (for
/// [`Server::serve_io`](super::Server::serve_io)).
#[cfg(any(test, feature = "internals"))]
pub(crate) async fn serve_io<S>(stream: S, peer: SocketAddr, listener: Arc<Listener>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_http(stream, peer, listener, Arc::default()).await
}

/// One HTTP/1 connection over any byte stream (plain or TLS), from the
/// first request byte until the connection ends or `slot` is evicted.
async fn serve_http<S>(stream: S, peer: SocketAddr, listener: Arc<Listener>, slot: Arc<Slot>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let flags = Arc::new(ConnFlags::default());
    let io = ClientIo::new(stream, listener.clone(), flags.clone());
    let svc_listener = listener.clone();
    let svc_slot = slot.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        respond(
            svc_listener.clone(),
            req,
            peer,
            flags.clone(),
            svc_slot.busy(),
        )
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // A client may shut down its sending side right after the request
        // (`nc -N`, `printf ... | nc`) and still read: answer it. hyper's
        // default treats that EOF as an abort and closes without a word.
        // The cost: a stream client that vanished is noticed at the next
        // write (next frame or resend) instead of at its FIN.
        .half_close(true)
        .max_buf_size(MAX_BUF_SIZE)
        .writev(true)
        .title_case_headers(true)
        .auto_date_header(false)
        .serve_connection(TokioIo::new(io), svc);
    let conn = std::pin::pin!(conn);
    drive(conn, |c| c.graceful_shutdown(), peer, &listener, &slot).await;
}

/// A response body as hyper serves it.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One request: routed, reported, and its body kept the connection busy
/// (not evictable) until hyper is done with it.
async fn respond(
    listener: Arc<Listener>,
    req: Request<Incoming>,
    peer: SocketAddr,
    flags: Arc<ConnFlags>,
    busy: Busy,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let (resp, mount) = handle(&listener, req, peer, flags).await;
    let ev = ServerEvent::Request {
        peer,
        method,
        uri,
        status: resp.status(),
    };
    match mount {
        Some(mount) => mount.emit(ev),
        None => listener.emit(|| ev.clone()),
    }
    let resp = resp.map(|body| {
        body.map_frame(move |f| {
            let _busy = &busy;
            f
        })
        .boxed_unsync()
    });
    Ok(resp)
}

/// One HTTP/2 connection over TLS (see `h2`), until it ends or `slot` is
/// evicted; its stream tasks end before this returns.
async fn serve_h2<S>(stream: S, peer: SocketAddr, listener: Arc<Listener>, slot: Arc<Slot>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_flags = Arc::new(ConnFlags::default());
    let io = ClientIo::new(stream, listener.clone(), conn_flags);
    let exec = StreamExec::new(listener.clone());
    let svc_exec = exec.clone();
    let svc_listener = listener.clone();
    let svc_slot = slot.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        // Called right before hyper hands this stream's task to `exec`.
        let (flags, watch) = svc_exec.request();
        let resp = respond(svc_listener.clone(), req, peer, flags, svc_slot.busy());
        async move {
            let resp = resp.await?;
            Ok::<_, Infallible>(resp.map(|body| StallBody::new(body, watch)))
        }
    });
    let conn =
        super::h2::builder(exec.clone(), MAX_BUF_SIZE).serve_connection(TokioIo::new(io), svc);
    let conn = std::pin::pin!(conn);
    drive(conn, |c| c.graceful_shutdown(), peer, &listener, &slot).await;
    exec.shutdown().await;
}

/// Runs a connection until it ends, is evicted, or (retired at
/// `keep_alive_max`) has answered what it was answering; reports its error.
async fn drive<C>(
    mut conn: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    peer: SocketAddr,
    listener: &Listener,
    slot: &Slot,
) where
    C: Future<Output = Result<(), hyper::Error>>,
{
    // However often it sends a new request, a connection that is not
    // streaming closes once it is this old: the request in progress (a
    // stream included) is answered, no further one is read.
    let mut retire = std::pin::pin!(tokio::time::sleep(listener.config.keep_alive_max));
    let mut retiring = false;
    let res = loop {
        tokio::select! {
            res = conn.as_mut() => break res,
            () = slot.evicted() => return,
            () = &mut retire, if !retiring => {
                retiring = true;
                graceful_shutdown(conn.as_mut());
            }
        }
    };
    if let Err(e) = res {
        if e.is_parse() || e.is_parse_too_large() {
            listener
                .counters
                .requests_invalid
                .fetch_add(1, Ordering::Relaxed);
        }
        listener.emit(|| ServerEvent::ConnectionError {
            peer,
            error: e.to_string(),
        });
    }
}

fn set_unsent_limit(stream_fd: &TcpStream, limit: u32) {
    if limit == 0 {
        return;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let sock = socket2::SockRef::from(stream_fd);
        let _ = sock.set_tcp_notsent_lowat(limit);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // No TCP_NOTSENT_LOWAT: bound the whole send buffer instead.
        let sock = socket2::SockRef::from(stream_fd);
        let _ = sock.set_send_buffer_size(limit as usize * 2);
    }
}
