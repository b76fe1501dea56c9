// SPDX-License-Identifier: MPL-2.0

//! The sink's request handling on arbitrary request bytes: the real hyper
//! connection handling of `mjpegsink` (`Server::serve_io`) over an in-memory
//! `tokio::io::duplex`, on a current-thread runtime whose clock is paused, so
//! every server timeout (header read, snapshot wait, stalled write) elapses
//! in virtual time and runs are deterministic.
//!
//! Input layout: byte 0 picks the server (auth or not, a frame published or
//! not, EOS, CORS, max-clients) and whether the client half-closes after
//! writing; the rest are the bytes written on the connection.
//!
//! Invariants: no panic; what the server writes is empty or starts with
//! `HTTP/1.`; with auth configured, a request without the valid credentials
//! never sees frame bytes or a 200; the exchange ends (the server closes)
//! within bounded virtual time unless a stream response is in progress; once
//! the connection is gone, no streaming client is counted.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use gstmjpeg::internals::sink::{self as server, Config, Server};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Bytes no response may contain unless the request was authorized: the
/// published JPEG carries them.
const MARKER: &[u8] = b"FUZZ-FRAME-SECRET";
/// Base64 of `user:pw` without padding: any accepted Authorization header
/// contains it.
const TOKEN: &[u8] = b"dXNlcjpwdw";
/// Longest virtual time an exchange may take (many pipelined requests each
/// waiting for a snapshot add up).
const EXCHANGE_LIMIT: Duration = Duration::from_secs(3600);
/// Response bytes read per exchange at most.
const MAX_OUTPUT: usize = 4 << 20;

struct Variant {
    server: Server,
    auth: bool,
}

fn frame() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend_from_slice(MARKER);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

fn variant(auth: bool, publish: bool, eos: bool, cors: bool, max_clients: u32) -> Variant {
    let listener = server::bind("127.0.0.1", 0).expect("bind");
    let config = Config {
        credentials: auth.then(|| ("user".to_string(), "pw".to_string())),
        allow_origin: cors.then(|| "*".to_string()),
        max_clients,
        // Short snapshot waits on the frameless server, and no resends, so
        // a stream sends what there is and then waits.
        timeout: Some(Duration::from_secs(if publish { 10 } else { 1 })),
        resend_interval: None,
        ..Config::default()
    };
    let server = Server::start(listener, config, Arc::new(|_| {})).expect("server");
    if publish {
        server.publish(&frame());
    }
    server.set_eos(eos);
    Variant { server, auth }
}

static VARIANTS: LazyLock<Vec<Variant>> = LazyLock::new(|| {
    vec![
        variant(false, true, false, true, 0),
        variant(true, true, false, false, 0),
        variant(false, false, false, false, 1),
        variant(true, true, true, true, 1),
    ]
});

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
}

/// Write `input` (then half-close if asked) while reading what the server
/// sends into `out`; whether the exchange ended within the limit.
async fn exchange(v: &Variant, input: &[u8], half_close: bool, out: &mut Vec<u8>) -> bool {
    let (client, server_end) = tokio::io::duplex(64 * 1024);
    let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
    let serve = v.server.serve_io(server_end, peer);
    let (mut rd, mut wr) = tokio::io::split(client);
    let write = async {
        // The server may stop reading (and close) at any point.
        if wr.write_all(input).await.is_ok() && half_close {
            let _ = wr.shutdown().await;
        }
        // Without a half-close the write half stays open until the end.
        wr
    };
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        while out.len() < MAX_OUTPUT {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    // One task: a panic in the server propagates to the fuzzer.
    let all = async { tokio::join!(serve, write, read) };
    tokio::time::timeout(EXCHANGE_LIMIT, all).await.is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let v = &VARIANTS[usize::from(sel & 3)];
    let half_close = sel & 4 == 0;
    let mut out = Vec::new();
    let ended = RT.with(|rt| rt.block_on(exchange(v, input, half_close, &mut out)));
    let text = || String::from_utf8_lossy(&out[..out.len().min(300)]).into_owned();
    // The connection is gone: so is its client slot.
    assert_eq!(
        v.server.stats().clients,
        0,
        "a client slot outlived its connection"
    );
    if !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1."),
            "response does not start with HTTP/1.: {:?}",
            text()
        );
    }
    if !ended {
        assert!(
            memchr::memmem::find(&out, b"multipart/x-mixed-replace").is_some(),
            "the server neither answered nor closed: {:?}",
            text()
        );
    }
    if v.auth && memchr::memmem::find(input, TOKEN).is_none() {
        assert!(
            memchr::memmem::find(&out, MARKER).is_none(),
            "frame bytes sent without valid credentials: {:?}",
            text()
        );
        assert!(
            memchr::memmem::find(&out, b" 200 OK\r\n").is_none(),
            "200 without valid credentials: {:?}",
            text()
        );
    }
});
