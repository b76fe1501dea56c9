// SPDX-License-Identifier: MPL-2.0

//! Login throttling: after [`THROTTLE_MAX_FAILURES`] failed logins (wrong
//! credentials, bad signed links) from one address within
//! [`THROTTLE_WINDOW`] of the first, every request from that address is
//! answered 429 until the window is over, a correct password included
//! (otherwise the throttle would stop nothing). Other addresses are not
//! affected.
//!
//! Addresses: IPv4 as is (IPv4-mapped IPv6 counts as IPv4); IPv6 by its /64,
//! which is what one host usually controls. Behind a reverse proxy every
//! viewer has the proxy's address: for a peer listed in `trusted-proxies`
//! the key is the last `X-Forwarded-For` hop (the address the proxy itself
//! saw), for any other peer the header is ignored.
//!
//! The table is bounded ([`THROTTLE_TABLE_SIZE`] addresses): a new address
//! arriving at a full table first clears expired entries, then evicts the
//! entry whose window started first. An attacker with more addresses than
//! that can therefore make the oldest entries forget their failures, but
//! still gets at most `THROTTLE_MAX_FAILURES` tries per address and window.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::config::{THROTTLE_MAX_FAILURES, THROTTLE_TABLE_SIZE, THROTTLE_WINDOW};
use crate::runtime::lock;

/// What the throttle counts by: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl From<IpAddr> for Key {
    fn from(ip: IpAddr) -> Key {
        match canonical(ip) {
            IpAddr::V4(v4) => Key::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Key::V6Prefix([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The address a request is counted by: `peer`, or for a trusted proxy
/// the last `X-Forwarded-For` hop (when it is an address; else the proxy).
pub(crate) fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|t| canonical(*t) == peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(parse_hop)
        .map_or(peer, canonical)
}

/// `1.2.3.4`, `::1`, `[::1]`, `1.2.3.4:80`, `[::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
}

struct Entry {
    since: Instant,
    failures: u32,
}

/// Failed logins per address, bounded.
pub(crate) struct Throttle {
    table: Mutex<HashMap<Key, Entry>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            table: Mutex::new(HashMap::new()),
        }
    }
}

impl Throttle {
    /// How long `key` stays throttled, if it is.
    pub(crate) fn retry_after(&self, key: Key, now: Instant) -> Option<Duration> {
        let mut t = lock(&self.table);
        let e = t.get(&key)?;
        let elapsed = now.saturating_duration_since(e.since);
        if elapsed >= THROTTLE_WINDOW {
            t.remove(&key);
            return None;
        }
        (e.failures >= THROTTLE_MAX_FAILURES).then(|| THROTTLE_WINDOW - elapsed)
    }

    /// Count a failed login from `key`.
    pub(crate) fn failed(&self, key: Key, now: Instant) {
        let mut t = lock(&self.table);
        if let Some(e) = t.get_mut(&key) {
            if now.saturating_duration_since(e.since) < THROTTLE_WINDOW {
                e.failures = e.failures.saturating_add(1);
            } else {
                *e = Entry {
                    since: now,
                    failures: 1,
                };
            }
            return;
        }
        if t.len() >= THROTTLE_TABLE_SIZE {
            t.retain(|_, e| now.saturating_duration_since(e.since) < THROTTLE_WINDOW);
        }
        if t.len() >= THROTTLE_TABLE_SIZE
            && let Some(oldest) = t.iter().min_by_key(|(_, e)| e.since).map(|(k, _)| *k)
        {
            t.remove(&oldest);
        }
        t.insert(
            key,
            Entry {
                since: now,
                failures: 1,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).len()
    }
}

/// `Retry-After` seconds for `left` (rounded up, at least 1).
pub(crate) fn retry_after_secs(left: Duration) -> u64 {
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Key {
        Key::from(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    #[test]
    fn ten_failures_then_a_minute() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let k = v4(10, 0, 0, 1);
        for i in 0..THROTTLE_MAX_FAILURES {
            assert_eq!(t.retry_after(k, t0), None, "after {i} failures");
            t.failed(k, t0 + Duration::from_secs(u64::from(i)));
        }
        let left = t.retry_after(k, t0 + Duration::from_millis(20_500));
        assert_eq!(left, Some(Duration::from_millis(39_500)));
        assert_eq!(retry_after_secs(Duration::from_millis(39_500)), 40);
        assert_eq!(t.retry_after(v4(10, 0, 0, 2), t0), None, "others");
        assert_eq!(t.retry_after(k, t0 + THROTTLE_WINDOW), None, "over");
        // A fresh window after that.
        t.failed(k, t0 + THROTTLE_WINDOW);
        assert_eq!(t.retry_after(k, t0 + THROTTLE_WINDOW), None);
    }

    #[test]
    fn ipv6_by_64_and_mapped_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(Key::from(a), Key::from(b));
        assert_ne!(Key::from(a), Key::from(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(Key::from(mapped), v4(10, 0, 0, 1));
    }

    #[test]
    fn table_is_bounded_and_evicts_the_oldest() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let first = v4(192, 168, 0, 1);
        for _ in 0..THROTTLE_MAX_FAILURES {
            t.failed(first, t0);
        }
        for i in 0..THROTTLE_TABLE_SIZE {
            let ip = Ipv4Addr::from(0x0a00_0000 + i as u32);
            t.failed(Key::from(IpAddr::V4(ip)), t0 + Duration::from_millis(1));
        }
        assert_eq!(t.len(), THROTTLE_TABLE_SIZE);
        assert_eq!(t.retry_after(first, t0 + Duration::from_millis(2)), None);
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let other: IpAddr = "127.0.0.2".parse().expect("ip");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().expect("hv"));
        h.append("x-forwarded-for", "3.3.3.3".parse().expect("hv"));
        let trusted = [proxy];
        assert_eq!(
            client_addr(proxy, &h, &trusted),
            "3.3.3.3".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_addr(other, &h, &trusted), other);
        assert_eq!(client_addr(proxy, &h, &[]), proxy);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            "1.1.1.1, [2001:db8::1]:80".parse().expect("hv"),
        );
        assert_eq!(
            client_addr(proxy, &h, &trusted),
            "2001:db8::1".parse::<IpAddr>().expect("ip")
        );
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "unknown".parse().expect("hv"));
        assert_eq!(client_addr(proxy, &h, &trusted), proxy);
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &trusted), proxy);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "4.4.4.4".parse().expect("hv"));
        assert_eq!(
            client_addr(mapped, &h, &trusted),
            "4.4.4.4".parse::<IpAddr>().expect("ip")
        );
    }
}
