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

mod auth;
mod config;
mod http1;
mod open;
mod proxy;
mod session;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

pub(crate) use config::{Config, Settings};
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
}

/// Delay before reconnect attempt `attempt` (1-based): doubling from
/// `first`, capped at `max`.
pub(crate) fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    first.saturating_mul(factor).min(max.max(first))
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
    let mut streamed = false;
    let mut failures: u32 = 0;
    loop {
        let frames_before = sink.frames_completed();
        let outcome = session::session(&config, &mut auth, sink, stats, events).await;
        lock(stats).connected = false;
        sink.connection_lost();
        if sink.frames_completed() > frames_before {
            streamed = true;
            failures = 0;
        }
        let reason = match outcome {
            Outcome::Refused { fatal, .. } if !streamed => return fatal,
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
        let delay = backoff(failures, config.retry_delay, config.retry_delay_max);
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
}
