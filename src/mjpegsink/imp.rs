// SPDX-License-Identifier: MPL-2.0

//! `mjpegsink` element glue: properties, signals, state changes and the
//! hand-over of frames to the HTTP server in [`super::server`].
//!
//! Locks: `settings`, `state` and `clients_notifier` are never held
//! together, and none is held across network I/O, a signal emission or a
//! wait.

use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex, mpsc};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::server::{
    self, DEFAULT_BOUNDARY, DEFAULT_MAX_CLIENTS, DEFAULT_RESEND_INTERVAL_MS, DEFAULT_TIMEOUT_SECS,
    DEFAULT_UNSENT_LIMIT, Server, ServerEvent,
};
use super::server::{DEFAULT_DROP_SAME_FRAMES, DEFAULT_MOUNT};
use crate::multipart::writer::valid_boundary;
use crate::runtime::lock;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mjpegsink",
        gst::DebugColorFlags::empty(),
        Some("MJPEG HTTP server sink"),
    )
});

// Only the element binds, so these two defaults live here; every other
// default is the server's (`server::DEFAULT_*`).
const DEFAULT_HOST: &str = "localhost";
const DEFAULT_PORT: i32 = 8080;

/// Who gets ustreamer's `advance_headers` framing unless the request says
/// `?advance_headers=0` or `=1`.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstMjpegSinkAdvanceHeaders")]
pub enum AdvanceHeaders {
    #[enum_value(name = "Never: every part carries Content-Length", nick = "never")]
    Never = 0,
    #[enum_value(
        name = "Chromium-based browsers (User-Agent with Chrome/ or Chromium/)",
        nick = "chromium"
    )]
    Chromium = 1,
    #[enum_value(name = "Every client", nick = "always")]
    Always = 2,
}

impl Default for AdvanceHeaders {
    /// The server's default.
    fn default() -> Self {
        server::DEFAULT_ADVANCE_HEADERS.into()
    }
}

impl From<server::AdvanceHeaders> for AdvanceHeaders {
    fn from(a: server::AdvanceHeaders) -> Self {
        match a {
            server::AdvanceHeaders::Never => AdvanceHeaders::Never,
            server::AdvanceHeaders::Chromium => AdvanceHeaders::Chromium,
            server::AdvanceHeaders::Always => AdvanceHeaders::Always,
        }
    }
}

impl From<AdvanceHeaders> for server::AdvanceHeaders {
    fn from(a: AdvanceHeaders) -> Self {
        match a {
            AdvanceHeaders::Never => server::AdvanceHeaders::Never,
            AdvanceHeaders::Chromium => server::AdvanceHeaders::Chromium,
            AdvanceHeaders::Always => server::AdvanceHeaders::Always,
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: i32,
    boundary: String,
    max_clients: u32,
    user_id: Option<String>,
    user_pw: Option<String>,
    allow_origin: Option<String>,
    timeout: u32,
    resend_interval: u32,
    unsent_limit: u32,
    advance_headers: AdvanceHeaders,
    drop_same_frames: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            boundary: DEFAULT_BOUNDARY.to_string(),
            max_clients: DEFAULT_MAX_CLIENTS,
            user_id: None,
            user_pw: None,
            allow_origin: None,
            timeout: DEFAULT_TIMEOUT_SECS,
            resend_interval: DEFAULT_RESEND_INTERVAL_MS,
            unsent_limit: DEFAULT_UNSENT_LIMIT,
            advance_headers: AdvanceHeaders::default(),
            drop_same_frames: DEFAULT_DROP_SAME_FRAMES,
        }
    }
}

impl Settings {
    fn server_config(&self) -> server::Config {
        let credentials = match (&self.user_id, &self.user_pw) {
            (None, None) => None,
            (u, p) => Some((u.clone().unwrap_or_default(), p.clone().unwrap_or_default())),
        };
        server::Config {
            boundary: self.boundary.clone(),
            max_clients: self.max_clients,
            credentials,
            allow_origin: self.allow_origin.clone(),
            timeout: server::timeout_from_secs(self.timeout),
            resend_interval: server::resend_interval_from_ms(self.resend_interval),
            unsent_limit: self.unsent_limit,
            advance_headers: self.advance_headers.into(),
            drop_same_frames: self.drop_same_frames,
            mount: DEFAULT_MOUNT.to_string(),
        }
    }
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started {
        server: Server,
    },
}

#[derive(Default)]
pub struct MjpegSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Counters of the last server, kept after stop() for the `stats`
    /// property.
    last_stats: Mutex<server::Stats>,
    /// Wakes the thread that emits `notify::clients` while started.
    clients_notifier: Mutex<Option<mpsc::Sender<()>>>,
}

#[glib::object_subclass]
impl ObjectSubclass for MjpegSink {
    const NAME: &'static str = "GstMjpegSink";
    type Type = super::MjpegSink;
    type ParentType = gst_base::BaseSink;
}

fn non_empty(v: &glib::Value) -> Option<String> {
    v.get::<Option<String>>()
        .expect("type checked upstream")
        .filter(|s| !s.is_empty())
}

impl MjpegSink {
    fn stats_structure(&self) -> gst::Structure {
        let stats = match &*lock(&self.state) {
            State::Started { server } => server.stats(),
            State::Stopped => lock(&self.last_stats).clone(),
        };
        let mut s = gst::Structure::builder("mjpegsink-stats");
        for (name, value) in stats.counters() {
            s = s.field(name, value);
        }
        s.field("uptime", stats.uptime)
            .field("eos", stats.eos)
            .field("width", stats.format.width.unwrap_or(0))
            .field("height", stats.format.height.unwrap_or(0))
            .build()
    }

    fn current_port(&self) -> i32 {
        match &*lock(&self.state) {
            State::Started { server } => i32::from(server.local_addr().port()),
            State::Stopped => 0,
        }
    }

    fn on_server_event(&self, ev: ServerEvent) {
        match ev {
            ServerEvent::ClientConnected {
                peer,
                advance_headers,
            } => {
                self.clients_changed();
                gst::info!(
                    CAT,
                    imp = self,
                    "Client {peer} connected (advance_headers={advance_headers})"
                );
                self.obj()
                    .emit_by_name::<()>("client-connected", &[&peer_string(peer)]);
            }
            ServerEvent::ClientDisconnected {
                peer,
                reason,
                frames_sent,
                frames_skipped,
            } => {
                self.clients_changed();
                gst::info!(
                    CAT,
                    imp = self,
                    "Client {peer} disconnected ({}): {frames_sent} parts sent, {frames_skipped} frames skipped",
                    reason.as_str()
                );
                self.obj()
                    .emit_by_name::<()>("client-disconnected", &[&peer_string(peer)]);
            }
            ServerEvent::Request {
                peer,
                method,
                uri,
                status,
            } => {
                gst::debug!(CAT, imp = self, "{peer} {method} {uri} -> {status}");
            }
            ServerEvent::ConnectionError { peer, error } => {
                gst::debug!(CAT, imp = self, "Connection from {peer} ended: {error}");
            }
            ServerEvent::AcceptError(e) => {
                gst::warning!(CAT, imp = self, "accept() failed: {e}");
            }
        }
    }
}

// The `clients` property and its `notify::clients`, emitted from a thread
// of the element's (never from a server runtime thread, so a slow handler
// delays only itself), after one or more changes, when the count differs
// from the one last notified.
impl MjpegSink {
    /// Streaming clients now (0 when not serving).
    fn clients(&self) -> u32 {
        match &*lock(&self.state) {
            State::Started { server } => u32::try_from(server.clients()).unwrap_or(u32::MAX),
            State::Stopped => 0,
        }
    }

    /// The client count may have changed: have `notify::clients` emitted.
    /// Called from server threads; only queues the work.
    fn clients_changed(&self) {
        if let Some(tx) = &*lock(&self.clients_notifier) {
            let _ = tx.send(());
        }
    }

    /// Start the thread that turns [`Self::clients_changed`] into
    /// `notify::clients`. It ends once the sender is dropped (in `stop()`),
    /// after a last check (which notifies the drop to 0).
    fn start_clients_notifier(&self) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel::<()>();
        let weak = self.obj().downgrade();
        let check = move |last: &mut u32| {
            let Some(obj) = weak.upgrade() else {
                return false;
            };
            let now = obj.imp().clients();
            if now != *last {
                *last = now;
                obj.notify("clients");
            }
            true
        };
        std::thread::Builder::new()
            .name("mjpegsink-notify".into())
            .spawn(move || {
                let mut last = 0;
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    if !check(&mut last) {
                        return;
                    }
                }
                check(&mut last);
            })?;
        *lock(&self.clients_notifier) = Some(tx);
        Ok(())
    }
}

fn peer_string(peer: SocketAddr) -> String {
    peer.to_string()
}

impl ObjectImpl for MjpegSink {
    fn constructed(&self) {
        self.parent_constructed();
        // render() only publishes the frame: it needs no processing time,
        // and basesink's 20 ms default would hold every frame that long.
        self.obj().set_property("processing-deadline", 0u64);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("host")
                    .nick("Host")
                    .blurb(
                        "Address or host name to listen on; 0.0.0.0 or :: to serve every \
                         interface",
                    )
                    .default_value(Some(DEFAULT_HOST))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("port")
                    .nick("Port")
                    .blurb(
                        "TCP port to listen on; 0 picks a free port, readable from \
                         current-port",
                    )
                    .minimum(0)
                    .maximum(65535)
                    .default_value(DEFAULT_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("current-port")
                    .nick("Current port")
                    .blurb("TCP port the server listens on, 0 when not listening")
                    .minimum(0)
                    .maximum(65535)
                    .default_value(0)
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("boundary")
                    .nick("Boundary")
                    .blurb(
                        "Multipart boundary, without the leading dashes: 1-70 characters \
                         from A-Z a-z 0-9 ' + - . _",
                    )
                    .default_value(Some(DEFAULT_BOUNDARY))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-clients")
                    .nick("Max clients")
                    .blurb(
                        "Streaming clients served at once; further ones get 503 \
                         Service Unavailable. 0 = no limit",
                    )
                    .default_value(DEFAULT_MAX_CLIENTS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("user-id")
                    .nick("User ID")
                    .blurb(
                        "User name required (HTTP Basic authentication) on every endpoint \
                         when user-id or user-pw is set",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("user-pw")
                    .nick("User password")
                    .blurb(
                        "Password required (HTTP Basic authentication) on every endpoint \
                         when user-id or user-pw is set",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("allow-origin")
                    .nick("Allow origin")
                    .blurb(
                        "Value of the Access-Control-Allow-Origin header (CORS), e.g. * ; \
                         none sends no CORS headers",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("timeout")
                    .nick("Timeout")
                    .blurb(
                        "Drop a client whose socket accepts no data for this many seconds; \
                         0 = never",
                    )
                    .default_value(DEFAULT_TIMEOUT_SECS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("resend-interval")
                    .nick("Resend interval")
                    .blurb(
                        "Resend the newest frame to a client that got nothing new for this \
                         many milliseconds (keeps idle connections and WebKit happy); \
                         0 = off",
                    )
                    .default_value(DEFAULT_RESEND_INTERVAL_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("unsent-limit")
                    .nick("Unsent limit")
                    .blurb(
                        "Bytes the kernel may hold unsent per client (TCP_NOTSENT_LOWAT) \
                         before the client counts as busy and skips frames; keeps slow \
                         clients close to live. 0 = OS default buffering",
                    )
                    .default_value(DEFAULT_UNSENT_LIMIT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default(
                    "advance-headers",
                    AdvanceHeaders::default(),
                )
                .nick("Advance headers")
                .blurb(
                    "Which clients get each part's headers right after the preceding \
                     delimiter, without Content-Length (ustreamer's advance_headers: \
                     Chrome then shows a frame as soon as it arrives instead of one frame \
                     late); a ?advance_headers=0/1 query overrides",
                )
                .mutable_ready()
                .build(),
                glib::ParamSpecUInt::builder("drop-same-frames")
                    .nick("Drop same frames")
                    .blurb(
                        "Skip up to this many consecutive frames byte-identical to the one \
                         a client got last (static scenes cost no bandwidth), still sending \
                         one at least every resend-interval; 0 = send every frame",
                    )
                    .default_value(DEFAULT_DROP_SAME_FRAMES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("clients")
                    .nick("Clients")
                    .blurb(
                        "Streaming clients connected now; notify::clients is emitted from \
                         a thread of the element's when it changes",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "Counters of the server as a mjpegsink-stats structure: clients, \
                         clients-total, frames-in, frames-out, frames-resent, frames-skipped, \
                         bytes-out, clients-dropped-timeout, clients-rejected-max, \
                         requests-unauthorized, requests-snapshot, requests-state, \
                         requests-invalid, frames-skipped-busy (= frames-skipped), \
                         frames-skipped-rate, frames-skipped-same, requests-stream, \
                         requests-metrics, snapshots-not-modified, snapshots-timed-out \
                         (guint64), uptime (gdouble, s), eos (gboolean), width, height (guint)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                // Emitted from a server thread when a streaming client is
                // accepted, with its address ("127.0.0.1:54321").
                glib::subclass::Signal::builder("client-connected")
                    .param_types([String::static_type()])
                    .run_last()
                    .build(),
                // Emitted from a server thread when a streaming client has
                // gone (EOS, timeout, closed), with its address.
                glib::subclass::Signal::builder("client-disconnected")
                    .param_types([String::static_type()])
                    .run_last()
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY)
            && !matches!(&*lock(&self.state), State::Stopped)
        {
            gst::error!(
                CAT,
                imp = self,
                "Cannot change {} while the server is running; set it in NULL or READY",
                pspec.name()
            );
            return;
        }
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "host" => {
                settings.host = non_empty(value).unwrap_or_else(|| DEFAULT_HOST.to_string());
            }
            "port" => settings.port = value.get().expect("type checked upstream"),
            "boundary" => {
                let b = non_empty(value).unwrap_or_else(|| DEFAULT_BOUNDARY.to_string());
                if valid_boundary(&b) {
                    settings.boundary = b;
                } else {
                    gst::error!(
                        CAT,
                        imp = self,
                        "Invalid boundary {b:?} (1-70 of A-Z a-z 0-9 ' + - . _), keeping {:?}",
                        settings.boundary
                    );
                }
            }
            "max-clients" => settings.max_clients = value.get().expect("type checked upstream"),
            "user-id" => settings.user_id = non_empty(value),
            "user-pw" => settings.user_pw = non_empty(value),
            "allow-origin" => {
                let v = non_empty(value);
                if v.as_deref()
                    .is_some_and(|o| http::HeaderValue::from_str(o).is_err())
                {
                    gst::error!(CAT, imp = self, "Invalid allow-origin {v:?}, ignored");
                } else {
                    settings.allow_origin = v;
                }
            }
            "timeout" => settings.timeout = value.get().expect("type checked upstream"),
            "resend-interval" => {
                settings.resend_interval = value.get().expect("type checked upstream")
            }
            "unsent-limit" => settings.unsent_limit = value.get().expect("type checked upstream"),
            "advance-headers" => {
                settings.advance_headers = value.get().expect("type checked upstream")
            }
            "drop-same-frames" => {
                settings.drop_same_frames = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats_structure().to_value();
        }
        if pspec.name() == "current-port" {
            return self.current_port().to_value();
        }
        if pspec.name() == "clients" {
            return self.clients().to_value();
        }
        let settings = lock(&self.settings);
        match pspec.name() {
            "host" => settings.host.to_value(),
            "port" => settings.port.to_value(),
            "boundary" => settings.boundary.to_value(),
            "max-clients" => settings.max_clients.to_value(),
            "user-id" => settings.user_id.to_value(),
            "user-pw" => settings.user_pw.to_value(),
            "allow-origin" => settings.allow_origin.to_value(),
            "timeout" => settings.timeout.to_value(),
            "resend-interval" => settings.resend_interval.to_value(),
            "unsent-limit" => settings.unsent_limit.to_value(),
            "advance-headers" => settings.advance_headers.to_value(),
            "drop-same-frames" => settings.drop_same_frames.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for MjpegSink {}

impl ElementImpl for MjpegSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "MJPEG HTTP server sink",
                "Sink/Network/HTTP",
                "Serves JPEG frames to many HTTP clients at once as an MJPEG stream \
                 (multipart/x-mixed-replace on /, /stream, /?action=stream), plus the newest \
                 frame on /snapshot and JSON statistics on /state. Slow clients skip frames \
                 and never stall the pipeline. Example: videotestsrc is-live=true ! jpegenc \
                 ! mjpegsink port=8080",
                "gst-mjpeg contributors",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("image/jpeg").build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid sink pad template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for MjpegSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let port = u16::try_from(settings.port).unwrap_or(0);
        let listener = server::bind(&settings.host, port).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::AddrInUse {
                gst::ResourceError::Busy
            } else {
                gst::ResourceError::OpenWrite
            };
            gst::error_msg!(
                kind,
                (
                    "Cannot listen on {}:{}: {}",
                    settings.host,
                    settings.port,
                    e
                ),
                ["bind failed: {:?}", e]
            )
        })?;

        let weak = self.obj().downgrade();
        let events: server::EventHandler = std::sync::Arc::new(move |ev| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().on_server_event(ev);
            }
        });
        let server = Server::start(listener, settings.server_config(), events).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ("Cannot start the HTTP server: {}", e)
            )
        })?;
        let addr = server.local_addr();
        *lock(&self.state) = State::Started { server };
        self.start_clients_notifier().map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ("Cannot start the notification thread: {}", e)
            )
        })?;
        gst::info!(CAT, imp = self, "Serving MJPEG on http://{addr}/");
        self.obj().notify("current-port");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let old = std::mem::take(&mut *lock(&self.state));
        if let State::Started { mut server } = old {
            *lock(&self.last_stats) = server.stats();
            // Closes every connection and frees the port; no lock held.
            server.stop();
            // Ends the notify thread, which notifies clients back to 0.
            lock(&self.clients_notifier).take();
            gst::info!(CAT, imp = self, "Server stopped");
            self.obj().notify("current-port");
        }
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = caps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "Empty caps"))?;
        let dim = |f| s.get::<i32>(f).ok().and_then(|v| u32::try_from(v).ok());
        let framerate = s
            .get::<gst::Fraction>("framerate")
            .ok()
            .filter(|f| f.denom() > 0)
            .map(|f| f64::from(f.numer()) / f64::from(f.denom()));
        let format = server::Format {
            width: dim("width"),
            height: dim("height"),
            framerate,
        };
        gst::debug!(CAT, imp = self, "Caps {caps}");
        if let State::Started { server } = &*lock(&self.state) {
            server.set_format(format);
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ["Cannot map buffer"]);
            gst::FlowError::Error
        })?;
        // Publishing copies the frame once into the shared part buffer and
        // never waits on a client, so holding the state lock is brief.
        let state = lock(&self.state);
        let State::Started { server } = &*state else {
            return Err(gst::FlowError::Flushing);
        };
        let seq = server.publish(map.as_slice());
        drop(state);
        gst::trace!(
            CAT,
            imp = self,
            "Published frame {seq} ({} bytes, pts {})",
            map.len(),
            buffer.pts().display()
        );
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                gst::debug!(CAT, imp = self, "EOS: closing every stream");
                if let State::Started { server } = &*lock(&self.state) {
                    server.set_eos(true);
                }
            }
            gst::EventView::FlushStop(_) => {
                if let State::Started { server } = &*lock(&self.state) {
                    server.set_eos(false);
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }
}
