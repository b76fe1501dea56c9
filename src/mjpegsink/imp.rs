// SPDX-License-Identifier: MPL-2.0

//! `mjpegsink` element glue: properties, signals, state changes and the
//! hand-over of frames to the HTTP server in [`super::server`].
//!
//! Locks: `settings` and `state` are never held together, and neither is
//! held across network I/O, a signal emission or a wait.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::server::{self, DEFAULT_BOUNDARY, DEFAULT_MOUNT, Server, ServerEvent};
use super::settings::{DEFAULT_HOST, Settings, exposure_warning, join_error, param_specs};
use super::signals::{self, Dispatcher};
use crate::multipart::writer::valid_boundary;
use crate::runtime::lock;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mjpegsink",
        gst::DebugColorFlags::empty(),
        Some("MJPEG HTTP server sink"),
    )
});

/// What the signal thread emits.
enum Signal {
    Connected(SocketAddr),
    Disconnected(SocketAddr),
    /// The number of streaming clients may have changed: `notify::clients`.
    Clients,
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started {
        server: Server,
        signals: Dispatcher<Signal>,
    },
}

#[derive(Default)]
pub struct MjpegSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Counters of the last server, kept after stop() for the `stats`
    /// property.
    last_stats: Mutex<server::Stats>,
    /// The `clients` value last notified (`notify::clients`).
    notified_clients: AtomicU32,
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
            State::Started { server, .. } => server.stats(),
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

    /// The `sign-url` action signal.
    fn sign_url(&self, path: Option<&str>, ttl_seconds: u32) -> Option<String> {
        let secret = lock(&self.settings).link_secret.clone();
        let Some(secret) = secret else {
            gst::error!(CAT, imp = self, "sign-url: link-secret is not set");
            return None;
        };
        let url = server::sign_url(secret.as_bytes(), path.unwrap_or(""), ttl_seconds);
        if url.is_none() {
            gst::error!(
                CAT,
                imp = self,
                "sign-url: {path:?} is not an absolute path without query or fragment"
            );
        }
        url
    }

    fn current_port(&self) -> i32 {
        match &*lock(&self.state) {
            State::Started { server, .. } => i32::from(server.local_addr().port()),
            State::Stopped => 0,
        }
    }

    /// Logs at once; signals go to the signal thread (`signals`), never
    /// emitted on the runtime worker this is called from.
    fn on_server_event(&self, ev: ServerEvent, signals: &signals::Sender<Signal>) {
        match ev {
            ServerEvent::ClientConnected {
                peer,
                advance_headers,
            } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "Client {peer} connected (advance_headers={advance_headers})"
                );
                signals.send(Signal::Connected(peer));
                signals.send(Signal::Clients);
            }
            ServerEvent::ClientDisconnected {
                peer,
                reason,
                frames_sent,
                frames_skipped,
            } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "Client {peer} disconnected ({}): {frames_sent} parts sent, {frames_skipped} frames skipped",
                    reason.as_str()
                );
                signals.send(Signal::Disconnected(peer));
                signals.send(Signal::Clients);
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

/// Emit `signal` on the signal thread.
fn emit(obj: &super::MjpegSink, signal: Signal) {
    let (name, peer) = match signal {
        Signal::Connected(p) => ("client-connected", p),
        Signal::Disconnected(p) => ("client-disconnected", p),
        Signal::Clients => {
            obj.imp().notify_clients_if_changed();
            return;
        }
    };
    obj.emit_by_name::<()>(name, &[&peer_string(peer)]);
}

// The `clients` property and its `notify::clients`, emitted from the signal
// thread (never from a server runtime thread, so a slow handler delays only
// itself) when the count differs from the one last notified.
impl MjpegSink {
    /// Streaming clients now (0 when not serving).
    fn clients(&self) -> u32 {
        match &*lock(&self.state) {
            State::Started { server, .. } => u32::try_from(server.clients()).unwrap_or(u32::MAX),
            State::Stopped => 0,
        }
    }

    /// `notify::clients` if the count changed since the last notification.
    fn notify_clients_if_changed(&self) {
        let now = self.clients();
        if self.notified_clients.swap(now, Ordering::AcqRel) != now {
            self.obj().notify("clients");
        }
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
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(param_specs);
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                // Emitted from the element's signal thread (never a network
                // thread) when a streaming client is accepted, with its
                // address ("127.0.0.1:54321").
                glib::subclass::Signal::builder("client-connected")
                    .param_types([String::static_type()])
                    .run_last()
                    .build(),
                // Emitted from the element's signal thread when a streaming
                // client has gone (EOS, timeout, closed), with its address;
                // never after the element reached NULL.
                glib::subclass::Signal::builder("client-disconnected")
                    .param_types([String::static_type()])
                    .run_last()
                    .build(),
                // Action signal: sign-url(path, ttl_seconds) returns a
                // signed link "<path>?exp=...&sig=..." valid for ttl_seconds,
                // or NULL without link-secret or for a path that is not
                // absolute or carries a query.
                glib::subclass::Signal::builder("sign-url")
                    .param_types([String::static_type(), u32::static_type()])
                    .return_type::<Option<String>>()
                    .action()
                    .class_handler(|args| {
                        let sink = args[0].get::<super::MjpegSink>().expect("signal arg");
                        let path = args[1].get::<Option<String>>().expect("signal arg");
                        let ttl = args[2].get::<u32>().expect("signal arg");
                        Some(sink.imp().sign_url(path.as_deref(), ttl).to_value())
                    })
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
            "max-connections" => {
                settings.max_connections = value.get().expect("type checked upstream")
            }
            "allowed-hosts" => {
                let hosts = value.get::<gst::Array>().expect("type checked upstream");
                settings.allowed_hosts = hosts
                    .iter()
                    .filter_map(|v| v.get::<Option<String>>().ok().flatten())
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .collect();
            }
            "tls-cert" => settings.tls_cert = non_empty(value),
            "tls-key" => settings.tls_key = non_empty(value),
            "trusted-proxies" => {
                let list = value.get::<gst::Array>().expect("type checked upstream");
                let mut proxies = Vec::new();
                for v in list.iter() {
                    let a = v.get::<Option<String>>().ok().flatten().unwrap_or_default();
                    match a.trim().parse::<IpAddr>() {
                        Ok(ip) => proxies.push(ip),
                        Err(_) => {
                            gst::error!(
                                CAT,
                                imp = self,
                                "Invalid trusted-proxies entry {a:?} (not an IP address), \
                                 keeping {:?}",
                                settings.trusted_proxies
                            );
                            return;
                        }
                    }
                }
                settings.trusted_proxies = proxies;
            }
            "link-secret" => settings.link_secret = non_empty(value),
            "drop-same-frames" => {
                settings.drop_same_frames = value.get().expect("type checked upstream")
            }
            "mount" => {
                let m = non_empty(value).unwrap_or_else(|| DEFAULT_MOUNT.to_string());
                match server::normalize_mount(&m) {
                    Some(m) => settings.mount = m,
                    None => gst::error!(
                        CAT,
                        imp = self,
                        "Invalid mount {m:?} (/ or /name/..., names of A-Z a-z 0-9 - . _ ~), \
                         keeping {:?}",
                        settings.mount
                    ),
                }
            }
            "listen-fd" => settings.listen_fd = value.get().expect("type checked upstream"),
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
            "max-connections" => settings.max_connections.to_value(),
            "allowed-hosts" => gst::Array::new(&settings.allowed_hosts).to_value(),
            "tls-cert" => settings.tls_cert.to_value(),
            "tls-key" => settings.tls_key.to_value(),
            "trusted-proxies" => {
                gst::Array::new(settings.trusted_proxies.iter().map(|ip| ip.to_string())).to_value()
            }
            "link-secret" => settings.link_secret.to_value(),
            "drop-same-frames" => settings.drop_same_frames.to_value(),
            "mount" => settings.mount.to_value(),
            "listen-fd" => settings.listen_fd.to_value(),
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
        let tls = settings.load_tls()?;
        let https = tls.is_some();
        let port = u16::try_from(settings.port).unwrap_or(0);

        let weak = self.obj().downgrade();
        let signals = Dispatcher::start(format!("{}-signals", self.obj().name()), move |s| {
            if let Some(obj) = weak.upgrade() {
                emit(&obj, s);
            }
        })
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ("Cannot start the signal thread: {}", e)
            )
        })?;
        let weak = self.obj().downgrade();
        let tx = signals.sender();
        let events: server::EventHandler = std::sync::Arc::new(move |ev| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().on_server_event(ev, &tx);
            }
        });
        let name = self.obj().name();
        let server = if settings.listen_fd >= 0 {
            let socket = server::inherited(settings.listen_fd).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("Cannot serve on listen-fd {}: {}", settings.listen_fd, e),
                    ["listen-fd failed: {:?}", e]
                )
            })?;
            Server::join_socket(socket, settings.server_config(tls), events, &name)
        } else {
            Server::join(
                &settings.host,
                port,
                settings.server_config(tls),
                events,
                &name,
            )
        }
        .map_err(|e| join_error(&settings, e))?;

        let ip = server.local_addr().ip();
        if let Some(warning) = exposure_warning(
            ip,
            settings.has_credentials(),
            settings.link_secret.is_some(),
            settings.tls_enabled(),
        ) {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("Serving on {}: {}", ip, warning)
            );
        }
        let addr = server.local_addr();
        let limit = server.connection_limit();
        gst::info!(
            CAT,
            imp = self,
            "Serving MJPEG on {}://{addr}{} (at most {limit} connections, {} mounts on this port)",
            if https { "https" } else { "http" },
            settings.mount,
            server.mounts()
        );
        *lock(&self.state) = State::Started { server, signals };
        self.obj().notify("current-port");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let old = std::mem::take(&mut *lock(&self.state));
        if let State::Started {
            mut server,
            signals,
        } = old
        {
            // Frees the port and ends every connection task; no lock held.
            server.stop();
            // The counters are final now.
            *lock(&self.last_stats) = server.stats();
            // Emit what the connections reported, then no more.
            signals.stop();
            // The state is Stopped: notifies the drop to 0 clients.
            self.notify_clients_if_changed();
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
        if let State::Started { server, .. } = &*lock(&self.state) {
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
        let State::Started { server, .. } = &*state else {
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
                if let State::Started { server, .. } = &*lock(&self.state) {
                    server.set_eos(true);
                }
            }
            gst::EventView::FlushStop(_) => {
                if let State::Started { server, .. } = &*lock(&self.state) {
                    server.set_eos(false);
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }
}
