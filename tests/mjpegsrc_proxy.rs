// SPDX-License-Identifier: MPL-2.0

//! The network around the camera: HTTP and SOCKS5 proxies, a proxy's 407,
//! interim (1xx) responses, HTTP/0.9 cameras, and a self-signed server
//! trusted through `ssl-ca-file` with `ssl-strict` on.

mod common;

use common::proxy::{FakeHttpProxy, FakeSocks5, TlsFront};
use common::*;
use gst::prelude::*;

const B: &str = "frame";

/// `head`, then `body` paced on the frames pulled, then held open.
fn paced_stream(head: &[u8], body: &[u8], f: &[Vec<u8>], marker: &[u8]) -> Vec<Step> {
    let mut s = paced(head, body, f, Some(marker), Coding::Identity, 0);
    s.push(Step::Stall);
    s
}

const DELIM: &[u8] = b"\r\n--frame\r\n";

/// A well-behaved HTTP/1.0 MJPEG response with `f`, paced, then held open.
fn camera_stream(f: &[Vec<u8>]) -> Vec<Step> {
    paced_stream(
        &head_http10(&mjpeg_type(B)),
        &boundary_after(B, f),
        f,
        DELIM,
    )
}

fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pw}").as_bytes()))
}

#[test]
fn http_proxy_gets_the_absolute_form_and_credentials() {
    let f = frames(3, 320, 240, 5000);
    let cam = FakeCamera::scripted(vec![camera_stream(&f)]);
    let proxy = FakeHttpProxy::start(Some(basic("pu", "pp")));
    let src = Src::fast(&cam.url("/video?x=1"))
        .set("proxy", proxy.url())
        .set("proxy-id", "pu")
        .set("proxy-pw", "pp")
        .paced_by(&cam)
        .play();
    assert_frames(&src.frame_data(3), &f);
    let head = proxy.next_request(WAIT).expect("request at the proxy");
    let line = head.lines().next().unwrap_or_default().to_owned();
    assert_eq!(line, format!("GET {} HTTP/1.1", cam.url("/video?x=1")));
    let r = cam.next_request(WAIT).expect("request at the camera");
    assert_eq!(r.path(), "/video?x=1");
}

#[test]
fn socks5_without_auth_resolves_locally() {
    let f = frames(3, 320, 240, 5010);
    let cam = FakeCamera::scripted(vec![camera_stream(&f)]);
    let socks = FakeSocks5::start(None);
    let src = Src::fast(&format!("http://localhost:{}/s", cam.port()))
        .set("proxy", format!("socks5://127.0.0.1:{}", socks.port()))
        .paced_by(&cam)
        .play();
    assert_frames(&src.frame_data(3), &f);
    let req = socks.next_request(WAIT).expect("SOCKS5 request");
    assert!(!req.by_name, "socks5:// resolves names itself: {req:?}");
    assert!(req.target.ends_with(&format!(":{}", cam.port())), "{req:?}");
    assert_eq!(req.credentials, None);
    assert!(src.posted_error().is_none(), "{:?}", src.posted_error());
}

#[test]
fn socks5h_with_user_and_password_sends_the_name() {
    let f = frames(3, 320, 240, 5020);
    let cam = FakeCamera::scripted(vec![camera_stream(&f)]);
    let socks = FakeSocks5::start(Some(("su".into(), "s3cret".into())));
    let src = Src::fast(&format!("http://localhost:{}/s", cam.port()))
        .set("proxy", format!("socks5h://127.0.0.1:{}", socks.port()))
        .set("proxy-id", "su")
        .set("proxy-pw", "s3cret")
        .paced_by(&cam)
        .play();
    assert_frames(&src.frame_data(3), &f);
    let req = socks.next_request(WAIT).expect("SOCKS5 request");
    assert_eq!(
        req,
        common::proxy::SocksRequest {
            methods: req.methods.clone(),
            credentials: Some(("su".into(), "s3cret".into())),
            target: format!("localhost:{}", cam.port()),
            by_name: true,
        }
    );
    assert!(req.methods.contains(&2), "{req:?}");
}

#[test]
fn socks5_over_tls_reaches_an_https_camera() {
    // TLS runs inside the SOCKS tunnel; the certificate is trusted through
    // ssl-ca-file.
    let f = frames(2, 320, 240, 5030);
    let cam = FakeCamera::scripted(vec![camera_stream(&f)]);
    let front = TlsFront::start(cam.port());
    let dir = TempDir::new("socks-tls");
    let ca = dir.write("ca.pem", front.cert_pem.as_bytes());
    let socks = FakeSocks5::start(None);
    let src = Src::fast(&front.https_url("/s"))
        .set("proxy", format!("socks5h://127.0.0.1:{}", socks.port()))
        .set("ssl-ca-file", ca.as_str())
        .paced_by(&cam)
        .play();
    assert_frames(&src.frame_data(2), &f);
    assert!(socks.next_request(WAIT).is_some());
}

fn assert_proxy_refused(src: &Src) {
    let (err, debug) = src.error(WAIT).expect("an error for the proxy's 407");
    assert!(
        err.matches(gst::ResourceError::NotAuthorized),
        "{err:?} {debug}"
    );
    assert!(
        debug.contains("the proxy refused the credentials (407 Proxy Authentication Required)")
            || err
                .message()
                .contains("the proxy refused the credentials (407 Proxy Authentication Required)"),
        "{err:?} {debug}"
    );
    assert_eq!(src.stats().u64("reconnects"), 0, "{}", src.stats().0);
}

#[test]
fn proxy_407_to_connect_is_a_clear_error() {
    // Was retried forever as a connection failure.
    let proxy = FakeHttpProxy::start(Some(basic("pu", "right")));
    let src = Src::fast("https://camera.invalid:8443/s")
        .set("proxy", proxy.url())
        .set("proxy-id", "pu")
        .set("proxy-pw", "wrong")
        .play();
    assert_proxy_refused(&src);
    let head = proxy.next_request(WAIT).expect("CONNECT at the proxy");
    assert!(
        head.starts_with("CONNECT camera.invalid:8443 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(proxy.take_requests().is_empty(), "asked again after a 407");
}

#[test]
fn proxy_407_to_a_plain_get_is_the_same_error() {
    let proxy = FakeHttpProxy::start(Some(basic("pu", "right")));
    let src = Src::fast("http://camera.invalid:8080/s")
        .set("proxy", proxy.url())
        .set("proxy-id", "pu")
        .set("proxy-pw", "wrong")
        .play();
    assert_proxy_refused(&src);
    let head = proxy.next_request(WAIT).expect("GET at the proxy");
    assert!(
        head.starts_with("GET http://camera.invalid:8080/s HTTP/1.1\r\n"),
        "{head}"
    );
}

#[test]
fn continue_100_is_skipped() {
    let f = frames(3, 320, 240, 5040);
    let head = cat(&[
        b"HTTP/1.1 100 Continue\r\n\r\n",
        &head_http10(&mjpeg_type(B)),
    ]);
    let cam = FakeCamera::scripted(vec![paced_stream(&head, &boundary_after(B, &f), &f, DELIM)]);
    let src = Src::for_camera(&cam, "/").play();
    assert_frames(&src.frame_data(3), &f);
    let s = src.stats();
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
    assert_eq!(cam.connections(), 1);
}

#[test]
fn http09_multipart_camera() {
    // No status line, no headers: the body starts with the delimiter.
    let f = frames(3, 320, 240, 5050);
    let cam = FakeCamera::scripted(vec![paced_stream(b"", &boundary_after(B, &f), &f, DELIM)]);
    let src = Src::for_camera(&cam, "/").play();
    assert_frames(&src.frame_data(3), &f);
    let s = src.stats();
    assert_eq!(s.u64("reconnects"), 0, "{}", s.0);
}

#[test]
fn http09_raw_jpeg_camera() {
    // No status line: concatenated JPEGs from the first byte.
    let f = frames(3, 320, 240, 5060);
    let body: Vec<u8> = f.concat();
    // Frame k is complete when frame k+1's SOI arrives.
    let cam = FakeCamera::scripted(vec![paced_stream(b"", &body, &f, &[0xFF, 0xD8])]);
    let src = Src::for_camera(&cam, "/").play();
    // The splitter releases a JPEG when the next one starts.
    assert_frames(&src.frame_data(2), &f[..2]);
}

#[test]
fn garbage_without_status_line_is_not_a_body() {
    let f = frames(2, 320, 240, 5070);
    let cam = FakeCamera::scripted(vec![
        vec![
            Step::Write(b"garbage, not HTTP\r\n\r\n--frame\r\n".to_vec()),
            Step::Close,
        ],
        camera_stream(&f),
    ]);
    let src = Src::for_camera(&cam, "/").play();
    assert_frames(&src.frame_data(2), &f);
    let s = src.wait_stats("reconnects", |s| s.u64("reconnects") >= 1);
    assert!(
        s.str("last-reconnect-reason")
            .starts_with("protocol error: bad response head"),
        "{}",
        s.0
    );
}

#[test]
fn self_signed_camera_trusted_through_ssl_ca_file() {
    let f = frames(3, 320, 240, 5080);
    let cam = FakeCamera::scripted(vec![camera_stream(&f)]);
    let front = TlsFront::start(cam.port());
    let dir = TempDir::new("ca");
    let ca = dir.write("ca.pem", front.cert_pem.as_bytes());
    let src = Src::fast(&front.https_url("/s"))
        .set("ssl-ca-file", ca.as_str())
        .paced_by(&cam)
        .play();
    assert!(src.element.property::<bool>("ssl-strict"));
    assert_frames(&src.frame_data(3), &f);
    assert_eq!(src.stats().u64("reconnects"), 0);
}

#[test]
fn another_ca_file_does_not_trust_the_camera() {
    // The file is used as a trust anchor, not as "accept anything".
    let f = frames(1, 320, 240, 5090);
    let cam = FakeCamera::scripted(vec![camera_stream(&f)]);
    let front = TlsFront::start(cam.port());
    let other = TlsFront::start(cam.port());
    let dir = TempDir::new("other-ca");
    let ca = dir.write("ca.pem", other.cert_pem.as_bytes());
    let src = Src::fast(&front.https_url("/s"))
        .set("ssl-ca-file", ca.as_str())
        .paced_by(&cam)
        .play();
    let (err, debug) = src
        .error(WAIT)
        .expect("an error for an untrusted certificate");
    assert!(err.matches(gst::ResourceError::OpenRead), "{err:?} {debug}");
    assert!(
        format!("{} {debug}", err.message())
            .contains("TLS handshake failed: invalid peer certificate"),
        "{err:?} {debug}"
    );
    assert!(cam.take_requests().is_empty());
}

fn start_error(src: &Src) -> (glib::Error, String) {
    assert!(src.pipeline().set_state(gst::State::Playing).is_err());
    src.error(WAIT).expect("an error from start()")
}

#[test]
fn bad_ssl_ca_file_fails_at_start() {
    let dir = TempDir::new("bad-ca");
    let missing = format!("{}/missing.pem", dir.path);
    let empty = dir.write("empty.pem", b"no certificate here\n");
    let broken = dir.write(
        "broken.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
    );
    for (file, want) in [
        (missing.as_str(), "Cannot read ssl-ca-file"),
        (empty.as_str(), "No certificate in ssl-ca-file"),
        (broken.as_str(), "ssl-ca-file"),
    ] {
        let src = Src::fast("https://127.0.0.1:1/").set("ssl-ca-file", file);
        let (err, debug) = start_error(&src);
        assert!(err.matches(gst::ResourceError::Settings), "{err:?}");
        assert!(
            format!("{} {debug}", err.message()).contains(want),
            "{file}: {err:?} {debug}"
        );
        let _ = src.pipeline().set_state(gst::State::Null);
    }
}

#[test]
fn unsupported_proxy_scheme_fails_at_start() {
    let src = Src::fast("http://127.0.0.1:1/").set("proxy", "socks4://127.0.0.1:1080");
    let (err, debug) = start_error(&src);
    assert!(err.matches(gst::ResourceError::Settings), "{err:?}");
    assert!(
        debug.contains("Unsupported proxy scheme socks4"),
        "{err:?} {debug}"
    );
}

/// A directory under the target's temp dir, removed on drop.
struct TempDir {
    path: String,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = format!(
            "{}/mjpegsrc-proxy-{name}-{}",
            std::env::temp_dir().display(),
            std::process::id()
        );
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    fn write(&self, file: &str, data: &[u8]) -> String {
        let p = format!("{}/{file}", self.path);
        std::fs::write(&p, data).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
