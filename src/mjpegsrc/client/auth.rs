// SPDX-License-Identifier: MPL-2.0

//! HTTP authentication for the source: Basic and Digest (RFC 7616, `qop=auth`,
//! MD5/SHA-256 and their `-sess` variants, as Dahua, Axis and Hikvision
//! cameras require), driven by the server's `WWW-Authenticate` challenges.

use base64::Engine;

/// A user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl Credentials {
    /// `Basic <base64(user:password)>`.
    pub(crate) fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

enum Scheme {
    /// Nothing learnt yet: the first request goes without credentials.
    None,
    Basic,
    Digest(Box<digest_auth::WwwAuthenticateHeader>),
}

/// What to do after a 401.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send the request again with the new credentials.
    Retry,
    /// The credentials were refused, or there are none, or the challenge
    /// cannot be answered.
    Refused(String),
}

/// Authentication state kept across requests and reconnects, so a Digest
/// nonce is reused (with a growing nonce count) until the server calls it
/// stale.
pub(crate) struct Auth {
    credentials: Option<Credentials>,
    scheme: Scheme,
}

impl Auth {
    pub(crate) fn new(credentials: Option<Credentials>) -> Self {
        Auth {
            credentials,
            scheme: Scheme::None,
        }
    }

    /// The `Authorization` value for a GET of `uri` (path and query), if any.
    pub(crate) fn authorization(&mut self, uri: &str) -> Option<String> {
        let creds = self.credentials.as_ref()?;
        match &mut self.scheme {
            Scheme::None => None,
            Scheme::Basic => Some(creds.basic()),
            Scheme::Digest(challenge) => {
                let ctx = digest_auth::AuthContext::new(
                    creds.user.as_str(),
                    creds.password.as_str(),
                    uri,
                );
                challenge.respond(&ctx).ok().map(|h| h.to_header_string())
            }
        }
    }

    /// Learn from a 401 response's `WWW-Authenticate` values.
    pub(crate) fn challenge<'a>(&mut self, offers: impl Iterator<Item = &'a str>) -> Verdict {
        if self.credentials.is_none() {
            return Verdict::Refused("authentication required, and no credentials are set".into());
        }
        let mut digest = None;
        let mut basic = false;
        for offer in offers.flat_map(split_challenges) {
            let scheme = offer.split_whitespace().next().unwrap_or("");
            if scheme.eq_ignore_ascii_case("digest") {
                // The crate wants the exact prefix "Digest".
                let params = offer[scheme.len()..].trim_start();
                match digest_auth::parse(&format!("Digest {params}")) {
                    Ok(c) if digest.is_none() => digest = Some(c),
                    Ok(_) => {}
                    Err(_) => {}
                }
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
        let previous = std::mem::replace(&mut self.scheme, Scheme::None);
        match (digest, previous) {
            // A fresh nonce after a stale one: same password, try again.
            (Some(d), Scheme::Digest(_)) if d.stale => {
                self.scheme = Scheme::Digest(Box::new(d));
                Verdict::Retry
            }
            (Some(_), Scheme::Digest(_)) => Verdict::Refused("Digest credentials refused".into()),
            (Some(d), _) => {
                self.scheme = Scheme::Digest(Box::new(d));
                Verdict::Retry
            }
            (None, Scheme::None) if basic => {
                self.scheme = Scheme::Basic;
                Verdict::Retry
            }
            (None, Scheme::Basic) if basic => Verdict::Refused("Basic credentials refused".into()),
            (None, _) if basic => {
                self.scheme = Scheme::Basic;
                Verdict::Retry
            }
            (None, _) => Verdict::Refused("no supported authentication scheme offered".into()),
        }
    }
}

/// One header value may carry several challenges:
/// `Digest realm="a", nonce="b", Basic realm="a"`. Split before each
/// token that starts a new challenge (a scheme name followed by a space).
fn split_challenges(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_quotes = !in_quotes,
            b'\\' if in_quotes => i += 1,
            b',' if !in_quotes => {
                let rest = value[i + 1..].trim_start();
                let token: &str = rest.split([' ', '=', ',']).next().unwrap_or("");
                let after = &rest[token.len()..];
                if !token.is_empty()
                    && after.starts_with(' ')
                    && !after.trim_start().starts_with('=')
                {
                    out.push(value[start..i].trim());
                    start = value.len() - rest.len();
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Option<Credentials> {
        Some(Credentials {
            user: "admin".into(),
            password: "secret".into(),
        })
    }

    #[test]
    fn basic_header() {
        let c = creds().unwrap();
        assert_eq!(c.basic(), "Basic YWRtaW46c2VjcmV0");
    }

    #[test]
    fn splits_combined_challenges() {
        let v = r#"Digest realm="cam, 1", qop="auth", nonce="abc", Basic realm="cam""#;
        assert_eq!(
            split_challenges(v),
            vec![
                r#"Digest realm="cam, 1", qop="auth", nonce="abc""#,
                r#"Basic realm="cam""#
            ]
        );
    }

    #[test]
    fn digest_preferred_and_nc_grows() {
        let mut a = Auth::new(creds());
        assert_eq!(a.authorization("/video"), None);
        let v = [
            r#"Basic realm="cam""#,
            r#"Digest realm="cam", qop="auth", nonce="n1", algorithm=MD5"#,
        ];
        assert_eq!(a.challenge(v.into_iter()), Verdict::Retry);
        let h1 = a.authorization("/video").unwrap();
        assert!(h1.starts_with("Digest "), "{h1}");
        assert!(h1.contains("nc=00000001"), "{h1}");
        assert!(h1.contains(r#"uri="/video""#), "{h1}");
        let h2 = a.authorization("/video").unwrap();
        assert!(h2.contains("nc=00000002"), "{h2}");
        // Refused again without stale: give up.
        assert!(matches!(a.challenge(v.into_iter()), Verdict::Refused(_)));
    }

    #[test]
    fn stale_digest_retries() {
        let mut a = Auth::new(creds());
        let first = [r#"Digest realm="cam", qop="auth", nonce="n1""#];
        assert_eq!(a.challenge(first.into_iter()), Verdict::Retry);
        let stale = [r#"Digest realm="cam", qop="auth", nonce="n2", stale=true"#];
        assert_eq!(a.challenge(stale.into_iter()), Verdict::Retry);
        assert!(a.authorization("/").unwrap().contains(r#"nonce="n2""#));
    }

    #[test]
    fn basic_then_refused() {
        let mut a = Auth::new(creds());
        let v = [r#"Basic realm="x""#];
        assert_eq!(a.challenge(v.into_iter()), Verdict::Retry);
        assert_eq!(a.authorization("/").unwrap(), "Basic YWRtaW46c2VjcmV0");
        assert!(matches!(a.challenge(v.into_iter()), Verdict::Refused(_)));
    }

    #[test]
    fn no_credentials_refused() {
        let mut a = Auth::new(None);
        assert!(matches!(
            a.challenge([r#"Basic realm="x""#].into_iter()),
            Verdict::Refused(_)
        ));
    }
}
