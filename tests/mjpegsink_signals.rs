// SPDX-License-Identifier: MPL-2.0

//! mjpegsink signals and shutdown: `client-connected` and
//! `client-disconnected` come from a thread of their own, so a handler
//! that blocks delays no frame, no other client and no other element; after
//! NULL no connection is left, no signal comes, the stats are final and the
//! port is free. Ports are picked by the OS; every wait is bounded.

mod common;

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use common::logins::{Sink, StreamReader};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// How long the blocking handler blocks.
const BLOCK: Duration = Duration::from_secs(1);
/// Frame period of the pushers.
const PERIOD: Duration = Duration::from_millis(40);
/// Largest gap between two frames a client may see while a handler
/// blocks (the handler blocks 1 s; frames come every 40 ms).
const MAX_GAP: Duration = Duration::from_millis(600);

fn max_gap(arrivals: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for &t in arrivals.iter().filter(|t| **t > from && **t <= to) {
        gap = gap.max(t - last);
        last = t;
    }
    gap.max(to.saturating_duration_since(last))
}

/// A `client-connected` handler on sink A blocks for a second for each of
/// four new clients. Meanwhile A's client connected before, and a client of
/// sink B (same process, same runtime), get every frame on time.
#[test]
fn a_blocking_handler_delays_no_frame_and_no_other_element() {
    let mut a = Sink::start(&[]);
    let mut b = Sink::start(&[]);
    let block = Arc::new(AtomicBool::new(false));
    let handler_threads = Arc::new(Mutex::new(Vec::new()));
    {
        let block = block.clone();
        let threads = handler_threads.clone();
        a.element().connect("client-connected", false, move |_| {
            let name = std::thread::current().name().map(str::to_string);
            common::lock(&threads).push(name);
            if block.load(Ordering::SeqCst) {
                std::thread::sleep(BLOCK);
            }
            None
        });
    }
    let a_old = StreamReader::open(LOOPBACK, a.port);
    let b_client = StreamReader::open(LOOPBACK, b.port);
    a.push();
    b.push();
    assert!(
        a_old.wait_parts(1) && b_client.wait_parts(1),
        "first frames"
    );

    block.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let port = a.port;
    let newcomers: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || StreamReader::open(LOOPBACK, port)))
        .collect();
    // Frames for 1.6 s (pacing only; what is measured is arrival times).
    let mut next = start;
    while next < start + BLOCK + Duration::from_millis(600) {
        a.push();
        b.push();
        next += PERIOD;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let end = Instant::now();
    let newcomers: Vec<StreamReader> = newcomers
        .into_iter()
        .map(|t| t.join().expect("newcomer"))
        .collect();

    let gap_b = max_gap(&b_client.arrivals(), start, end);
    let gap_a = max_gap(&a_old.arrivals(), start, end);
    println!(
        "largest gap between frames while a handler blocked {BLOCK:?} four times: \
         other sink {gap_b:?}, same sink's earlier client {gap_a:?}"
    );
    assert!(gap_b < MAX_GAP, "sink B stalled for {gap_b:?}");
    assert!(
        gap_a < MAX_GAP,
        "sink A's other client stalled for {gap_a:?}"
    );
    // The newcomers stream too (their heads came before their signals).
    a.push();
    for n in &newcomers {
        assert!(n.wait_parts(1), "a newcomer got no frame");
    }
    // The handlers ran on the sink's signal thread, never on a runtime
    // worker; wait (bounded) for the last of the four blocked ones (plus
    // the earlier client's).
    let deadline = Instant::now() + common::WAIT;
    while common::lock(&handler_threads).len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let threads = common::lock(&handler_threads).clone();
    assert_eq!(threads.len(), 5, "{threads:?}");
    for t in &threads {
        let name = t.as_deref().unwrap_or("");
        assert!(!name.contains("runtime"), "emitted on {name:?}");
    }
}

/// After NULL: every connection closed, no signal, final stats, free port.
#[test]
fn nothing_runs_after_null() {
    let mut sink = Sink::start(&[]);
    let e = sink.element();
    let stopped = Arc::new(AtomicBool::new(false));
    let (tx, late) = mpsc::channel::<String>();
    let (dtx, disconnected) = mpsc::channel::<()>();
    {
        let stopped = stopped.clone();
        let tx = Mutex::new(tx);
        let dtx = Mutex::new(dtx);
        e.connect("client-disconnected", false, move |args| {
            // A slow handler: if emission were not finished when stop()
            // returns, this is where it would show.
            std::thread::sleep(Duration::from_millis(100));
            let _ = common::lock(&dtx).send(());
            if stopped.load(Ordering::SeqCst) {
                let peer = args[1].get::<String>().unwrap_or_default();
                let _ = common::lock(&tx).send(peer);
            }
            None
        });
    }
    let clients: Vec<StreamReader> = (0..4)
        .map(|_| StreamReader::open(LOOPBACK, sink.port))
        .collect();
    sink.push();
    for c in &clients {
        assert!(c.wait_parts(1), "frame");
    }
    let port = sink.port;

    e.set_state(gst::State::Null).expect("NULL");
    stopped.store(true, Ordering::SeqCst);

    // Every connection was closed by the server.
    for c in &clients {
        assert!(c.wait_closed(), "a connection outlived NULL");
    }
    // The four disconnections were signalled before stop() returned ...
    assert_eq!(disconnected.try_iter().count(), 4);
    // ... and nothing after (bounded look).
    assert!(
        late.recv_timeout(Duration::from_millis(500)).is_err(),
        "a signal after NULL"
    );
    // Final stats: no client left, and the same values twice.
    let s1 = e.property::<gst::Structure>("stats");
    assert_eq!(s1.get::<u64>("clients"), Ok(0), "{s1}");
    assert_eq!(s1.get::<u64>("clients-total"), Ok(4), "{s1}");
    let bytes = s1.get::<u64>("bytes-out").expect("bytes-out");
    let s2 = e.property::<gst::Structure>("stats");
    assert_eq!(s1.to_string(), s2.to_string());
    assert!(bytes > 0);
    // The port is free.
    TcpListener::bind(("127.0.0.1", port)).expect("port free right after NULL");
}
