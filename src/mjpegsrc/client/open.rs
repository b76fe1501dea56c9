// SPDX-License-Identifier: MPL-2.0

//! Opening the stream: the GET, redirects, and authentication rounds.
//!
//! Redirects follow curl's rules: `Authorization`, `Cookie` and the
//! `extra-headers` go only to the origin (scheme, host, port) the user
//! named, never to another one a redirect points at; userinfo in a
//! `Location` is ignored; `https` → `http` is refused unless
//! `allow-insecure-redirect` is set. (`Proxy-Authorization` only ever goes
//! to the configured proxy, never to an origin server.)

use url::Url;

use super::auth::{Auth, Verdict};
use super::http1::{self, HttpError, HttpOptions, Response, path_and_query};
use super::{Config, Event, Events, Fatal, FatalKind, Outcome};

/// Redirects followed before giving up.
const MAX_REDIRECTS: u32 = 10;
/// Authentication round trips in one connection attempt.
const MAX_AUTH_ROUNDS: u32 = 3;

fn refused(reason: String, kind: FatalKind, message: String) -> Outcome {
    Outcome::Refused {
        reason,
        fatal: Fatal { kind, message },
    }
}

/// The connection options for an origin other than the user's: without
/// the user's extra headers and cookies.
fn for_other_origin(http: &HttpOptions) -> HttpOptions {
    let mut other = http.clone();
    other.extra_headers.clear();
    other
}

/// Open the stream: follow redirects, answer authentication challenges.
pub(super) async fn open(
    config: &Config,
    auth: &mut Auth,
    events: &Events,
) -> Result<(Url, Response), Outcome> {
    let mut url = config.url.clone();
    let mut redirects = 0;
    let mut auth_rounds = 0;
    let origin = url.origin();
    loop {
        // Credentials go only to the origin they were given for, never to
        // a host a redirect points at.
        let same_origin = url.origin() == origin;
        let authorization = same_origin
            .then(|| auth.authorization(&path_and_query(&url)))
            .flatten();
        let other_origin;
        let http = if same_origin {
            &config.http
        } else {
            other_origin = for_other_origin(&config.http);
            &other_origin
        };
        let resp = http1::get(http, &url, authorization.as_deref())
            .await
            .map_err(|e| match e {
                HttpError::ProxyAuth(_) => refused(
                    e.to_string(),
                    FatalKind::NotAuthorized,
                    format!("Could not open {url}: {e}"),
                ),
                HttpError::InvalidUrl(_) | HttpError::Tls(_) => refused(
                    e.to_string(),
                    FatalKind::OpenRead,
                    format!("Could not open {url}: {e}"),
                ),
                _ => Outcome::Lost {
                    reason: e.to_string(),
                },
            })?;
        let status = resp.status;
        match status {
            200..=299 => return Ok((url, resp)),
            301 | 302 | 303 | 307 | 308 => {
                redirects += 1;
                let target = resp.header("location").and_then(|l| url.join(l).ok());
                match target {
                    Some(next)
                        if url.scheme() == "https"
                            && next.scheme() == "http"
                            && !config.allow_insecure_redirect =>
                    {
                        return Err(Outcome::Fatal(Fatal {
                            kind: FatalKind::OpenRead,
                            message: format!(
                                "Refusing the redirect from {url} to {}: https to http \
                                 (set allow-insecure-redirect to follow it)",
                                without_userinfo(next)
                            ),
                        }));
                    }
                    Some(next) if redirects <= MAX_REDIRECTS => {
                        let next = without_userinfo(next);
                        events(Event::Redirected {
                            from: url,
                            to: next.clone(),
                        });
                        url = next;
                    }
                    _ => {
                        return Err(Outcome::Lost {
                            reason: format!(
                                "{status} redirect without a usable Location or too many redirects"
                            ),
                        });
                    }
                }
            }
            401 => {
                auth_rounds += 1;
                let verdict = if !same_origin {
                    Verdict::Refused("credentials are not sent to a redirected origin".into())
                } else if auth_rounds > MAX_AUTH_ROUNDS {
                    Verdict::Refused("authentication keeps failing".into())
                } else {
                    auth.challenge(resp.headers_named("www-authenticate"))
                };
                if let Verdict::Refused(why) = verdict {
                    return Err(refused(
                        format!("401 {}: {why}", resp.reason),
                        FatalKind::NotAuthorized,
                        format!("Not authorized to read {url}: {why}"),
                    ));
                }
            }
            403 | 404 | 400..=407 | 409..=428 | 430..=499 => {
                let kind = if status == 404 || status == 410 {
                    FatalKind::NotFound
                } else if status == 403 || status == 407 {
                    FatalKind::NotAuthorized
                } else {
                    FatalKind::OpenRead
                };
                return Err(refused(
                    format!("HTTP {status} {}", resp.reason),
                    kind,
                    format!("{url} answered HTTP {status} {}", resp.reason),
                ));
            }
            _ => {
                return Err(Outcome::Lost {
                    reason: format!("HTTP {status} {}", resp.reason),
                });
            }
        }
    }
}

/// A redirect target's user:password@ is neither used nor shown.
fn without_userinfo(mut url: Url) -> Url {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}
