// SPDX-License-Identifier: MPL-2.0

//! One connection: socket options, the byte-stream wrapper and hyper's
//! HTTP/1 connection, which hands every request to [`super::routes`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::event::ServerEvent;
use super::io::{ClientIo, ConnFlags};
use super::routes::handle;
use super::shared::Shared;

/// hyper's per-connection buffer limit (its minimum is 8 KiB). Also bounds
/// request heads.
const MAX_BUF_SIZE: usize = 16 * 1024;
/// A connection that does not send a complete request head in this time is
/// closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One accepted TCP connection, until it ends.
pub(crate) async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    set_unsent_limit(&stream, shared.config.unsent_limit);
    serve_io(crate::net::NoSigPipe(stream), peer, shared).await
}

/// One HTTP/1 connection over any byte stream, from the first request byte
/// until the connection ends.
pub(crate) async fn serve_io<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let flags = Arc::new(ConnFlags::default());
    let io = ClientIo::new(stream, shared.clone(), flags.clone());
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = svc_shared.clone();
        let flags = flags.clone();
        async move {
            let method = req.method().clone();
            let uri = req.uri().to_string();
            let resp = handle(&shared, req, peer, flags).await;
            shared.emit(ServerEvent::Request {
                peer,
                method,
                uri,
                status: resp.status(),
            });
            Ok::<_, Infallible>(resp)
        }
    });
    let res = hyper::server::conn::http1::Builder::new()
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
        .serve_connection(TokioIo::new(io), svc)
        .await;
    if let Err(e) = res {
        if e.is_parse() || e.is_parse_too_large() {
            shared
                .counters
                .requests_invalid
                .fetch_add(1, Ordering::Relaxed);
        }
        shared.emit(ServerEvent::ConnectionError {
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
