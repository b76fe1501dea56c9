// SPDX-License-Identifier: MPL-2.0

//! The server's counters, their snapshot ([`Stats`]) and the `/state`
//! document built from it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Negotiated format, reported by `/state`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Format {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second from the caps (0 = variable / unknown).
    pub framerate: Option<f64>,
}

/// The live counters, updated from every connection (see [`Stats`] for
/// what each counts).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) clients: AtomicU64,
    pub(crate) clients_total: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) frames_resent: AtomicU64,
    pub(crate) frames_skipped: AtomicU64,
    pub(crate) frames_skipped_rate: AtomicU64,
    pub(crate) frames_skipped_same: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) clients_dropped_timeout: AtomicU64,
    pub(crate) clients_rejected_max: AtomicU64,
    pub(crate) requests_unauthorized: AtomicU64,
    pub(crate) requests_snapshot: AtomicU64,
    pub(crate) requests_state: AtomicU64,
    pub(crate) requests_invalid: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_evicted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) requests_forbidden_host: AtomicU64,
    pub(crate) logins_failed: AtomicU64,
    pub(crate) requests_throttled: AtomicU64,
    pub(crate) requests_stream: AtomicU64,
    pub(crate) requests_metrics: AtomicU64,
    pub(crate) snapshots_not_modified: AtomicU64,
    pub(crate) snapshots_timed_out: AtomicU64,
}

impl Counters {
    /// A copy of the counters, completed with what they do not hold.
    pub(crate) fn snapshot(&self, uptime: f64, eos: bool, format: Format) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            clients: l(&self.clients),
            clients_total: l(&self.clients_total),
            frames_in: l(&self.frames_in),
            frames_out: l(&self.frames_out),
            frames_resent: l(&self.frames_resent),
            frames_skipped: l(&self.frames_skipped),
            frames_skipped_rate: l(&self.frames_skipped_rate),
            frames_skipped_same: l(&self.frames_skipped_same),
            bytes_out: l(&self.bytes_out),
            clients_dropped_timeout: l(&self.clients_dropped_timeout),
            clients_rejected_max: l(&self.clients_rejected_max),
            requests_unauthorized: l(&self.requests_unauthorized),
            requests_snapshot: l(&self.requests_snapshot),
            requests_state: l(&self.requests_state),
            requests_invalid: l(&self.requests_invalid),
            connections: l(&self.connections),
            connections_total: l(&self.connections_total),
            connections_evicted: l(&self.connections_evicted),
            connections_refused: l(&self.connections_refused),
            accept_errors: l(&self.accept_errors),
            requests_forbidden_host: l(&self.requests_forbidden_host),
            logins_failed: l(&self.logins_failed),
            requests_throttled: l(&self.requests_throttled),
            requests_stream: l(&self.requests_stream),
            requests_metrics: l(&self.requests_metrics),
            snapshots_not_modified: l(&self.snapshots_not_modified),
            snapshots_timed_out: l(&self.snapshots_timed_out),
            uptime,
            eos,
            format,
        }
    }
}

/// Adds what a shared listener counts for all its mounts (connections,
/// bytes, refusals before a mount is known) to a mount's copy.
pub(crate) fn add_listener_counters(s: &mut Stats, c: &Counters) {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    s.bytes_out += l(&c.bytes_out);
    s.clients_dropped_timeout += l(&c.clients_dropped_timeout);
    s.requests_invalid += l(&c.requests_invalid);
    s.connections += l(&c.connections);
    s.connections_total += l(&c.connections_total);
    s.connections_evicted += l(&c.connections_evicted);
    s.connections_refused += l(&c.connections_refused);
    s.accept_errors += l(&c.accept_errors);
    s.requests_forbidden_host += l(&c.requests_forbidden_host);
    s.requests_throttled += l(&c.requests_throttled);
}

/// A consistent-enough copy of the server's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Streaming clients connected now.
    pub clients: u64,
    /// Streaming clients accepted since start.
    pub clients_total: u64,
    /// Frames published by the pipeline.
    pub frames_in: u64,
    /// Parts handed to clients (summed over clients, resends included).
    pub frames_out: u64,
    /// Parts that were resends of an unchanged frame (`resend-interval`).
    pub frames_resent: u64,
    /// Frames a busy client did not get (summed over clients; also
    /// reported as `frames-skipped-busy`).
    pub frames_skipped: u64,
    /// Frames a client did not get because of its `?fps` rate.
    pub frames_skipped_rate: u64,
    /// Frames not sent as byte-identical to the previous (`drop-same-frames`).
    pub frames_skipped_same: u64,
    /// Bytes written to sockets (all endpoints, HTTP headers included).
    pub bytes_out: u64,
    /// Clients dropped because their socket accepted nothing for `timeout`.
    pub clients_dropped_timeout: u64,
    /// Stream requests answered 503 because of `max-clients`.
    pub clients_rejected_max: u64,
    /// Requests answered 401.
    pub requests_unauthorized: u64,
    /// `/snapshot` requests.
    pub requests_snapshot: u64,
    /// `/state` requests.
    pub requests_state: u64,
    /// Requests answered 400 (malformed), 404 or 405.
    pub requests_invalid: u64,
    /// TCP connections open now (streaming or not).
    pub connections: u64,
    /// TCP connections admitted since start.
    pub connections_total: u64,
    /// Idle connections closed to admit a new one (`max-connections`).
    pub connections_evicted: u64,
    /// Connections closed at once because `max-connections` busy ones were open.
    pub connections_refused: u64,
    /// `accept()` failures (e.g. out of file descriptors).
    pub accept_errors: u64,
    /// Requests answered 403 because of the host they name (`allowed-hosts`).
    pub requests_forbidden_host: u64,
    /// Wrong credentials and wrong or expired signed links (401/403).
    pub logins_failed: u64,
    /// Requests answered 429 by the login throttle.
    pub requests_throttled: u64,
    /// Stream requests (accepted or not).
    pub requests_stream: u64,
    /// `/metrics` requests.
    pub requests_metrics: u64,
    /// `/snapshot` requests answered 304 Not Modified.
    pub snapshots_not_modified: u64,
    /// `/snapshot?wait=1` (or `max_age`) requests answered 504: no new frame
    /// in time.
    pub snapshots_timed_out: u64,
    /// Seconds since the server started.
    pub uptime: f64,
    /// Whether EOS was reached.
    pub eos: bool,
    pub format: Format,
}

impl Stats {
    /// Counter fields by name (the names of the element's `stats` structure
    /// and of the `/state` JSON).
    pub fn counters(&self) -> [(&'static str, u64); 28] {
        [
            ("clients", self.clients),
            ("clients-total", self.clients_total),
            ("frames-in", self.frames_in),
            ("frames-out", self.frames_out),
            ("frames-resent", self.frames_resent),
            ("frames-skipped", self.frames_skipped),
            ("bytes-out", self.bytes_out),
            ("clients-dropped-timeout", self.clients_dropped_timeout),
            ("clients-rejected-max", self.clients_rejected_max),
            ("requests-unauthorized", self.requests_unauthorized),
            ("requests-snapshot", self.requests_snapshot),
            ("requests-state", self.requests_state),
            ("requests-invalid", self.requests_invalid),
            ("connections", self.connections),
            ("connections-total", self.connections_total),
            ("connections-evicted", self.connections_evicted),
            ("connections-refused", self.connections_refused),
            ("accept-errors", self.accept_errors),
            ("requests-forbidden-host", self.requests_forbidden_host),
            ("logins-failed", self.logins_failed),
            ("requests-throttled", self.requests_throttled),
            ("frames-skipped-busy", self.frames_skipped),
            ("frames-skipped-rate", self.frames_skipped_rate),
            ("frames-skipped-same", self.frames_skipped_same),
            ("requests-stream", self.requests_stream),
            ("requests-metrics", self.requests_metrics),
            ("snapshots-not-modified", self.snapshots_not_modified),
            ("snapshots-timed-out", self.snapshots_timed_out),
        ]
    }

    /// The `/state` document.
    pub fn to_json(&self, boundary: &str) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, v) in self.counters() {
            m.insert(k.to_string(), v.into());
        }
        m.insert("uptime".into(), self.uptime.into());
        m.insert("eos".into(), self.eos.into());
        m.insert("width".into(), self.format.width.into());
        m.insert("height".into(), self.format.height.into());
        m.insert("framerate".into(), self.format.framerate.into());
        m.insert("boundary".into(), boundary.into());
        serde_json::Value::Object(m)
    }
}
