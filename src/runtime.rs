// SPDX-License-Identifier: MPL-2.0

//! The plugin's one shared tokio runtime, and a cancellable wait used by
//! both elements so that `unlock()` can interrupt any blocking operation.

use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::Notify;

/// Worker threads of the shared runtime. Network I/O is light per task; two
/// threads keep one slow task from delaying the others.
const WORKER_THREADS: usize = 2;

/// The runtime every network task of the plugin runs on.
pub(crate) static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(WORKER_THREADS)
        .thread_name("gst-mjpeg-runtime")
        .build()
        .expect("failed to build the gst-mjpeg tokio runtime")
});

/// Why a [`Canceller::run`] did not return the future's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// `cancel()` was called (before or during the wait).
    Cancelled,
}

#[derive(Default)]
struct CancelState {
    cancelled: bool,
}

/// A sticky cancellation flag with a wake-up: `cancel()` before `run()` makes
/// the next `run()` return at once (no unlock-before-arm race); `reset()`
/// re-arms it (from `unlock_stop()`).
#[derive(Clone, Default)]
pub(crate) struct Canceller {
    state: Arc<Mutex<CancelState>>,
    notify: Arc<Notify>,
}

impl Canceller {
    /// Interrupt the current and every later wait until `reset()`.
    pub(crate) fn cancel(&self) {
        lock(&self.state).cancelled = true;
        self.notify.notify_waiters();
    }

    /// Re-arm after a cancel.
    pub(crate) fn reset(&self) {
        lock(&self.state).cancelled = false;
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        lock(&self.state).cancelled
    }

    /// Wait for `fut` from a non-runtime thread, returning early when
    /// cancelled. Never call from a runtime thread.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, Cancelled> {
        RUNTIME.block_on(self.run(fut))
    }

    /// Await `fut` unless cancelled first.
    pub(crate) async fn run<F: Future>(&self, fut: F) -> Result<F::Output, Cancelled> {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Register interest before checking the flag so a concurrent cancel()
        // between the check and the await cannot be missed.
        notified.as_mut().enable();
        if self.is_cancelled() {
            return Err(Cancelled::Cancelled);
        }
        tokio::select! {
            biased;
            _ = &mut notified => Err(Cancelled::Cancelled),
            out = fut => Ok(out),
        }
    }
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it: the
/// plugin's state stays usable and the panic is reported where it happened.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn cancel_before_run_is_sticky() {
        let c = Canceller::default();
        c.cancel();
        let r = c.block_on(async { tokio::time::sleep(Duration::from_secs(30)).await });
        assert_eq!(r, Err(Cancelled::Cancelled));
        c.reset();
        assert_eq!(c.block_on(async { 5 }), Ok(5));
    }

    #[test]
    fn cancel_interrupts_wait() {
        let c = Canceller::default();
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let r = c2.block_on(async { tokio::time::sleep(Duration::from_secs(30)).await });
            (r, start.elapsed())
        });
        // Keep cancelling until the waiter has returned: no sleep needed for
        // correctness, the flag is sticky.
        c.cancel();
        let (r, elapsed) = t.join().expect("waiter thread");
        assert_eq!(r, Err(Cancelled::Cancelled));
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}
