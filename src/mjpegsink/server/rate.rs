// SPDX-License-Identifier: MPL-2.0

//! What a streaming client is sent less of, beyond what its socket refuses:
//! a per-viewer frame rate (`?fps=N`) and ustreamer's `drop_same_frames`.
//! Pure bookkeeping, fed the time by the caller ([`super::fanout`]), so
//! every decision is unit-tested without a clock.
//!
//! Why a frame a client never got was not sent is counted by reason:
//! - *busy*: published while the client's connection was still taking the
//!   previous part (`frames-skipped-busy`, historically `frames-skipped`);
//! - *rate*: published while the client waited for its next `?fps` slot;
//! - *same*: byte-identical to the frame the client got last, dropped under
//!   `drop-same-frames`.

use std::time::{Duration, Instant};

use crate::multipart::writer::Frame;

/// Highest `?fps` honoured; higher asks are the same as no limit.
const MAX_FPS: f64 = 1000.0;

/// The minimum interval between two frames for a `?fps=` value: a positive
/// number (decimals allowed: `0.5` is one frame every two seconds), or
/// `None` (no limit) for anything else.
pub(crate) fn interval_from_fps(v: &str) -> Option<Duration> {
    let fps: f64 = v.trim().parse().ok()?;
    if !fps.is_finite() || fps <= 0.0 || fps >= MAX_FPS {
        return None;
    }
    Duration::try_from_secs_f64(1.0 / fps).ok()
}

/// Frames a client did not get, by reason (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub(crate) busy: u64,
    pub(crate) rate: u64,
    pub(crate) same: u64,
}

impl Skipped {
    pub(crate) fn total(&self) -> u64 {
        self.busy + self.rate + self.same
    }
}

/// One client's pacing and same-frame state.
pub(crate) struct ClientRate {
    /// Minimum time between two frames (`?fps`), if any.
    interval: Option<Duration>,
    /// The earliest time the next frame may go (on a grid of `interval`
    /// steps, so a viewer of a 30 fps source asking 5 gets 5, not 4.3).
    next_slot: Option<Instant>,
    /// The newest frame when the client started waiting for its slot: the
    /// frames after it were skipped for the rate, those up to it because the
    /// client was busy.
    held_at_seq: Option<u64>,
    /// `drop-same-frames`: how many identical frames in a row may be dropped.
    drop_same: u32,
    /// Identical frames dropped since the last one sent.
    same_run: u32,
    /// When the client was last sent a part.
    last_sent: Option<Instant>,
}

impl ClientRate {
    pub(crate) fn new(interval: Option<Duration>, drop_same: u32) -> Self {
        ClientRate {
            interval,
            next_slot: None,
            held_at_seq: None,
            drop_same,
            same_run: 0,
            last_sent: None,
        }
    }

    /// `Some(t)` if the client must wait until `t` before it is sent a frame
    /// (the newest then, whichever it is); `newest` is the newest frame's
    /// sequence number now.
    pub(crate) fn hold(&mut self, now: Instant, newest: u64) -> Option<Instant> {
        let slot = self.next_slot.filter(|&slot| slot > now)?;
        self.held_at_seq.get_or_insert(newest);
        Some(slot)
    }

    /// Whether frame `f`, newer than what the client got, is dropped as
    /// byte-identical to `last` (the frame it got last); a resend is due
    /// after `resend` without a part, and then the frame is sent anyway.
    pub(crate) fn drop_same(
        &mut self,
        f: &Frame,
        last: Option<&Frame>,
        now: Instant,
        resend: Option<Duration>,
    ) -> bool {
        if self.same_run >= self.drop_same || !last.is_some_and(|l| f.same_image(l)) {
            return false;
        }
        let resend_due = resend
            .zip(self.last_sent)
            .is_some_and(|(r, t)| now.saturating_duration_since(t) >= r);
        if resend_due {
            return false;
        }
        self.same_run += 1;
        true
    }

    /// The frames between `last_seq` (the client's last frame, 0 for none)
    /// and `seq` (the frame now sent or dropped as same), by reason; `seq`
    /// itself is not counted.
    pub(crate) fn skipped_before(&mut self, last_seq: u64, seq: u64) -> Skipped {
        let held = self.held_at_seq.take();
        if last_seq == 0 {
            return Skipped::default();
        }
        let missed = seq.saturating_sub(last_seq + 1);
        let rate = held.map_or(0, |h| seq.saturating_sub(h.max(last_seq + 1)));
        let rate = rate.min(missed);
        Skipped {
            busy: missed - rate,
            rate,
            same: 0,
        }
    }

    /// A new frame goes out at `now`: the next slot is one interval later.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.same_run = 0;
        self.last_sent = Some(now);
        if let Some(interval) = self.interval {
            // Stay on the grid unless the client fell more than a step
            // behind it (a quiet source, a slow socket): never a burst.
            let next = self
                .next_slot
                .map(|slot| slot + interval)
                .filter(|&next| next > now)
                .unwrap_or(now + interval);
            self.next_slot = Some(next);
        }
    }

    /// The last frame was resent at `now` (`resend-interval`).
    pub(crate) fn resent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn frame(seq: u64, jpeg: &[u8]) -> Frame {
        Frame::new(seq, jpeg, "B", SystemTime::now()).with_digest()
    }

    #[test]
    fn fps_values() {
        assert_eq!(interval_from_fps("5"), Some(Duration::from_millis(200)));
        assert_eq!(interval_from_fps("0.5"), Some(Duration::from_secs(2)));
        for bad in ["0", "-1", "nan", "inf", "x", "", "1e9"] {
            assert_eq!(interval_from_fps(bad), None, "{bad}");
        }
    }

    #[test]
    fn paces_on_a_grid() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = ClientRate::new(Some(Duration::from_millis(200)), 0);
        assert_eq!(r.hold(t0, 1), None);
        r.sent(t0);
        // Frames 2..=7 arrive before the slot: the client waits.
        assert_eq!(r.hold(ms(33), 2), Some(ms(200)));
        assert_eq!(r.hold(ms(100), 4), Some(ms(200)));
        // At the slot, frame 7 goes; 2..=6 were skipped for the rate.
        assert_eq!(r.hold(ms(200), 7), None);
        assert_eq!(
            r.skipped_before(1, 7),
            Skipped {
                busy: 0,
                rate: 5,
                same: 0
            }
        );
        // Sent a little late: the next slot stays on the grid.
        r.sent(ms(210));
        assert_eq!(r.hold(ms(300), 9), Some(ms(400)));
        // Frame 8 came while the client was busy, 9 while it waited.
        assert_eq!(
            r.skipped_before(7, 10),
            Skipped {
                busy: 1,
                rate: 1,
                same: 0
            }
        );
        // A long quiet spell: no burst afterwards.
        r.sent(ms(2000));
        assert_eq!(r.hold(ms(2001), 10), Some(ms(2200)));
    }

    #[test]
    fn busy_skips_without_rate() {
        let mut r = ClientRate::new(None, 0);
        assert_eq!(r.hold(Instant::now(), 5), None);
        assert_eq!(r.skipped_before(0, 5), Skipped::default());
        assert_eq!(r.skipped_before(5, 9).busy, 3);
    }

    #[test]
    fn drops_up_to_n_same_frames_then_sends_one() {
        let now = Instant::now();
        let a = frame(1, b"\xff\xd8same\xff\xd9");
        let b = frame(2, b"\xff\xd8same\xff\xd9");
        let c = frame(3, b"\xff\xd8diff\xff\xd9");
        let mut r = ClientRate::new(None, 2);
        r.sent(now);
        assert!(r.drop_same(&b, Some(&a), now, None));
        assert!(r.drop_same(&b, Some(&a), now, None));
        assert!(!r.drop_same(&b, Some(&a), now, None), "third is sent");
        r.sent(now);
        assert!(r.drop_same(&b, Some(&a), now, None), "run starts again");
        assert!(!r.drop_same(&c, Some(&a), now, None), "a new image goes");
        assert!(!r.drop_same(&b, None, now, None));
        // Off by default.
        let mut off = ClientRate::new(None, 0);
        assert!(!off.drop_same(&b, Some(&a), now, None));
    }

    #[test]
    fn same_frames_still_go_every_resend_interval() {
        let t0 = Instant::now();
        let a = frame(1, b"\xff\xd8same\xff\xd9");
        let mut r = ClientRate::new(None, 1000);
        r.sent(t0);
        let resend = Some(Duration::from_secs(1));
        assert!(r.drop_same(&a, Some(&a), t0 + Duration::from_millis(999), resend));
        assert!(!r.drop_same(&a, Some(&a), t0 + Duration::from_secs(1), resend));
    }
}
