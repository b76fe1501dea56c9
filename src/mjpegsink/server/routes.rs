// SPDX-License-Identifier: MPL-2.0

//! One request, one response: routing, the auth check, CORS, and the
//! answers of every endpoint (the stream's body itself comes from
//! [`super::fanout`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;

use super::auth::Verdict;
use super::index;
use super::io::ConnFlags;
use super::port::Listener;
use super::response::{Body, CACHE_CONTROL, base_response, empty, full, parse_bool, text_response};
use super::shared::Shared;
use super::snapshot::Freshness;
use super::throttle;
use super::{fanout, metrics, rate, snapshot};

/// Basic auth realm.
const REALM: &str = "mjpegsink";

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Stream {
        advance_headers: Option<bool>,
        /// `?fps=N`: at least this long between two frames.
        min_interval: Option<Duration>,
    },
    Snapshot(Freshness),
    State,
    Metrics,
    NotFound,
}

fn route(path: &str, query: Option<&str>) -> Route {
    let mut action = None;
    let mut advance_headers = None;
    let mut min_interval = None;
    let mut fresh = Freshness::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "action" => action = Some(v.into_owned()),
            "advance_headers" => advance_headers = parse_bool(&v),
            "fps" => min_interval = rate::interval_from_fps(&v),
            _ => fresh.parse_param(&k, &v),
        }
    }
    match (path, action.as_deref()) {
        ("/", None | Some("stream")) | ("/stream", _) => Route::Stream {
            advance_headers,
            min_interval,
        },
        ("/", Some("snapshot")) | ("/snapshot", _) => Route::Snapshot(fresh),
        ("/state", _) => Route::State,
        ("/metrics", _) => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// Answer `req`, and the mount it was routed to, if any (the index page,
/// `/streams` and a path under no mount are the listener's).
pub(crate) async fn handle(
    listener: &Arc<Listener>,
    req: Request<Incoming>,
    peer: SocketAddr,
    flags: Arc<ConnFlags>,
) -> (Response<Body>, Option<Arc<Shared>>) {
    let target = listener.route(req.uri().path()).map(|(m, _)| m);
    let head = req.method() == Method::HEAD;

    // DNS-rebinding protection: the host the request names (`host`).
    if !listener.hosts.allows_request(&req) {
        listener
            .counters
            .requests_forbidden_host
            .fetch_add(1, Ordering::Relaxed);
        let text = "403 Forbidden: this host name is not served (allowed-hosts)\n";
        let resp = match &target {
            Some(shared) => text_response(shared, StatusCode::FORBIDDEN, text, head),
            None => plain_response(StatusCode::FORBIDDEN, text, head),
        };
        return (resp, target);
    }

    let (req, _body) = req.into_parts();
    let Some((shared, rest)) = listener.route(req.uri.path()) else {
        return (listing(listener, &req, head), None);
    };
    let resp = handle_mount(listener, &shared, rest, &req, peer, flags).await;
    (resp, Some(shared))
}

/// The index page and `/streams` when no sink is mounted at `/`; 404 for
/// any other path under no mount.
fn listing(listener: &Listener, req: &http::request::Parts, head: bool) -> Response<Body> {
    let method = &req.method;
    let page = index::page(listener, req.uri.path());
    let Some((content_type, text)) = page else {
        listener
            .counters
            .requests_invalid
            .fetch_add(1, Ordering::Relaxed);
        return plain_response(StatusCode::NOT_FOUND, "404 Not Found\n", head);
    };
    if method != Method::GET && !head {
        listener
            .counters
            .requests_invalid
            .fetch_add(1, Ordering::Relaxed);
        return allow_get_head(plain_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n",
            false,
        ));
    }
    let len = text.len();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .body(if head { empty() } else { full(text) })
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A text answer of the listener's (no mount, so no CORS).
/// A 405 names the methods every endpoint takes.
fn allow_get_head(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

fn plain_response(status: StatusCode, text: &str, head: bool) -> Response<Body> {
    let body = if head {
        empty()
    } else {
        full(text.to_string())
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A request for `shared`'s mount; `path` is the endpoint below it.
async fn handle_mount(
    listener: &Listener,
    shared: &Arc<Shared>,
    path: &str,
    req: &http::request::Parts,
    peer: SocketAddr,
    flags: Arc<ConnFlags>,
) -> Response<Body> {
    let c = &shared.counters;
    let method = &req.method;
    let head = method == Method::HEAD;

    // Login throttle: an address with too many failed logins (on any
    // mount of this port) gets 429, whatever it sends.
    let client = throttle::Key::from(throttle::client_addr(
        peer.ip(),
        &req.headers,
        &listener.config.trusted_proxies,
    ));
    if shared.auth.required()
        && let Some(left) = listener.throttle.retry_after(client, Instant::now())
    {
        listener
            .counters
            .requests_throttled
            .fetch_add(1, Ordering::Relaxed);
        return throttled_response(shared, left, head);
    }

    // CORS preflight (sent without credentials by browsers).
    if *method == Method::OPTIONS && shared.config.allow_origin.is_some() {
        return base_response(shared, StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization")
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .body(empty())
            .unwrap_or_else(|_| Response::new(empty()));
    }

    // Auth: credentials or a signed link.
    let verdict = shared.auth.check(
        req.uri.path(),
        req.uri.query(),
        req.headers.get(header::AUTHORIZATION),
        unix_now(),
    );
    if verdict != Verdict::Allowed {
        if verdict.is_failure() {
            c.logins_failed.fetch_add(1, Ordering::Relaxed);
            listener.throttle.failed(client, Instant::now());
        }
        return refused_response(shared, verdict, head);
    }

    if *method != Method::GET && !head {
        c.requests_invalid.fetch_add(1, Ordering::Relaxed);
        return allow_get_head(text_response(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n",
            false,
        ));
    }

    match route(path, req.uri.query()) {
        Route::Stream {
            advance_headers,
            min_interval,
        } => {
            c.requests_stream.fetch_add(1, Ordering::Relaxed);
            let advance = advance_headers.unwrap_or_else(|| {
                shared
                    .config
                    .advance_headers
                    .applies(req.headers.get(header::USER_AGENT))
            });
            stream_response(shared, peer, advance, head, flags, min_interval)
        }
        Route::Snapshot(fresh) => {
            c.requests_snapshot.fetch_add(1, Ordering::Relaxed);
            snapshot::respond(shared, &req.headers, fresh, head, &flags).await
        }
        Route::Metrics => {
            c.requests_metrics.fetch_add(1, Ordering::Relaxed);
            metrics::respond(shared, listener, head)
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

fn stream_response(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    advance_headers: bool,
    head: bool,
    flags: Arc<ConnFlags>,
    min_interval: Option<Duration>,
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
    let Some(body) = fanout::client_body(shared, peer, advance_headers, flags, min_interval) else {
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

/// 429 from the login throttle, with the seconds left in `Retry-After`.
fn throttled_response(shared: &Shared, left: Duration, head: bool) -> Response<Body> {
    let mut r = text_response(
        shared,
        StatusCode::TOO_MANY_REQUESTS,
        "429 Too many failed logins, try again later\n",
        head,
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(throttle::retry_after_secs(left)),
    );
    r
}

/// 401 (asking for Basic credentials when they are configured) or 403 (a
/// bad signed link, or none where only signed links open the stream).
fn refused_response(shared: &Shared, verdict: Verdict, head: bool) -> Response<Body> {
    if verdict == Verdict::BadLink || !shared.auth.has_credentials() {
        let text = if verdict == Verdict::BadLink {
            "403 Invalid or expired link\n"
        } else {
            "403 A signed link is required\n"
        };
        return text_response(shared, StatusCode::FORBIDDEN, text, head);
    }
    shared
        .counters
        .requests_unauthorized
        .fetch_add(1, Ordering::Relaxed);
    let mut r = text_response(shared, StatusCode::UNAUTHORIZED, "401 Unauthorized\n", head);
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"")) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Seconds since the Unix epoch (signed links' clock).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let s = |a| Route::Stream {
            advance_headers: a,
            min_interval: None,
        };
        assert_eq!(route("/", None), s(None));
        assert_eq!(route("/stream", None), s(None));
        assert_eq!(route("/", Some("action=stream")), s(None));
        assert_eq!(route("/stream", Some("advance_headers=1")), s(Some(true)));
        assert_eq!(
            route("/", Some("action=stream&advance_headers=0")),
            s(Some(false))
        );
        let snap = Route::Snapshot(Freshness::default());
        assert_eq!(route("/snapshot", None), snap);
        assert_eq!(route("/", Some("action=snapshot")), snap);
        assert_eq!(route("/state", None), Route::State);
        assert_eq!(route("/metrics", None), Route::Metrics);
        let fps5 = Route::Stream {
            advance_headers: None,
            min_interval: Some(Duration::from_millis(200)),
        };
        assert_eq!(route("/stream", Some("fps=5")), fps5);
        assert_eq!(route("/", Some("action=stream&fps=5")), fps5);
        assert_eq!(route("/stream", Some("fps=0")), s(None));
        assert_eq!(
            route("/snapshot", Some("wait=1")),
            Route::Snapshot(Freshness {
                wait: true,
                max_age: None
            })
        );
        assert_eq!(
            route("/", Some("action=snapshot&max_age=2.5")),
            Route::Snapshot(Freshness {
                wait: false,
                max_age: Some(Duration::from_millis(2500))
            })
        );
        assert_eq!(route("/", Some("action=bogus")), Route::NotFound);
        assert_eq!(route("/other", None), Route::NotFound);
    }
}
