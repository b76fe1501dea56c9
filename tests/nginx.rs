// SPDX-License-Identifier: MPL-2.0

//! Scale-out through a standard reverse proxy: nginx in front of mjpegsink,
//! configured with the `server` block of README.md ("Behind nginx"), which
//! terminates TLS and forwards unbuffered.
//!
//! nginx runs in the foreground (`daemon off`) from a generated prefix in a
//! temporary directory, on free ports of 127.0.0.1. Checks: several clients
//! at once get the multipart stream through nginx (whole frames, at the
//! camera's rate), the snapshot and `/state` come through, and mjpegsrc
//! reads the stream over HTTPS from nginx (TLS termination).
//!
//! Slow and needing Debian's `nginx`, so `#[ignore]`d: `make test-integration`
//! runs them (`cargo test --test nginx -- --ignored`).

mod common;

use std::process::Command;
use std::time::Instant;

use common::*;
use gst::prelude::*;

const NGINX: &str = "/usr/sbin/nginx";

/// The ```nginx block of README.md.
fn readme_server_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("```nginx\n")
        .expect("README.md has an ```nginx block")
        + "```nginx\n".len();
    let len = readme[start..].find("```").expect("closed block");
    readme[start..start + len].to_string()
}

struct Nginx {
    _proc: Proc,
    http: u16,
    https: u16,
}

/// Start nginx with the README's server block, adapted to the test:
/// listen on free local ports (plain and TLS), a fresh self-signed
/// certificate, mjpegsink's port in `proxy_pass`.
fn start_nginx(dir: &TempDir, sink_port: u16) -> Nginx {
    assert!(
        std::path::Path::new(NGINX).exists(),
        "{NGINX} missing: apt-get install nginx-light (make test-integration does)"
    );
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate");
    let d = dir.path();
    std::fs::write(d.join("cert.pem"), ck.cert.pem()).expect("cert");
    std::fs::write(d.join("key.pem"), ck.signing_key.serialize_pem()).expect("key");
    std::fs::create_dir_all(d.join("tmp")).expect("tmp dir");

    let block = readme_server_block();
    assert!(
        block.contains("proxy_buffering off;"),
        "README config: {block}"
    );
    assert!(
        block.contains("proxy_pass http://127.0.0.1:8080;"),
        "{block}"
    );
    // A port can be taken between choosing and binding it: try a few.
    for attempt in 0..3 {
        let (http, https) = (free_port(), free_port());
        let server = block
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("listen ") {
                    format!("    listen 127.0.0.1:{https} ssl;\n    listen 127.0.0.1:{http};")
                } else if t.starts_with("ssl_certificate_key ") {
                    format!("    ssl_certificate_key {};", d.join("key.pem").display())
                } else if t.starts_with("ssl_certificate ") {
                    format!("    ssl_certificate {};", d.join("cert.pem").display())
                } else {
                    l.replace("127.0.0.1:8080", &format!("127.0.0.1:{sink_port}"))
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let tmp = d.join("tmp").display().to_string();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {pid};\nerror_log {log} info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n  \
             proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n  \
             uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n{server}\n}}\n",
            pid = d.join("nginx.pid").display(),
            log = d.join("error.log").display(),
        );
        let conf_path = d.join("nginx.conf");
        std::fs::write(&conf_path, &conf).expect("nginx.conf");
        let mut cmd = Command::new(NGINX);
        cmd.arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(&conf_path);
        let mut proc = Proc::spawn(&format!("nginx{attempt}"), &mut cmd, d);
        let up = wait_for(LONG_WAIT, || {
            proc.try_status().is_some()
                || (std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
                    && std::net::TcpStream::connect(("127.0.0.1", https)).is_ok())
        });
        if up && proc.try_status().is_none() {
            return Nginx {
                _proc: proc,
                http,
                https,
            };
        }
        let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
        eprintln!(
            "nginx did not start (attempt {attempt}):\n{log}\n{}",
            proc.output_tail()
        );
        assert!(
            log.contains("Address already in use"),
            "nginx failed with the README's config:\n{conf}\n{log}"
        );
    }
    panic!("nginx could not bind free ports in three attempts");
}

#[test]
#[ignore = "needs nginx; run by make test-integration"]
fn clients_get_stream_and_snapshot_through_nginx() {
    let cam = LocalCamera::start(None);
    // As the README says: the sink lists the public name nginx forwards
    // (a sink bound to loopback answers 403 to any other name).
    let pipeline = cam
        .sink()
        .parent()
        .and_then(|p| p.downcast::<gst::Pipeline>().ok())
        .expect("camera pipeline");
    pipeline.set_state(gst::State::Null).expect("null");
    cam.sink()
        .set_property("allowed-hosts", gst::Array::new(["camera.example.org"]));
    pipeline.set_state(gst::State::Playing).expect("playing");
    assert!(wait_for(LONG_WAIT, || cam.stat("frames-in") > 0));
    let dir = TempDir::new("nginx");
    let nginx = start_nginx(&dir, cam.port());
    let before = cam.stat("clients-total");
    // Every request names the public host, as a browser would: in the
    // absolute-form target, which nginx takes as $host.
    let public = |path: &str| format!("http://camera.example.org{path}");

    // Several viewers at once, each over its own proxied connection.
    const VIEWERS: usize = 4;
    const FRAMES: usize = 30;
    let port = nginx.http;
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = stream_frames(port, &public("/stream"), FRAMES, &[]);
                (r, t.elapsed())
            })
        })
        .collect();
    for v in viewers {
        let (r, took) = v.join().expect("viewer thread");
        assert_eq!(r.status, 200, "{}", r.head);
        let ct = r.header("content-type").unwrap_or_default().to_string();
        assert!(ct.starts_with("multipart/x-mixed-replace"), "{ct}");
        let frames = multipart_frames(Some(&ct), &r.body);
        assert!(frames.len() >= FRAMES);
        let fps = frames.len() as f64 / took.as_secs_f64();
        eprintln!(
            "through nginx: {} whole frames in {:.2} s ({fps:.1} fps incl. connect)",
            frames.len(),
            took.as_secs_f64()
        );
        // The camera runs at 30 fps: unbuffered forwarding keeps that pace.
        assert!(fps > 15.0, "frames arrive in bursts or late: {fps:.1} fps");
    }
    assert!(
        cam.stat("clients-total") >= before + VIEWERS as u64,
        "mjpegsink saw fewer clients than viewers connected through nginx"
    );

    let snap = http_get(port, &public("/snapshot"), &[], LONG_WAIT, |_| false).expect("snapshot");
    assert_eq!(snap.status, 200, "{}", snap.head);
    assert_eq!(snap.header("content-type"), Some("image/jpeg"));
    assert!(is_jpeg(&snap.body), "snapshot is not a JPEG");

    let state = http_get(port, &public("/state"), &[], LONG_WAIT, |_| false).expect("state");
    assert_eq!(state.status, 200, "{}", state.head);
    let json: serde_json::Value = serde_json::from_slice(&state.body).expect("JSON /state");
    assert!(json.get("clients").is_some(), "{json}");

    // Another name (a DNS-rebinding page) is refused by the sink.
    let evil = http_get(port, "http://evil.example/snapshot", &[], LONG_WAIT, |_| {
        false
    })
    .expect("evil");
    assert_eq!(evil.status, 403, "{}", evil.head);
}

#[test]
#[ignore = "needs nginx; run by make test-integration"]
fn mjpegsrc_reads_through_nginx_tls_termination() {
    let cam = LocalCamera::start(None);
    let dir = TempDir::new("nginx-tls");
    let nginx = start_nginx(&dir, cam.port());

    let url = format!("https://127.0.0.1:{}/stream", nginx.https);
    let pipeline = launch(&format!(
        "mjpegsrc location={url} ssl-strict=false ! appsink name=out sync=false"
    ));
    let appsink = by_name::<gst_app::AppSink>(&pipeline, "out");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let deadline = Instant::now() + LONG_WAIT;
    let mut got = 0;
    while got < 30 {
        let Some(sample) = pull_until(&appsink, deadline) else {
            break;
        };
        let buffer = sample.buffer().expect("buffer");
        let map = buffer.map_readable().expect("readable");
        assert!(is_jpeg(&map), "frame {got} is not a whole JPEG");
        assert_eq!(
            sample_size(&sample).map(|(w, _)| w),
            Some(320),
            "{:?}",
            sample.caps()
        );
        got += 1;
    }
    let stats = pipeline
        .by_name("mjpegsrc0")
        .map(|s| s.property::<gst::Structure>("stats").to_string())
        .unwrap_or_default();
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(got >= 30, "{got} frames over TLS through nginx; {stats}");
    assert!(
        cam.stat("clients-total") >= 1,
        "the stream did not come from mjpegsink"
    );
}
