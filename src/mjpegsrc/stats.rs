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
