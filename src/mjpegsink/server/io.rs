// SPDX-License-Identifier: MPL-2.0

//! The socket as hyper sees it ([`ClientIo`]): byte accounting and the
//! write-stall timeout that drops a client whose socket accepts nothing.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::port::Listener;

/// Per-connection flags shared by the socket wrapper and the response body.
#[derive(Default)]
pub(crate) struct ConnFlags {
    /// A write made no progress for `timeout`: the client was dropped.
    pub(crate) timed_out: AtomicBool,
    /// A `/snapshot` request on this connection waited for a first frame.
    pub(crate) snapshot_waited: AtomicBool,
}

/// The socket as hyper sees it: counts bytes written and fails a write that
/// makes no progress for `timeout` (the socket accepted nothing).
pub(crate) struct ClientIo<S> {
    inner: S,
    timeout: Option<Duration>,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    listener: Arc<Listener>,
    flags: Arc<ConnFlags>,
}

impl<S> ClientIo<S> {
    pub(crate) fn new(inner: S, listener: Arc<Listener>, flags: Arc<ConnFlags>) -> Self {
        ClientIo {
            inner,
            timeout: listener.config.timeout,
            stall: None,
            listener,
            flags,
        }
    }

    fn account(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                self.stall = None;
                self.listener
                    .counters
                    .bytes_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(t) = self.timeout else {
                    return Poll::Pending;
                };
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                if stall.as_mut().poll(cx).is_ready() {
                    if !self.flags.timed_out.swap(true, Ordering::Relaxed) {
                        self.listener
                            .counters
                            .clients_dropped_timeout
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client accepted no data within the timeout",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.account(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.account(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
