// SPDX-License-Identifier: MPL-2.0

//! `mjpegsink`'s settings: the property values ([`Settings`]), how they
//! become the server's configuration, and what `start()` warns or fails
//! with.

use std::net::IpAddr;

use gst::glib;
use gst::prelude::*;

use super::server::{
    self, DEFAULT_BOUNDARY, DEFAULT_DROP_SAME_FRAMES, DEFAULT_LISTEN_FD, DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MOUNT, DEFAULT_RESEND_INTERVAL_MS, DEFAULT_TIMEOUT_SECS,
    DEFAULT_UNSENT_LIMIT, JoinError,
};

// Only the element binds, so these two defaults live here; every other
// default is the server's (`server::DEFAULT_*`).
pub(super) const DEFAULT_HOST: &str = "localhost";
pub(super) const DEFAULT_PORT: i32 = 8080;

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
pub(super) struct Settings {
    pub(super) host: String,
    pub(super) port: i32,
    pub(super) boundary: String,
    pub(super) max_clients: u32,
    pub(super) user_id: Option<String>,
    pub(super) user_pw: Option<String>,
    pub(super) allow_origin: Option<String>,
    pub(super) timeout: u32,
    pub(super) resend_interval: u32,
    pub(super) unsent_limit: u32,
    pub(super) advance_headers: AdvanceHeaders,
    pub(super) max_connections: u32,
    pub(super) allowed_hosts: Vec<String>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    // Login throttling and signed links.
    pub(super) trusted_proxies: Vec<IpAddr>,
    pub(super) link_secret: Option<String>,
    // Mounts.
    pub(super) mount: String,
    pub(super) drop_same_frames: u32,
    /// Serve on this inherited listening socket instead of binding (-1).
    pub(super) listen_fd: i32,
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
            mount: DEFAULT_MOUNT.to_string(),
            drop_same_frames: DEFAULT_DROP_SAME_FRAMES,
            listen_fd: DEFAULT_LISTEN_FD,
        }
    }
}

impl Settings {
    /// The server's configuration; `tls` is what [`Settings::load_tls`]
    /// loaded.
    pub(super) fn server_config(
        &self,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> server::Config {
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
            mount: self.mount.clone(),
            tls_files: self.tls_cert.clone().zip(self.tls_key.clone()),
            drop_same_frames: self.drop_same_frames,
            ..server::Config::default()
        }
    }

    /// The TLS configuration from `tls-cert` and `tls-key`: none when
    /// neither is set; both must be.
    pub(super) fn load_tls(
        &self,
    ) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, gst::ErrorMessage> {
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

    pub(super) fn has_credentials(&self) -> bool {
        self.user_id.is_some() || self.user_pw.is_some()
    }

    /// Whether the server speaks HTTPS: `tls-cert` and `tls-key` are set.
    pub(super) fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// What to warn about when serving on `ip`: credentials sent in the clear,
/// or a stream open to the network.
pub(super) fn exposure_warning(
    ip: IpAddr,
    credentials: bool,
    links: bool,
    tls: bool,
) -> Option<&'static str> {
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

/// The element error for a server that could not start.
pub(super) fn join_error(settings: &Settings, e: JoinError) -> gst::ErrorMessage {
    let (host, port) = (&settings.host, settings.port);
    match e {
        JoinError::Bind(e) => {
            let kind = if e.kind() == std::io::ErrorKind::AddrInUse {
                gst::ResourceError::Busy
            } else {
                gst::ResourceError::OpenWrite
            };
            gst::error_msg!(
                kind,
                ("Cannot listen on {}:{}: {}", host, port, e),
                ["bind failed: {:?}", e]
            )
        }
        JoinError::Start(e) => gst::error_msg!(
            gst::ResourceError::OpenWrite,
            ("Cannot start the HTTP server: {}", e)
        ),
        e
        @ (JoinError::Conflict { .. } | JoinError::MountTaken { .. } | JoinError::BadMount(_)) => {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("Cannot share {}:{}: {}", host, port, e)
            )
        }
    }
}

/// The element's own properties, for `ObjectImpl::properties`.
pub(super) fn param_specs() -> Vec<glib::ParamSpec> {
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
        glib::ParamSpecEnum::builder_with_default("advance-headers", AdvanceHeaders::default())
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
                 requests-invalid, connections, connections-total, \
                 connections-evicted, connections-refused, accept-errors, \
                 requests-forbidden-host, logins-failed, requests-throttled, \
                 frames-skipped-busy (= frames-skipped), frames-skipped-rate, \
                 frames-skipped-same, requests-stream, requests-metrics, \
                 snapshots-not-modified, snapshots-timed-out (guint64), \
                 uptime (gdouble, s), eos (gboolean), width, height (guint)",
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
        // Mounts.
        glib::ParamSpecString::builder("mount")
            .nick("Mount")
            .blurb(
                "Path prefix of this sink's endpoints (/cam1: /cam1, /cam1/stream, \
                 /cam1/snapshot, /cam1/state, /cam1?action=stream). Sinks of one \
                 process with the same host and port share the port, each under its \
                 own mount, if tls-cert, tls-key, max-connections, allowed-hosts, \
                 trusted-proxies, timeout and unsent-limit agree; with no sink at /, \
                 / is an index page of the mounts and /streams a JSON list. With \
                 port=0, a second sink joins the first by setting port to its \
                 current-port",
            )
            .default_value(Some(DEFAULT_MOUNT))
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
