// SPDX-License-Identifier: MPL-2.0

//! The network side of `mjpegsrc`, without GStreamer types.
//!
//! [`run`] connects (directly, through an HTTP proxy, over TLS), follows
//! redirects, answers authentication challenges, reads the body continuously
//! through the multipart parser into a [`FrameSink`], and reconnects with
//! back-off until `retries` runs out. It never waits on downstream: the sink
//! drops what it cannot take. What happens is reported as [`Event`]s, which
//! the element (`imp.rs`) logs with its object and turns into bus messages;
//! a [`Fatal`] ends it.
//!
//! * `config.rs` — the element's settings turned into a [`Config`];
//! * `session.rs` — one connection: open, then read and parse;
//! * `open.rs` — the request, redirects and authentication rounds;
//! * `http1.rs` — the lenient HTTP/1.x exchange and body reader;
//! * `proxy.rs` — which proxy (property or environment), SOCKS5;
//! * `auth.rs` — Basic and Digest; `tls.rs` — certificate verification.
//!
//! Reconnect policy (written down once, here): the delay before attempt `n`
//! doubles from `retry-delay` up to `retry-delay-max`, is never below
//! [`MIN_RETRY_DELAY`], and varies by ±[`JITTER_PERCENT`] % so cameras
//! restarted together are not hit together. The failure count (`attempt`,
//! bounded by `retries`) is reset only by a *working* session: one that
//! delivered frames for at least [`WORKING_SESSION`] (its first and last
//! frame that far apart), or a snapshot (a response of type `image/*` that
//! delivered its frame: a snapshot URL is polled every `retry-delay`). A
//! multipart stream that sends a frame and closes is failing.
//! 401/403 on the first connection are errors; after a stream has run they
//! are retried at most [`AUTH_RETRIES`] times in a row, then the client
//! gives up ("the camera rejected the credentials") rather than lock the
//! camera's account.

pub(crate) mod auth;
mod config;
mod http1;
mod open;
mod proxy;
mod session;
mod tls;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use url::Url;

pub(crate) use config::{Config, Settings, redact};
#[cfg(feature = "internals")]
pub(crate) use http1::parse_response_bytes;

use super::stats::Stats;
use crate::multipart::{self, Handler};
use crate::runtime::lock;

/// What the client (and the frame sink it fills) tells the element. Called
/// from the runtime's threads: handlers must be short.
#[derive(Debug)]
pub(crate) enum Event {
    /// A redirect is being followed.
    Redirected { from: Url, to: Url },
    /// A response is being read.
    Connected {
        url: Url,
        /// 0 for HTTP/1.0, 1 for HTTP/1.1.
        version: u8,
        status: u16,
        reason: String,
        content_type: Option<String>,
        /// The Content-Type's `boundary` parameter, `""` if none.
        boundary: String,
    },
    /// The connection was lost; the next attempt follows after `delay`.
    Reconnecting {
        reason: String,
        attempt: u32,
        delay: Duration,
    },
    /// Something the parser noticed (boundary learnt, part skipped, resync).
    Parser(multipart::Event),
    /// A frame was read but not kept.
    FrameDropped { seq: u64, reason: DropReason },
    /// A part announced as JPEG (or without a type) did not start like one,
    /// and was skipped.
    PartNotJpeg,
    /// A frame is complete and handed over.
    FrameComplete { seq: u64, len: usize },
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Every pool buffer is in use.
    NoBuffer,
    /// Larger than `max-frame-size`.
    TooBig,
}

impl DropReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::NoBuffer => "no free buffer",
            DropReason::TooBig => "larger than max-frame-size",
        }
    }
}

/// Receives [`Event`]s.
pub(crate) type Events = Arc<dyn Fn(Event) + Send + Sync>;

/// The kind of a [`Fatal`] error, which the element maps to a
/// `GstResourceError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FatalKind {
    /// 404 / 410.
    NotFound,
    /// 401, 403, 407.
    NotAuthorized,
    /// The stream cannot be opened (bad URL, TLS refused, other 4xx).
    OpenRead,
    /// `retries` ran out.
    Read,
    /// A bug: the reader task panicked.
    Internal,
}

/// Why the client gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fatal {
    pub(crate) kind: FatalKind,
    pub(crate) message: String,
}

/// Where the body goes: a multipart [`Handler`] that can also take socket
/// reads directly into the frame being filled (the one-copy path).
pub(crate) trait FrameSink: Handler + Send {
    /// The chunk being parsed arrived at `at`.
    fn set_arrival(&mut self, at: Instant);
    /// The unwritten room of the frame being filled, at most `want` bytes;
    /// `None` without a frame or when it is full.
    fn spare(&mut self, want: u64) -> Option<&mut [u8]>;
    /// `n` bytes were read into [`FrameSink::spare`]: take them into the
    /// frame and return its last bytes (up to 64, and how many), for the
    /// parser's end check.
    fn commit_direct(&mut self, n: usize) -> ([u8; 64], usize);
    /// The connection ended: the frame being filled is lost, and the next
    /// frame follows a gap.
    fn connection_lost(&mut self);
    /// Frames completed since start (handed over or dropped at the hand-over).
    fn frames_completed(&self) -> u64;
}

/// How one connection ended.
enum Outcome {
    /// Worth reconnecting.
    Lost { reason: String },
    /// Will not fix itself on the first connect (404, 401, bad certificate).
    Refused { reason: String, fatal: Fatal },
    /// Never retried (a refused https → http redirect).
    Fatal(Fatal),
}

/// The shortest delay before a reconnect, whatever `retry-delay` says.
pub(crate) const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Reconnect delays vary by up to this many percent either way.
pub(crate) const JITTER_PERCENT: u64 = 20;
/// A session that delivered frames for this long is a working one: it
/// resets the failure count.
pub(crate) const WORKING_SESSION: Duration = Duration::from_secs(5);
/// 401/403 after a stream has run: retried this many times in a row, then
/// an error.
pub(crate) const AUTH_RETRIES: u32 = 3;

/// Nominal delay before reconnect attempt `attempt` (1-based): doubling
/// from `first`, capped at `max`, never below [`MIN_RETRY_DELAY`].
pub(crate) fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    first
        .saturating_mul(factor)
        .min(max.max(first))
        .max(MIN_RETRY_DELAY)
}

/// `nominal` ± [`JITTER_PERCENT`] %, never below [`MIN_RETRY_DELAY`];
/// `unit` in 0..=1 picks where in that range.
pub(crate) fn jittered(nominal: Duration, unit: f64) -> Duration {
    let spread = JITTER_PERCENT as f64 / 100.0;
    let unit = if unit.is_nan() {
        0.5
    } else {
        unit.clamp(0.0, 1.0)
    };
    let factor = 1.0 - spread + 2.0 * spread * unit;
    nominal.mul_f64(factor).max(MIN_RETRY_DELAY)
}

/// What one session achieved, for the failure count.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Frames completed during the session.
    pub(crate) frames: u64,
    /// Frames kept coming for at least [`WORKING_SESSION`], or a snapshot
    /// was delivered.
    pub(crate) working: bool,
    /// The response was a single image (`image/*`), not a stream.
    pub(crate) snapshot: bool,
    first_frame: Option<Instant>,
}

impl Progress {
    /// `frames` frames have completed so far in this session.
    pub(crate) fn update(&mut self, frames: u64) {
        if frames == self.frames {
            return;
        }
        self.frames = frames;
        if self.snapshot {
            self.working = true;
        }
        let now = Instant::now();
        match self.first_frame {
            None => self.first_frame = Some(now),
            Some(first) => {
                if now.duration_since(first) >= WORKING_SESSION {
                    self.working = true;
                }
            }
        }
    }
}

/// Run the client future; a panic inside it (a bug, or a dependency's bug
/// triggered by what a server sent) becomes a [`Fatal`] error instead of a
/// task that dies silently and leaves `create()` waiting forever.
pub(crate) async fn catch_panics(client: impl Future<Output = Fatal>) -> Fatal {
    match AssertUnwindSafe(client).catch_unwind().await {
        Ok(fatal) => fatal,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Fatal {
                kind: FatalKind::Internal,
                message: format!("The reader task failed: {what}"),
            }
        }
    }
}

/// Read the stream until `retries` is exhausted or a fatal error, which is
/// returned. The caller aborts the task to stop it earlier.
pub(crate) async fn run<S: FrameSink>(
    config: Config,
    sink: &mut S,
    stats: &Mutex<Stats>,
    events: &Events,
) -> Fatal {
    let mut auth = auth::Auth::new(config.credentials.clone());
    // A frame has streamed at some point: what is refused may come back.
    let mut streamed = false;
    let mut failures: u32 = 0;
    let mut auth_refusals: u32 = 0;
    loop {
        let (outcome, progress) = session::session(&config, &mut auth, sink, stats, events).await;
        lock(stats).connected = false;
        sink.connection_lost();
        if progress.frames > 0 {
            streamed = true;
        }
        if progress.working {
            failures = 0;
            auth_refusals = 0;
        }
        let reason = match outcome {
            Outcome::Fatal(fatal) => return fatal,
            Outcome::Refused { fatal, .. } if !streamed => return fatal,
            Outcome::Refused { reason, fatal } if fatal.kind == FatalKind::NotAuthorized => {
                auth_refusals += 1;
                if auth_refusals > AUTH_RETRIES {
                    return Fatal {
                        kind: FatalKind::NotAuthorized,
                        message: format!(
                            "The camera rejected the credentials ({auth_refusals} times in a row): {}",
                            fatal.message
                        ),
                    };
                }
                reason
            }
            Outcome::Refused { reason, .. } | Outcome::Lost { reason } => reason,
        };
        failures += 1;
        if config.retries >= 0 && failures > config.retries as u32 {
            return Fatal {
                kind: FatalKind::Read,
                message: format!(
                    "Giving up on {} after {} attempts: {}",
                    config.url, failures, reason
                ),
            };
        }
        let delay = jittered(
            backoff(failures, config.retry_delay, config.retry_delay_max),
            fastrand::f64(),
        );
        {
            let mut stats = lock(stats);
            stats.reconnects += 1;
            stats.last_reconnect_reason = reason.clone();
        }
        events(Event::Reconnecting {
            reason,
            attempt: failures,
            delay,
        });
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(1, ms(100), ms(1000)), ms(100));
        assert_eq!(backoff(2, ms(100), ms(1000)), ms(200));
        assert_eq!(backoff(4, ms(100), ms(1000)), ms(800));
        assert_eq!(backoff(5, ms(100), ms(1000)), ms(1000));
        assert_eq!(backoff(500, ms(100), ms(1000)), ms(1000));
        // A cap below the first delay never shortens it.
        assert_eq!(backoff(3, ms(500), ms(100)), ms(500));
    }

    #[test]
    fn backoff_has_a_floor() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(1, ms(0), ms(0)), MIN_RETRY_DELAY);
        assert_eq!(backoff(7, ms(0), ms(10_000)), MIN_RETRY_DELAY);
        assert_eq!(backoff(2, ms(10), ms(40)), MIN_RETRY_DELAY);
    }

    #[test]
    fn jitter_stays_in_range_and_above_the_floor() {
        let ms = Duration::from_millis;
        assert_eq!(jittered(ms(1000), 0.0), ms(800));
        assert_eq!(jittered(ms(1000), 1.0), ms(1200));
        assert_eq!(jittered(ms(1000), 0.5), ms(1000));
        assert_eq!(jittered(ms(100), 0.0), MIN_RETRY_DELAY);
        assert_eq!(jittered(ms(1000), 2.0), ms(1200));
        assert_eq!(jittered(ms(1000), f64::NAN), ms(1000));
    }

    #[test]
    fn one_frame_is_not_a_working_session() {
        let mut p = Progress::default();
        p.update(0);
        assert!(!p.working && p.frames == 0);
        p.update(1);
        p.update(1);
        assert!(!p.working);
        assert_eq!(p.frames, 1);
        // The first frame long ago: the next one makes it a working session.
        p.first_frame = Instant::now().checked_sub(WORKING_SESSION);
        p.update(2);
        assert!(p.working);
    }

    #[tokio::test]
    async fn a_panic_becomes_a_fatal_error() {
        let fatal = catch_panics(async { panic!("byte index 3 is not a char boundary") }).await;
        assert_eq!(fatal.kind, FatalKind::Internal);
        assert!(fatal.message.contains("char boundary"), "{}", fatal.message);
        let fatal = catch_panics(async { panic!("boom {}", 1) }).await;
        assert!(fatal.message.contains("boom 1"), "{}", fatal.message);
    }
}
