// SPDX-License-Identifier: MPL-2.0

//! The element under test in a pipeline: [`Src`] wraps `mjpegsrc ! appsink`
//! with bounded waits for frames, bus messages and stats.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::camera::{FakeCamera, Pacer};
use super::{WAIT, init, lock};

/// A frame as it came out of the element.
pub struct Frame {
    pub buffer: gst::Buffer,
    pub data: Vec<u8>,
    pub caps: Option<gst::Caps>,
}

impl Frame {
    pub fn discont(&self) -> bool {
        self.buffer.flags().contains(gst::BufferFlags::DISCONT)
    }

    pub fn pts(&self) -> Option<gst::ClockTime> {
        self.buffer.pts()
    }

    pub fn offset(&self) -> u64 {
        self.buffer.offset()
    }

    /// (width, height) from the caps.
    pub fn size(&self) -> Option<(i32, i32)> {
        let s = self.caps.as_ref()?.structure(0)?;
        Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({} bytes, pts {:?}, offset {}, flags {:?})",
            self.data.len(),
            self.pts(),
            self.offset(),
            self.buffer.flags()
        )
    }
}

/// The `stats` structure with typed getters that fail loudly.
#[derive(Clone, Debug)]
pub struct Stats(pub gst::Structure);

impl Stats {
    /// Field `f` as a `T`; panics naming the field and the structure.
    pub fn get<T>(&self, f: &str) -> T
    where
        T: for<'a> glib::value::FromValue<'a> + 'static,
    {
        self.0.get::<T>(f).unwrap_or_else(|e| {
            let ty = std::any::type_name::<T>();
            panic!("stats field {f} ({ty}): {e:?} in {}", self.0)
        })
    }
    pub fn u64(&self, f: &str) -> u64 {
        self.get(f)
    }
    pub fn u32(&self, f: &str) -> u32 {
        self.get(f)
    }
    pub fn f64(&self, f: &str) -> f64 {
        self.get(f)
    }
    pub fn bool(&self, f: &str) -> bool {
        self.get(f)
    }
    pub fn str(&self, f: &str) -> String {
        self.get::<Option<String>>(f).unwrap_or_default()
    }
}

/// Where the element under test runs.
enum Host {
    /// `mjpegsrc ! appsink` in a pipeline: for what needs a pipeline
    /// (running time, state changes of a bin, downstream back-pressure).
    Pipeline {
        pipeline: gst::Pipeline,
        sink: gst_app::AppSink,
    },
    /// `gst_check::Harness::new("mjpegsrc")`: the element alone, its
    /// buffers pulled from the harness, its messages on a bus of its own.
    Harness(Mutex<gst_check::Harness>),
}

/// mjpegsrc in a pipeline ([`Src::new`]) or a gst-check harness
/// ([`Src::harness`]), with a bounded way to wait for every observable:
/// frames, bus messages, stats.
pub struct Src {
    pub element: gst::Element,
    host: Host,
    bus: gst::Bus,
    /// Every bus message seen, with a taken flag.
    seen: Mutex<Vec<(gst::Message, bool)>>,
    pacers: Vec<Pacer>,
}

impl Src {
    /// An element with `location` set and every other property at its default.
    pub fn new(location: &str) -> Self {
        init();
        let element = gst::ElementFactory::make("mjpegsrc")
            .property("location", location)
            .build()
            .expect("create mjpegsrc (is the element registered?)");
        let (pipeline, sink) = with_appsink(&element);
        sink.set_enable_last_sample(false);
        let bus = pipeline.bus().expect("pipeline bus");
        Self {
            element,
            host: Host::Pipeline { pipeline, sink },
            bus,
            seen: Mutex::new(Vec::new()),
            pacers: Vec::new(),
        }
    }

    /// The element in `Harness::new("mjpegsrc")` with `location` set and
    /// every other property at its default; the harness runs on the system
    /// clock (live timestamps) and the element posts to a bus of its own.
    pub fn harness(location: &str) -> Self {
        init();
        let mut h = gst_check::Harness::new("mjpegsrc");
        h.use_systemclock();
        let element = h.element().expect("the harnessed mjpegsrc");
        element.set_property("location", location);
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        Self {
            element,
            host: Host::Harness(Mutex::new(h)),
            bus,
            seen: Mutex::new(Vec::new()),
            pacers: Vec::new(),
        }
    }

    /// Short timings for tests: retry-delay 10 ms (max 100 ms), a pool large
    /// enough that paced tests never run out of buffers.
    pub fn fast(location: &str) -> Self {
        Self::new(location).fast_settings()
    }

    /// [`Src::fast`] in a harness.
    pub fn fast_harness(location: &str) -> Self {
        Self::harness(location).fast_settings()
    }

    /// [`Src::for_camera`] in a harness.
    pub fn harness_for_camera(cam: &FakeCamera, path: &str) -> Self {
        Self::fast_harness(&cam.url(path)).paced_by(cam)
    }

    fn fast_settings(self) -> Self {
        self.set("retry-delay", 10u32)
            .set("retry-delay-max", 100u32)
            .set("pool-size", 16u32)
            .set("max-frame-size", 1024u32 * 1024)
    }

    /// `fast()` reading from `cam`, whose `AwaitPulled` steps follow the
    /// frames this wrapper pulls.
    pub fn for_camera(cam: &FakeCamera, path: &str) -> Self {
        Self::fast(&cam.url(path)).paced_by(cam)
    }

    pub fn set(self, name: &str, value: impl Into<glib::Value>) -> Self {
        self.element.set_property_from_value(name, &value.into());
        self
    }

    pub fn paced_by(mut self, cam: &FakeCamera) -> Self {
        self.pacers.push(cam.pacer());
        self
    }

    pub fn src_pad(&self) -> gst::Pad {
        self.element.static_pad("src").expect("src pad")
    }

    /// The pipeline (panics for a harnessed element).
    pub fn pipeline(&self) -> &gst::Pipeline {
        match &self.host {
            Host::Pipeline { pipeline, .. } => pipeline,
            Host::Harness(_) => panic!("this Src runs in a harness, not a pipeline"),
        }
    }

    /// The appsink (panics for a harnessed element).
    pub fn appsink(&self) -> &gst_app::AppSink {
        match &self.host {
            Host::Pipeline { sink, .. } => sink,
            Host::Harness(_) => panic!("this Src runs in a harness, not a pipeline"),
        }
    }

    /// The pipeline or the harnessed element, for state changes.
    fn top(&self) -> gst::Element {
        match &self.host {
            Host::Pipeline { pipeline, .. } => pipeline.clone().upcast(),
            Host::Harness(_) => self.element.clone(),
        }
    }

    pub fn play(self) -> Self {
        match &self.host {
            Host::Pipeline { pipeline, .. } => {
                pipeline
                    .set_state(gst::State::Playing)
                    .expect("set pipeline to PLAYING");
            }
            Host::Harness(h) => lock(h).play(),
        }
        self
    }

    /// Set the pipeline (or the harnessed element) to NULL; how long that
    /// took.
    pub fn stop(&self) -> Duration {
        let top = self.top();
        let t = Instant::now();
        top.set_state(gst::State::Null).expect("set to NULL");
        t.elapsed()
    }

    /// Whether EOS reached the appsink or the harness.
    pub fn is_eos(&self) -> bool {
        match &self.host {
            Host::Pipeline { sink, .. } => sink.is_eos(),
            Host::Harness(h) => lock(h)
                .sinkpad()
                .is_some_and(|p| p.sticky_event::<gst::event::Eos>(0).is_some()),
        }
    }

    /// The next buffer (deep copy: the test never holds a buffer of the
    /// element's pool, so keeping frames cannot starve it) with its caps,
    /// waiting at most `step`.
    fn pull(&self, step: Duration) -> Option<(gst::Buffer, Option<gst::Caps>)> {
        match &self.host {
            Host::Pipeline { sink, .. } => {
                let sample =
                    sink.try_pull_sample(gst::ClockTime::from_nseconds(step.as_nanos() as u64))?;
                let buffer = sample
                    .buffer()
                    .expect("sample without buffer")
                    .copy_deep()
                    .expect("deep copy of the buffer");
                Some((buffer, sample.caps_owned()))
            }
            Host::Harness(h) => {
                // gst_harness_pull waits up to 60 s: poll within `step`.
                let deadline = Instant::now() + step;
                loop {
                    let mut h = lock(h);
                    if let Some(b) = h.try_pull() {
                        let buffer = b.copy_deep().expect("deep copy of the buffer");
                        drop(b);
                        let caps = h.sinkpad().and_then(|p| p.current_caps());
                        return Some((buffer, caps));
                    }
                    drop(h);
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    fn drain_bus(&self) {
        while let Some(m) = self.bus.pop() {
            lock(&self.seen).push((m, false));
        }
    }

    /// The first error posted so far, if any (not consumed).
    pub fn posted_error(&self) -> Option<String> {
        self.drain_bus();
        lock(&self.seen).iter().find_map(|(m, _)| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        })
    }

    /// The next frame, waiting at most `timeout`; None on timeout, EOS or
    /// after an error was posted.
    pub fn frame(&self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let step = left.min(Duration::from_millis(100));
            if let Some((buffer, caps)) = self.pull(step) {
                let data = buffer
                    .map_readable()
                    .expect("map buffer readable")
                    .as_slice()
                    .to_vec();
                for p in &self.pacers {
                    p.bump();
                }
                return Some(Frame { buffer, data, caps });
            }
            if self.is_eos() || self.posted_error().is_some() || left.is_zero() {
                return None;
            }
        }
    }

    /// Exactly `n` frames, each within [`WAIT`]; panics with context if not.
    pub fn frames(&self, n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            match self.frame(WAIT) {
                Some(f) => out.push(f),
                None => panic!(
                    "frame {i} of {n} did not arrive (eos {}, error {:?}, got {:?}), stats {}",
                    self.is_eos(),
                    self.posted_error(),
                    out,
                    self.stats().0
                ),
            }
        }
        out
    }

    /// Frames' bytes.
    pub fn frame_data(&self, n: usize) -> Vec<Vec<u8>> {
        self.frames(n).into_iter().map(|f| f.data).collect()
    }

    /// Take the first not-yet-taken bus message matching `pred`.
    pub fn message(
        &self,
        timeout: Duration,
        pred: impl Fn(&gst::Message) -> bool,
    ) -> Option<gst::Message> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_bus();
            {
                let mut seen = lock(&self.seen);
                if let Some((m, taken)) = seen.iter_mut().find(|(m, t)| !*t && pred(m)) {
                    *taken = true;
                    return Some(m.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let step = left.min(Duration::from_millis(100));
            if let Some(m) = self
                .bus
                .timed_pop(gst::ClockTime::from_nseconds(step.as_nanos() as u64))
            {
                lock(&self.seen).push((m, false));
            }
        }
    }

    /// The next element message with this structure name.
    pub fn element_message(&self, name: &str, timeout: Duration) -> Option<gst::Structure> {
        self.message(timeout, |m| is_element_message(m, name))
            .and_then(|m| m.structure().map(|s| s.to_owned()))
    }

    /// Every element message with this name seen so far (taken or not).
    pub fn element_messages_seen(&self, name: &str) -> Vec<gst::Structure> {
        self.drain_bus();
        lock(&self.seen)
            .iter()
            .filter(|(m, _)| is_element_message(m, name))
            .filter_map(|(m, _)| m.structure().map(|s| s.to_owned()))
            .collect()
    }

    /// Warnings seen so far.
    pub fn warnings_seen(&self) -> usize {
        self.drain_bus();
        lock(&self.seen)
            .iter()
            .filter(|(m, _)| matches!(m.view(), gst::MessageView::Warning(_)))
            .count()
    }

    /// The next error message: (error, debug string).
    pub fn error(&self, timeout: Duration) -> Option<(glib::Error, String)> {
        let m = self.message(timeout, |m| matches!(m.view(), gst::MessageView::Error(_)))?;
        match m.view() {
            gst::MessageView::Error(e) => Some((
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default(),
            )),
            _ => None,
        }
    }

    /// Wait for EOS: the pipeline's EOS message (every sink got EOS), or the
    /// EOS event at the harness.
    pub fn eos(&self, timeout: Duration) -> bool {
        match &self.host {
            Host::Pipeline { .. } => self
                .message(timeout, |m| matches!(m.view(), gst::MessageView::Eos(_)))
                .is_some(),
            Host::Harness(_) => super::wait_for(timeout, || self.is_eos()),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats(self.element.property::<gst::Structure>("stats"))
    }

    /// Poll `stats` until `pred` holds (bounded by [`WAIT`]); panics with the
    /// last value and `what` if it never does.
    pub fn wait_stats(&self, what: &str, pred: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("stats never satisfied `{what}`: {}", s.0);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Src {
    fn drop(&mut self) {
        let _ = self.top().set_state(gst::State::Null);
    }
}

pub fn is_element_message(m: &gst::Message, name: &str) -> bool {
    matches!(m.view(), gst::MessageView::Element(_))
        && m.structure().is_some_and(|s| s.name() == name)
}

/// Assert that `got` equals `want` byte for byte, with a readable diff.
pub fn assert_frames(got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert_eq!(
        got.len(),
        want.len(),
        "frame count: got {} want {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let first = g.iter().zip(w).position(|(a, b)| a != b);
            panic!(
                "frame {i} differs: got {} bytes, want {} bytes, first difference at {:?}\n got head {:02x?}\n got tail {:02x?}\nwant tail {:02x?}",
                g.len(),
                w.len(),
                first,
                &g[..g.len().min(24)],
                &g[g.len().saturating_sub(24)..],
                &w[w.len().saturating_sub(24)..]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Pipelines from a description
// ---------------------------------------------------------------------------

/// `gst::parse::launch` of a whole pipeline (the plugin registered first).
pub fn launch(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("pipeline `{desc}`: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// The element `name` of `pipeline`, as a `T` (an AppSink, an AppSrc...).
pub fn by_name<T: IsA<gst::Element>>(pipeline: &gst::Pipeline, name: &str) -> T {
    pipeline
        .by_name(name)
        .unwrap_or_else(|| panic!("no element {name} in the pipeline"))
        .downcast::<T>()
        .unwrap_or_else(|_| panic!("element {name} has another type"))
}

/// The next sample of `appsink`, waiting until `deadline` at most.
pub fn pull_until(appsink: &gst_app::AppSink, deadline: Instant) -> Option<gst::Sample> {
    let left = deadline.saturating_duration_since(Instant::now());
    appsink.try_pull_sample(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
}

/// (width, height) of a sample's caps.
pub fn sample_size(sample: &gst::Sample) -> Option<(i32, i32)> {
    let s = sample.caps()?.structure(0)?;
    Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
}

/// The port an mjpegsink bound (`current-port`), which must be one.
pub fn current_port(sink: &gst::Element) -> u16 {
    let p = sink.property::<i32>("current-port");
    assert!(p > 0, "the sink bound no port ({p})");
    p as u16
}

/// Frames' bytes.
pub fn data(frames: &[Frame]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.data.clone()).collect()
}

/// A u64 counter of an element's `stats` (0 when absent).
pub fn stat_u64(element: &gst::Element, field: &str) -> u64 {
    element
        .property::<gst::Structure>("stats")
        .get::<u64>(field)
        .unwrap_or(0)
}

/// The u64 counters of mjpegsrc's `stats`.
pub const SRC_STATS_U64: &[&str] = &[
    "frames-received",
    "frames-pushed",
    "frames-dropped",
    "dropped-no-buffer",
    "dropped-too-big",
    "dropped-queue-full",
    "overruns",
    "reconnects",
    "bytes-received",
    "skipped-parts",
    "resyncs",
];

/// `src ! appsink` (sync=false) in a new pipeline.
pub fn with_appsink(src: &gst::Element) -> (gst::Pipeline, gst_app::AppSink) {
    let sink = gst_app::AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([src, sink.upcast_ref()])
        .expect("add to pipeline");
    src.link(&sink).expect("link to appsink");
    (pipeline, sink)
}

/// An mjpegsink for element tests: 127.0.0.1, port 0, no clock sync, no
/// preroll wait, no resends; `props` on top.
pub fn test_sink(props: &[(&str, glib::Value)]) -> gst::Element {
    init();
    let e = gst::ElementFactory::make("mjpegsink")
        .property("host", "127.0.0.1")
        .property("port", 0i32)
        .property("sync", false)
        .property("async", false)
        .property("resend-interval", 0u32)
        .build()
        .expect("mjpegsink");
    for (k, v) in props {
        e.set_property_from_value(k, v);
    }
    e
}

/// Call `f` with the bytes of every buffer reaching `element`'s sink pad.
pub fn on_input(element: &gst::Element, f: impl Fn(&[u8]) + Send + Sync + 'static) {
    element.static_pad("sink").expect("sink pad").add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if let Some(buf) = info.buffer()
                && let Ok(map) = buf.map_readable()
            {
                f(map.as_slice());
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Every buffer reaching `element`'s sink pad, recorded.
pub fn capture_input(element: &gst::Element) -> std::sync::Arc<Mutex<Vec<Vec<u8>>>> {
    let captured = std::sync::Arc::new(Mutex::new(Vec::new()));
    let c = captured.clone();
    on_input(element, move |data| lock(&c).push(data.to_vec()));
    captured
}
