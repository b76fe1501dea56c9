// SPDX-License-Identifier: MPL-2.0

//! The proxy environment variables, end to end. The environment is process
//! wide, so the element runs in a child process (this test binary again,
//! running the ignored `child` test) with exactly the variables under test;
//! the fake camera and proxy stay here. The matching rules themselves are
//! unit tests of `client/proxy.rs`.

mod common;

use common::proxy::FakeHttpProxy;
use common::*;
use std::process::Command;

const B: &str = "frame";
const SEED: u32 = 6000;

fn one_frame() -> Vec<Step> {
    let f = frames(1, 320, 240, SEED);
    vec![
        Step::Write(cat(&[&head_http10(&mjpeg_type(B)), &boundary_after(B, &f)])),
        Step::Stall,
    ]
}

#[test]
fn http_proxy_lower_case_and_no_proxy_are_honoured() {
    let cam = FakeCamera::scripted(vec![one_frame(), one_frame()]);
    let proxy = FakeHttpProxy::start(None);
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe);
    child.args(["--exact", "child", "--ignored", "--test-threads=1"]);
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        child.env_remove(var);
    }
    let out = child
        .env("http_proxy", proxy.url())
        // Upper case is ignored for http (httpoxy): this port is closed.
        .env("HTTP_PROXY", format!("http://127.0.0.1:{}", free_port()))
        .env("NO_PROXY", "example.com,localhost")
        .env("MJPEGSRC_TEST_PORT", cam.port().to_string())
        .output()
        .expect("run the child test");
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("test child ... ok"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // 127.0.0.1 went through http_proxy; localhost (in NO_PROXY) did not.
    let head = proxy.next_request(WAIT).expect("a request at the proxy");
    assert!(
        head.starts_with(&format!("GET {} HTTP/1.1\r\n", cam.url("/via-proxy"))),
        "{head}"
    );
    assert!(proxy.take_requests().is_empty());
    let mut paths: Vec<String> = (0..2)
        .filter_map(|_| cam.next_request(WAIT))
        .map(|r| r.path().to_owned())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/direct", "/via-proxy"]);
}

#[test]
#[ignore = "run by http_proxy_lower_case_and_no_proxy_are_honoured in a child process"]
fn child() {
    // Run by hand or with --include-ignored: nothing to do.
    let Ok(port) = std::env::var("MJPEGSRC_TEST_PORT") else {
        return;
    };
    let port: u16 = port.parse().expect("a port");
    let want = frames(1, 320, 240, SEED);
    for url in [
        format!("http://127.0.0.1:{port}/via-proxy"),
        format!("http://localhost:{port}/direct"),
    ] {
        let src = Src::fast(&url).play();
        assert_frames(&src.frame_data(1), &want);
        src.stop();
    }
}
