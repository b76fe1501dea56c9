// SPDX-License-Identifier: MPL-2.0

//! What a shared port answers on `/` and `/streams` when no sink is
//! mounted at `/`: an HTML index of the mounts with live previews (none
//! for a mount that needs credentials or a signed link), and the same list
//! as JSON. Mount paths need no escaping (`mount::normalize`).

use std::fmt::Write as _;

use super::port::Listener;
use super::shared::Shared;

/// `(content type, body)` for `path`, or `None` when `path` is neither
/// `/` nor `/streams`.
pub(crate) fn page(listener: &Listener, path: &str) -> Option<(&'static str, String)> {
    let mut mounts = listener.mounts();
    mounts.sort_by(|a, b| a.mount.cmp(&b.mount));
    match path {
        "/" => Some(("text/html; charset=utf-8", html(&mounts))),
        "/streams" => Some(("application/json", json(&mounts).to_string())),
        _ => None,
    }
}

fn size(m: &Shared) -> (u32, u32) {
    let f = *crate::runtime::lock(&m.format);
    (f.width.unwrap_or(0), f.height.unwrap_or(0))
}

fn json(mounts: &[std::sync::Arc<Shared>]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = mounts
        .iter()
        .map(|m| {
            let (width, height) = size(m);
            serde_json::json!({
                "mount": m.mount,
                "stream": format!("{}/stream", m.mount),
                "snapshot": format!("{}/snapshot", m.mount),
                "width": width,
                "height": height,
                "clients": m.counters.clients.load(std::sync::atomic::Ordering::Relaxed),
                "auth": m.auth.required(),
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

fn html(mounts: &[std::sync::Arc<Shared>]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>mjpegsink</title><style>\
         body{font-family:sans-serif;margin:1em}\
         figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}\
         img{max-width:480px;background:#222}\
         </style></head><body>\n<h1>Streams</h1>\n",
    );
    if mounts.is_empty() {
        out.push_str("<p>No streams.</p>\n");
    }
    for m in mounts {
        let mount = &m.mount;
        let (w, h) = size(m);
        let _ = write!(out, "<figure class=\"mount\" id=\"{mount}\">");
        if m.auth.required() {
            let _ = write!(out, "<p>{mount}: login required</p>");
        } else {
            let _ = write!(
                out,
                "<a href=\"{mount}/stream\"><img src=\"{mount}/stream\" alt=\"{mount}\"></a>"
            );
        }
        let _ = writeln!(
            out,
            "<figcaption><a href=\"{mount}/stream\">{mount}</a> {w}x{h} \
             <a href=\"{mount}/snapshot\">snapshot</a> \
             <a href=\"{mount}/state\">state</a></figcaption></figure>"
        );
    }
    out.push_str("</body></html>\n");
    out
}
