// SPDX-License-Identifier: MPL-2.0

//! Server settings and the one place `mjpegsink`'s defaults are written
//! down: [`Config::default()`] and the element's property defaults are both
//! built from the `DEFAULT_*` constants here.

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
/// Default `drop-same-frames`: consecutive identical frames not sent (0 =
/// send every frame).
pub const DEFAULT_DROP_SAME_FRAMES: u32 = 0;
/// The mount every endpoint lives under (the only one for now).
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
    /// Skip up to this many consecutive frames byte-identical to the one a
    /// client was sent last (ustreamer's `drop_same_frames`); 0 = off.
    pub drop_same_frames: u32,
    /// The mount this server's endpoints live under (the `mount` label of
    /// `/metrics`).
    pub mount: String,
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
            drop_same_frames: DEFAULT_DROP_SAME_FRAMES,
            mount: DEFAULT_MOUNT.to_string(),
        }
    }
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
