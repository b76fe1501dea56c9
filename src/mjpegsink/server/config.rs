// SPDX-License-Identifier: MPL-2.0

//! Server settings and the one place `mjpegsink`'s defaults are written
//! down: [`Config::default()`] and the element's property defaults are both
//! built from the `DEFAULT_*` constants here.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

/// Default multipart boundary: mjpg-streamer's and ustreamer's, which some
/// clients hard-code.
pub const DEFAULT_BOUNDARY: &str = "boundarydonotcross";
/// Default streaming-client limit (0 = no limit).
pub const DEFAULT_MAX_CLIENTS: u32 = 0;
/// Default write-stall timeout in seconds (0 = never).
pub const DEFAULT_TIMEOUT_SECS: u32 = 10;
/// Default resend interval in milliseconds (0 = off).
pub const DEFAULT_RESEND_INTERVAL_MS: u32 = 1000;
/// Default `TCP_NOTSENT_LOWAT` in bytes (0 = OS default).
pub const DEFAULT_UNSENT_LIMIT: u32 = 32 * 1024;
/// Default `advance_headers` policy.
pub const DEFAULT_ADVANCE_HEADERS: AdvanceHeaders = AdvanceHeaders::Chromium;
/// Default connection limit (0 = sized from the process's descriptor limit,
/// see [`connection_limit`]).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 0;
/// Default longest life of a connection that is not streaming: once it is
/// this old, it answers the request in progress (if any) and closes, however
/// often it sent a new request (nginx's `keepalive_time`, 1 h there).
pub const DEFAULT_KEEP_ALIVE_MAX: Duration = Duration::from_secs(60);

/// Default `listen-fd`: -1 = bind `host`:`port` instead of serving on a
/// passed socket.
pub const DEFAULT_LISTEN_FD: i32 = -1;

// Login throttling and signed links (`throttle`, `signed`).
/// Failed logins from one address within [`THROTTLE_WINDOW`] after which
/// it is answered 429 until the window is over.
pub const THROTTLE_MAX_FAILURES: u32 = 10;
/// The throttle's window, from an address's first failed login.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses the throttle remembers at most (the oldest is evicted).
pub const THROTTLE_TABLE_SIZE: usize = 4096;
/// Default `drop-same-frames`: consecutive identical frames not sent (0 =
/// send every frame).
pub const DEFAULT_DROP_SAME_FRAMES: u32 = 0;
// Mounts (`registry`, `mount`).
/// Default mount: the sink serves `/`, `/stream`, `/snapshot`, `/state`.
pub const DEFAULT_MOUNT: &str = "/";

/// Server settings, fixed for the life of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Multipart boundary, without the leading `--` (see
    /// `multipart::writer::valid_boundary`).
    pub boundary: String,
    /// Streaming clients served at once; further ones get 503. 0 = no limit.
    pub max_clients: u32,
    /// Basic auth `(user, password)` required on every endpoint, if any.
    pub credentials: Option<(String, String)>,
    /// `Access-Control-Allow-Origin` value, if any.
    pub allow_origin: Option<String>,
    /// Drop a client whose socket accepts nothing for this long.
    pub timeout: Option<Duration>,
    /// Resend the newest frame to a client that got nothing new for this long.
    pub resend_interval: Option<Duration>,
    /// `TCP_NOTSENT_LOWAT` on streaming sockets; 0 = OS default.
    pub unsent_limit: u32,
    /// Which stream requests without an `advance_headers` query parameter
    /// get the next part's headers in advance.
    pub advance_headers: AdvanceHeaders,
    /// TCP connections served at once, streaming or not (0 = from the
    /// descriptor limit, see [`connection_limit`]). At the limit the oldest
    /// connection that is neither streaming nor answering is closed to
    /// admit a new one; when every connection is busy the new one is closed.
    pub max_connections: u32,
    /// Host names (and `host:port`s) requests may name besides the loopback
    /// names, lower-case; see `host`. Empty: any name unless bound to a
    /// loopback address.
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS only, with this rustls configuration (see
    /// `tls::load`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest life of a connection that is not streaming.
    pub keep_alive_max: Duration,
    // Login throttling and signed links.
    /// Peers (reverse proxies) whose last `X-Forwarded-For` hop is the
    /// address the login throttle counts by.
    pub trusted_proxies: Vec<IpAddr>,
    /// Key of signed links (`link-secret`); `None` = signed links off.
    pub link_secret: Option<Vec<u8>>,
    /// Skip up to this many consecutive frames byte-identical to the one a
    /// client was sent last (ustreamer's `drop_same_frames`); 0 = off.
    pub drop_same_frames: u32,
    // Mounts.
    /// Path prefix this sink's endpoints live under (`mount`), normalized
    /// by `mount::normalize`: `/` or `/a/b` (no trailing slash).
    pub mount: String,
    /// The `tls-cert` and `tls-key` paths `tls` was loaded from: sinks
    /// sharing a port must name the same files.
    pub tls_files: Option<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            boundary: DEFAULT_BOUNDARY.to_string(),
            max_clients: DEFAULT_MAX_CLIENTS,
            credentials: None,
            allow_origin: None,
            timeout: timeout_from_secs(DEFAULT_TIMEOUT_SECS),
            resend_interval: resend_interval_from_ms(DEFAULT_RESEND_INTERVAL_MS),
            unsent_limit: DEFAULT_UNSENT_LIMIT,
            advance_headers: DEFAULT_ADVANCE_HEADERS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allowed_hosts: Vec::new(),
            tls: None,
            keep_alive_max: DEFAULT_KEEP_ALIVE_MAX,
            trusted_proxies: Vec::new(),
            link_secret: None,
            drop_same_frames: DEFAULT_DROP_SAME_FRAMES,
            mount: DEFAULT_MOUNT.to_string(),
            tls_files: None,
        }
    }
}

/// The connection limit for `max_connections` (0 = automatic): half the
/// process's soft `RLIMIT_NOFILE`, leaving the other half to the rest of the
/// application (pipeline, files, other elements), and at least 16.
pub(crate) fn connection_limit(max_connections: u32) -> usize {
    if max_connections > 0 {
        return max_connections as usize;
    }
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(16, 1 << 20)
}

/// [`Config::timeout`] from the `timeout` property (seconds, 0 = never).
pub(crate) fn timeout_from_secs(secs: u32) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(u64::from(secs)))
}

/// [`Config::resend_interval`] from the `resend-interval` property
/// (milliseconds, 0 = off).
pub(crate) fn resend_interval_from_ms(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
}

/// Who gets ustreamer's `advance_headers` framing by default (a request's
/// `?advance_headers=0/1` always wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvanceHeaders {
    /// Nobody.
    Never,
    /// Clients whose `User-Agent` names a Chromium-based browser (`Chrome/`
    /// or `Chromium/`: Chrome, Chromium, Edge, Opera, Brave ...).
    Chromium,
    /// Everybody.
    Always,
}

impl Default for AdvanceHeaders {
    fn default() -> Self {
        DEFAULT_ADVANCE_HEADERS
    }
}

impl AdvanceHeaders {
    /// Whether a request with this `User-Agent` gets `advance_headers`.
    pub(crate) fn applies(self, user_agent: Option<&HeaderValue>) -> bool {
        match self {
            AdvanceHeaders::Never => false,
            AdvanceHeaders::Always => true,
            AdvanceHeaders::Chromium => user_agent.is_some_and(|ua| {
                let ua = ua.as_bytes();
                memchr::memmem::find(ua, b"Chrome/").is_some()
                    || memchr::memmem::find(ua, b"Chromium/").is_some()
            }),
        }
    }
}
