// SPDX-License-Identifier: MPL-2.0

//! The counters behind the `stats` property, written by the client (bytes,
//! reconnects, connection state) and the assembler (frames), read by the
//! element. Plain Rust, behind one mutex.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Window of the fps meter.
const FPS_WINDOW: Duration = Duration::from_secs(2);

/// Counters of one run of the element (reset by `start()`).
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) frames_received: u64,
    pub(crate) frames_pushed: u64,
    pub(crate) dropped_no_buffer: u64,
    pub(crate) dropped_too_big: u64,
    pub(crate) dropped_queue_full: u64,
    pub(crate) overruns: u64,
    pub(crate) reconnects: u64,
    pub(crate) bytes_received: u64,
    pub(crate) skipped_parts: u64,
    pub(crate) resyncs: u64,
    /// Bytes skipped between a complete part and the next delimiter.
    pub(crate) junk_bytes: u64,
    /// Parts whose Content-Length disagreed with the delimiter, repaired.
    pub(crate) length_mismatches: u64,
    /// Frames that could not be recovered whole (dropped, never pushed cut).
    pub(crate) dropped_broken: u64,
    pub(crate) last_reconnect_reason: String,
    pub(crate) connected: bool,
    recent: VecDeque<Instant>,
    /// Camera `X-Timestamp`s left out of the meta (not representable).
    pub(crate) bad_timestamps: u64,
    /// Frames whose JPEG header gave no usable size (pushed with the
    /// previous caps).
    pub(crate) frames_without_size: u64,
}

impl Stats {
    /// A frame was completed at `at` (for the fps meter).
    pub(crate) fn frame_completed(&mut self, at: Instant) {
        self.recent.push_back(at);
        while self
            .recent
            .front()
            .is_some_and(|t| at.duration_since(*t) > FPS_WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// Frames per second over the last couple of seconds; 0 when stalled.
    pub(crate) fn fps(&self) -> f64 {
        let (Some(first), Some(last)) = (self.recent.front(), self.recent.back()) else {
            return 0.0;
        };
        if last.elapsed() > FPS_WINDOW || self.recent.len() < 2 {
            return 0.0;
        }
        let span = last.duration_since(*first).as_secs_f64();
        if span <= 0.0 {
            0.0
        } else {
            (self.recent.len() - 1) as f64 / span
        }
    }

    pub(crate) fn frames_dropped(&self) -> u64 {
        self.dropped_no_buffer
            + self.dropped_too_big
            + self.dropped_queue_full
            + self.dropped_broken
    }
}

/// What the element tells the application about, at most once per
/// [`NOTICE_INTERVAL`] per kind, so a stream that only sends what is
/// dropped does not look connected and silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoticeKind {
    /// A frame larger than `max-frame-size` was dropped.
    TooBig,
    /// A part that is not a JPEG was skipped.
    NotJpeg,
    /// An absurd camera timestamp was left out of the meta.
    BadTimestamp,
}

impl NoticeKind {
    const ALL: usize = 3;

    fn index(self) -> usize {
        match self {
            NoticeKind::TooBig => 0,
            NoticeKind::NotJpeg => 1,
            NoticeKind::BadTimestamp => 2,
        }
    }

    /// The `kind` field of the `mjpegsrc-skipped` message.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NoticeKind::TooBig => "too-big",
            NoticeKind::NotJpeg => "not-jpeg",
            NoticeKind::BadTimestamp => "bad-timestamp",
        }
    }
}

/// Shortest time between two notices of one kind.
pub(crate) const NOTICE_INTERVAL: Duration = Duration::from_secs(5);

/// A notice due: how many occurrences since the previous notice of this
/// kind, and since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) kind: NoticeKind,
    pub(crate) count: u64,
    pub(crate) total: u64,
}

/// The rate limiter behind the notices.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    last: [Option<Instant>; NoticeKind::ALL],
    pending: [u64; NoticeKind::ALL],
    total: [u64; NoticeKind::ALL],
}

impl Notices {
    /// One more occurrence of `kind` at `now`: the notice to post, if one
    /// is due.
    pub(crate) fn note(&mut self, kind: NoticeKind, now: Instant) -> Option<Notice> {
        let i = kind.index();
        self.pending[i] += 1;
        self.total[i] += 1;
        if self.last[i].is_some_and(|t| now.saturating_duration_since(t) < NOTICE_INTERVAL) {
            return None;
        }
        self.last[i] = Some(now);
        Some(Notice {
            kind,
            count: std::mem::take(&mut self.pending[i]),
            total: self.total[i],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_rate_limited_per_kind() {
        let mut n = Notices::default();
        let t0 = Instant::now();
        let first = n.note(NoticeKind::NotJpeg, t0).expect("first notice");
        assert_eq!((first.count, first.total), (1, 1));
        assert_eq!(n.note(NoticeKind::NotJpeg, t0), None);
        assert_eq!(
            n.note(NoticeKind::NotJpeg, t0 + Duration::from_secs(4)),
            None
        );
        // Another kind is not held back.
        assert!(n.note(NoticeKind::TooBig, t0).is_some());
        let later = n
            .note(NoticeKind::NotJpeg, t0 + NOTICE_INTERVAL)
            .expect("after the interval");
        assert_eq!((later.count, later.total), (3, 4));
    }
}
