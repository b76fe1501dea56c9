// SPDX-License-Identifier: MPL-2.0

//! `mjpegsink` element glue: properties, signals, state changes and the
//! hand-over of frames to the HTTP server in [`super::server`].
//!
//! Locks: `settings` and `state` are never held together, and neither is
//! held across network I/O, a signal emission or a wait.

use std::net::{IpAddr, SocketAddr};
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::server::{
    self, DEFAULT_BOUNDARY, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_RESEND_INTERVAL_MS, DEFAULT_TIMEOUT_SECS, DEFAULT_UNSENT_LIMIT, Server, ServerEvent,
};
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
    max_connections: u32,
    allowed_hosts: Vec<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    // Login throttling and signed links.
    trusted_proxies: Vec<IpAddr>,
    link_secret: Option<String>,
    // Socket activation.
    listen_fd: i32,
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
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allowed_hosts: Vec::new(),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            link_secret: None,
            listen_fd: server::DEFAULT_LISTEN_FD,
        }
    }
}

impl Settings {
    /// The server's configuration; `tls` is what [`Settings::load_tls`]
    /// loaded.
    fn server_config(&self, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> server::Config {
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
            max_connections: self.max_connections,
            allowed_hosts: self.allowed_hosts.clone(),
            tls,
            trusted_proxies: self.trusted_proxies.clone(),
            link_secret: self.link_secret.clone().map(String::into_bytes),
            ..server::Config::default()
        }
    }

    /// The TLS configuration from `tls-cert` and `tls-key`: none when
    /// neither is set; both must be.
    fn load_tls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, gst::ErrorMessage> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => server::load_tls(cert.as_ref(), key.as_ref())
                .map(Some)
                .map_err(|e| {
                    let kind = match e {
                        server::TlsError::Read { .. } => gst::ResourceError::OpenRead,
                        server::TlsError::Invalid { .. } => gst::ResourceError::Settings,
                    };
                    gst::error_msg!(kind, ("Cannot serve HTTPS: {}", e))
                }),
            (cert, _) => Err(gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "Cannot serve HTTPS: {} is set but {} is not; set both",
                    if cert.is_some() {
                        "tls-cert"
                    } else {
                        "tls-key"
                    },
                    if cert.is_some() {
                        "tls-key"
                    } else {
                        "tls-cert"
                    }
                )
            )),
        }
    }

    fn has_credentials(&self) -> bool {
        self.user_id.is_some() || self.user_pw.is_some()
    }

    /// Whether the server speaks HTTPS: `tls-cert` and `tls-key` are set.
    fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// What to warn about when serving on `ip`: credentials sent in the clear,
/// or a stream open to the network.
fn exposure_warning(ip: IpAddr, credentials: bool, links: bool, tls: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        None
    } else if credentials && !tls {
        Some(
            "credentials travel in cleartext: bound to a non-loopback address without TLS \
             while user-id/user-pw are set; anyone on the path can read them",
        )
    } else if !credentials && !links {
        Some(
            "no credentials: bound to a non-loopback address without user-id/user-pw or \
             link-secret, anyone who can reach this port can watch",
        )
    } else {
        None
    }
}

/// What the signal thread emits.
enum Signal {
    Connected(SocketAddr),
    Disconnected(SocketAddr),
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
    };
    obj.emit_by_name::<()>(name, &[&peer_string(peer)]);
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
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "Counters of the server as a mjpegsink-stats structure: clients, \
                         clients-total, frames-in, frames-out, frames-resent, frames-skipped, \
                         bytes-out, clients-dropped-timeout, clients-rejected-max, \
                         requests-unauthorized, requests-snapshot, requests-state, \
                         requests-invalid, connections, connections-total, \
                         connections-evicted, connections-refused, accept-errors, \
                         requests-forbidden-host, logins-failed, requests-throttled (guint64), \
                         uptime (gdouble, s), eos (gboolean), \
                         width, height (guint)",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("max-connections")
                    .nick("Max connections")
                    .blurb(
                        "TCP connections open at once, streaming or not. At the limit the \
                         oldest connection that is neither streaming nor answering a request \
                         is closed to admit a new one; when all are busy the new one is \
                         closed. 0 = half the process's open-file limit (RLIMIT_NOFILE)",
                    )
                    .default_value(DEFAULT_MAX_CONNECTIONS)
                    .mutable_ready()
                    .build(),
                gst::ParamSpecArray::builder("allowed-hosts")
                    .nick("Allowed hosts")
                    .blurb(
                        "Host names (optionally host:port) requests may name in Host or an \
                         absolute URL, besides localhost, *.localhost, 127.0.0.0/8 and ::1; \
                         others get 403 (DNS-rebinding protection). Applies when bound to a \
                         loopback address, or when not empty. Example: <\"cam.lan\">",
                    )
                    .element_spec(
                        &glib::ParamSpecString::builder("allowed-host")
                            .nick("Allowed host")
                            .blurb("Host name or address, optionally with :port")
                            .build(),
                    )
                    .mutable_ready()
                    .build(),
                gst::ParamSpecArray::builder("trusted-proxies")
                    .nick("Trusted proxies")
                    .blurb(
                        "Addresses of reverse proxies: for requests from these peers only, \
                         the login throttle counts by the last X-Forwarded-For hop instead of \
                         the peer. Example: <\"127.0.0.1\">",
                    )
                    .element_spec(
                        &glib::ParamSpecString::builder("trusted-proxy")
                            .nick("Trusted proxy")
                            .blurb("IPv4 or IPv6 address of a reverse proxy")
                            .build(),
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-cert")
                    .nick("TLS certificate")
                    .blurb(
                        "PEM file with the server certificate (chain); with tls-key, the \
                         server speaks HTTPS only",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-key")
                    .nick("TLS key")
                    .blurb(
                        "PEM file with the private key of tls-cert; with tls-cert, the \
                         server speaks HTTPS only",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("link-secret")
                    .nick("Link secret")
                    .blurb(
                        "Key of signed links: a URL with exp=<unix seconds>&sig=<hex \
                         HMAC-SHA256 of \"<path>\\n<exp>\"> opens that path without \
                         credentials until exp (see the sign-url signal). When set without \
                         user-id/user-pw, only signed links are served",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("listen-fd")
                    .nick("Listen FD")
                    .blurb(
                        "Serve on this already listening TCP socket passed by the parent \
                         (systemd socket activation: LISTEN_FDS, descriptors from 3) \
                         instead of binding host and port; -1 binds",
                    )
                    .minimum(-1)
                    .default_value(server::DEFAULT_LISTEN_FD)
                    .mutable_ready()
                    .build(),
            ]
        });
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
        let listener = if settings.listen_fd >= 0 {
            server::inherited(settings.listen_fd).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("Cannot serve on listen-fd {}: {}", settings.listen_fd, e),
                    ["listen-fd failed: {:?}", e]
                )
            })?
        } else {
            server::bind(&settings.host, port).map_err(|e| {
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
            })?
        };

        let bound = listener.local_addr().map(|a| a.ip());
        if let Ok(ip) = bound
            && let Some(warning) = exposure_warning(
                ip,
                settings.has_credentials(),
                settings.link_secret.is_some(),
                settings.tls_enabled(),
            )
        {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("Serving on {}: {}", ip, warning)
            );
        }

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
        let server = Server::start(listener, settings.server_config(tls), events).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ("Cannot start the HTTP server: {}", e)
            )
        })?;
        let addr = server.local_addr();
        let limit = server.connection_limit();
        *lock(&self.state) = State::Started { server, signals };
        let scheme = if https { "https" } else { "http" };
        gst::info!(
            CAT,
            imp = self,
            "Serving MJPEG on {scheme}://{addr}/ (at most {limit} connections)"
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_warnings() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        for lo in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(exposure_warning(ip(lo), false, false, false), None, "{lo}");
            assert_eq!(exposure_warning(ip(lo), true, false, false), None, "{lo}");
        }
        for open in ["0.0.0.0", "::", "192.168.1.2", "2001:db8::1"] {
            let w = exposure_warning(ip(open), true, false, false).unwrap_or_default();
            assert!(w.contains("credentials travel in cleartext"), "{open}: {w}");
            let w = exposure_warning(ip(open), false, false, false).unwrap_or_default();
            assert!(w.starts_with("no credentials"), "{open}: {w}");
            assert_eq!(exposure_warning(ip(open), true, false, true), None);
            assert_eq!(exposure_warning(ip(open), false, true, false), None);
        }
    }
}
