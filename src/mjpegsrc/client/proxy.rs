// SPDX-License-Identifier: MPL-2.0

//! Which proxy a request goes through, and the SOCKS5 handshake.
//!
//! The `proxy` property names one proxy for every request: `host:port` or
//! `http://host:port` (an HTTP proxy), `socks5://host:port` (SOCKS5, names
//! resolved here) or `socks5h://host:port` (SOCKS5, names resolved by the
//! proxy). When it is unset, the environment decides, as curl and
//! souphttpsrc do, read once when the element starts:
//! * `http_proxy` for `http://` URLs — lower case only (httpoxy: a CGI
//!   program gets `HTTP_PROXY` from a request header);
//! * `HTTPS_PROXY` or `https_proxy` for `https://` URLs;
//! * `ALL_PROXY` or `all_proxy` for both, when the one above is unset;
//! * `NO_PROXY` or `no_proxy`: hosts that bypass the proxy, as a comma
//!   separated list of names (a name matches itself and its subdomains,
//!   `.example.com` only subdomains), IP addresses, CIDR blocks, or `*`.
//!
//! The matching is hyper-util's (`client::proxy::matcher`); the values are
//! read here so that `HTTP_PROXY` is ignored and so that tests can pass
//! explicit values.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::proxy::SocksV5;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use super::auth::Credentials;

/// How to talk to a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyKind {
    /// Absolute-form GET for http, CONNECT for https.
    Http,
    /// A SOCKS5 tunnel; `remote_dns` for `socks5h`.
    Socks5 { remote_dns: bool },
}

/// One proxy, without credentials in its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub(crate) kind: ProxyKind,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// User name and password (HTTP Basic or SOCKS5 user/pass).
    pub(crate) credentials: Option<(String, String)>,
}

impl Proxy {
    /// Parse a proxy URL (`host:port` means `http://host:port`). `id`/`pw`
    /// (the `proxy-id`/`proxy-pw` properties) win over the URL's userinfo.
    pub(crate) fn parse(spec: &str, id: Option<&str>, pw: Option<&str>) -> Result<Proxy, String> {
        let with_scheme = if spec.contains("://") {
            spec.to_owned()
        } else {
            format!("http://{spec}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| format!("Invalid proxy {spec}: {e}"))?;
        let kind = match url.scheme() {
            "http" => ProxyKind::Http,
            "socks5" => ProxyKind::Socks5 { remote_dns: false },
            "socks5h" => ProxyKind::Socks5 { remote_dns: true },
            other => {
                return Err(format!(
                    "Unsupported proxy scheme {other} in {spec} (http, socks5 and socks5h are)"
                ));
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| format!("Invalid proxy {spec}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(match kind {
            ProxyKind::Http => 80,
            ProxyKind::Socks5 { .. } => 1080,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = id
            .map(str::to_owned)
            .unwrap_or_else(|| decode(url.username()));
        let password = pw
            .map(str::to_owned)
            .or_else(|| url.password().map(decode))
            .unwrap_or_default();
        if matches!(kind, ProxyKind::Socks5 { .. }) && (user.len() > 255 || password.len() > 255) {
            return Err("SOCKS5 proxy user name and password are limited to 255 bytes".into());
        }
        Ok(Proxy {
            kind,
            host,
            port,
            credentials: (!user.is_empty()).then_some((user, password)),
        })
    }

    /// The `Proxy-Authorization` value for an HTTP proxy.
    pub(crate) fn http_authorization(&self) -> Option<String> {
        match (&self.credentials, self.kind) {
            (Some((user, password)), ProxyKind::Http) => Some(
                Credentials {
                    user: user.clone(),
                    password: password.clone(),
                }
                .basic(),
            ),
            _ => None,
        }
    }
}

/// The proxy environment variables' values (empty = unset).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProxyEnv {
    pub(crate) http: String,
    pub(crate) https: String,
    pub(crate) all: String,
    pub(crate) no: String,
}

impl ProxyEnv {
    /// Read the process environment (see the module doc for the names).
    pub(crate) fn from_process() -> ProxyEnv {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
                .unwrap_or_default()
        };
        ProxyEnv {
            http: first(&["http_proxy"]),
            https: first(&["HTTPS_PROXY", "https_proxy"]),
            all: first(&["ALL_PROXY", "all_proxy"]),
            no: first(&["NO_PROXY", "no_proxy"]),
        }
    }

    fn is_empty(&self) -> bool {
        self.http.is_empty() && self.https.is_empty() && self.all.is_empty()
    }
}

/// Where requests go: no proxy, the `proxy` property's, or the
/// environment's choice per URL.
#[derive(Clone, Debug, Default)]
pub(crate) enum Proxies {
    #[default]
    Direct,
    Fixed(Arc<Proxy>),
    Env(Arc<EnvProxies>),
}

/// The environment's proxies.
#[derive(Debug)]
pub(crate) struct EnvProxies {
    matcher: Matcher,
    /// `proxy-id`/`proxy-pw`, which win over the variables' userinfo.
    id: Option<String>,
    pw: Option<String>,
}

impl Proxies {
    /// The proxy from the environment's values, or none if they name none.
    pub(crate) fn from_env(env: &ProxyEnv, id: Option<String>, pw: Option<String>) -> Proxies {
        if env.is_empty() {
            return Proxies::Direct;
        }
        let matcher = Matcher::builder()
            .http(env.http.clone())
            .https(env.https.clone())
            .all(env.all.clone())
            .no(env.no.clone())
            .build();
        Proxies::Env(Arc::new(EnvProxies { matcher, id, pw }))
    }

    /// The proxy for `url`, if any. An environment value that is not a
    /// usable proxy URL is an error.
    pub(crate) fn for_url(&self, url: &Url) -> Result<Option<Proxy>, String> {
        match self {
            Proxies::Direct => Ok(None),
            Proxies::Fixed(p) => Ok(Some(Proxy::clone(p))),
            Proxies::Env(env) => {
                let EnvProxies { matcher, id, pw } = &**env;
                let Ok(uri) = url.as_str().parse::<http::Uri>() else {
                    return Ok(None);
                };
                let Some(intercept) = matcher.intercept(&uri) else {
                    return Ok(None);
                };
                let target = intercept.uri();
                let spec = match (target.scheme_str(), target.authority()) {
                    (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
                    _ => target.to_string(),
                };
                let mut proxy = Proxy::parse(&spec, id.as_deref(), pw.as_deref())?;
                if proxy.credentials.is_none() {
                    if let Some((u, p)) = intercept.raw_auth() {
                        proxy.credentials = Some((u.to_owned(), p.to_owned()));
                    } else if let Some(basic) = intercept.basic_auth() {
                        proxy.credentials = basic_credentials(basic.to_str().unwrap_or_default());
                    }
                }
                Ok(Some(proxy))
            }
        }
    }
}

/// User and password back from a `Basic …` value (hyper-util keeps only the
/// encoded header for HTTP proxies).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':').unwrap_or((text.as_str(), ""));
    Some((u.to_owned(), p.to_owned()))
}

/// Connects to the proxy itself, whatever destination hyper-util passes.
#[derive(Clone)]
struct ToProxy {
    host: String,
    port: u16,
}

impl tower_service::Service<http::Uri> for ToProxy {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _dst: http::Uri) -> Self::Future {
        let (host, port) = (self.host.clone(), self.port);
        Box::pin(async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(TokioIo::new(tcp))
        })
    }
}

/// Open a SOCKS5 tunnel to `host:port` through `proxy`.
pub(crate) async fn socks5_connect(proxy: &Proxy, host: &str, port: u16) -> io::Result<TcpStream> {
    use tower_service::Service;
    let ProxyKind::Socks5 { remote_dns } = proxy.kind else {
        return Err(io::Error::other("not a SOCKS5 proxy"));
    };
    let authority = |h: &str, p: u16| {
        if h.contains(':') {
            format!("[{h}]:{p}")
        } else {
            format!("{h}:{p}")
        }
    };
    let uri = |h: &str, p: u16| {
        format!("http://{}", authority(h, p))
            .parse::<http::Uri>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let mut socks = SocksV5::new(
        uri(&proxy.host, proxy.port)?,
        ToProxy {
            host: proxy.host.clone(),
            port: proxy.port,
        },
    )
    .local_dns(!remote_dns);
    if let Some((user, password)) = &proxy.credentials {
        socks = socks.with_auth(user.clone(), password.clone());
    }
    let io = socks
        .call(uri(host, port)?)
        .await
        .map_err(|e| io::Error::other(format!("SOCKS5 proxy: {e}")))?;
    Ok(io.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(http: &str, https: &str, all: &str, no: &str) -> ProxyEnv {
        ProxyEnv {
            http: http.into(),
            https: https.into(),
            all: all.into(),
            no: no.into(),
        }
    }

    fn pick(p: &Proxies, url: &str) -> Option<String> {
        let url = Url::parse(url).expect("test URL");
        p.for_url(&url)
            .expect("usable proxy")
            .map(|p| format!("{:?} {}:{}", p.kind, p.host, p.port))
    }

    #[test]
    fn scheme_selects_the_variable() {
        let p = Proxies::from_env(&env("hp:1", "hsp:2", "", ""), None, None);
        assert_eq!(pick(&p, "http://cam/").as_deref(), Some("Http hp:1"));
        assert_eq!(pick(&p, "https://cam/").as_deref(), Some("Http hsp:2"));
    }

    #[test]
    fn all_proxy_is_the_fallback() {
        let p = Proxies::from_env(&env("", "", "socks5h://s:1080", ""), None, None);
        assert_eq!(
            pick(&p, "http://cam/").as_deref(),
            Some("Socks5 { remote_dns: true } s:1080")
        );
        let p = Proxies::from_env(&env("hp:1", "", "socks5://s:9", ""), None, None);
        assert_eq!(pick(&p, "http://cam/").as_deref(), Some("Http hp:1"));
        assert_eq!(
            pick(&p, "https://cam/").as_deref(),
            Some("Socks5 { remote_dns: false } s:9")
        );
    }

    #[test]
    fn no_proxy_domains_and_cidrs_bypass() {
        let p = Proxies::from_env(
            &env("hp:1", "", "", "example.com, .lan,192.168.0.0/16,::1"),
            None,
            None,
        );
        assert_eq!(pick(&p, "http://example.com/"), None);
        assert_eq!(pick(&p, "http://cam.example.com/"), None);
        assert_eq!(pick(&p, "http://cam.lan:8080/"), None);
        assert_eq!(pick(&p, "http://192.168.3.4/"), None);
        assert_eq!(pick(&p, "http://[::1]:80/"), None);
        assert_eq!(
            pick(&p, "http://notexample.com/").as_deref(),
            Some("Http hp:1")
        );
        assert_eq!(pick(&p, "http://10.0.0.1/").as_deref(), Some("Http hp:1"));
        let star = Proxies::from_env(&env("hp:1", "", "", "*"), None, None);
        assert_eq!(pick(&star, "http://anything/"), None);
    }

    #[test]
    fn nothing_set_is_direct() {
        let p = Proxies::from_env(&env("", "", "", "localhost"), None, None);
        assert!(matches!(p, Proxies::Direct));
        assert_eq!(pick(&p, "http://cam/"), None);
    }

    #[test]
    fn credentials_from_the_variable_or_the_properties() {
        let url = Url::parse("http://cam/").expect("test URL");
        let p = Proxies::from_env(&env("http://u%40x:p%3A@hp:1", "", "", ""), None, None);
        let proxy = p.for_url(&url).expect("ok").expect("proxy");
        assert_eq!(proxy.credentials, Some(("u@x".to_owned(), "p:".to_owned())));
        let p = Proxies::from_env(
            &env("http://u:p@hp:1", "", "", ""),
            Some("id".into()),
            Some("pw".into()),
        );
        let proxy = p.for_url(&url).expect("ok").expect("proxy");
        assert_eq!(proxy.credentials, Some(("id".to_owned(), "pw".to_owned())));
        let p = Proxies::from_env(&env("", "", "socks5://su:sp@s:1", ""), None, None);
        let proxy = p.for_url(&url).expect("ok").expect("proxy");
        assert_eq!(proxy.credentials, Some(("su".to_owned(), "sp".to_owned())));
    }

    #[test]
    fn property_syntax() {
        let p = Proxy::parse("h:3128", None, None).expect("ok");
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::Http, "h", 3128)
        );
        let p = Proxy::parse("socks5h://[::1]:1", Some("a"), Some("b")).expect("ok");
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: true });
        assert_eq!(p.host, "::1");
        assert_eq!(p.credentials, Some(("a".to_owned(), "b".to_owned())));
        assert_eq!(
            Proxy::parse("socks5://s", None, None).map(|p| p.port),
            Ok(1080)
        );
        assert!(Proxy::parse("ftp://h:1", None, None).is_err());
        assert!(Proxy::parse("socks4://h:1", None, None).is_err());
    }
}
