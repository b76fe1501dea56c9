// SPDX-License-Identifier: MPL-2.0

//! The fan-out: one streaming client's response body, which yields the
//! newest frame not yet sent to it each time hyper polls it (only when the
//! connection can take more), so a busy client skips frames instead of
//! queueing them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, StreamBody};
use tokio::sync::watch;

use super::event::{DisconnectReason, ServerEvent};
use super::io::ConnFlags;
use super::rate::{ClientRate, Skipped};
use super::shared::{Published, Shared};
use crate::multipart::writer::{self, Frame};

/// The body of a new streaming client, or `None` (counted) when
/// `max_clients` clients are streaming already. The client holds its slot,
/// and is reported connected, until the body is dropped. `min_interval`
/// (`?fps`) paces it.
pub(crate) fn client_body(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    advance_headers: bool,
    flags: Arc<ConnFlags>,
    min_interval: Option<Duration>,
) -> Option<UnsyncBoxBody<Bytes, Infallible>> {
    // Reserve a client slot.
    let max = u64::from(shared.config.max_clients);
    let c = &shared.counters;
    if c.clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (max == 0 || n < max).then_some(n + 1)
        })
        .is_err()
    {
        c.clients_rejected_max.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    c.clients_total.fetch_add(1, Ordering::Relaxed);

    let guard = ClientGuard {
        shared: shared.clone(),
        peer,
        flags,
        reason: DisconnectReason::Closed,
        frames_sent: 0,
        frames_skipped: 0,
        _alive: shared.frames.subscribe(),
    };
    shared.emit(ServerEvent::ClientConnected {
        peer,
        advance_headers,
    });
    let state = ClientStream {
        rx: shared.frames.subscribe(),
        last_seq: 0,
        last_frame: None,
        advance_headers,
        phase: Phase::Preamble,
        rate: ClientRate::new(min_interval, shared.config.drop_same_frames),
        guard,
    };
    let stream = futures_util::stream::unfold(state, next_chunk)
        .map(|b| Ok::<_, Infallible>(hyper::body::Frame::data(b)));
    Some(StreamBody::new(stream).boxed_unsync())
}

/// Counts a streaming client out and reports it, whenever and however its
/// response body is dropped.
struct ClientGuard {
    shared: Arc<Shared>,
    peer: SocketAddr,
    flags: Arc<ConnFlags>,
    reason: DisconnectReason,
    frames_sent: u64,
    frames_skipped: u64,
    /// Dropped after the client is reported gone: a mount leaving a shared
    /// port waits until its frame channel has no receiver left.
    _alive: watch::Receiver<Published>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.shared.counters.clients.fetch_sub(1, Ordering::AcqRel);
        let reason = if self.flags.timed_out.load(Ordering::Relaxed) {
            DisconnectReason::Timeout
        } else {
            self.reason
        };
        self.shared.emit(ServerEvent::ClientDisconnected {
            peer: self.peer,
            reason,
            frames_sent: self.frames_sent,
            frames_skipped: self.frames_skipped,
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preamble,
    Streaming,
    Done,
}

struct ClientStream {
    rx: watch::Receiver<Published>,
    last_seq: u64,
    last_frame: Option<Arc<Frame>>,
    advance_headers: bool,
    phase: Phase,
    rate: ClientRate,
    guard: ClientGuard,
}

impl ClientStream {
    fn part(&self, f: &Frame) -> Bytes {
        if self.advance_headers {
            f.advance_part()
        } else {
            f.part()
        }
    }

    /// Count frames this client did not get.
    fn count_skipped(&mut self, k: Skipped) {
        if k.total() == 0 {
            return;
        }
        let c = &self.guard.shared.counters;
        self.guard.frames_skipped += k.total();
        c.frames_skipped.fetch_add(k.busy, Ordering::Relaxed);
        c.frames_skipped_rate.fetch_add(k.rate, Ordering::Relaxed);
        c.frames_skipped_same.fetch_add(k.same, Ordering::Relaxed);
    }
}

/// The next chunk of a client's body. Polled by hyper only when the
/// connection can take more, so it always yields the newest frame.
async fn next_chunk(mut s: ClientStream) -> Option<(Bytes, ClientStream)> {
    let shared = s.guard.shared.clone();
    let boundary = &shared.config.boundary;
    match s.phase {
        Phase::Done => return None,
        Phase::Preamble => {
            s.phase = Phase::Streaming;
            return Some((writer::preamble(boundary, s.advance_headers), s));
        }
        Phase::Streaming => {}
    }
    let c = &shared.counters;
    loop {
        let (newest, eos) = {
            let p = s.rx.borrow_and_update();
            (p.frame.clone(), p.eos)
        };
        if let Some(f) = newest
            && f.seq > s.last_seq
        {
            let now = Instant::now();
            if !eos && let Some(slot) = s.rate.hold(now, f.seq) {
                // `?fps`: not this viewer's turn yet; then the newest goes
                // (or, at EOS, the last frame and the close at once).
                let ended = s.rx.wait_for(|p| p.eos);
                if let Ok(Err(_)) = tokio::time::timeout_at(slot.into(), ended).await {
                    return None; // Server gone.
                }
                continue;
            }
            let mut skipped = s.rate.skipped_before(s.last_seq, f.seq);
            let resend = shared.config.resend_interval;
            if s.rate.drop_same(&f, s.last_frame.as_deref(), now, resend) {
                skipped.same += 1;
                s.count_skipped(skipped);
                s.last_seq = f.seq;
                continue;
            }
            s.count_skipped(skipped);
            s.rate.sent(now);
            s.last_seq = f.seq;
            s.guard.frames_sent += 1;
            c.frames_out.fetch_add(1, Ordering::Relaxed);
            let part = s.part(&f);
            s.last_frame = Some(f);
            return Some((part, s));
        }
        if eos {
            s.phase = Phase::Done;
            s.guard.reason = DisconnectReason::Eos;
            return Some((writer::closing(boundary, s.advance_headers), s));
        }
        let changed = match (shared.config.resend_interval, &s.last_frame) {
            (Some(interval), Some(last)) => {
                match tokio::time::timeout(interval, s.rx.changed()).await {
                    Ok(r) => r,
                    Err(_) => {
                        // Quiet pipeline: send the newest frame again.
                        c.frames_out.fetch_add(1, Ordering::Relaxed);
                        c.frames_resent.fetch_add(1, Ordering::Relaxed);
                        s.rate.resent(Instant::now());
                        let part = s.part(last);
                        return Some((part, s));
                    }
                }
            }
            _ => s.rx.changed().await,
        };
        if changed.is_err() {
            // Server gone.
            return None;
        }
    }
}
