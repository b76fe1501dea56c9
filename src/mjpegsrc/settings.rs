// SPDX-License-Identifier: MPL-2.0

//! The element's property values and their defaults (the one place they are
//! written down).

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
