// SPDX-License-Identifier: MPL-2.0

//! Multipart (`multipart/x-mixed-replace`) handling for MJPEG over HTTP.
//!
//! [`Parser`] is an incremental push parser for response bodies: feed it
//! chunks as they arrive and a [`Handler`] receives each part's body as
//! slices of those chunks, released the moment the part is complete. It reads
//! every framing variant real cameras send, and raw concatenated JPEGs.
//!
//! `writer` lays out the parts `mjpegsink` sends: each frame once, in one
//! buffer shared by every client.
mod handler;
mod length;
mod parser;
mod scan;
pub(crate) mod writer;

#[cfg(feature = "internals")]
pub use handler::ParseError;
pub use handler::{Disagreement, Event, Handler, Limits, PartInfo, SkipReason};
pub use parser::Parser;

/// The `boundary` parameter of a Content-Type value, unquoted; any case of
/// the name, spaces around `;` and `=` (a hint only: the parser learns the
/// real delimiter from the body).
pub fn boundary_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    })
}
