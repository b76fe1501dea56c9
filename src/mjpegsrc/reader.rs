//! The network side of `mjpegsrc`: one task on the shared runtime that
//! connects, reads the body continuously, copies each frame's bytes once into
//! a pool buffer as they arrive, and hands finished frames to `create()`
//! through a small queue. It never waits on downstream: no free buffer or a
//! full queue means a dropped (and counted) frame. On any failure it
//! reconnects with back-off until `retries` runs out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use url::Url;

use super::auth::{Auth, Credentials, Verdict};
use super::http::{self, HttpError, Response};
use super::pool::FramePool;
use crate::jpeg;
use crate::multipart::{Event, Handler, Limits, Parser, PartInfo};
use crate::runtime::lock;

use super::imp::CAT;

/// Frames waiting for `create()`. Two is enough to never starve a consumer
/// that keeps up, and small enough that a slow one sees the newest frames.
pub const QUEUE_LEN: usize = 2;
/// Redirects followed before giving up.
const MAX_REDIRECTS: u32 = 10;
/// Authentication round trips in one connection attempt.
const MAX_AUTH_ROUNDS: u32 = 3;
/// Window of the fps meter.
const FPS_WINDOW: Duration = Duration::from_secs(2);

/// A finished frame.
pub struct Frame {
    pub buffer: gst::Buffer,
    /// When the first byte of the part arrived.
    pub arrival: Instant,
    /// The camera's `X-Timestamp`, seconds on its own clock.
    pub camera_ts: Option<f64>,
    pub discont: bool,
    pub seq: u64,
    pub dims: Option<(u32, u32)>,
}

pub enum Item {
    Frame(Frame),
    /// The reader gave up; `create()` posts this and stops.
    Fatal(gst::ErrorMessage),
}

/// Counters behind the `stats` property.
#[derive(Default)]
pub struct Stats {
    pub frames_received: u64,
    pub frames_pushed: u64,
    pub dropped_no_buffer: u64,
    pub dropped_too_big: u64,
    pub dropped_queue_full: u64,
    pub overruns: u64,
    pub reconnects: u64,
    pub bytes_received: u64,
    pub skipped_parts: u64,
    pub resyncs: u64,
    pub last_reconnect_reason: String,
    pub connected: bool,
    recent: VecDeque<Instant>,
}

impl Stats {
    fn frame_completed(&mut self, at: Instant) {
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
    pub fn fps(&self) -> f64 {
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

    pub fn frames_dropped(&self) -> u64 {
        self.dropped_no_buffer + self.dropped_too_big + self.dropped_queue_full
    }
}

/// State shared by the reader task and the element.
pub struct Shared {
    pub queue: Mutex<VecDeque<Item>>,
    pub ready: tokio::sync::Notify,
    pub stats: Mutex<Stats>,
    pub pool: FramePool,
}

impl Shared {
    pub fn new(pool: FramePool) -> Self {
        Shared {
            queue: Mutex::new(VecDeque::with_capacity(QUEUE_LEN + 1)),
            ready: tokio::sync::Notify::new(),
            stats: Mutex::new(Stats::default()),
            pool,
        }
    }

    pub async fn next_item(&self) -> Item {
        loop {
            if let Some(item) = lock(&self.queue).pop_front() {
                return item;
            }
            self.ready.notified().await;
        }
    }

    fn push_fatal(&self, err: gst::ErrorMessage) {
        lock(&self.queue).push_back(Item::Fatal(err));
        self.ready.notify_one();
    }
}

/// Everything the reader needs, fixed when the element starts.
pub struct Config {
    pub url: Url,
    pub http: http::Config,
    pub credentials: Option<Credentials>,
    /// No byte for this long = stalled.
    pub timeout: Option<Duration>,
    /// -1 = forever.
    pub retries: i32,
    pub retry_delay: Duration,
    pub retry_delay_max: Duration,
}

/// Delay before reconnect attempt `attempt` (1-based): doubling from
/// `retry_delay`, capped at `retry_delay_max`.
pub fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    first.saturating_mul(factor).min(max.max(first))
}

/// How one connection ended.
enum Outcome {
    /// Worth reconnecting.
    Lost { reason: String },
    /// Will not fix itself on the first connect (404, 401, bad certificate).
    Refused {
        reason: String,
        error: gst::ErrorMessage,
    },
}

/// Run the reader until `retries` is exhausted or a fatal error; the task
/// is aborted by the element on stop.
pub async fn run(config: Config, shared: Arc<Shared>, element: glib::WeakRef<gst::Element>) {
    let mut auth = Auth::new(config.credentials.clone());
    let mut assembler = Assembler::new(shared.clone());
    let mut streamed = false;
    let mut failures: u32 = 0;
    loop {
        let frames_before = assembler.completed;
        let outcome = session(&config, &mut auth, &mut assembler, &element).await;
        lock(&shared.stats).connected = false;
        assembler.abort_current();
        if assembler.completed > frames_before {
            streamed = true;
            failures = 0;
        }
        let reason = match outcome {
            Outcome::Refused { error, .. } if !streamed => {
                shared.push_fatal(error);
                return;
            }
            Outcome::Refused { reason, .. } | Outcome::Lost { reason } => reason,
        };
        failures += 1;
        if config.retries >= 0 && failures > config.retries as u32 {
            shared.push_fatal(gst::error_msg!(
                gst::ResourceError::Read,
                [
                    "Giving up on {} after {} attempts: {}",
                    config.url,
                    failures,
                    reason
                ]
            ));
            return;
        }
        let delay = backoff(failures, config.retry_delay, config.retry_delay_max);
        {
            let mut stats = lock(&shared.stats);
            stats.reconnects += 1;
            stats.last_reconnect_reason = reason.clone();
        }
        assembler.discont = true;
        if let Some(element) = element.upgrade() {
            gst::element_warning!(
                element,
                gst::ResourceError::Read,
                [
                    "Reconnecting in {} ms (attempt {}): {}",
                    delay.as_millis(),
                    failures,
                    reason
                ]
            );
            let s = gst::Structure::builder("mjpegsrc-reconnect")
                .field("reason", reason.as_str())
                .field("attempt", failures)
                .field("delay-ms", delay.as_millis() as u64)
                .build();
            let _ = element.post_message(gst::message::Element::builder(s).src(&element).build());
        }
        tokio::time::sleep(delay).await;
    }
}

/// The `boundary` parameter of a Content-Type, unquoted (for messages; the
/// parser learns the real delimiter from the body).
fn boundary_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_owned(),
    }
}

/// Open the stream: follow redirects, answer authentication challenges.
async fn open(config: &Config, auth: &mut Auth) -> Result<(Url, Response), Outcome> {
    let mut url = config.url.clone();
    let mut redirects = 0;
    let mut auth_rounds = 0;
    let origin = url.origin();
    loop {
        // Credentials go only to the origin they were given for, never to
        // a host a redirect points at.
        let same_origin = url.origin() == origin;
        let authorization = same_origin
            .then(|| auth.authorization(&path_and_query(&url)))
            .flatten();
        let resp = http::get(&config.http, &url, authorization.as_deref())
            .await
            .map_err(|e| match e {
                HttpError::InvalidUrl(_) | HttpError::Tls(_) => Outcome::Refused {
                    reason: e.to_string(),
                    error: gst::error_msg!(
                        gst::ResourceError::OpenRead,
                        ["Could not open {}: {}", url, e]
                    ),
                },
                _ => Outcome::Lost {
                    reason: e.to_string(),
                },
            })?;
        let status = resp.status;
        match status {
            200..=299 => return Ok((url, resp)),
            301 | 302 | 303 | 307 | 308 => {
                redirects += 1;
                let target = resp.header("location").and_then(|l| url.join(l).ok());
                match target {
                    Some(next) if redirects <= MAX_REDIRECTS => {
                        gst::debug!(CAT, "Redirected from {} to {}", url, next);
                        url = next;
                    }
                    _ => {
                        return Err(Outcome::Lost {
                            reason: format!(
                                "{status} redirect without a usable Location or too many redirects"
                            ),
                        });
                    }
                }
            }
            401 => {
                auth_rounds += 1;
                let verdict = if !same_origin {
                    Verdict::Refused("credentials are not sent to a redirected origin".into())
                } else if auth_rounds > MAX_AUTH_ROUNDS {
                    Verdict::Refused("authentication keeps failing".into())
                } else {
                    auth.challenge(resp.headers_named("www-authenticate"))
                };
                if let Verdict::Refused(why) = verdict {
                    return Err(Outcome::Refused {
                        reason: format!("401 {}: {why}", resp.reason),
                        error: gst::error_msg!(
                            gst::ResourceError::NotAuthorized,
                            ["Not authorized to read {}: {}", url, why]
                        ),
                    });
                }
            }
            403 | 404 | 400..=407 | 409..=428 | 430..=499 => {
                let kind = if status == 404 || status == 410 {
                    gst::ResourceError::NotFound
                } else if status == 403 || status == 407 {
                    gst::ResourceError::NotAuthorized
                } else {
                    gst::ResourceError::OpenRead
                };
                return Err(Outcome::Refused {
                    reason: format!("HTTP {status} {}", resp.reason),
                    error: gst::error_msg!(
                        kind,
                        ["{} answered HTTP {} {}", url, status, resp.reason]
                    ),
                });
            }
            _ => {
                return Err(Outcome::Lost {
                    reason: format!("HTTP {status} {}", resp.reason),
                });
            }
        }
    }
}

/// One connection: open, then read and parse until something ends it.
async fn session(
    config: &Config,
    auth: &mut Auth,
    assembler: &mut Assembler,
    element: &glib::WeakRef<gst::Element>,
) -> Outcome {
    let (url, mut resp) = match open(config, auth).await {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let content_type = resp.header("content-type").map(str::to_owned);
    let mut parser = Parser::new(content_type.as_deref(), Limits::default());
    gst::info!(
        CAT,
        "Connected to {} (HTTP/1.{} {} {}, Content-Type {:?})",
        url,
        resp.version,
        resp.status,
        resp.reason,
        content_type
    );
    lock(&assembler.shared.stats).connected = true;
    if let Some(element) = element.upgrade() {
        let boundary = content_type
            .as_deref()
            .and_then(boundary_param)
            .unwrap_or_default();
        let s = gst::Structure::builder("mjpegsrc-connected")
            .field("location", url.as_str())
            .field("status", u32::from(resp.status))
            .field("content-type", content_type.as_deref().unwrap_or(""))
            .field("boundary", boundary.as_str())
            .build();
        let _ = element.post_message(gst::message::Element::builder(s).src(&element).build());
    }

    loop {
        // Inside a frame of known length, read from the socket straight into
        // the pool buffer: the kernel's copy is the only one.
        if resp.body.can_read_direct()
            && let Some(remaining) = parser.direct_remaining()
            && let Some(dst) = assembler.spare(remaining)
        {
            let n = match stall_guard(config.timeout, resp.body.read_direct(dst)).await {
                Ok(Ok(0)) => {
                    parser.finish(assembler);
                    return Outcome::Lost {
                        reason: "the server closed the stream".into(),
                    };
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    return Outcome::Lost {
                        reason: e.to_string(),
                    };
                }
                Err(stalled) => return stalled,
            };
            lock(&assembler.shared.stats).bytes_received += n as u64;
            let (last, len) = assembler.commit_direct(n);
            if let Err(e) = parser.feed_direct(n, &last[..len], assembler) {
                return Outcome::Lost {
                    reason: format!("unrecoverable stream: {e}"),
                };
            }
            continue;
        }

        let chunk = match stall_guard(config.timeout, resp.body.chunk()).await {
            Ok(chunk) => chunk,
            Err(stalled) => return stalled,
        };
        match chunk {
            Ok(Some(data)) => {
                assembler.arrival = Instant::now();
                lock(&assembler.shared.stats).bytes_received += data.len() as u64;
                if let Err(e) = parser.feed(data, assembler) {
                    return Outcome::Lost {
                        reason: format!("unrecoverable stream: {e}"),
                    };
                }
                if std::mem::take(&mut assembler.closed) {
                    return Outcome::Lost {
                        reason: "the server ended the stream (closing boundary)".into(),
                    };
                }
            }
            Ok(None) => {
                parser.finish(assembler);
                return Outcome::Lost {
                    reason: "the server closed the stream".into(),
                };
            }
            Err(e) => {
                return Outcome::Lost {
                    reason: e.to_string(),
                };
            }
        }
    }
}

/// Await a read, or report a stall after `timeout` without data.
async fn stall_guard<F: std::future::Future>(
    timeout: Option<Duration>,
    read: F,
) -> Result<F::Output, Outcome> {
    match timeout {
        Some(t) => tokio::time::timeout(t, read)
            .await
            .map_err(|_| Outcome::Lost {
                reason: format!("stalled: no data for {} s", t.as_secs()),
            }),
        None => Ok(read.await),
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
struct Assembler {
    shared: Arc<Shared>,
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
    /// The closing delimiter arrived: the stream is over.
    closed: bool,
}

enum Drop {
    NoBuffer,
    TooBig,
}

impl Assembler {
    fn new(shared: Arc<Shared>) -> Self {
        Assembler {
            shared,
            current: None,
            arrival: Instant::now(),
            seq: 0,
            completed: 0,
            discont: true,
            overrun: false,
            closed: false,
        }
    }

    fn abort_current(&mut self) {
        self.current = None;
    }

    /// The unwritten room of the frame being filled, at most `want` bytes;
    /// `None` without a frame or when it is full (the next bytes then go
    /// through `part_data`, which drops the frame as too big).
    fn spare(&mut self, want: u64) -> Option<&mut [u8]> {
        let b = self.current.as_mut()?;
        let room = b.map.len() - b.len;
        let n = usize::try_from(want).map_or(room, |w| w.min(room));
        (n > 0).then(|| &mut b.map[b.len..b.len + n])
    }

    /// `n` bytes were read into [`Assembler::spare`]: take them into the
    /// frame, check the JPEG start, and return the frame's last bytes for
    /// the parser's end check.
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
            self.current = None;
            lock(&self.shared.stats).skipped_parts += 1;
        }
        (last, len)
    }

    fn dropped(&mut self, why: Drop) {
        let mut stats = lock(&self.shared.stats);
        stats.frames_received += 1;
        match why {
            Drop::NoBuffer => stats.dropped_no_buffer += 1,
            Drop::TooBig => stats.dropped_too_big += 1,
        }
        if !self.overrun {
            stats.overruns += 1;
            self.overrun = true;
        }
        self.seq += 1;
        self.discont = true;
        gst::log!(
            CAT,
            "Dropped frame {} ({})",
            self.seq,
            match why {
                Drop::NoBuffer => "no free buffer",
                Drop::TooBig => "larger than max-frame-size",
            }
        );
    }

    fn enqueue(&mut self, frame: Frame) {
        // Count under the stats lock before the frame becomes visible to
        // create(), so frames-pushed never overtakes frames-received.
        let mut stats = lock(&self.shared.stats);
        stats.frames_received += 1;
        stats.frame_completed(Instant::now());
        let evicted = {
            let mut queue = lock(&self.shared.queue);
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
        self.shared.ready.notify_one();
    }
}

impl Handler for Assembler {
    fn part_start(&mut self, info: &PartInfo) -> bool {
        self.current = None;
        let Some(buffer) = self.shared.pool.try_acquire() else {
            self.dropped(Drop::NoBuffer);
            return false;
        };
        let Ok(map) = buffer.into_mapped_buffer_writable() else {
            self.dropped(Drop::NoBuffer);
            return false;
        };
        if info.content_length.is_some_and(|n| n > map.len() as u64) {
            self.dropped(Drop::TooBig);
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
            self.dropped(Drop::TooBig);
            return false;
        };
        dst.copy_from_slice(data);
        let checked_soi = b.len >= 2;
        b.len = end;
        if !checked_soi && end >= 2 && !jpeg::starts_with_soi(&b.map[..end]) {
            self.current = None;
            lock(&self.shared.stats).skipped_parts += 1;
            return false;
        }
        true
    }

    fn part_end(&mut self) {
        let Some(b) = self.current.take() else {
            return;
        };
        if !jpeg::starts_with_soi(&b.map[..b.len]) {
            lock(&self.shared.stats).skipped_parts += 1;
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
        let frame = Frame {
            buffer,
            arrival: b.arrival,
            camera_ts: b.camera_ts,
            discont: std::mem::take(&mut self.discont),
            seq: self.seq,
            dims,
        };
        gst::trace!(CAT, "Frame {} complete, {} bytes", frame.seq, len);
        self.enqueue(frame);
    }

    fn part_abort(&mut self) {
        self.current = None;
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Skipped(reason) => {
                gst::debug!(CAT, "Skipped a part: {:?}", reason);
                lock(&self.shared.stats).skipped_parts += 1;
            }
            Event::Resync => {
                gst::debug!(CAT, "Lost framing, resynchronising on the boundary");
                lock(&self.shared.stats).resyncs += 1;
                self.discont = true;
            }
            Event::BoundaryLearned(b) => {
                gst::debug!(CAT, "Boundary {:?}", String::from_utf8_lossy(&b));
            }
            Event::LengthMismatch => {
                gst::debug!(
                    CAT,
                    "Content-Length did not match the part; framing by boundary"
                );
            }
            Event::Closed => {
                gst::debug!(CAT, "The server sent the closing boundary");
                self.closed = true;
            }
        }
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
