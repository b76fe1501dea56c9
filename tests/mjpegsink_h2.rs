// SPDX-License-Identifier: MPL-2.0

//! `mjpegsink` over HTTP/2 (TLS with ALPN `h2`): a browser grid of streams
//! from one origin, and the slow-viewer rule per h2 stream.

mod common;

use std::time::{Duration, Instant};

use common::h2client::{chromium_dom, h2_connect, h2_get, have_chromium, tls_connect, write_cert};
use common::*;

const WAIT: Duration = Duration::from_secs(15);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A page of `n` `<img>` streams from the sink; its title reports how many
/// ever loaded (`loaded=`) and how many showed at least two different pictures
/// (`updating=`, read back through a canvas, hence CORS). An image from
/// `hold`, a port that never answers, keeps the page loading, so Chromium
/// dumps the DOM at its `--timeout` (a multipart image counts as loaded at
/// its first part).
fn grid_page(port: u16, n: usize, hold: u16) -> String {
    let imgs: String = (0..n)
        .map(|i| {
            format!(
                r#"<img crossorigin="anonymous" src="https://127.0.0.1:{port}/stream?img={i}">"#
            )
        })
        .collect();
    format!(
        r#"<!doctype html><html><body>{imgs}
<img src="http://127.0.0.1:{hold}/never">
<canvas id="c" width="16" height="12"></canvas>
<script>
const imgs = [...document.images].slice(0, -1);
const seen = imgs.map(() => new Set());
const loaded = imgs.map(() => false);
const ctx = document.getElementById('c').getContext('2d', {{willReadFrequently: true}});
setInterval(() => {{
  imgs.forEach((img, i) => {{
    if (!img.naturalWidth) return;
    loaded[i] = true;
    ctx.drawImage(img, 0, 0, 16, 12);
    seen[i].add(Array.from(ctx.getImageData(0, 0, 16, 12).data).join(','));
  }});
  const updating = seen.filter(s => s.size >= 2).length;
  document.title = 'loaded=' + loaded.filter(l => l).length + ' updating=' + updating + ' sizes=' + seen.map(s => s.size).join(',');
}}, 50);
</script></body></html>"#
    )
}

/// `(loaded, updating)` from the page's title.
fn grid_counts(dom: &str) -> (usize, usize) {
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or_else(|| panic!("no title: {dom}"));
    let num = |key: &str| -> usize {
        title
            .split(' ')
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {title:?}"))
    };
    (num("loaded="), num("updating="))
}

/// Twelve `<img>` streams from one HTTPS origin all load and update in
/// Chromium: over HTTP/2 they share one connection.
#[test]
fn chromium_grid_of_12_over_h2() {
    if !have_chromium() {
        return;
    }
    let dir = TempDir::new("h2-grid");
    let (cert, key, _) = write_cert(dir.path());
    let s = LiveSink::start(&format!(
        "host=127.0.0.1 tls-cert={cert} tls-key={key} allow-origin=* max-clients=0"
    ));
    let hold = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hold_port = hold.local_addr().expect("addr").port();
    let dom = chromium_dom(dir.path(), &grid_page(s.port, 12, hold_port), &[], 8000)
        .expect("chromium did not finish");
    let (loaded, updating) = grid_counts(&dom);
    assert_eq!(
        (loaded, updating),
        (12, 12),
        "over HTTP/2: {}",
        &dom[..dom.len().min(600)]
    );
}

/// The same page over HTTP/1.1 (Chromium told not to use HTTP/2): the
/// browser's 6 connections per host leave the others waiting.
#[test]
fn chromium_grid_of_12_over_h1_shows_at_most_6() {
    if !have_chromium() {
        return;
    }
    let dir = TempDir::new("h1-grid");
    let (cert, key, _) = write_cert(dir.path());
    let s = LiveSink::start(&format!(
        "host=127.0.0.1 tls-cert={cert} tls-key={key} allow-origin=*"
    ));
    let hold = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hold_port = hold.local_addr().expect("addr").port();
    let dom = chromium_dom(
        dir.path(),
        &grid_page(s.port, 12, hold_port),
        &["--disable-http2"],
        8000,
    )
    .expect("chromium did not finish");
    let (loaded, updating) = grid_counts(&dom);
    assert!(
        loaded <= 6 && updating <= 6,
        "over HTTP/1.1: {loaded} {updating}"
    );
    assert!(updating >= 1, "nothing updated over HTTP/1.1: {dom}");
}

/// ALPN offers `h2` and `http/1.1`; snapshots, state and streams answer
/// over HTTP/2.
#[test]
fn endpoints_over_h2() {
    let dir = TempDir::new("h2-endpoints");
    let (cert, key, der) = write_cert(dir.path());
    let s = LiveSink::start(&format!("host=127.0.0.1 tls-cert={cert} tls-key={key}"));
    let rt = runtime();
    rt.block_on(async {
        let (_, alpn) = tls_connect(s.port, &der, &[b"http/1.1"]).await;
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let mut send = h2_connect(s.port, &der, 1 << 20).await;
        let (head, mut body) = h2_get(&mut send, "/snapshot").await;
        assert_eq!(head.status, 200);
        assert_eq!(head.headers["content-type"], "image/jpeg");
        let mut jpeg = Vec::new();
        while let Some(d) = tokio::time::timeout(WAIT, body.data())
            .await
            .expect("snapshot body in time")
        {
            let d = d.expect("data");
            let _ = body.flow_control().release_capacity(d.len());
            jpeg.extend_from_slice(&d);
        }
        assert!(jpeg.starts_with(b"\xFF\xD8") && jpeg.ends_with(b"\xFF\xD9"));

        let (head, _) = h2_get(&mut send, "/state").await;
        assert_eq!(head.status, 200);
        assert_eq!(head.headers["content-type"], "application/json");

        let (head, mut body) = h2_get(&mut send, "/stream").await;
        assert_eq!(head.status, 200);
        assert!(
            head.headers["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("multipart/x-mixed-replace")
        );
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while count(&got, b"\xFF\xD9") < 3 {
            let d = tokio::time::timeout_at(deadline.into(), body.data())
                .await
                .expect("three frames in time")
                .expect("stream goes on")
                .expect("data");
            let _ = body.flow_control().release_capacity(d.len());
            got.extend_from_slice(&d);
        }
    });
    assert!(s.stat("clients-total") >= 1);
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// One h2 stream whose window the client never opens is dropped after
/// `timeout` (reset, counted as a timeout) while another stream of the
/// same connection keeps receiving frames.
#[test]
fn stalled_h2_stream_is_dropped_alone() {
    let dir = TempDir::new("h2-stall");
    let (cert, key, der) = write_cert(dir.path());
    let s = LiveSink::start(&format!(
        "host=127.0.0.1 tls-cert={cert} tls-key={key} timeout=2"
    ));
    let rt = runtime();
    rt.block_on(async {
        // A small stream window: a few frames fill it.
        let mut send = h2_connect(s.port, &der, 16 * 1024).await;
        let (head, mut stalled) = h2_get(&mut send, "/stream?who=stalled").await;
        assert_eq!(head.status, 200);
        let (head, mut live) = h2_get(&mut send, "/stream?who=live").await;
        assert_eq!(head.status, 200);
        let started = Instant::now();
        // Read the live stream (releasing its window) until the stalled
        // one has been reset by the server.
        let mut live_bytes_after_reset = None::<usize>;
        let deadline = Instant::now() + WAIT * 2;
        loop {
            let d = tokio::time::timeout_at(deadline.into(), live.data())
                .await
                .expect("no drop of the stalled stream while the live one flowed")
                .expect("the live stream ended")
                .expect("the live stream failed");
            let _ = live.flow_control().release_capacity(d.len());
            if let Some(n) = &mut live_bytes_after_reset {
                *n += d.len();
                if *n > 64 * 1024 {
                    break;
                }
            } else if s.stat("clients-dropped-timeout") == 1 {
                live_bytes_after_reset = Some(0);
            }
        }
        let dropped_after = started.elapsed();
        assert!(
            dropped_after >= Duration::from_millis(1500),
            "dropped too early: {dropped_after:?}"
        );
        // The stalled stream: what it was sent, then a reset.
        let mut ended = None;
        while ended.is_none() {
            match tokio::time::timeout(WAIT, stalled.data())
                .await
                .expect("the stalled stream was not reset")
            {
                Some(Ok(d)) => {
                    let _ = stalled.flow_control().release_capacity(0);
                    let _ = d;
                }
                Some(Err(e)) => ended = Some(e.reason()),
                None => ended = Some(None),
            }
        }
        assert_eq!(ended, Some(Some(h2::Reason::CANCEL)));
        assert_eq!(s.stat("clients-dropped-timeout"), 1);
        assert_eq!(s.stat("clients"), 1, "the live stream is still a client");
        drop(live);
    });
}
