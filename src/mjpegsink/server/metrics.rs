// SPDX-License-Identifier: MPL-2.0

//! `/metrics`: the server's counters in the Prometheus text exposition
//! format (version 0.0.4), written by hand: `mjpegsink_` names, `_total`
//! counters, `# HELP`/`# TYPE` lines, and a `mount` label on every sample
//! (the server's [`Config::mount`](super::Config::mount)).

use std::fmt::Write as _;

use http::{Response, StatusCode, header};

use super::response::{Body, CACHE_CONTROL, base_response, empty, full};
use super::shared::Shared;
use super::stats::Stats;

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn respond(shared: &Shared, head: bool) -> Response<Body> {
    let text = render(
        &shared.stats(),
        shared.newest_frame_age(),
        &shared.config.mount,
    );
    base_response(shared, StatusCode::OK)
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .header(header::CONTENT_LENGTH, text.len())
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .body(if head { empty() } else { full(text) })
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A label value escaped as the format asks (`\`, `"`, newline).
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Writer {
    out: String,
    mount: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, label: Option<(&str, &str)>, value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}{{mount=\"{}\"", self.mount);
        if let Some((k, v)) = label {
            let _ = write!(self.out, ",{k}=\"{}\"", escape_label(v));
        }
        let _ = writeln!(self.out, "}} {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, None, value);
    }
}

/// The exposition of `stats`; `newest_age` in seconds, if there is a frame.
pub(crate) fn render(stats: &Stats, newest_age: Option<f64>, mount: &str) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096),
        mount: escape_label(mount),
    };
    let (c, g) = ("counter", "gauge");
    w.one(
        "mjpegsink_clients",
        g,
        "Streaming clients connected now.",
        stats.clients,
    );
    w.one(
        "mjpegsink_clients_accepted_total",
        c,
        "Streaming clients accepted.",
        stats.clients_total,
    );
    w.one(
        "mjpegsink_clients_dropped_timeout_total",
        c,
        "Streaming clients dropped because their socket accepted nothing for timeout.",
        stats.clients_dropped_timeout,
    );
    w.one(
        "mjpegsink_clients_rejected_total",
        c,
        "Stream requests answered 503 because of max-clients.",
        stats.clients_rejected_max,
    );
    w.one(
        "mjpegsink_frames_in_total",
        c,
        "Frames published by the pipeline.",
        stats.frames_in,
    );
    w.one(
        "mjpegsink_frames_out_total",
        c,
        "Parts sent to streaming clients, resends included.",
        stats.frames_out,
    );
    w.one(
        "mjpegsink_frames_resent_total",
        c,
        "Parts that resent an unchanged frame (resend-interval).",
        stats.frames_resent,
    );
    let name = "mjpegsink_frames_skipped_total";
    w.family(
        name,
        c,
        "Frames a streaming client did not get, by reason: busy (its connection was \
         still sending), rate (its ?fps), same (drop-same-frames).",
    );
    w.sample(name, Some(("reason", "busy")), stats.frames_skipped);
    w.sample(name, Some(("reason", "rate")), stats.frames_skipped_rate);
    w.sample(name, Some(("reason", "same")), stats.frames_skipped_same);
    w.one(
        "mjpegsink_bytes_out_total",
        c,
        "Bytes written to sockets, HTTP headers included.",
        stats.bytes_out,
    );
    w.one(
        "mjpegsink_requests_unauthorized_total",
        c,
        "Requests answered 401 (missing or wrong credentials).",
        stats.requests_unauthorized,
    );
    let name = "mjpegsink_requests_total";
    w.family(name, c, "Requests by endpoint.");
    for (endpoint, n) in [
        ("stream", stats.requests_stream),
        ("snapshot", stats.requests_snapshot),
        ("state", stats.requests_state),
        ("metrics", stats.requests_metrics),
    ] {
        w.sample(name, Some(("endpoint", endpoint)), n);
    }
    w.one(
        "mjpegsink_requests_invalid_total",
        c,
        "Requests answered 400, 404 or 405.",
        stats.requests_invalid,
    );
    w.one(
        "mjpegsink_snapshots_not_modified_total",
        c,
        "Snapshot requests answered 304 Not Modified.",
        stats.snapshots_not_modified,
    );
    w.one(
        "mjpegsink_snapshots_timed_out_total",
        c,
        "Snapshot requests waiting for a new frame answered 504.",
        stats.snapshots_timed_out,
    );
    let name = "mjpegsink_frame_age_seconds";
    w.family(
        name,
        g,
        "Seconds since the newest frame was published (absent before the first).",
    );
    if let Some(age) = newest_age {
        w.sample(name, None, format_args!("{age:.3}"));
    }
    w.one(
        "mjpegsink_eos",
        g,
        "1 once the stream has ended (EOS).",
        u8::from(stats.eos),
    );
    w.one(
        "mjpegsink_uptime_seconds",
        g,
        "Seconds since the server started.",
        format_args!("{:.3}", stats.uptime),
    );
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let stats = Stats {
            clients: 2,
            frames_skipped: 5,
            frames_skipped_rate: 7,
            requests_snapshot: 3,
            ..Stats::default()
        };
        let t = render(&stats, Some(0.25), "/cam\"1");
        assert!(t.contains(
            "# TYPE mjpegsink_clients gauge\nmjpegsink_clients{mount=\"/cam\\\"1\"} 2\n"
        ));
        assert!(
            t.contains("mjpegsink_frames_skipped_total{mount=\"/cam\\\"1\",reason=\"rate\"} 7\n")
        );
        assert!(
            t.contains("mjpegsink_requests_total{mount=\"/cam\\\"1\",endpoint=\"snapshot\"} 3\n")
        );
        assert!(t.contains("mjpegsink_frame_age_seconds{mount=\"/cam\\\"1\"} 0.250\n"));
        assert!(t.ends_with('\n'));
        let none = render(&stats, None, "/");
        assert!(!none.contains("mjpegsink_frame_age_seconds{"));
        // Every sample line belongs to the family announced before it.
        let mut family = "";
        for line in none.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or("");
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} outside {family}");
            }
        }
    }
}
