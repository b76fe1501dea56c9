// SPDX-License-Identifier: MPL-2.0

//! The element's network settings, as plain values, and the [`Config`] the
//! client runs with, built (and validated) from them.

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use url::Url;

use super::auth::Credentials;
use super::http1::HttpOptions;
use super::proxy::{Proxies, Proxy, ProxyEnv};

/// The network settings of the element, as its properties hold them.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) location: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) user_pw: Option<String>,
    pub(crate) proxy: Option<String>,
    pub(crate) proxy_id: Option<String>,
    pub(crate) proxy_pw: Option<String>,
    pub(crate) user_agent: String,
    /// Extra request headers (name, value), in order.
    pub(crate) extra_headers: Vec<(String, String)>,
    /// `name=value` cookies.
    pub(crate) cookies: Vec<String>,
    pub(crate) ssl_strict: bool,
    /// Seconds without a byte before a connection counts as stalled; 0 = never.
    pub(crate) timeout: u32,
    /// Seconds for connect + response head; 0 = no limit.
    pub(crate) connect_timeout: u32,
    /// Failed attempts in a row before giving up; -1 = forever.
    pub(crate) retries: i32,
    /// Milliseconds before the first reconnect, doubling per failure.
    pub(crate) retry_delay: u32,
    /// Cap of the reconnect delay, milliseconds.
    pub(crate) retry_delay_max: u32,
    /// Follow an https → http redirect.
    pub(crate) allow_insecure_redirect: bool,
    /// PEM file of certificates trusted besides the system's.
    pub(crate) ssl_ca_file: Option<String>,
    /// The proxy environment variables, read at start when `proxy` is
    /// unset; `None` = read the process environment.
    pub(crate) proxy_env: Option<ProxyEnv>,
}

/// Everything the client needs, fixed when the element starts.
pub(crate) struct Config {
    /// The URL to read, without userinfo.
    pub(crate) url: Url,
    pub(crate) http: HttpOptions,
    pub(crate) credentials: Option<Credentials>,
    /// No byte for this long = stalled.
    pub(crate) timeout: Option<Duration>,
    /// -1 = forever.
    pub(crate) retries: i32,
    pub(crate) retry_delay: Duration,
    pub(crate) retry_delay_max: Duration,
    pub(crate) allow_insecure_redirect: bool,
}

fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn secs(s: u32) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(s.into()))
}

impl Config {
    /// Check the settings and build the client's configuration; the error
    /// says which setting is wrong.
    pub(crate) fn new(settings: &Settings) -> Result<Config, String> {
        let location = settings.location.as_deref().ok_or("No location set")?;
        let mut url = Url::parse(location)
            .map_err(|e| format!("Invalid location {}: {e}", redact(location)))?;

        // Credentials: the properties win over the URL's userinfo, which is
        // removed from the request URL either way.
        let url_user = percent_decode(url.username());
        let url_pw = url.password().map(percent_decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let user = settings
            .user_id
            .clone()
            .or((!url_user.is_empty()).then_some(url_user));
        let password = settings.user_pw.clone().or(url_pw).unwrap_or_default();
        let credentials = user.map(|user| Credentials::new(user, password));

        let mut http = HttpOptions::new(settings.ssl_strict);
        http.user_agent = settings.user_agent.clone();
        http.connect_timeout = secs(settings.connect_timeout);
        // Proxy: the property, else the environment (read once, here).
        http.proxies = match settings.proxy.as_deref().filter(|p| !p.is_empty()) {
            Some(spec) => Proxies::Fixed(Arc::new(Proxy::parse(
                spec,
                settings.proxy_id.as_deref(),
                settings.proxy_pw.as_deref(),
            )?)),
            None => {
                let env = settings
                    .proxy_env
                    .clone()
                    .unwrap_or_else(ProxyEnv::from_process);
                let proxies =
                    Proxies::from_env(&env, settings.proxy_id.clone(), settings.proxy_pw.clone());
                // A variable that names no usable proxy fails here, not at
                // the first connect.
                for probe in ["http://localhost/", "https://localhost/"] {
                    if let Ok(u) = Url::parse(probe) {
                        proxies.for_url(&u)?;
                    }
                }
                proxies
            }
        };
        if let Some(path) = settings.ssl_ca_file.as_deref().filter(|p| !p.is_empty()) {
            http.extra_roots = super::tls::load_ca_file(path)?;
        }
        for (name, value) in &settings.extra_headers {
            if name.contains([':', '\r', '\n']) || value.contains(['\r', '\n']) {
                return Err(format!("Invalid extra header {name}"));
            }
            http.extra_headers.push((name.clone(), value.clone()));
        }
        if !settings.cookies.is_empty() {
            let cookie = settings.cookies.join("; ");
            if cookie.contains(['\r', '\n']) {
                return Err("Invalid cookie".into());
            }
            http.extra_headers.push(("Cookie".into(), cookie));
        }

        Ok(Config {
            url,
            http,
            credentials,
            timeout: secs(settings.timeout),
            retries: settings.retries,
            retry_delay: Duration::from_millis(settings.retry_delay.into()),
            retry_delay_max: Duration::from_millis(settings.retry_delay_max.into()),
            allow_insecure_redirect: settings.allow_insecure_redirect,
        })
    }
}

/// `uri` fit for logs and messages: without the `user:password@` of its
/// authority, whether or not it parses as a URL.
pub(crate) fn redact(uri: &str) -> String {
    if let Ok(mut url) = Url::parse(uri)
        && url.has_host()
    {
        if url.username().is_empty() && url.password().is_none() {
            return uri.to_owned();
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if url.username().is_empty() && url.password().is_none() {
            return url.to_string();
        }
    }
    // Not a URL (or one whose userinfo cannot be removed): drop everything
    // up to the last '@' of what looks like the authority.
    let start = uri.find("://").map_or(0, |i| i + 3);
    let rest = &uri[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}{}", &uri[..start], &rest[at + 1..]),
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn userinfo_is_removed() {
        assert_eq!(
            redact("http://admin:secret@cam:8080/video?x=1"),
            "http://cam:8080/video?x=1"
        );
        assert_eq!(redact("https://admin@cam/"), "https://cam/");
        assert_eq!(redact("http://cam/a@b"), "http://cam/a@b");
        // Unparsable: still no password.
        assert_eq!(
            redact("http://admin:se@cret@cam:99999/video"),
            "http://cam:99999/video"
        );
        assert_eq!(redact("http://admin:secret@[::1/"), "http://[::1/");
        assert_eq!(redact("admin:secret@cam"), "cam");
        assert_eq!(redact("not a url"), "not a url");
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::*;
    use crate::mjpegsrc::settings;

    fn settings_with(proxy: Option<&str>, env: ProxyEnv) -> Settings {
        let mut s = settings::Settings::default().client;
        s.location = Some("http://cam.example:8080/video".into());
        s.proxy = proxy.map(str::to_owned);
        s.proxy_env = Some(env);
        s
    }

    fn proxy_of(config: &Config) -> Option<Proxy> {
        config.http.proxies.for_url(&config.url).expect("usable")
    }

    #[test]
    fn the_property_wins_over_the_environment() {
        let env = ProxyEnv {
            http: "http://envproxy:1".into(),
            ..ProxyEnv::default()
        };
        let c = Config::new(&settings_with(Some("socks5h://s:2"), env.clone())).expect("ok");
        let p = proxy_of(&c).expect("a proxy");
        assert_eq!((p.host.as_str(), p.port), ("s", 2));
        let c = Config::new(&settings_with(None, env)).expect("ok");
        let p = proxy_of(&c).expect("a proxy");
        assert_eq!((p.host.as_str(), p.port), ("envproxy", 1));
    }

    #[test]
    fn no_proxy_from_the_environment() {
        let env = ProxyEnv {
            all: "socks5://s:1".into(),
            no: ".example".into(),
            ..ProxyEnv::default()
        };
        let c = Config::new(&settings_with(None, env)).expect("ok");
        assert_eq!(proxy_of(&c), None);
    }

    #[test]
    fn an_unusable_environment_proxy_fails_at_start() {
        let env = ProxyEnv {
            all: "socks4://s:1".into(),
            ..ProxyEnv::default()
        };
        let err = Config::new(&settings_with(None, env)).err();
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("Unsupported proxy scheme socks4")),
            "{err:?}"
        );
    }

    #[test]
    fn proxy_credentials_are_basic_for_http() {
        let mut s = settings_with(Some("http://u:p@h:3"), ProxyEnv::default());
        s.proxy_id = None;
        let c = Config::new(&s).expect("ok");
        let p = proxy_of(&c).expect("a proxy");
        assert_eq!(p.http_authorization().as_deref(), Some("Basic dTpw"));
    }
}
