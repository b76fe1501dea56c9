// SPDX-License-Identifier: MPL-2.0

//! The thread `mjpegsink` emits its signals from, so that a handler that
//! blocks delays only later signals of the same element: never a runtime
//! worker (every connection of every mjpegsrc and mjpegsink in the process
//! runs there), never a frame, never another element.
//!
//! One thread per running element, fed by an unbounded channel: the server
//! side only sends, it never waits. Items come from streaming clients
//! connecting and leaving, so the queue is bounded by what the clients do
//! while a handler blocks. No GStreamer types: the element passes the
//! function that emits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle, ThreadId};

enum Msg<T> {
    Item(T),
    Stop,
}

/// The sending side, cheap to clone, usable from any thread.
pub(super) struct Sender<T>(mpsc::Sender<Msg<T>>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

impl<T> Sender<T> {
    /// Queue `item`; dropped once the dispatcher has stopped.
    pub(super) fn send(&self, item: T) {
        let _ = self.0.send(Msg::Item(item));
    }
}

/// A thread that hands every item sent to it, in order, to one function.
pub(super) struct Dispatcher<T> {
    tx: mpsc::Sender<Msg<T>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
    /// Set by [`Dispatcher::stop`]: nothing is delivered after it.
    stopped: Arc<AtomicBool>,
}

impl<T: Send + 'static> Dispatcher<T> {
    pub(super) fn start(
        name: String,
        mut deliver: impl FnMut(T) + Send + 'static,
    ) -> std::io::Result<Dispatcher<T>> {
        let (tx, rx) = mpsc::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let thread = thread::Builder::new().name(name).spawn(move || {
            while let Ok(Msg::Item(item)) = rx.recv() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                deliver(item);
            }
        })?;
        Ok(Dispatcher {
            tx,
            thread_id: thread.thread().id(),
            thread: Some(thread),
            stopped,
        })
    }

    pub(super) fn sender(&self) -> Sender<T> {
        Sender(self.tx.clone())
    }

    /// Deliver what was sent before this call, then end the thread and
    /// wait for it: nothing is delivered once this returns. Called from the
    /// dispatcher thread itself (a handler stopping the element), it does
    /// not wait, and nothing more is delivered after the current handler.
    pub(super) fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread::current().id() == self.thread_id {
            self.stopped.store(true, Ordering::Release);
            return;
        }
        let _ = thread.join();
        self.stopped.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delivers_in_order_then_stops() {
        let (tx, rx) = mpsc::channel();
        let d = Dispatcher::start("test-dispatch".into(), move |i: u32| {
            let _ = tx.send(i);
        })
        .expect("thread");
        let s = d.sender();
        for i in 0..5 {
            s.send(i);
        }
        d.stop();
        s.send(99);
        let got: Vec<u32> = rx.try_iter().collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    }
}
