// SPDX-License-Identifier: MPL-2.0

//! `/metrics`: the server's counters in the Prometheus text exposition
//! format (version 0.0.4), written by hand: `mjpegsink_` names, `_total`
//! counters, `# HELP`/`# TYPE` lines.
//!
//! Two scopes, so that summing over the mounts of one port counts nothing
//! twice: what belongs to this mount carries a `mount` label (the
//! server's [`Config::mount`](super::Config::mount)); what the port counts
//! before a request reaches a mount, or below HTTP (connections, bytes,
//! refused hosts, throttled logins, requests no mount took, stalled
//! sockets), is named `mjpegsink_listener_*` and carries a `listener`
//! label (the local address), the same on every mount of that port.

use std::fmt::Write as _;

use http::{Response, StatusCode, header};

use super::port::Listener;
use super::response::{Body, CACHE_CONTROL, base_response, empty, full};
use super::shared::Shared;
use super::stats::Stats;

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn respond(shared: &Shared, listener: &Listener, head: bool) -> Response<Body> {
    let text = render(
        &shared.mount_stats(),
        shared.newest_frame_age(),
        &shared.config.mount,
        &listener.stats(),
        &listener.local_addr.to_string(),
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
    /// The scope label of the samples being written: `mount="/cam1"` or
    /// `listener="127.0.0.1:8080"`, escaped.
    scope: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, label: Option<(&str, &str)>, value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}{{{}", self.scope);
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

/// The exposition of a mount's `stats` (`newest_age` in seconds, if there
/// is a frame) and of its listener's (`port`) at `addr`.
pub(crate) fn render(
    stats: &Stats,
    newest_age: Option<f64>,
    mount: &str,
    port: &Stats,
    addr: &str,
) -> String {
    let mut w = Writer {
        out: String::with_capacity(6144),
        scope: format!("mount=\"{}\"", escape_label(mount)),
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
        "mjpegsink_requests_unauthorized_total",
        c,
        "Requests answered 401 (missing or wrong credentials).",
        stats.requests_unauthorized,
    );
    w.one(
        "mjpegsink_logins_failed_total",
        c,
        "Requests with wrong credentials or a bad signed link.",
        stats.logins_failed,
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
        "Requests to this mount answered 404 or 405.",
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

    w.scope = format!("listener=\"{}\"", escape_label(addr));
    w.one(
        "mjpegsink_listener_connections",
        g,
        "Connections open now on this port.",
        port.connections,
    );
    w.one(
        "mjpegsink_listener_connections_accepted_total",
        c,
        "Connections admitted on this port.",
        port.connections_total,
    );
    w.one(
        "mjpegsink_listener_connections_evicted_total",
        c,
        "Idle connections closed to admit a new one (max-connections).",
        port.connections_evicted,
    );
    w.one(
        "mjpegsink_listener_connections_refused_total",
        c,
        "Connections refused at max-connections with nothing idle to evict.",
        port.connections_refused,
    );
    w.one(
        "mjpegsink_listener_accept_errors_total",
        c,
        "accept() failures (such as running out of descriptors).",
        port.accept_errors,
    );
    w.one(
        "mjpegsink_listener_bytes_out_total",
        c,
        "Bytes written to this port's sockets, HTTP headers included.",
        port.bytes_out,
    );
    w.one(
        "mjpegsink_listener_clients_dropped_timeout_total",
        c,
        "Streams and connections dropped because they took nothing for timeout.",
        port.clients_dropped_timeout,
    );
    w.one(
        "mjpegsink_listener_requests_forbidden_host_total",
        c,
        "Requests answered 403 for a host name not served (allowed-hosts).",
        port.requests_forbidden_host,
    );
    w.one(
        "mjpegsink_listener_requests_throttled_total",
        c,
        "Requests answered 429 after too many failed logins from their address.",
        port.requests_throttled,
    );
    w.one(
        "mjpegsink_listener_requests_invalid_total",
        c,
        "Requests no mount took: unparsable (400), no such path (404), or not GET/HEAD.",
        port.requests_invalid,
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
        let port = Stats {
            connections: 3,
            bytes_out: 1000,
            ..Stats::default()
        };
        let t = render(&stats, Some(0.25), "/cam\"1", &port, "127.0.0.1:8080");
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
        assert!(t.contains(
            "# TYPE mjpegsink_listener_connections gauge\n\
             mjpegsink_listener_connections{listener=\"127.0.0.1:8080\"} 3\n"
        ));
        assert!(
            t.contains("mjpegsink_listener_bytes_out_total{listener=\"127.0.0.1:8080\"} 1000\n")
        );
        // Port-wide counters never carry a mount label.
        assert!(!t.contains("bytes_out_total{mount"));
        let none = render(&stats, None, "/", &Stats::default(), "[::1]:80");
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
