// SPDX-License-Identifier: MPL-2.0

//! The building blocks of every response (bodies, the common headers, a
//! text answer) and the query-flag parser the endpoints share.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};

use super::shared::Shared;

pub(super) const CACHE_CONTROL: &str = "no-store, no-cache, must-revalidate, max-age=0";

pub(super) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(super) fn empty() -> Body {
    Empty::new().boxed_unsync()
}

pub(super) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// Common headers for every response.
pub(super) fn base_response(shared: &Shared, status: StatusCode) -> http::response::Builder {
    let mut b = Response::builder().status(status);
    if let Some(origin) = &shared.config.allow_origin
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        b = b.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    b
}

pub(super) fn text_response(
    shared: &Shared,
    status: StatusCode,
    text: &str,
    head: bool,
) -> Response<Body> {
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
