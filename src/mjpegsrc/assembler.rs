// SPDX-License-Identifier: MPL-2.0

//! Frames out of the parser, into pool buffers, over to `create()`.
//!
//! The [`Assembler`] is the client's [`FrameSink`]: it takes a buffer from
//! the bounded pool when a part starts, lets the client read the body
//! straight into it (or copies the parser's slices once), checks that it is
//! a JPEG, and on completion puts the frame in the [`Handoff`] queue that
//! `create()` takes from. It never waits: no free buffer, a frame too big, or
//! a full queue means a dropped (and counted) frame.
//!
//! Locks: `Handoff::stats` is taken before `Handoff::queue` where both are
//! held (so `frames-pushed` never overtakes `frames-received`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::client::{self, DropReason, Event, Events, Fatal, FrameSink};
use super::pool::FramePool;
use super::stats::Stats;
use crate::jpeg;
use crate::multipart::{self, Disagreement, Handler, PartInfo};
use crate::runtime::lock;

/// Frames waiting for `create()`. Two is enough to never starve a consumer
/// that keeps up, and small enough that a slow one sees the newest frames.
pub(crate) const QUEUE_LEN: usize = 2;

/// A finished frame.
pub(crate) struct Frame {
    pub(crate) buffer: gst::Buffer,
    /// When the first byte of the part arrived.
    pub(crate) arrival: Instant,
    /// The camera's `X-Timestamp`, seconds on its own clock.
    pub(crate) camera_ts: Option<f64>,
    pub(crate) discont: bool,
    pub(crate) seq: u64,
    pub(crate) dims: Option<(u32, u32)>,
}

/// What `create()` takes from the queue.
pub(crate) enum Item {
    Frame(Frame),
    /// The client gave up; `create()` posts this and stops.
    Fatal(Fatal),
}

/// The hand-over between the reader task and `create()`, and the counters
/// both write.
pub(crate) struct Handoff {
    queue: Mutex<VecDeque<Item>>,
    ready: tokio::sync::Notify,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) pool: FramePool,
}

impl Handoff {
    pub(crate) fn new(pool: FramePool) -> Self {
        Handoff {
            queue: Mutex::new(VecDeque::with_capacity(QUEUE_LEN + 1)),
            ready: tokio::sync::Notify::new(),
            stats: Mutex::new(Stats::default()),
            pool,
        }
    }

    /// The next frame or the fatal error, waiting for it.
    pub(crate) async fn next_item(&self) -> Item {
        loop {
            if let Some(item) = lock(&self.queue).pop_front() {
                return item;
            }
            self.ready.notified().await;
        }
    }

    /// The client gave up: `create()` reports it after the queued frames.
    pub(crate) fn push_fatal(&self, fatal: Fatal) {
        lock(&self.queue).push_back(Item::Fatal(fatal));
        self.ready.notify_one();
    }
}

/// A frame being filled.
struct Building {
    map: gst::MappedBuffer<gst::buffer::Writable>,
    len: usize,
    arrival: Instant,
    camera_ts: Option<f64>,
}

/// Turns parser callbacks into pool buffers and queue items.
pub(crate) struct Assembler {
    handoff: Arc<Handoff>,
    events: Events,
    current: Option<Building>,
    /// Arrival time of the chunk being parsed.
    arrival: Instant,
    seq: u64,
    /// Frames completed (queued or dropped at the queue) since start.
    completed: u64,
    /// Something was lost since the last queued frame.
    discont: bool,
    /// Inside a run of consecutive drops (an "overrun").
    overrun: bool,
}

impl Assembler {
    pub(crate) fn new(handoff: Arc<Handoff>, events: Events) -> Self {
        Assembler {
            handoff,
            events,
            current: None,
            arrival: Instant::now(),
            seq: 0,
            completed: 0,
            discont: true,
            overrun: false,
        }
    }

    fn dropped(&mut self, reason: DropReason) {
        let mut stats = lock(&self.handoff.stats);
        stats.frames_received += 1;
        match reason {
            DropReason::NoBuffer => stats.dropped_no_buffer += 1,
            DropReason::TooBig => stats.dropped_too_big += 1,
        }
        if !self.overrun {
            stats.overruns += 1;
            self.overrun = true;
        }
        drop(stats);
        self.seq += 1;
        self.discont = true;
        (self.events)(Event::FrameDropped {
            seq: self.seq,
            reason,
        });
    }

    fn not_jpeg(&mut self) {
        self.current = None;
        lock(&self.handoff.stats).skipped_parts += 1;
        (self.events)(Event::PartNotJpeg);
    }

    fn enqueue(&mut self, frame: Frame) {
        // Count under the stats lock before the frame becomes visible to
        // create(), so frames-pushed never overtakes frames-received.
        let mut stats = lock(&self.handoff.stats);
        stats.frames_received += 1;
        stats.frame_completed(Instant::now());
        let evicted = {
            let mut queue = lock(&self.handoff.queue);
            let mut evicted = false;
            if queue.len() >= QUEUE_LEN {
                // Keep the newest: drop the oldest queued frame and flag
                // the gap on the one after it.
                if let Some(pos) = queue.iter().position(|i| matches!(i, Item::Frame(_))) {
                    queue.remove(pos);
                    evicted = true;
                    if let Some(Item::Frame(next)) = queue.get_mut(pos) {
                        next.discont = true;
                    }
                }
            }
            queue.push_back(Item::Frame(frame));
            evicted
        };
        if evicted {
            stats.dropped_queue_full += 1;
            if !self.overrun {
                stats.overruns += 1;
                self.overrun = true;
            }
        } else {
            self.overrun = false;
        }
        drop(stats);
        self.handoff.ready.notify_one();
    }
}

impl FrameSink for Assembler {
    fn set_arrival(&mut self, at: Instant) {
        self.arrival = at;
    }

    fn spare(&mut self, want: u64) -> Option<&mut [u8]> {
        let b = self.current.as_mut()?;
        let room = b.map.len() - b.len;
        let n = usize::try_from(want).map_or(room, |w| w.min(room));
        (n > 0).then(|| &mut b.map[b.len..b.len + n])
    }

    fn commit_direct(&mut self, n: usize) -> ([u8; 64], usize) {
        let mut last = [0u8; 64];
        let Some(b) = &mut self.current else {
            return (last, 0);
        };
        let checked_soi = b.len >= 2;
        b.len += n;
        let tail = &b.map[b.len.saturating_sub(last.len())..b.len];
        last[..tail.len()].copy_from_slice(tail);
        let len = tail.len();
        if !checked_soi && b.len >= 2 && !jpeg::starts_with_soi(&b.map[..b.len]) {
            self.not_jpeg();
        }
        (last, len)
    }

    fn connection_lost(&mut self) {
        self.current = None;
        self.discont = true;
    }

    fn frames_completed(&self) -> u64 {
        self.completed
    }
}

impl Handler for Assembler {
    fn part_start(&mut self, info: &PartInfo) -> bool {
        self.current = None;
        let Some(buffer) = self.handoff.pool.try_acquire() else {
            self.dropped(DropReason::NoBuffer);
            return false;
        };
        let Ok(map) = buffer.into_mapped_buffer_writable() else {
            self.dropped(DropReason::NoBuffer);
            return false;
        };
        if info.content_length.is_some_and(|n| n > map.len() as u64) {
            self.dropped(DropReason::TooBig);
            return false;
        }
        self.current = Some(Building {
            map,
            len: 0,
            arrival: self.arrival,
            camera_ts: info.timestamp,
        });
        true
    }

    fn part_data(&mut self, data: &[u8]) -> bool {
        let Some(b) = &mut self.current else {
            return false;
        };
        let end = b.len + data.len();
        let Some(dst) = b.map.get_mut(b.len..end) else {
            self.current = None;
            self.dropped(DropReason::TooBig);
            return false;
        };
        dst.copy_from_slice(data);
        let checked_soi = b.len >= 2;
        b.len = end;
        if !checked_soi && end >= 2 && !jpeg::starts_with_soi(&b.map[..end]) {
            self.not_jpeg();
            return false;
        }
        true
    }

    fn part_end(&mut self) {
        let Some(b) = self.current.take() else {
            return;
        };
        if !jpeg::starts_with_soi(&b.map[..b.len]) {
            lock(&self.handoff.stats).skipped_parts += 1;
            (self.events)(Event::PartNotJpeg);
            return;
        }
        let dims = jpeg::dimensions(&b.map[..b.len]);
        let len = b.len;
        let mut buffer = b.map.into_buffer();
        if let Some(buf) = buffer.get_mut() {
            buf.set_size(len);
        }
        self.seq += 1;
        self.completed += 1;
        let seq = self.seq;
        let discont = std::mem::take(&mut self.discont);
        self.enqueue(Frame {
            buffer,
            arrival: b.arrival,
            camera_ts: b.camera_ts,
            discont,
            seq,
            dims,
        });
        (self.events)(Event::FrameComplete { seq, len });
    }

    fn part_abort(&mut self) {
        self.current = None;
    }

    fn part_bytes(&self) -> Option<&[u8]> {
        self.current.as_ref().map(|b| &b.map[..b.len])
    }

    fn part_truncate(&mut self, len: usize) {
        if let Some(b) = &mut self.current {
            b.len = b.len.min(len);
        }
    }

    fn disagreement(&mut self, d: Disagreement) {
        let mut stats = lock(&self.handoff.stats);
        match d {
            Disagreement::Junk(n) => stats.junk_bytes += n,
            Disagreement::TooShort | Disagreement::TooLong => stats.length_mismatches += 1,
            Disagreement::Dropped => {
                stats.frames_received += 1;
                stats.dropped_broken += 1;
                drop(stats);
                self.seq += 1;
                self.discont = true;
            }
        }
    }

    fn event(&mut self, ev: multipart::Event) {
        match ev {
            multipart::Event::Skipped(_) => lock(&self.handoff.stats).skipped_parts += 1,
            multipart::Event::Resync => {
                lock(&self.handoff.stats).resyncs += 1;
                self.discont = true;
            }
            multipart::Event::BoundaryLearned(_)
            | multipart::Event::LengthMismatch
            | multipart::Event::Closed => {}
        }
    }
}

/// Run the client with an assembler filling `handoff`, until it gives up:
/// its fatal error then goes through the queue to `create()`. A panic in the
/// task is such an error too, never a silent end.
pub(crate) async fn read_stream(config: client::Config, handoff: Arc<Handoff>, events: Events) {
    let mut assembler = Assembler::new(handoff.clone(), events.clone());
    let fatal =
        client::catch_panics(client::run(config, &mut assembler, &handoff.stats, &events)).await;
    lock(&handoff.stats).connected = false;
    handoff.push_fatal(fatal);
}
