// SPDX-License-Identifier: MPL-2.0

//! The element's properties: their specifications (nick, blurb, range,
//! flags), their defaults (the one place they are written down) and the
//! values set.

use gst::glib;
use gst::prelude::*;

use super::client;

pub(crate) const DEFAULT_SSL_STRICT: bool = true;
pub(crate) const DEFAULT_TIMEOUT: u32 = 10;
pub(crate) const DEFAULT_CONNECT_TIMEOUT: u32 = 10;
pub(crate) const DEFAULT_RETRIES: i32 = -1;
pub(crate) const DEFAULT_RETRY_DELAY: u32 = 500;
pub(crate) const DEFAULT_RETRY_DELAY_MAX: u32 = 10_000;
pub(crate) const DEFAULT_MAX_FRAME_SIZE: u32 = 4 * 1024 * 1024;
pub(crate) const MIN_MAX_FRAME_SIZE: u32 = 1024;
pub(crate) const DEFAULT_POOL_SIZE: u32 = 8;
pub(crate) const MIN_POOL_SIZE: u32 = 2;
pub(crate) const MAX_POOL_SIZE: u32 = 1024;
pub(crate) const DEFAULT_IS_LIVE: bool = true;
pub(crate) const DEFAULT_ALLOW_INSECURE_REDIRECT: bool = false;

pub(crate) fn default_user_agent() -> String {
    format!("gst-mjpeg/{}", env!("CARGO_PKG_VERSION"))
}

/// Property values. `extra-headers` is kept as the structure the user set
/// (for reading it back) and flattened into the client settings at start.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) client: client::Settings,
    pub(crate) extra_headers: Option<gst::Structure>,
    pub(crate) max_frame_size: u32,
    pub(crate) pool_size: u32,
    pub(crate) is_live: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            client: client::Settings {
                location: None,
                user_id: None,
                user_pw: None,
                proxy: None,
                proxy_id: None,
                proxy_pw: None,
                user_agent: default_user_agent(),
                extra_headers: Vec::new(),
                cookies: Vec::new(),
                ssl_strict: DEFAULT_SSL_STRICT,
                timeout: DEFAULT_TIMEOUT,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                retries: DEFAULT_RETRIES,
                retry_delay: DEFAULT_RETRY_DELAY,
                retry_delay_max: DEFAULT_RETRY_DELAY_MAX,
                allow_insecure_redirect: DEFAULT_ALLOW_INSECURE_REDIRECT,
                ssl_ca_file: None,
                proxy_env: None,
            },
            extra_headers: None,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            pool_size: DEFAULT_POOL_SIZE,
            is_live: DEFAULT_IS_LIVE,
        }
    }
}

impl Settings {
    /// The client's settings, with `extra-headers` as (name, value) pairs
    /// (values of other types than strings in their string form).
    pub(crate) fn client_settings(&self) -> client::Settings {
        let mut s = self.client.clone();
        if let Some(extra) = &self.extra_headers {
            s.extra_headers = extra
                .iter()
                .map(|(name, value)| {
                    let value = match value.get::<String>() {
                        Ok(s) => s,
                        Err(_) => value
                            .transform::<String>()
                            .ok()
                            .and_then(|v| v.get::<String>().ok())
                            .unwrap_or_default(),
                    };
                    (name.to_string(), value)
                })
                .collect();
        }
        s
    }
}

/// The element's own properties, for `ObjectImpl::properties`.
pub(crate) fn param_specs() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("location")
            .nick("Location")
            .blurb("URL of the MJPEG stream (http:// or https://); user:password@ in the URL is used for authentication")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("user-id")
            .nick("User ID")
            .blurb("User name for Basic or Digest authentication; when unset, the URL's user")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("user-pw")
            .nick("User password")
            .blurb("Password for Basic or Digest authentication; when unset, the URL's password")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("proxy")
            .nick("Proxy")
            .blurb("Proxy as host:port, http://host:port, socks5://host:port or socks5h://host:port (names resolved by the proxy); when unset, the environment's http_proxy, https_proxy, all_proxy and no_proxy")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("proxy-id")
            .nick("Proxy user ID")
            .blurb("User name for the proxy (HTTP Basic or SOCKS5); when unset, the proxy URL's")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("proxy-pw")
            .nick("Proxy user password")
            .blurb("Password for the proxy (HTTP Basic or SOCKS5); when unset, the proxy URL's")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("user-agent")
            .nick("User-Agent")
            .blurb("Value of the User-Agent request header")
            .default_value(Some(default_user_agent().as_str()))
            .mutable_ready()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>("extra-headers")
            .nick("Extra headers")
            .blurb("Extra request headers as a GstStructure: each field name is a header name, its value the header value")
            .mutable_ready()
            .build(),
        glib::ParamSpecBoxed::builder::<Vec<String>>("cookies")
            .nick("Cookies")
            .blurb("Cookies sent with the request, each as name=value")
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("ssl-strict")
            .nick("SSL strict")
            .blurb("Verify the server's TLS certificate; false accepts self-signed certificates")
            .default_value(DEFAULT_SSL_STRICT)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("timeout")
            .nick("Timeout")
            .blurb("Seconds without receiving a byte after which the connection counts as stalled and is reopened; 0 = never")
            .default_value(DEFAULT_TIMEOUT)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("connect-timeout")
            .nick("Connect timeout")
            .blurb("Seconds allowed to connect and receive the response headers; 0 = no limit")
            .default_value(DEFAULT_CONNECT_TIMEOUT)
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder("retries")
            .nick("Retries")
            .blurb("Failed connection attempts in a row before giving up with an error; -1 = retry forever. Only a working session resets the count: frames for at least 5 s (or a delivered snapshot); a stream that sends a frame and closes keeps counting")
            .minimum(-1)
            .default_value(DEFAULT_RETRIES)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("retry-delay")
            .nick("Retry delay")
            .blurb("Milliseconds to wait before the first reconnect attempt; doubles on each further failure. Never below 100 ms, and varied by ±20 % so cameras are not hit in step")
            .default_value(DEFAULT_RETRY_DELAY)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("retry-delay-max")
            .nick("Maximum retry delay")
            .blurb("Upper bound in milliseconds of the growing delay between reconnect attempts")
            .default_value(DEFAULT_RETRY_DELAY_MAX)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("max-frame-size")
            .nick("Maximum frame size")
            .blurb("Size in bytes of each pool buffer; a larger frame is dropped and counted")
            .minimum(MIN_MAX_FRAME_SIZE)
            .default_value(DEFAULT_MAX_FRAME_SIZE)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("pool-size")
            .nick("Pool size")
            .blurb("Number of frame buffers in the pool; when all are in use, new frames are dropped and counted")
            .minimum(MIN_POOL_SIZE)
            .maximum(MAX_POOL_SIZE)
            .default_value(DEFAULT_POOL_SIZE)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("is-live")
            .nick("Is live")
            .blurb("Act as a live source: timestamps are running time at arrival and nothing is pushed in PAUSED")
            .default_value(DEFAULT_IS_LIVE)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb("Counters of the session as a mjpegsrc-stats structure: frames-received, frames-pushed, frames-dropped (= dropped-no-buffer + dropped-too-big + dropped-queue-full + dropped-broken), overruns (runs of consecutive drops), reconnects, bytes-received, skipped-parts, resyncs, junk-bytes (bytes between a complete part and the next delimiter), length-mismatches (Content-Length repaired by the delimiter), bad-timestamps (camera X-Timestamps left out of the meta), frames-without-size (frames whose size could not be read, pushed with the previous caps) (guint64), fps (gdouble, frames/s over the last 2 s), free-buffers (guint), connected (gboolean), location (without user:password), last-reconnect-reason (string)")
            .read_only()
            .build(),
        glib::ParamSpecBoolean::builder("allow-insecure-redirect")
            .nick("Allow insecure redirect")
            .blurb("Follow a redirect from https to http; refused with an error otherwise. Credentials, cookies and extra-headers never go to another origin")
            .default_value(DEFAULT_ALLOW_INSECURE_REDIRECT)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("ssl-ca-file")
            .nick("SSL CA file")
            .blurb("PEM file of CA or self-signed server certificates to trust in addition to the system's, with ssl-strict on; unreadable or empty is an error at start")
            .mutable_ready()
            .build(),
    ]
}
