// SPDX-License-Identifier: MPL-2.0

//! HTTP/2 (negotiated by ALPN over TLS): hyper's HTTP/2 builder with the
//! slow-viewer rule per stream, not per socket.
//!
//! - **About one frame in flight per stream.** hyper polls a stream's body
//!   only when h2 gives the stream send capacity, which is the client's
//!   window capped by `max_send_buf_size` minus what is still buffered.
//!   hyper's default cap (400 KB) would let a slow stream queue several
//!   frames; [`SEND_BUF`] (16 KiB, as the HTTP/1 write buffer) means the
//!   body is asked for the next frame only once the previous one is almost
//!   all written to the socket, so a busy stream skips frames (the fan-out
//!   yields the newest frame when polled) instead of queueing them.
//! - **A stalled stream is dropped after `timeout`.** The socket's
//!   write-stall timeout (`io`) cannot see one stream whose window the
//!   client does not open while the others flow. Every response body is
//!   wrapped in a [`StallBody`]: once it has yielded data it is "armed",
//!   and if hyper does not come back for more within `timeout` the stream
//!   task is dropped by its watchdog (h2 resets that stream with
//!   `CANCEL`); the connection and its other streams go on. A body waiting
//!   for the next frame is not stalled.
//! - **Stream tasks belong to the connection.** hyper spawns one task per
//!   stream on the executor; [`StreamExec`] keeps them in the connection's
//!   `JoinSet`, so ending a connection (eviction, stop) ends its streams
//!   before the connection task returns.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioTimer;
use tokio::task::JoinSet;

use super::io::ConnFlags;
use super::port::Listener;
use crate::runtime::lock;

/// Most bytes h2 buffers per stream beyond what is being written: the
/// HTTP/1 write buffer's size, so at most one frame waits per stream.
const SEND_BUF: usize = 16 * 1024;
/// Receive window per stream: requests carry no body worth a larger one.
const STREAM_WINDOW: u32 = 16 * 1024;
/// Receive window of the connection (HTTP/2's initial 64 KiB).
const CONN_WINDOW: u32 = 64 * 1024;
/// Concurrent streams per connection (RFC 9113's recommended minimum):
/// enough for a browser's grid of cameras.
const MAX_STREAMS: u32 = 100;

/// hyper's HTTP/2 connection builder as this server uses it; request heads
/// are limited to `max_header` bytes as over HTTP/1.
pub(crate) fn builder(
    exec: StreamExec,
    max_header: usize,
) -> hyper::server::conn::http2::Builder<StreamExec> {
    let mut b = hyper::server::conn::http2::Builder::new(exec);
    b.timer(TokioTimer::new())
        .max_send_buf_size(SEND_BUF)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .adaptive_window(false)
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX))
        .auto_date_header(false);
    b
}

/// The stall state of one stream, shared by its body and its watchdog.
pub(crate) struct StallWatch {
    /// Microseconds since `base` at which the body last yielded data that
    /// hyper has not come back after; 0 = not armed.
    armed: AtomicU64,
    base: Instant,
    timeout: Duration,
    flags: Arc<ConnFlags>,
    listener: Arc<Listener>,
}

impl StallWatch {
    fn arm(&self) {
        let us = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.armed.store(us.max(1), Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.armed.store(0, Ordering::Relaxed);
    }

    /// Resolves once the stream has been armed, untouched, for `timeout`.
    async fn expired(&self) {
        loop {
            let armed = self.armed.load(Ordering::Relaxed);
            if armed == 0 {
                tokio::time::sleep(self.timeout).await;
                continue;
            }
            let deadline = self.base + Duration::from_micros(armed) + self.timeout;
            tokio::time::sleep_until(deadline.into()).await;
            if self.armed.load(Ordering::Relaxed) == armed {
                if !self.flags.timed_out.swap(true, Ordering::Relaxed) {
                    self.listener
                        .counters
                        .clients_dropped_timeout
                        .fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
    }
}

/// A response body that arms its stream's [`StallWatch`] each time it
/// yields data, and disarms it whenever hyper polls it again.
pub(crate) struct StallBody<B> {
    inner: B,
    watch: Option<Arc<StallWatch>>,
}

impl<B> StallBody<B> {
    pub(crate) fn new(inner: B, watch: Option<Arc<StallWatch>>) -> Self {
        StallBody { inner, watch }
    }
}

impl<B> Body for StallBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(w) = &self.watch {
            match &r {
                Poll::Ready(Some(Ok(_))) => w.arm(),
                _ => w.disarm(),
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The executor of one HTTP/2 connection: runs hyper's stream tasks in the
/// connection's `JoinSet`, each under the watchdog of the stream the
/// service was last called for (hyper calls the service and hands the
/// stream's task to the executor back to back).
#[derive(Clone)]
pub(crate) struct StreamExec {
    tasks: Arc<Mutex<JoinSet<()>>>,
    next: Arc<Mutex<Option<Arc<StallWatch>>>>,
    listener: Arc<Listener>,
}

impl StreamExec {
    pub(crate) fn new(listener: Arc<Listener>) -> Self {
        StreamExec {
            tasks: Arc::default(),
            next: Arc::default(),
            listener,
        }
    }

    /// For a new request: its flags (per stream: a stream's timeout is its
    /// own) and the watch its response body reports to ([`StallBody::new`]).
    pub(crate) fn request(&self) -> (Arc<ConnFlags>, Option<Arc<StallWatch>>) {
        let flags = Arc::new(ConnFlags::default());
        let watch = self.listener.config.timeout.map(|timeout| {
            Arc::new(StallWatch {
                armed: AtomicU64::new(0),
                base: Instant::now(),
                timeout,
                flags: flags.clone(),
                listener: self.listener.clone(),
            })
        });
        *lock(&self.next) = watch.clone();
        (flags, watch)
    }

    /// Ends every stream task of the connection and waits for them.
    pub(crate) async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        tasks.shutdown().await;
    }
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let watch = lock(&self.next).take();
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        match watch {
            Some(w) => tasks.spawn(async move {
                tokio::select! {
                    () = fut => {}
                    () = w.expired() => {}
                }
            }),
            None => tasks.spawn(fut),
        };
    }
}
