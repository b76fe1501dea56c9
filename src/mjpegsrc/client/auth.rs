// SPDX-License-Identifier: MPL-2.0

//! HTTP authentication for the source: Basic and Digest (RFC 7616, `qop=auth`,
//! MD5/SHA-256 and their `-sess` variants, as Dahua, Axis and Hikvision
//! cameras require), driven by the server's `WWW-Authenticate` challenges.
//!
//! Challenges are parsed by `http-auth` (RFC 7235 challenge lists), which
//! reports malformed or non-ASCII text as an error instead of panicking: a
//! challenge we cannot read is a clear authentication error.
//!
//! Rules, as curl applies them: Digest is preferred over Basic, and once a
//! server has offered Digest the password is never sent to it in Basic (a
//! later 401 offering only Basic is refused, not answered).

use base64::Engine;
use http_auth::{ChallengeParser, DigestClient, PasswordParams};

/// A user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

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
    Digest(Box<DigestClient>),
}

/// What to do after a 401.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the request again with the new credentials.
    Retry,
    /// The credentials were refused, or there are none, or the challenge
    /// cannot be answered.
    Refused(String),
}

/// Authentication state kept across requests and reconnects, so a Digest
/// nonce is reused (with a growing nonce count) until the server calls it
/// stale, and a server that offered Digest once never gets Basic.
pub struct Auth {
    credentials: Option<Credentials>,
    scheme: Scheme,
    /// The server has offered Digest (even a malformed one): never Basic.
    digest_offered: bool,
}

/// Whether a challenge list names the Digest scheme, read loosely (so a
/// list the parser rejects still counts).
fn names_digest(value: &str) -> bool {
    value.split(',').any(|item| {
        item.split_ascii_whitespace()
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case("digest"))
    })
}

impl Auth {
    pub fn new(credentials: Option<Credentials>) -> Self {
        Auth {
            credentials,
            scheme: Scheme::None,
            digest_offered: false,
        }
    }

    /// The `Authorization` value for a GET of `uri` (path and query), if any.
    pub fn authorization(&mut self, uri: &str) -> Option<String> {
        let creds = self.credentials.as_ref()?;
        match &mut self.scheme {
            Scheme::None => None,
            Scheme::Basic => Some(creds.basic()),
            Scheme::Digest(client) => client
                .respond(&PasswordParams {
                    username: &creds.user,
                    password: &creds.password,
                    uri,
                    method: "GET",
                    // Without a body, `qop=auth` is chosen when a camera
                    // offers `auth,auth-int`, as cameras expect for a GET.
                    body: None,
                })
                .ok(),
        }
    }

    /// Learn from a 401 response's `WWW-Authenticate` values.
    pub fn challenge<'a>(&mut self, offers: impl Iterator<Item = &'a str>) -> Verdict {
        if self.credentials.is_none() {
            return Verdict::Refused("authentication required, and no credentials are set".into());
        }
        let mut digest: Option<DigestClient> = None;
        let mut digest_error: Option<String> = None;
        let mut parse_error: Option<String> = None;
        let mut basic = false;
        for value in offers {
            if names_digest(value) {
                self.digest_offered = true;
            }
            for item in ChallengeParser::new(value) {
                match item {
                    Ok(c) if c.scheme.eq_ignore_ascii_case("digest") => {
                        self.digest_offered = true;
                        match DigestClient::try_from(&c) {
                            Ok(d) => {
                                digest.get_or_insert(d);
                            }
                            Err(e) => {
                                digest_error.get_or_insert(e);
                            }
                        }
                    }
                    Ok(c) if c.scheme.eq_ignore_ascii_case("basic") => basic = true,
                    Ok(_) => {}
                    Err(e) => {
                        parse_error.get_or_insert_with(|| e.to_string());
                        break;
                    }
                }
            }
        }
        let previous = std::mem::replace(&mut self.scheme, Scheme::None);
        match (digest, previous) {
            // A fresh nonce after a stale one: same password, try again.
            (Some(d), Scheme::Digest(_)) if d.stale() => {
                self.scheme = Scheme::Digest(Box::new(d));
                Verdict::Retry
            }
            (Some(_), Scheme::Digest(_)) => Verdict::Refused("Digest credentials refused".into()),
            (Some(d), _) => {
                self.scheme = Scheme::Digest(Box::new(d));
                Verdict::Retry
            }
            (None, _)
                if digest_error.is_some() || (parse_error.is_some() && self.digest_offered) =>
            {
                let why = digest_error.or(parse_error).unwrap_or_default();
                Verdict::Refused(format!("malformed Digest challenge: {why}"))
            }
            (None, _) if basic && self.digest_offered => Verdict::Refused(
                "the server offered Digest before and now only Basic: \
                 the password is not sent in Basic"
                    .into(),
            ),
            (None, Scheme::Basic) if basic => Verdict::Refused("Basic credentials refused".into()),
            (None, _) if basic => {
                self.scheme = Scheme::Basic;
                Verdict::Retry
            }
            (None, _) => match parse_error {
                Some(e) => Verdict::Refused(format!("malformed challenge: {e}")),
                None => Verdict::Refused("no supported authentication scheme offered".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Option<Credentials> {
        Some(Credentials::new("admin", "secret"))
    }

    #[test]
    fn basic_header() {
        let c = creds().unwrap();
        assert_eq!(c.basic(), "Basic YWRtaW46c2VjcmV0");
    }

    #[test]
    fn combined_challenges_prefer_digest() {
        let mut a = Auth::new(creds());
        let v = [r#"Basic realm="cam, 1", Digest realm="cam, 1", qop="auth", nonce="abc""#];
        assert_eq!(a.challenge(v.into_iter()), Verdict::Retry);
        let h = a.authorization("/").unwrap();
        assert!(h.starts_with("Digest "), "{h}");
        assert!(h.contains(r#"realm="cam, 1""#), "{h}");
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

    #[test]
    fn never_basic_after_digest() {
        let mut a = Auth::new(creds());
        let d = [r#"Digest realm="cam", qop="auth", nonce="n1""#];
        assert_eq!(a.challenge(d.into_iter()), Verdict::Retry);
        let v = a.challenge([r#"Basic realm="cam""#].into_iter());
        assert!(
            matches!(&v, Verdict::Refused(why) if why.contains("Basic")),
            "{v:?}"
        );
        assert_eq!(a.authorization("/"), None);
        // Even across reconnects (the same Auth): Basic stays refused.
        assert!(matches!(
            a.challenge([r#"Basic realm="cam""#].into_iter()),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn malformed_digest_is_an_error_not_a_panic() {
        for bad in [
            "Digest realm=\"caméra\", nonce=\"é\", qop=\"auth\"",
            "Digest réalm=x",
            "Digest nonce=\"n\", realm=\"a\", qop=\"aüth\"",
            "Digest realm=\"a\"",
            "Digest realm=\"a\", nonce=\"unterminated",
            "Digest ,,,, ==",
            "Digest realm=\"a\", nonce=\"n\", algorithm=\"MD5\u{0}\"",
        ] {
            let mut a = Auth::new(creds());
            let v = a.challenge([bad].into_iter());
            assert!(
                matches!(&v, Verdict::Refused(why) if why.contains("Digest")),
                "{bad:?}: {v:?}"
            );
        }
    }

    #[test]
    fn malformed_digest_with_basic_is_refused() {
        let mut a = Auth::new(creds());
        let v = a.challenge(["Digest realm=\"é\", nonce=\"n\"", "Basic realm=\"x\""].into_iter());
        assert!(matches!(v, Verdict::Refused(_)), "{v:?}");
    }
}
