// SPDX-License-Identifier: MPL-2.0

//! What the server reports to its owner: plain events, no GStreamer types
//! (the element maps them to signals and debug logs with its object).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, StatusCode};

/// Why a streaming client went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Got the closing delimiter after EOS.
    Eos,
    /// Its socket accepted nothing for `timeout`.
    Timeout,
    /// The peer closed or reset the connection, or the server stopped.
    Closed,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Eos => "eos",
            DisconnectReason::Timeout => "timeout",
            DisconnectReason::Closed => "closed",
        }
    }
}

/// What the server tells its owner (the element maps these to signals and
/// debug logs). Called from runtime threads: keep handlers short.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// A streaming client was accepted.
    ClientConnected {
        peer: SocketAddr,
        advance_headers: bool,
    },
    /// A streaming client left.
    ClientDisconnected {
        peer: SocketAddr,
        reason: DisconnectReason,
        frames_sent: u64,
        frames_skipped: u64,
    },
    /// A request was answered (any endpoint).
    Request {
        peer: SocketAddr,
        method: Method,
        uri: String,
        status: StatusCode,
    },
    /// A connection ended with an error (malformed request, reset ...).
    ConnectionError { peer: SocketAddr, error: String },
    /// `accept()` failed (e.g. out of file descriptors).
    AcceptError(String),
}

/// Receives every [`ServerEvent`].
pub type EventHandler = Arc<dyn Fn(ServerEvent) + Send + Sync>;
