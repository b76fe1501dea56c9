// SPDX-License-Identifier: MPL-2.0

//! A real headless Chromium (and Firefox ESR) shows mjpegsink's stream in
//! `<img>` elements and the picture changes over time; the same run
//! measures how late each browser shows each frame with and without
//! `advance_headers`.
//!
//! Requires Debian's `chromium` at /usr/bin/chromium (fails without it,
//! unless MJPEG_SKIP_BROWSER=1). The Firefox test is `#[ignore]`d (slow to
//! start; `make test-integration` runs it) and needs Debian's `firefox-esr`.
//!
//! How: the test serves a page (port A) with three `<img>`s pointing at
//! mjpegsink (port B, `allow-origin=*`, so the page may read pixels):
//! `/stream?advance_headers=0`, `/stream?advance_headers=1` and `/stream`
//! (the default for a Chromium User-Agent). Frames are solid colours that
//! encode their index. The page draws every image into a canvas every few
//! milliseconds and reports each colour change to port A; the test matches
//! reports to the time each frame was pushed into the sink.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const FIREFOX: &str = "/usr/bin/firefox-esr";
const WIDTH: usize = 64;
const HEIGHT: usize = 48;
/// Frames pushed (each a distinct colour).
const FRAMES: usize = 60;
/// Interval between frames.
const INTERVAL: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(30);

fn color(i: usize) -> [u8; 3] {
    [
        ((i % 4) * 85) as u8,
        (((i / 4) % 4) * 85) as u8,
        (((i / 16) % 4) * 85) as u8,
    ]
}

fn index_of(rgb: [u8; 3]) -> usize {
    let q = |c: u8| ((f64::from(c) / 85.0).round() as usize).min(3);
    q(rgb[0]) + 4 * q(rgb[1]) + 16 * q(rgb[2])
}

/// Encode the solid-colour frames with jpegenc.
fn make_jpegs() -> Vec<Vec<u8>> {
    let p = launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={WIDTH},height={HEIGHT},framerate=0/1 \
         ! videoconvert ! jpegenc quality=95 ! appsink name=out sync=false"
    ));
    let src = by_name::<gst_app::AppSrc>(&p, "src");
    let out = by_name::<gst_app::AppSink>(&p, "out");
    p.set_state(gst::State::Playing).expect("play");
    for i in 0..FRAMES {
        let c = color(i);
        let data: Vec<u8> = (0..WIDTH * HEIGHT).flat_map(|_| c).collect();
        let mut buf = gst::Buffer::from_mut_slice(data);
        buf.get_mut()
            .expect("writable")
            .set_pts(gst::ClockTime::from_mseconds(i as u64 * 100));
        src.push_buffer(buf).expect("push raw");
    }
    src.end_of_stream().expect("eos");
    let mut v = Vec::new();
    while let Some(s) = out.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let b = s.buffer().expect("buffer");
        v.push(b.map_readable().expect("map").to_vec());
    }
    p.set_state(gst::State::Null).expect("null");
    assert_eq!(v.len(), FRAMES);
    v
}

#[derive(Debug)]
struct Report {
    img: String,
    rgb: [u8; 3],
    width: u32,
    at: Instant,
}

/// The page: three `<img>`s, each sampled every 4 ms; a colour change is
/// reported. Chromium's `<img>` is drawn into a canvas directly; Firefox's
/// canvas `drawImage` keeps returning a multipart image's first part, so
/// there the current part is read through `createImageBitmap`.
fn page(stream_port: u16, kind: Kind) -> String {
    let bitmap = kind == Kind::Firefox;
    format!(
        r#"<!doctype html><html><body>
<img id="n" crossorigin="anonymous" src="http://127.0.0.1:{stream_port}/stream?advance_headers=0">
<img id="a" crossorigin="anonymous" src="http://127.0.0.1:{stream_port}/stream?advance_headers=1">
<img id="d" crossorigin="anonymous" src="http://127.0.0.1:{stream_port}/stream">
<canvas id="c" width="{WIDTH}" height="{HEIGHT}"></canvas>
<script>
const ctx = document.getElementById('c').getContext('2d', {{willReadFrequently: true}});
const last = {{}};
const busy = {{}};
function check(id, source, width) {{
  ctx.drawImage(source, 0, 0);
  const p = ctx.getImageData({WIDTH} / 2, {HEIGHT} / 2, 1, 1).data;
  const key = p[0] + ',' + p[1] + ',' + p[2];
  if (last[id] !== key) {{
    last[id] = key;
    fetch('/r?img=' + id + '&c=' + key + '&w=' + width);
  }}
}}
function fail(id, e) {{
  fetch('/r?img=' + id + '&error=' + encodeURIComponent(e.toString()));
}}
function poll() {{
  for (const id of ['n', 'a', 'd']) {{
    const img = document.getElementById(id);
    if (!img.naturalWidth) continue;
    try {{
      if ({bitmap}) {{
        if (busy[id]) continue;
        busy[id] = true;
        createImageBitmap(img).then(b => {{
          busy[id] = false;
          check(id, b, img.naturalWidth);
          b.close();
        }}, e => {{ busy[id] = false; fail(id, e); }});
      }} else {{
        check(id, img, img.naturalWidth);
      }}
    }} catch (e) {{
      fail(id, e);
    }}
  }}
}}
setInterval(poll, 4);
</script></body></html>"#
    )
}

/// Serve the page and collect reports until the process ends.
fn spawn_page_server(listener: TcpListener, html: String, tx: mpsc::Sender<Report>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            let mut reader = BufReader::new(match conn.try_clone() {
                Ok(c) => c,
                Err(_) => continue,
            });
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the request head.
            loop {
                let mut h = String::new();
                match reader.read_line(&mut h) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if h == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let at = Instant::now();
            let target = line.split(' ').nth(1).unwrap_or("/").to_string();
            let response = if let Some(q) = target.strip_prefix("/r?") {
                let kv: HashMap<String, String> = url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect();
                if let Some(e) = kv.get("error") {
                    eprintln!("page error: {e}");
                }
                let rgb: Vec<u8> = kv
                    .get("c")
                    .map(|c| c.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or_default();
                if let (Some(img), [r, g, b]) = (kv.get("img"), rgb.as_slice()) {
                    let _ = tx.send(Report {
                        img: img.clone(),
                        rgb: [*r, *g, *b],
                        width: kv.get("w").and_then(|w| w.parse().ok()).unwrap_or(0),
                        at,
                    });
                }
                "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_string()
            } else if target == "/" {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{html}",
                    html.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = conn.write_all(response.as_bytes());
        }
    });
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Chromium,
    Firefox,
}

/// Firefox preferences: no first-run pages, and no background connections
/// to anything but the test's own servers.
const FIREFOX_PREFS: &[(&str, &str)] = &[
    ("browser.shell.checkDefaultBrowser", "false"),
    ("browser.startup.homepage_override.mstone", "\"ignore\""),
    ("browser.aboutwelcome.enabled", "false"),
    ("datareporting.policy.dataSubmissionEnabled", "false"),
    ("datareporting.healthreport.uploadEnabled", "false"),
    ("toolkit.telemetry.enabled", "false"),
    ("toolkit.telemetry.reportingpolicy.firstRun", "false"),
    ("app.update.enabled", "false"),
    ("app.normandy.enabled", "false"),
    ("extensions.update.enabled", "false"),
    ("extensions.getAddons.cache.enabled", "false"),
    ("browser.search.update", "false"),
    ("browser.safebrowsing.malware.enabled", "false"),
    ("browser.safebrowsing.phishing.enabled", "false"),
    ("browser.safebrowsing.downloads.enabled", "false"),
    ("browser.safebrowsing.update.enabled", "false"),
    ("network.captive-portal-service.enabled", "false"),
    ("network.connectivity-service.enabled", "false"),
    ("network.dns.disablePrefetch", "true"),
    ("network.prefetch-next", "false"),
    ("network.trr.mode", "5"),
    ("services.settings.server", "\"http://127.0.0.1:9/\""),
    ("media.gmp-manager.url", "\"http://127.0.0.1:9/\""),
    ("browser.newtabpage.enabled", "false"),
    ("geo.enabled", "false"),
];

/// A browser in its own process group, killed (group-wide) on drop.
struct Browser {
    child: Child,
    profile: std::path::PathBuf,
}

impl Browser {
    fn launch(kind: Kind, url: &str) -> Browser {
        use std::os::unix::process::CommandExt;
        let profile = std::env::temp_dir().join(format!(
            "mjpegsink-{kind:?}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let mut cmd = match kind {
            Kind::Chromium => {
                let mut cmd = Command::new(CHROMIUM);
                cmd.args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--autoplay-policy=no-user-gesture-required",
                ])
                .arg(format!("--user-data-dir={}", profile.display()));
                cmd
            }
            Kind::Firefox => {
                let prefs: String = FIREFOX_PREFS
                    .iter()
                    .map(|(k, v)| format!("user_pref(\"{k}\", {v});\n"))
                    .collect();
                std::fs::write(profile.join("user.js"), prefs).expect("user.js");
                let mut cmd = Command::new(FIREFOX);
                cmd.args(["--headless", "--no-remote", "--profile"])
                    .arg(&profile)
                    .env("HOME", &profile)
                    .env("MOZ_CRASHREPORTER_DISABLE", "1");
                cmd
            }
        };
        let child = cmd
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("launch {kind:?}: {e}"));
        Browser { child, profile }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: browser, renderers, zygote.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Per image of the page: label, distinct frames shown, median and maximum
/// display delay after the push (ms).
type Measured = Vec<(&'static str, usize, f64, f64)>;

/// Show the stream in `kind`'s three images (advance_headers=0, =1, and
/// the default for its User-Agent) and measure each.
fn measure(kind: Kind) -> Measured {
    init();
    let jpegs = make_jpegs();

    let sink = test_sink(&[("allow-origin", "*".into())]);
    let (conn_tx, conn_rx) = mpsc::channel::<String>();
    let conn_tx = std::sync::Mutex::new(conn_tx);
    sink.connect("client-connected", false, move |args| {
        if let Ok(p) = args[1].get::<String>() {
            let _ = conn_tx.lock().map(|t| t.send(p));
        }
        None
    });
    let mut h = gst_check::Harness::with_element(&sink, Some("sink"), None);
    h.play();
    h.set_src_caps_str(&format!(
        "image/jpeg,width={WIDTH},height={HEIGHT},framerate=10/1"
    ));
    let stream_port = sink.property::<i32>("current-port") as u16;
    // Something to show at once.
    h.push(gst::Buffer::from_slice(jpegs[0].clone()))
        .expect("push");

    let page_listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
    let page_port = page_listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    spawn_page_server(page_listener, page(stream_port, kind), tx);
    let _browser = Browser::launch(kind, &format!("http://127.0.0.1:{page_port}/"));

    // All three images connected.
    for _ in 0..3 {
        conn_rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{kind:?} did not open the three streams"));
    }
    // Until the page has seen frame 0 in the advance-headers image.
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = rx.recv_timeout(left).expect("no report from the page");
        if r.img == "a" && index_of(r.rgb) == 0 {
            break;
        }
    }

    // Push frames 1.. at a steady rate, collecting reports meanwhile.
    let mut pushed_at = vec![None; FRAMES];
    let mut reports = Vec::new();
    let start = Instant::now();
    for (i, jpeg) in jpegs.iter().enumerate().skip(1) {
        let due = start + INTERVAL * i as u32;
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            if let Ok(r) = rx.recv_timeout(left) {
                reports.push(r);
            }
        }
        pushed_at[i] = Some(Instant::now());
        h.push(gst::Buffer::from_slice(jpeg.clone())).expect("push");
    }
    // One more interval for the last reports, then the same frame again so
    // a one-frame-late client can show the last one.
    let until = Instant::now() + INTERVAL;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Ok(r) = rx.recv_timeout(left) {
            reports.push(r);
        }
    }
    h.push(gst::Buffer::from_slice(jpegs[FRAMES - 1].clone()))
        .expect("push");
    let until = Instant::now() + INTERVAL * 5;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Ok(r) = rx.recv_timeout(left) {
            reports.push(r);
        }
    }

    let mut summary = Vec::new();
    for (id, label) in [
        ("n", "advance_headers=0"),
        ("a", "advance_headers=1"),
        ("d", "default for its User-Agent"),
    ] {
        let mine: Vec<&Report> = reports.iter().filter(|r| r.img == id).collect();
        assert!(
            mine.iter().all(|r| r.width == WIDTH as u32),
            "{label}: naturalWidth"
        );
        let mut seen = std::collections::BTreeSet::new();
        let mut delays = Vec::new();
        for r in &mine {
            let i = index_of(r.rgb);
            if seen.insert(i)
                && let Some(Some(t)) = pushed_at.get(i)
            {
                delays.push(r.at.saturating_duration_since(*t).as_secs_f64() * 1000.0);
            }
        }
        let shown = seen.len();
        let max = delays.iter().copied().fold(0.0, f64::max);
        let med = median(&mut delays);
        eprintln!(
            "{kind:?} {label}: {shown} distinct frames shown ({} pushed after the first), \
             display delay after push: median {med:.1} ms, max {max:.1} ms",
            FRAMES - 1,
        );
        summary.push((label, shown, med, max));
    }
    summary
}

fn browser_present(path: &str, package: &str) -> bool {
    if std::path::Path::new(path).exists() {
        return true;
    }
    if std::env::var("MJPEG_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("{path} missing; skipped because MJPEG_SKIP_BROWSER=1");
        return false;
    }
    panic!("{path} is missing: apt-get install {package} (or set MJPEG_SKIP_BROWSER=1)");
}

fn assert_changes(kind: Kind, summary: &Measured) {
    for (label, shown, _, _) in summary {
        assert!(
            *shown >= FRAMES / 2,
            "{kind:?} {label}: the picture changed only {shown} times"
        );
    }
}

#[test]
fn chromium_shows_the_stream_and_it_changes() {
    if !browser_present(CHROMIUM, "chromium") {
        return;
    }
    let summary = measure(Kind::Chromium);
    assert_changes(Kind::Chromium, &summary);
    // The finding that makes advance_headers the default for Chromium: it
    // shows each frame when it arrives instead of one frame late.
    let (normal, advance, default) = (summary[0].2, summary[1].2, summary[2].2);
    assert!(
        advance + INTERVAL.as_secs_f64() * 500.0 < normal,
        "advance_headers should save most of a frame interval: {advance:.1} vs {normal:.1} ms"
    );
    assert!(
        default + INTERVAL.as_secs_f64() * 500.0 < normal,
        "the default for Chromium should be advance_headers: {default:.1} vs {normal:.1} ms"
    );
}

#[test]
#[ignore = "slow browser start; run by make test-integration"]
fn firefox_shows_the_stream_and_it_changes() {
    if !browser_present(FIREFOX, "firefox-esr") {
        return;
    }
    let summary = measure(Kind::Firefox);
    assert_changes(Kind::Firefox, &summary);
    // Firefox shows a part when its closing delimiter arrives, which
    // mjpegsink sends right after each frame: no frame late either way.
    for (label, _, med, _) in &summary {
        assert!(
            *med < INTERVAL.as_secs_f64() * 500.0,
            "Firefox {label}: frames shown a median {med:.1} ms after the push"
        );
    }
}
