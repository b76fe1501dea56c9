// SPDX-License-Identifier: MPL-2.0

//! Signed links: a URL that opens one path without credentials until it
//! expires, for embedding a stream in a page without handing out the
//! password.
//!
//! A link is `<path>?exp=<unix seconds>&sig=<hex>` where `sig` is the
//! lower-case hex HMAC-SHA256, keyed with the `link-secret`, of
//! `"<path>\n<exp>"`. It opens exactly `<path>` (the request's path as sent,
//! not decoded): a request carrying a signature *and* an `action` query
//! parameter is refused, so a link for `/snapshot` opens neither `/stream`
//! nor `/?action=snapshot`, and a link for `/` opens only the stream. Any
//! other query parameter (`?fps=`, `?advance_headers=`) stays free.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lower-case hex digits of an HMAC-SHA256.
const SIG_HEX_LEN: usize = 64;

/// The `link-secret`, ready to sign and verify.
#[derive(Clone)]
pub(crate) struct LinkKey(HmacSha256);

impl LinkKey {
    /// `None` for an empty secret (signed links off).
    pub(crate) fn new(secret: &[u8]) -> Option<LinkKey> {
        if secret.is_empty() {
            return None;
        }
        HmacSha256::new_from_slice(secret).ok().map(LinkKey)
    }

    fn mac(&self, path: &str, exp: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(exp.as_bytes());
        mac
    }
}

/// What a request's query says about a signed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Neither `exp` nor `sig`: not a signed link.
    Absent,
    /// A valid, unexpired link for this path.
    Valid,
    /// A link that does not open this request: wrong or malformed
    /// signature, expired, repeated parameters, or an `action` parameter.
    Invalid,
}

/// Check the signed link (if any) in `query` for `path` at `now` (unix
/// seconds).
pub(crate) fn verify(key: &LinkKey, path: &str, query: Option<&str>, now: u64) -> Link {
    let Some(query) = query else {
        return Link::Absent;
    };
    let (mut exp, mut sig) = (Vec::new(), Vec::new());
    let mut action = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "exp" => exp.push(v),
            "sig" => sig.push(v),
            "action" => action = true,
            _ => {}
        }
    }
    if exp.is_empty() && sig.is_empty() {
        return Link::Absent;
    }
    let ([exp], [sig]) = (&exp[..], &sig[..]) else {
        return Link::Invalid;
    };
    if action || exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return Link::Invalid;
    }
    let Ok(expires) = exp.parse::<u64>() else {
        return Link::Invalid;
    };
    let Some(sig) = decode_hex(sig) else {
        return Link::Invalid;
    };
    // Verify before looking at the time, so an expired link costs as much
    // as a wrong one.
    let genuine = key.mac(path, exp).verify_slice(&sig).is_ok();
    if genuine && now < expires {
        Link::Valid
    } else {
        Link::Invalid
    }
}

/// `<path>?exp=<now + ttl>&sig=<hex>`, or `None` when `path` is not an
/// absolute path without query or fragment.
pub(crate) fn sign_url(key: &LinkKey, path: &str, ttl_seconds: u32, now: u64) -> Option<String> {
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return None;
    }
    let pq: http::uri::PathAndQuery = path.parse().ok()?;
    if pq.path() != path {
        return None;
    }
    let exp = now.saturating_add(u64::from(ttl_seconds)).to_string();
    let sig = key.mac(path, &exp).finalize().into_bytes();
    let mut url = format!("{path}?exp={exp}&sig=");
    for b in sig {
        url.push_str(&format!("{b:02x}"));
    }
    Some(url)
}

/// Lower-case hex only (the signature's one spelling).
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != SIG_HEX_LEN {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> (&str, Option<&str>) {
        match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        }
    }

    #[test]
    fn known_vector() {
        // printf '/snapshot\n2000000000' | openssl dgst -sha256 -hmac secret
        let key = LinkKey::new(b"secret").expect("key");
        assert_eq!(
            sign_url(&key, "/snapshot", 1000, 1_999_999_000).as_deref(),
            Some(
                "/snapshot?exp=2000000000&sig=\
                 4a242e52ab59c75417a4125282b56bacc9457afb8c049c8241969e87c8bde174"
            )
        );
    }

    #[test]
    fn exactly_that_path_until_it_expires() {
        let key = LinkKey::new(b"k").expect("key");
        let url = sign_url(&key, "/snapshot", 60, 1000).expect("url");
        let (path, q) = query(&url);
        assert_eq!(verify(&key, path, q, 1000), Link::Valid);
        assert_eq!(verify(&key, path, q, 1059), Link::Valid);
        assert_eq!(verify(&key, path, q, 1060), Link::Invalid, "expired");
        assert_eq!(verify(&key, "/stream", q, 1000), Link::Invalid);
        assert_eq!(verify(&key, "/", q, 1000), Link::Invalid);
        let with_action = format!("{}&action=snapshot", q.unwrap_or(""));
        assert_eq!(verify(&key, path, Some(&with_action), 1000), Link::Invalid);
        let with_fps = format!("fps=5&{}", q.unwrap_or(""));
        assert_eq!(verify(&key, path, Some(&with_fps), 1000), Link::Valid);
        let other = LinkKey::new(b"other").expect("key");
        assert_eq!(verify(&other, path, q, 1000), Link::Invalid);
        let upper = q
            .unwrap_or("")
            .to_ascii_uppercase()
            .replace("EXP", "exp")
            .replace("SIG", "sig");
        assert_eq!(verify(&key, path, Some(&upper), 1000), Link::Invalid);
        let twice = format!("{}&exp=1", q.unwrap_or(""));
        assert_eq!(verify(&key, path, Some(&twice), 1000), Link::Invalid);
        assert_eq!(verify(&key, path, Some("fps=5"), 1000), Link::Absent);
        assert_eq!(verify(&key, path, None, 1000), Link::Absent);
        assert_eq!(verify(&key, path, Some("sig=zz"), 1000), Link::Invalid);
        assert_eq!(verify(&key, path, Some("exp=+5&sig="), 1000), Link::Invalid);
    }

    #[test]
    fn sign_url_wants_a_plain_path() {
        let key = LinkKey::new(b"k").expect("key");
        assert!(sign_url(&key, "snapshot", 1, 0).is_none());
        assert!(sign_url(&key, "/a?b", 1, 0).is_none());
        assert!(sign_url(&key, "/a#b", 1, 0).is_none());
        assert!(sign_url(&key, "/a b", 1, 0).is_none());
        assert!(LinkKey::new(b"").is_none());
    }
}
