// SPDX-License-Identifier: MPL-2.0

//! Who may see the stream: HTTP Basic credentials, compared in constant
//! time, or a signed link ([`super::signed`]). Decides only; the responses
//! are [`super::routes`]'.

use base64::Engine as _;
use http::HeaderValue;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::config::Config;
use super::signed::{self, Link, LinkKey};

/// The configured ways in.
pub(crate) struct Auth {
    /// SHA-256 of the expected `user:password`: what is compared is two
    /// digests of fixed length, so the time taken says nothing about the
    /// length or the content of the password.
    credentials: Option<[u8; 32]>,
    links: Option<LinkKey>,
}

/// The outcome of [`Auth::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Served.
    Allowed,
    /// No credentials given (a browser's first try): 401 when credentials
    /// are configured, else (signed links only) 403. Not a failed login.
    Missing,
    /// Wrong credentials: 401, a failed login.
    WrongCredentials,
    /// A wrong, malformed or expired signed link: 403, a failed login.
    BadLink,
}

impl Verdict {
    /// Whether this counts as a failed login (for the throttle).
    pub(crate) fn is_failure(self) -> bool {
        matches!(self, Verdict::WrongCredentials | Verdict::BadLink)
    }
}

impl Auth {
    pub(crate) fn new(config: &Config) -> Auth {
        Auth {
            credentials: config
                .credentials
                .as_ref()
                .map(|(u, p)| digest(format!("{u}:{p}").as_bytes())),
            links: config.link_secret.as_deref().and_then(LinkKey::new),
        }
    }

    /// Whether any request needs credentials or a signed link.
    pub(crate) fn required(&self) -> bool {
        self.credentials.is_some() || self.links.is_some()
    }

    /// Whether credentials (user-id / user-pw) are configured.
    pub(crate) fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    #[cfg(test)]
    pub(crate) fn link_key(&self) -> Option<&LinkKey> {
        self.links.as_ref()
    }

    /// Whether a request for `path` with `query` and this `Authorization`
    /// header may be served at `now` (unix seconds). A valid link or valid
    /// credentials win; wrong credentials count before a bad link.
    pub(crate) fn check(
        &self,
        path: &str,
        query: Option<&str>,
        authorization: Option<&HeaderValue>,
        now: u64,
    ) -> Verdict {
        if !self.required() {
            return Verdict::Allowed;
        }
        let link = match &self.links {
            Some(key) => signed::verify(key, path, query, now),
            None => Link::Absent,
        };
        if link == Link::Valid {
            return Verdict::Allowed;
        }
        if let Some(expected) = &self.credentials
            && let Some(header) = authorization
        {
            return if basic_matches(expected, header) {
                Verdict::Allowed
            } else {
                Verdict::WrongCredentials
            };
        }
        if link == Link::Invalid {
            return Verdict::BadLink;
        }
        Verdict::Missing
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Whether `header` carries Basic credentials whose `user:password` digest
/// is `expected`, compared in constant time.
fn basic_matches(expected: &[u8; 32], header: &HeaderValue) -> bool {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let value = header.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, token) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return false;
    }
    let token = token.trim_ascii();
    let Ok(given) = STANDARD
        .decode(token)
        .or_else(|_| STANDARD_NO_PAD.decode(token))
    else {
        return false;
    };
    bool::from(digest(&given).ct_eq(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(creds: bool, secret: Option<&str>) -> Auth {
        Auth::new(&Config {
            credentials: creds.then(|| ("user".to_string(), "pw".to_string())),
            link_secret: secret.map(|s| s.as_bytes().to_vec()),
            ..Config::default()
        })
    }

    #[test]
    fn basic_auth() {
        let a = auth(true, None);
        let h = |s: &str| HeaderValue::from_str(s).ok();
        let check = |hv: Option<HeaderValue>| a.check("/", None, hv.as_ref(), 0);
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:pw")
        );
        assert_eq!(check(h(&good)), Verdict::Allowed);
        assert_eq!(check(h(&good.replace("Basic", "basic"))), Verdict::Allowed);
        assert_eq!(check(h("Basic dXNlcjpwdw")), Verdict::Allowed);
        assert_eq!(check(None), Verdict::Missing);
        for bad in [
            "Basic",
            "Basic dXNlcjpwdx==",
            "Bearer dXNlcjpwdw==",
            "Basic dXNlcjpwdw==x",
            // user:pwX, a longer password with the right prefix
            "Basic dXNlcjpwd1g=",
        ] {
            assert_eq!(check(h(bad)), Verdict::WrongCredentials, "{bad}");
        }
        assert_eq!(
            auth(false, None).check("/", None, None, 0),
            Verdict::Allowed
        );
    }

    #[test]
    fn links_and_credentials() {
        let a = auth(true, Some("s"));
        let key = a.link_key().expect("key").clone();
        let url = signed::sign_url(&key, "/snapshot", 10, 100).expect("url");
        let q = url.split_once('?').map(|(_, q)| q);
        assert_eq!(a.check("/snapshot", q, None, 100), Verdict::Allowed);
        assert_eq!(a.check("/stream", q, None, 100), Verdict::BadLink);
        assert_eq!(a.check("/snapshot", q, None, 110), Verdict::BadLink);
        let wrong = HeaderValue::from_static("Basic dXNlcjp4");
        assert_eq!(
            a.check("/stream", q, Some(&wrong), 100),
            Verdict::WrongCredentials
        );
        // Signed links only: no credentials to ask for.
        let links_only = auth(false, Some("s"));
        assert!(links_only.required());
        assert_eq!(links_only.check("/", None, None, 0), Verdict::Missing);
        assert_eq!(
            links_only.check("/", None, Some(&wrong), 0),
            Verdict::Missing
        );
        assert!(Verdict::BadLink.is_failure() && Verdict::WrongCredentials.is_failure());
        assert!(!Verdict::Missing.is_failure());
    }
}
