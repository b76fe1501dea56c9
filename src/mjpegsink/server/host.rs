// SPDX-License-Identifier: MPL-2.0

//! The authority check (DNS-rebinding protection): a web page can make its
//! own name resolve to 127.0.0.1 and then read whatever a browser on that
//! machine can reach on localhost, but the browser still names the page's
//! host in the request. So a server bound to a loopback address answers
//! only requests that name a loopback host (`localhost`, `*.localhost`,
//! `127.0.0.0/8`, `::1`, any port) or an `allowed-hosts` entry; bound
//! elsewhere, a non-empty `allowed-hosts` restricts it the same way.
//!
//! The authority is the absolute-form target's (`GET http://h/ HTTP/1.1`)
//! or HTTP/2's `:authority` (both are the URI's authority in hyper), else
//! the `Host` header. A request naming none (HTTP/1.0 without `Host`) is
//! served: browsers always send one.

use std::net::{IpAddr, SocketAddr};

use http::{Request, header};

/// Which authorities a server answers.
#[derive(Debug)]
pub(crate) struct HostRules {
    /// Loopback names alone, when `allowed` is empty.
    restricted: bool,
    /// `allowed-hosts` entries: (lower-case host, port if the entry has one).
    allowed: Vec<(String, Option<u16>)>,
}

impl HostRules {
    /// The rules of a server bound to `local` with these `allowed-hosts`.
    pub(crate) fn new(local: SocketAddr, allowed_hosts: &[String]) -> Self {
        let allowed: Vec<_> = allowed_hosts
            .iter()
            .filter_map(|e| split_authority(e.trim()))
            .map(|(h, p)| (normalize(h), p))
            .collect();
        HostRules {
            restricted: local.ip().is_loopback() || !allowed.is_empty(),
            allowed,
        }
    }

    /// Whether a request with this authority is answered.
    pub(crate) fn allows(&self, authority: Option<&str>) -> bool {
        if !self.restricted {
            return true;
        }
        let Some(authority) = authority.map(str::trim).filter(|a| !a.is_empty()) else {
            return true;
        };
        // userinfo is not part of a Host, and an absolute URI's is ignored.
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        let host = normalize(host);
        is_loopback_name(&host)
            || self
                .allowed
                .iter()
                .any(|(h, p)| *h == host && (p.is_none() || *p == port))
    }

    /// [`Self::allows`] for a request's authority.
    pub(crate) fn allows_request<B>(&self, req: &Request<B>) -> bool {
        if let Some(a) = req.uri().authority() {
            return self.allows(Some(a.as_str()));
        }
        match req.headers().get(header::HOST) {
            None => self.allows(None),
            Some(v) => v.to_str().is_ok_and(|h| self.allows(Some(h))),
        }
    }
}

/// Lower case, without a trailing dot (`localhost.` is `localhost`).
fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `host[:port]` or `[v6][:port]` into the host (brackets removed) and the
/// port; `None` if malformed.
fn split_authority(a: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match a.rsplit_once(':') {
            // A bare IPv6 address (an allowed-hosts entry may be one).
            Some((h, _)) if h.contains(':') => (a, None),
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse().ok()?),
    };
    Some((host, port))
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(local: &str, allowed: &[&str]) -> HostRules {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        HostRules::new(local.parse().expect("addr"), &allowed)
    }

    #[test]
    fn loopback_bound() {
        let r = rules("127.0.0.1:8080", &[]);
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "cam.localhost:1",
            "127.0.0.1",
            "127.1.2.3:99",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
            "user@localhost",
        ] {
            assert!(r.allows(Some(ok)), "{ok}");
        }
        assert!(r.allows(None));
        assert!(r.allows(Some("")));
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "evillocalhost",
            "128.0.0.1",
            "10.0.0.1",
            "[::2]",
            "localhost:notaport",
            "[::1",
            "localhost@evil.example",
            ":80",
        ] {
            assert!(!r.allows(Some(bad)), "{bad}");
        }
    }

    #[test]
    fn allowed_hosts() {
        let r = rules(
            "127.0.0.1:8080",
            &["cam.lan", "Other.Lan:81", "192.168.1.9"],
        );
        assert!(r.allows(Some("CAM.LAN")));
        assert!(r.allows(Some("cam.lan:8080")));
        assert!(r.allows(Some("other.lan:81")));
        assert!(!r.allows(Some("other.lan:80")));
        assert!(!r.allows(Some("other.lan")));
        assert!(r.allows(Some("192.168.1.9:8080")));
        assert!(!r.allows(Some("evil.example")));
        assert!(r.allows(Some("localhost")));

        let open = rules("0.0.0.0:8080", &[]);
        assert!(open.allows(Some("evil.example")));
        let closed = rules("0.0.0.0:8080", &["cam.lan"]);
        assert!(!closed.allows(Some("evil.example")));
        assert!(closed.allows(Some("cam.lan")));
        let v6 = rules("[::]:8080", &["fd00::1"]);
        assert!(v6.allows(Some("[fd00::1]:8080")));
    }
}
