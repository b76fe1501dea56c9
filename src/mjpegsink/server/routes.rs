// SPDX-License-Identifier: MPL-2.0

//! One request, one response: routing, the auth check, CORS, and the
//! answers of every endpoint (the stream's body itself comes from
//! [`super::fanout`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;

use super::fanout;
use super::io::ConnFlags;
use super::shared::Shared;

/// Longest `/snapshot` waits for a first frame.
const SNAPSHOT_MAX_WAIT: Duration = Duration::from_secs(5);
/// Basic auth realm.
const REALM: &str = "mjpegsink";

const CACHE_CONTROL: &str = "no-store, no-cache, must-revalidate, max-age=0";

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Stream { advance_headers: Option<bool> },
    Snapshot,
    State,
    NotFound,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn route(path: &str, query: Option<&str>) -> Route {
    let mut action = None;
    let mut advance_headers = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "action" => action = Some(v.into_owned()),
            "advance_headers" => advance_headers = parse_bool(&v),
            _ => {}
        }
    }
    match (path, action.as_deref()) {
        ("/", None | Some("stream")) | ("/stream", _) => Route::Stream { advance_headers },
        ("/", Some("snapshot")) | ("/snapshot", _) => Route::Snapshot,
        ("/state", _) => Route::State,
        _ => Route::NotFound,
    }
}

/// Whether the `Authorization` header carries the expected Basic
/// credentials (`user:password` bytes), compared in constant time.
fn authorized(expected: &[u8], header: Option<&HeaderValue>) -> bool {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let Some(value) = header else { return false };
    let value = value.as_bytes();
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
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// Common headers for every response.
fn base_response(shared: &Shared, status: StatusCode) -> http::response::Builder {
    let mut b = Response::builder().status(status);
    if let Some(origin) = &shared.config.allow_origin
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        b = b.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    b
}

fn text_response(shared: &Shared, status: StatusCode, text: &str, head: bool) -> Response<Body> {
    let body = if head {
        empty()
    } else {
        full(text.to_string())
    };
    base_response(shared, status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    flags: Arc<ConnFlags>,
) -> Response<Body> {
    let c = &shared.counters;
    let method = req.method();
    let head = method == Method::HEAD;

    // DNS-rebinding protection: the host the request names (`host`).
    if !shared.hosts.allows_request(&req) {
        c.requests_forbidden_host.fetch_add(1, Ordering::Relaxed);
        return text_response(
            shared,
            StatusCode::FORBIDDEN,
            "403 Forbidden: this host name is not served (allowed-hosts)\n",
            head,
        );
    }

    // CORS preflight (sent without credentials by browsers).
    if method == Method::OPTIONS && shared.config.allow_origin.is_some() {
        return base_response(shared, StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization")
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .body(empty())
            .unwrap_or_else(|_| Response::new(empty()));
    }

    if let Some(expected) = &shared.expected_auth
        && !authorized(expected, req.headers().get(header::AUTHORIZATION))
    {
        c.requests_unauthorized.fetch_add(1, Ordering::Relaxed);
        let text = "401 Unauthorized\n";
        return base_response(shared, StatusCode::UNAUTHORIZED)
            .header(
                header::WWW_AUTHENTICATE,
                format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
            )
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CONTENT_LENGTH, text.len())
            .body(if head { empty() } else { full(text) })
            .unwrap_or_else(|_| Response::new(empty()));
    }

    if method != Method::GET && !head {
        c.requests_invalid.fetch_add(1, Ordering::Relaxed);
        let mut r = text_response(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n",
            false,
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }

    match route(req.uri().path(), req.uri().query()) {
        Route::Stream { advance_headers } => {
            let advance = advance_headers.unwrap_or_else(|| {
                shared
                    .config
                    .advance_headers
                    .applies(req.headers().get(header::USER_AGENT))
            });
            stream_response(shared, peer, advance, head, flags)
        }
        Route::Snapshot => {
            c.requests_snapshot.fetch_add(1, Ordering::Relaxed);
            snapshot_response(shared, head, &flags).await
        }
        Route::State => {
            c.requests_state.fetch_add(1, Ordering::Relaxed);
            let json = shared.stats().to_json(&shared.config.boundary).to_string();
            let len = json.len();
            base_response(shared, StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, len)
                .header(header::CACHE_CONTROL, CACHE_CONTROL)
                .body(if head { empty() } else { full(json) })
                .unwrap_or_else(|_| Response::new(empty()))
        }
        Route::NotFound => {
            c.requests_invalid.fetch_add(1, Ordering::Relaxed);
            text_response(shared, StatusCode::NOT_FOUND, "404 Not Found\n", head)
        }
    }
}

async fn snapshot_response(shared: &Arc<Shared>, head: bool, flags: &ConnFlags) -> Response<Body> {
    let mut rx = shared.frames.subscribe();
    // Before the first frame, only a connection's first snapshot request
    // waits: pipelined ones must not add up.
    let wait = if flags.snapshot_waited.swap(true, Ordering::Relaxed) {
        Duration::ZERO
    } else {
        shared
            .config
            .timeout
            .map_or(SNAPSHOT_MAX_WAIT, |t| t.min(SNAPSHOT_MAX_WAIT))
    };
    let got = tokio::time::timeout(wait, rx.wait_for(|p| p.frame.is_some() || p.eos)).await;
    let frame = match got {
        Ok(Ok(p)) => p.frame.clone(),
        _ => None,
    };
    let Some(frame) = frame else {
        return text_response(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "503 No frame available yet\n",
            head,
        );
    };
    let jpeg = frame.jpeg();
    base_response(shared, StatusCode::OK)
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_LENGTH, jpeg.len())
        .header("X-Timestamp", &frame.timestamp)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(header::PRAGMA, "no-cache")
        .body(if head { empty() } else { full(jpeg) })
        .unwrap_or_else(|_| Response::new(empty()))
}

fn stream_response(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    advance_headers: bool,
    head: bool,
    flags: Arc<ConnFlags>,
) -> Response<Body> {
    let builder = || {
        base_response(shared, StatusCode::OK)
            .version(Version::HTTP_10)
            .header(
                header::CONTENT_TYPE,
                format!(
                    "multipart/x-mixed-replace;boundary={}",
                    shared.config.boundary
                ),
            )
            .header(header::CACHE_CONTROL, CACHE_CONTROL)
            .header(header::PRAGMA, "no-cache")
            .header(header::CONNECTION, "close")
    };
    if head {
        return builder()
            .body(empty())
            .unwrap_or_else(|_| Response::new(empty()));
    }
    let Some(body) = fanout::client_body(shared, peer, advance_headers, flags) else {
        let mut r = text_response(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Too many clients\n",
            false,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    builder()
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let s = |a| Route::Stream { advance_headers: a };
        assert_eq!(route("/", None), s(None));
        assert_eq!(route("/stream", None), s(None));
        assert_eq!(route("/", Some("action=stream")), s(None));
        assert_eq!(route("/stream", Some("advance_headers=1")), s(Some(true)));
        assert_eq!(
            route("/", Some("action=stream&advance_headers=0")),
            s(Some(false))
        );
        assert_eq!(route("/snapshot", None), Route::Snapshot);
        assert_eq!(route("/", Some("action=snapshot")), Route::Snapshot);
        assert_eq!(route("/state", None), Route::State);
        assert_eq!(route("/", Some("action=bogus")), Route::NotFound);
        assert_eq!(route("/other", None), Route::NotFound);
    }

    #[test]
    fn basic_auth() {
        let expected = b"user:pw";
        let h = |s: &str| HeaderValue::from_str(s).ok();
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:pw")
        );
        assert!(authorized(&expected[..], h(&good).as_ref()));
        assert!(authorized(
            &expected[..],
            h(&good.replace("Basic", "basic")).as_ref()
        ));
        assert!(!authorized(&expected[..], None));
        assert!(!authorized(&expected[..], h("Basic").as_ref()));
        assert!(authorized(&expected[..], h("Basic dXNlcjpwdw").as_ref()));
        assert!(!authorized(&expected[..], h("Basic dXNlcjpwdx==").as_ref()));
        assert!(!authorized(
            &expected[..],
            h("Bearer dXNlcjpwdw==").as_ref()
        ));
        assert!(!authorized(
            &expected[..],
            h("Basic dXNlcjpwdw==x").as_ref()
        ));
    }
}
