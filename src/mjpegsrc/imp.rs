// SPDX-License-Identifier: MPL-2.0

//! `mjpegsrc`: the element. Properties, the state machine, `create()`, and
//! everything that speaks GStreamer: it logs the client's events with the
//! object, posts the bus messages and builds the errors. The network side
//! lives in `client/` (no GStreamer types), the frames in `assembler.rs`.
//!
//! Locks: `settings` is never held with another lock. `state` may be held
//! while taking `Handoff::stats`, which is taken before `Handoff::queue`
//! (`assembler.rs`); `notices` is never held with another lock; no lock is
//! held across a wait or network I/O.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use url::Url;

use super::assembler::{self, Handoff, Item, QUEUE_LEN};
use super::client::{self, DropReason, Event, Fatal, FatalKind};
use super::pool::FramePool;
use super::settings::*;
use super::stats::{NoticeKind, Notices};
use crate::multipart;
use crate::runtime::{Canceller, RUNTIME, lock};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mjpegsrc",
        gst::DebugColorFlags::empty(),
        Some("MJPEG over HTTP source"),
    )
});

/// Aborts the reader task when dropped.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Per-run timing and caps bookkeeping of `create()`.
#[derive(Default)]
struct Stamps {
    /// Size in the current caps (`Some(None)`: caps without a size).
    caps_dims: Option<Option<(u32, u32)>>,
    /// Arrival of the first frame, the zero of PTS without a clock.
    first_arrival: Option<Instant>,
    /// First and last camera timestamp of the current camera clock run.
    first_camera_ts: Option<f64>,
    last_camera_ts: Option<f64>,
    /// An absurd camera timestamp was logged (once per run).
    bad_timestamp_logged: bool,
}

/// Camera timestamps further apart than this (in ns) are absurd: their
/// difference does not fit a `GstClockTime`.
const MAX_CAMERA_SPAN_NS: f64 = 1.8e19;

impl Stamps {
    /// The time of camera stamp `ts` relative to the first stamp of the
    /// camera's current clock run, or `None` for an absurd stamp. Camera
    /// clocks are unknown: a jump backwards (reboot) restarts the run, and
    /// so does a jump too large to be represented (the stamp itself is left
    /// out).
    fn camera_time(&mut self, ts: f64) -> Option<gst::ClockTime> {
        let first = match (self.first_camera_ts, self.last_camera_ts) {
            (Some(first), Some(last)) if ts >= last => first,
            _ => ts,
        };
        let ns = (ts - first) * 1e9;
        // Also false for NaN.
        let representable = (0.0..MAX_CAMERA_SPAN_NS).contains(&ns);
        self.first_camera_ts = Some(if representable { first } else { ts });
        self.last_camera_ts = Some(ts);
        representable.then(|| gst::ClockTime::from_nseconds(ns as u64))
    }
}

/// What exists when.
#[derive(Default)]
enum State {
    /// NULL or READY.
    #[default]
    Stopped,
    /// `start()` built the pool and the client configuration; the network
    /// is opened by the first `create()` (in PLAYING, for a live source), so
    /// no frame is read only to be thrown away.
    Started {
        handoff: Arc<Handoff>,
        config: Box<client::Config>,
    },
    /// The reader task runs.
    Streaming {
        handoff: Arc<Handoff>,
        _reader: Reader,
        stamps: Stamps,
    },
}

impl State {
    fn handoff(&self) -> Option<&Arc<Handoff>> {
        match self {
            State::Stopped => None,
            State::Started { handoff, .. } | State::Streaming { handoff, .. } => Some(handoff),
        }
    }
}

#[derive(Default)]
pub struct MjpegSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    canceller: Canceller,
    /// Rate limiter of the `mjpegsrc-skipped` warnings and messages.
    notices: Mutex<Notices>,
}

#[glib::object_subclass]
impl ObjectSubclass for MjpegSrc {
    const NAME: &'static str = "GstMjpegSrc";
    type Type = super::MjpegSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

impl MjpegSrc {
    fn set_location(&self, uri: Option<&str>) -> Result<(), glib::Error> {
        if self.obj().current_state() > gst::State::Ready {
            return Err(glib::Error::new(
                gst::URIError::BadState,
                "Changing the location of a running source is not supported",
            ));
        }
        let mut settings = lock(&self.settings);
        match uri {
            None => settings.client.location = None,
            Some(uri) => {
                let url = Url::parse(uri).map_err(|e| {
                    glib::Error::new(
                        gst::URIError::BadUri,
                        &format!("Invalid URI '{}': {e}", client::redact(uri)),
                    )
                })?;
                if url.scheme() != "http" && url.scheme() != "https" {
                    return Err(glib::Error::new(
                        gst::URIError::UnsupportedProtocol,
                        &format!("Unsupported URI scheme '{}'", url.scheme()),
                    ));
                }
                settings.client.location = Some(url.to_string());
            }
        }
        Ok(())
    }

    /// Running time now, minus the time since `arrival`.
    fn running_time_at(&self, arrival: Instant, stamps: &mut Stamps) -> Option<gst::ClockTime> {
        let obj = self.obj();
        match (obj.clock(), obj.base_time()) {
            (Some(clock), Some(base)) => {
                let now = clock.time();
                let since = gst::ClockTime::from_nseconds(arrival.elapsed().as_nanos() as u64);
                Some(now.saturating_sub(base).saturating_sub(since))
            }
            _ => {
                let first = *stamps.first_arrival.get_or_insert(arrival);
                Some(gst::ClockTime::from_nseconds(
                    arrival.saturating_duration_since(first).as_nanos() as u64,
                ))
            }
        }
    }

    fn stats(&self) -> gst::Structure {
        let location = lock(&self.settings)
            .client
            .location
            .as_deref()
            .map(client::redact)
            .unwrap_or_default();
        let state = lock(&self.state);
        let idle = Default::default();
        let handoff = state.handoff();
        let stats = handoff.map(|h| lock(&h.stats));
        let s = stats.as_deref().unwrap_or(&idle);
        let free = handoff.map_or(0, |h| h.pool.free_buffers());
        gst::Structure::builder("mjpegsrc-stats")
            .field("location", location)
            .field("frames-received", s.frames_received)
            .field("frames-pushed", s.frames_pushed)
            .field("frames-dropped", s.frames_dropped())
            .field("dropped-no-buffer", s.dropped_no_buffer)
            .field("dropped-too-big", s.dropped_too_big)
            .field("dropped-queue-full", s.dropped_queue_full)
            .field("dropped-broken", s.dropped_broken)
            .field("overruns", s.overruns)
            .field("reconnects", s.reconnects)
            .field("bytes-received", s.bytes_received)
            .field("fps", s.fps())
            .field("skipped-parts", s.skipped_parts)
            .field("resyncs", s.resyncs)
            .field("junk-bytes", s.junk_bytes)
            .field("length-mismatches", s.length_mismatches)
            .field("last-reconnect-reason", s.last_reconnect_reason.as_str())
            .field("free-buffers", free)
            .field("connected", s.connected)
            .field("bad-timestamps", s.bad_timestamps)
            .field("frames-without-size", s.frames_without_size)
            .build()
    }

    /// Something was dropped or skipped: a warning and a `mjpegsrc-skipped`
    /// element message, at most one per kind per 5 s, with the counts.
    fn notice(&self, kind: NoticeKind) {
        let Some(n) = lock(&self.notices).note(kind, Instant::now()) else {
            return;
        };
        let what = match kind {
            NoticeKind::TooBig => "frames larger than max-frame-size dropped",
            NoticeKind::NotJpeg => "parts that are not JPEG skipped",
            NoticeKind::BadTimestamp => "absurd camera X-Timestamp values left out of the meta",
        };
        gst::element_imp_warning!(
            self,
            gst::StreamError::Format,
            ["{} {} (total {})", n.count, what, n.total]
        );
        self.post_element_message(
            gst::Structure::builder("mjpegsrc-skipped")
                .field("kind", kind.as_str())
                .field("count", n.count)
                .field("total", n.total)
                .field("reason", what)
                .build(),
        );
    }

    fn post_element_message(&self, s: gst::Structure) {
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

    /// What the client and the assembler report, from the runtime's threads.
    fn on_event(&self, ev: Event) {
        match ev {
            Event::Redirected { from, to } => {
                gst::debug!(CAT, imp = self, "Redirected from {from} to {to}");
            }
            Event::Connected {
                url,
                version,
                status,
                reason,
                content_type,
                boundary,
            } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "Connected to {url} (HTTP/1.{version} {status} {reason}, Content-Type {content_type:?})"
                );
                self.post_element_message(
                    gst::Structure::builder("mjpegsrc-connected")
                        .field("location", url.as_str())
                        .field("status", u32::from(status))
                        .field("content-type", content_type.as_deref().unwrap_or(""))
                        .field("boundary", boundary.as_str())
                        .build(),
                );
            }
            Event::Reconnecting {
                reason,
                attempt,
                delay,
            } => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Read,
                    [
                        "Reconnecting in {} ms (attempt {}): {}",
                        delay.as_millis(),
                        attempt,
                        reason
                    ]
                );
                self.post_element_message(
                    gst::Structure::builder("mjpegsrc-reconnect")
                        .field("reason", reason.as_str())
                        .field("attempt", attempt)
                        .field("delay-ms", delay.as_millis() as u64)
                        .build(),
                );
            }
            Event::Parser(ev) => match ev {
                multipart::Event::Skipped(reason) => {
                    gst::debug!(CAT, imp = self, "Skipped a part: {reason:?}");
                    if reason == multipart::SkipReason::NotJpeg {
                        self.notice(NoticeKind::NotJpeg);
                    }
                }
                multipart::Event::Resync => {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "Lost framing, resynchronising on the boundary"
                    );
                }
                multipart::Event::BoundaryLearned(b) => {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "Boundary {:?}",
                        String::from_utf8_lossy(&b)
                    );
                }
                multipart::Event::LengthMismatch => {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "Content-Length did not match the part; framing by boundary"
                    );
                }
                multipart::Event::Closed => {
                    gst::debug!(CAT, imp = self, "The server sent the closing boundary");
                }
            },
            Event::FrameDropped { seq, reason } => {
                gst::log!(CAT, imp = self, "Dropped frame {seq} ({})", reason.as_str());
                if reason == DropReason::TooBig {
                    self.notice(NoticeKind::TooBig);
                }
            }
            Event::PartNotJpeg => {
                gst::debug!(CAT, imp = self, "Skipped a part that is not a JPEG");
                self.notice(NoticeKind::NotJpeg);
            }
            Event::FrameComplete { seq, len } => {
                gst::trace!(CAT, imp = self, "Frame {seq} complete, {len} bytes");
            }
        }
    }
}

/// The error `create()` posts when the client gives up.
fn error_message(fatal: Fatal) -> gst::ErrorMessage {
    let kind = match fatal.kind {
        FatalKind::NotFound => gst::ResourceError::NotFound,
        FatalKind::NotAuthorized => gst::ResourceError::NotAuthorized,
        FatalKind::OpenRead => gst::ResourceError::OpenRead,
        FatalKind::Read => gst::ResourceError::Read,
        FatalKind::Internal => {
            return gst::error_msg!(gst::CoreError::Failed, ["{}", fatal.message]);
        }
    };
    gst::error_msg!(kind, ["{}", fatal.message])
}

impl ObjectImpl for MjpegSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(param_specs);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let running = !matches!(*lock(&self.state), State::Stopped);
        if running && pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY) {
            gst::error!(
                CAT,
                imp = self,
                "Cannot change property '{}' while running, keeping the old value",
                pspec.name()
            );
            return;
        }
        if pspec.name() == "location" {
            let uri = value
                .get::<Option<String>>()
                .expect("type checked upstream");
            if let Err(e) = self.set_location(uri.as_deref()) {
                gst::error!(CAT, imp = self, "Failed to set location: {}", e);
            }
            return;
        }
        let mut guard = lock(&self.settings);
        let s = &mut *guard;
        let string = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|v| !v.is_empty())
        };
        let c = &mut s.client;
        match pspec.name() {
            "user-id" => c.user_id = string(),
            "user-pw" => c.user_pw = string(),
            "proxy" => c.proxy = string(),
            "proxy-id" => c.proxy_id = string(),
            "proxy-pw" => c.proxy_pw = string(),
            "user-agent" => c.user_agent = string().unwrap_or_else(default_user_agent),
            "cookies" => c.cookies = value.get::<Vec<String>>().expect("type checked upstream"),
            "ssl-strict" => c.ssl_strict = value.get().expect("type checked upstream"),
            "timeout" => c.timeout = value.get().expect("type checked upstream"),
            "connect-timeout" => c.connect_timeout = value.get().expect("type checked upstream"),
            "retries" => c.retries = value.get().expect("type checked upstream"),
            "retry-delay" => c.retry_delay = value.get().expect("type checked upstream"),
            "retry-delay-max" => c.retry_delay_max = value.get().expect("type checked upstream"),
            "extra-headers" => s.extra_headers = value.get().expect("type checked upstream"),
            "max-frame-size" => s.max_frame_size = value.get().expect("type checked upstream"),
            "pool-size" => s.pool_size = value.get().expect("type checked upstream"),
            "is-live" => s.is_live = value.get().expect("type checked upstream"),
            "allow-insecure-redirect" => {
                c.allow_insecure_redirect = value.get().expect("type checked upstream")
            }
            "ssl-ca-file" => c.ssl_ca_file = string(),
            other => unreachable!("unknown property {other}"),
        }
        let live = s.is_live;
        drop(guard);
        if pspec.name() == "is-live" {
            self.obj().set_live(live);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let s = lock(&self.settings);
        let c = &s.client;
        match pspec.name() {
            "location" => c.location.to_value(),
            "user-id" => c.user_id.to_value(),
            "user-pw" => c.user_pw.to_value(),
            "proxy" => c.proxy.to_value(),
            "proxy-id" => c.proxy_id.to_value(),
            "proxy-pw" => c.proxy_pw.to_value(),
            "user-agent" => c.user_agent.to_value(),
            "extra-headers" => s.extra_headers.to_value(),
            "cookies" => c.cookies.to_value(),
            "ssl-strict" => c.ssl_strict.to_value(),
            "timeout" => c.timeout.to_value(),
            "connect-timeout" => c.connect_timeout.to_value(),
            "retries" => c.retries.to_value(),
            "retry-delay" => c.retry_delay.to_value(),
            "retry-delay-max" => c.retry_delay_max.to_value(),
            "max-frame-size" => s.max_frame_size.to_value(),
            "pool-size" => s.pool_size.to_value(),
            "is-live" => s.is_live.to_value(),
            "allow-insecure-redirect" => c.allow_insecure_redirect.to_value(),
            "ssl-ca-file" => c.ssl_ca_file.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(DEFAULT_IS_LIVE);
        obj.set_format(gst::Format::Time);
        obj.set_automatic_eos(false);
    }
}

impl GstObjectImpl for MjpegSrc {}

impl ElementImpl for MjpegSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "MJPEG HTTP source",
                "Source/Network/HTTP",
                "Reads an MJPEG stream (multipart/x-mixed-replace or raw JPEGs) over HTTP(S), \
                 pushes JPEG frames from a bounded pool, drops frames instead of adding latency, \
                 and reconnects by itself",
                "gst-mjpeg contributors",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("image/jpeg").build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid pad template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl URIHandlerImpl for MjpegSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &["http", "https"]
    }

    fn uri(&self) -> Option<String> {
        lock(&self.settings).client.location.clone()
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        self.set_location(Some(uri))
    }
}

impl BaseSrcImpl for MjpegSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let config = client::Config::new(&settings.client_settings())
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["{}", e]))?;
        let pool =
            FramePool::new_active(settings.max_frame_size, settings.pool_size).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::NoSpaceLeft,
                    [
                        "Could not allocate {} buffers of {} bytes: {}",
                        settings.pool_size,
                        settings.max_frame_size,
                        e
                    ]
                )
            })?;
        gst::debug!(CAT, imp = self, "Starting on {}", config.url);
        *lock(&self.state) = State::Started {
            handoff: Arc::new(Handoff::new(pool)),
            config: Box::new(config),
        };
        *lock(&self.notices) = Notices::default();
        self.canceller.reset();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *lock(&self.state));
        // Dropping the state aborts the reader task.
        let handoff = state.handoff().cloned();
        drop(state);
        if let Some(handoff) = handoff {
            let _ = handoff.pool.set_active(false);
        }
        gst::debug!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            // Frames are stamped on arrival and pushed as they complete: no
            // added latency. Frames may wait in the hand-over queue, which
            // drops rather than blocks, so there is no upper bound to report.
            q.set(
                self.obj().is_live(),
                gst::ClockTime::ZERO,
                gst::ClockTime::NONE,
            );
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.canceller.cancel();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.canceller.reset();
        Ok(())
    }

    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        // Caps carry the frame size, known only from the first frame:
        // create() sets them then. Nothing to agree on before.
        Ok(())
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        let Some(pool) = lock(&self.state).handoff().map(|h| h.pool.clone()) else {
            return Ok(());
        };
        let (_, size, count, _) = pool.config().params().unwrap_or((None, 0, 0, 0));
        // Frames are filled by the network task before caps exist, so the
        // pool is the element's own. What downstream asks for is its
        // minimum number of held buffers: warn when the pool cannot cover it.
        let wanted = query
            .allocation_pools()
            .map(|(_, _, min, _)| min)
            .max()
            .unwrap_or(0);
        if wanted + QUEUE_LEN as u32 + 1 > count {
            gst::warning!(
                CAT,
                imp = self,
                "Downstream holds up to {} buffers; pool-size {} leaves little room, frames will be dropped",
                wanted,
                count
            );
        }
        let pool = pool.upcast::<gst::BufferPool>();
        if query.allocation_pools().len() == 0 {
            query.add_allocation_pool(Some(&pool), size, count, count);
        } else {
            query.set_nth_allocation_pool(0, Some(&pool), size, count, count);
        }
        Ok(())
    }
}

impl PushSrcImpl for MjpegSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let handoff = {
            let mut state = lock(&self.state);
            if matches!(*state, State::Started { .. }) {
                let State::Started { handoff, config } = std::mem::take(&mut *state) else {
                    unreachable!("matched above")
                };
                let weak = self.obj().downgrade();
                let events: client::Events = Arc::new(move |ev| {
                    if let Some(obj) = weak.upgrade() {
                        obj.imp().on_event(ev);
                    }
                });
                let task = RUNTIME.spawn(assembler::read_stream(*config, handoff.clone(), events));
                *state = State::Streaming {
                    handoff,
                    _reader: Reader(task),
                    stamps: Stamps::default(),
                };
            }
            match state.handoff() {
                Some(handoff) => handoff.clone(),
                None => return Err(gst::FlowError::Flushing),
            }
        };

        let item = match self.canceller.block_on(handoff.next_item()) {
            Ok(item) => item,
            Err(_) => {
                gst::debug!(CAT, imp = self, "Unlocked while waiting for a frame");
                return Err(gst::FlowError::Flushing);
            }
        };
        let frame = match item {
            Item::Frame(frame) => frame,
            Item::Fatal(fatal) => {
                self.post_error_message(error_message(fatal));
                return Err(gst::FlowError::Error);
            }
        };

        let do_timestamp = self.obj().does_timestamp();
        let mut guard = lock(&self.state);
        let State::Streaming { stamps, .. } = &mut *guard else {
            return Err(gst::FlowError::Flushing);
        };
        let pts = (!do_timestamp)
            .then(|| self.running_time_at(frame.arrival, stamps))
            .flatten();

        // Renegotiate when the frame size really changes (and for the first
        // frame, with or without a size). A frame without a readable size
        // keeps the caps there are.
        if frame.dims.is_none() {
            lock(&handoff.stats).frames_without_size += 1;
        }
        let new_caps = match (stamps.caps_dims, frame.dims) {
            (Some(_), None) => None,
            (Some(current), Some(dims)) if current == Some(dims) => None,
            (_, dims) => {
                stamps.caps_dims = Some(dims);
                let mut caps = gst::Caps::builder("image/jpeg");
                if let Some((w, h)) = dims {
                    caps = caps.field("width", w as i32).field("height", h as i32);
                }
                Some(caps.field("framerate", gst::Fraction::new(0, 1)).build())
            }
        };
        let mut bad_timestamp = None;

        let mut buffer = frame.buffer;
        {
            let buf = buffer.make_mut();
            buf.set_pts(pts);
            buf.set_offset(frame.seq);
            if frame.discont {
                buf.set_flags(gst::BufferFlags::DISCONT);
            }
            if let Some(ts) = frame.camera_ts {
                // Carried relative to the first stamp of the camera's clock
                // run; an absurd stamp is left out and counted.
                match stamps.camera_time(ts) {
                    Some(rel) => {
                        static CAMERA_CAPS: LazyLock<gst::Caps> = LazyLock::new(|| {
                            gst::Caps::new_empty_simple("timestamp/x-mjpeg-camera")
                        });
                        gst::ReferenceTimestampMeta::add(
                            buf,
                            &CAMERA_CAPS,
                            rel,
                            gst::ClockTime::NONE,
                        );
                    }
                    None => {
                        let first_time = !std::mem::replace(&mut stamps.bad_timestamp_logged, true);
                        bad_timestamp = Some((ts, first_time));
                    }
                }
            }
        }
        {
            let mut stats = lock(&handoff.stats);
            stats.frames_pushed += 1;
            if bad_timestamp.is_some() {
                stats.bad_timestamps += 1;
            }
        }
        drop(guard);
        if let Some((ts, first_time)) = bad_timestamp {
            if first_time {
                gst::warning!(
                    CAT,
                    imp = self,
                    "Camera X-Timestamp {ts} jumps too far to be represented: left out of the meta (counted in bad-timestamps)"
                );
            }
            self.notice(NoticeKind::BadTimestamp);
        }

        if let Some(caps) = new_caps {
            gst::debug!(CAT, imp = self, "Caps {}", caps);
            if self.obj().set_caps(&caps).is_err() {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ["Downstream refused caps {}", caps]
                );
                return Err(gst::FlowError::NotNegotiated);
            }
        }
        gst::trace!(CAT, imp = self, "Pushing frame {} pts {:?}", frame.seq, pts);
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}
