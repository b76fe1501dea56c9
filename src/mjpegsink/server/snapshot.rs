// SPDX-License-Identifier: MPL-2.0

//! `/snapshot` (and `/?action=snapshot`): the newest frame as one JPEG,
//! with what a client needs to know how fresh it is and to skip an
//! unchanged one.
//!
//! - `ETag: "<epoch>-<seq>"`: the server's start time (Unix nanoseconds, hex)
//!   and the frame's number, so a tag from before a restart never matches;
//!   `If-None-Match` with the current tag is answered `304 Not Modified`.
//! - `Last-Modified` (the frame's publication, an HTTP date) and `Age`
//!   (whole seconds since then).
//! - `?wait=1`: wait for a frame published after the request arrived and
//!   answer that one; `504` if none comes within [`FRESH_WAIT_CAP`]
//!   (whatever `timeout` is, 0 included).
//! - `?max_age=S`: the current frame if it is at most `S` seconds old, else
//!   wait like `wait=1`.
//! - Plain: the newest frame; before the first one, wait a bounded time
//!   ([`first_frame`]), then `503`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode, header};
use tokio::sync::watch;

use super::io::ConnFlags;
use super::response::{Body, base_response, empty, full, parse_bool, text_response};
use super::shared::{Published, Shared};
use crate::multipart::writer::Frame;

/// Longest a plain `/snapshot` waits for a first frame.
const FIRST_FRAME_MAX_WAIT: Duration = Duration::from_secs(5);
/// Longest `?wait=1` / `?max_age` wait for a new frame.
pub(crate) const FRESH_WAIT_CAP: Duration = Duration::from_secs(10);
/// Snapshots may be stored, but must be revalidated on every use (which an
/// unchanged frame answers with 304).
const SNAPSHOT_CACHE_CONTROL: &str = "no-cache, max-age=0";

/// What a snapshot request asks about freshness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// `?wait=1`: only a frame published after the request.
    pub(crate) wait: bool,
    /// `?max_age=S`: only a frame at most this old (else wait).
    pub(crate) max_age: Option<Duration>,
}

impl Freshness {
    /// Take a query parameter of the snapshot's (others are ignored).
    pub(crate) fn parse_param(&mut self, key: &str, value: &str) {
        match key {
            "wait" => self.wait = parse_bool(value).unwrap_or(false),
            "max_age" => {
                self.max_age = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s >= 0.0)
                    .and_then(|s| Duration::try_from_secs_f64(s).ok());
            }
            _ => {}
        }
    }
}

fn etag(shared: &Shared, f: &Frame) -> String {
    format!("\"{}-{}\"", shared.epoch, f.seq)
}

/// Whether an `If-None-Match` header list names `tag` (weak comparison, as
/// RFC 9110 asks for `If-None-Match`; `*` matches any current frame).
fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// The newest frame, waiting for a first one if there is none yet (at most
/// `timeout`, capped at [`FIRST_FRAME_MAX_WAIT`]). The one place that
/// decides how long a plain snapshot waits.
pub(crate) async fn first_frame(
    shared: &Shared,
    rx: &mut watch::Receiver<Published>,
    flags: &ConnFlags,
) -> Option<Arc<Frame>> {
    // Before the first frame, only a connection's first snapshot request
    // waits: pipelined ones must not add up.
    let wait = if flags.snapshot_waited.swap(true, Ordering::Relaxed) {
        Duration::ZERO
    } else {
        shared
            .config
            .timeout
            .map_or(FIRST_FRAME_MAX_WAIT, |t| t.min(FIRST_FRAME_MAX_WAIT))
    };
    let got = tokio::time::timeout(wait, rx.wait_for(|p| p.frame.is_some() || p.eos)).await;
    match got {
        Ok(Ok(p)) => p.frame.clone(),
        _ => None,
    }
}

/// The first frame newer than frame `after` (0: any), waiting at most
/// [`FRESH_WAIT_CAP`]; `None` at EOS or when none came.
async fn newer_frame(rx: &mut watch::Receiver<Published>, after: u64) -> Option<Arc<Frame>> {
    let newer = |p: &Published| p.frame.as_ref().is_some_and(|f| f.seq > after);
    let got = tokio::time::timeout(FRESH_WAIT_CAP, rx.wait_for(|p| newer(p) || p.eos)).await;
    match got {
        Ok(Ok(p)) if newer(&p) => p.frame.clone(),
        _ => None,
    }
}

pub(crate) async fn respond(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    fresh: Freshness,
    head: bool,
    flags: &ConnFlags,
) -> Response<Body> {
    let mut rx = shared.frames.subscribe();
    let current = rx.borrow_and_update().frame.clone();
    let stale = |f: &Arc<Frame>| {
        fresh
            .max_age
            .is_some_and(|max| f.published_at.elapsed() > max)
    };
    let must_wait = fresh.wait || (fresh.max_age.is_some() && current.as_ref().is_none_or(stale));
    let frame = if must_wait {
        let after = current.as_ref().map_or(0, |f| f.seq);
        let Some(f) = newer_frame(&mut rx, after).await else {
            shared
                .counters
                .snapshots_timed_out
                .fetch_add(1, Ordering::Relaxed);
            return text_response(
                shared,
                StatusCode::GATEWAY_TIMEOUT,
                "504 No new frame in time\n",
                head,
            );
        };
        f
    } else {
        let current = match current {
            Some(f) => Some(f),
            None => first_frame(shared, &mut rx, flags).await,
        };
        let Some(f) = current else {
            return text_response(
                shared,
                StatusCode::SERVICE_UNAVAILABLE,
                "503 No frame available yet\n",
                head,
            );
        };
        f
    };

    let tag = etag(shared, &frame);
    let age = frame.published_at.elapsed().as_secs();
    let builder = base_response(shared, StatusCode::OK)
        .header(header::ETAG, &tag)
        .header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(frame.published),
        )
        .header(header::AGE, age)
        .header(header::CACHE_CONTROL, SNAPSHOT_CACHE_CONTROL);
    if none_match(headers, &tag) {
        shared
            .counters
            .snapshots_not_modified
            .fetch_add(1, Ordering::Relaxed);
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .unwrap_or_else(|_| Response::new(empty()));
    }
    let jpeg = frame.jpeg();
    builder
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_LENGTH, jpeg.len())
        .header("X-Timestamp", &frame.timestamp)
        .header(header::PRAGMA, "no-cache")
        .body(if head { empty() } else { full(jpeg) })
        .unwrap_or_else(|_| Response::new(empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists() {
        let tag = "\"abc-7\"";
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_NONE_MATCH, v.parse().expect("header value"));
            m
        };
        assert!(none_match(&h("\"abc-7\""), tag));
        assert!(none_match(&h("W/\"abc-7\""), tag));
        assert!(none_match(&h("\"x\", \"abc-7\""), tag));
        assert!(none_match(&h("*"), tag));
        assert!(!none_match(&h("\"abc-6\""), tag));
        assert!(!none_match(&h("\"abd-7\""), tag));
        assert!(!none_match(&HeaderMap::new(), tag));
    }

    #[test]
    fn freshness_params() {
        let mut f = Freshness::default();
        f.parse_param("wait", "1");
        f.parse_param("max_age", "1.5");
        assert_eq!(
            f,
            Freshness {
                wait: true,
                max_age: Some(Duration::from_millis(1500))
            }
        );
        f.parse_param("max_age", "-1");
        assert_eq!(f.max_age, None);
        assert_eq!(
            super::super::shared::epoch(std::time::UNIX_EPOCH + Duration::from_nanos(255)),
            "ff"
        );
    }
}
