// SPDX-License-Identifier: MPL-2.0

//! HTTPS over HTTP/2: a self-signed certificate for the sink, an `h2`
//! client connection that trusts it (flow control left to the test), and
//! headless Chromium loading a page.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

/// A self-signed certificate for localhost and 127.0.0.1 in `dir`: the
/// paths of the PEM certificate and key, and the certificate (DER).
pub fn write_cert(dir: &Path) -> (String, String, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("key");
    (
        cert.display().to_string(),
        key.display().to_string(),
        ck.cert.der().to_vec(),
    )
}

/// A TLS connection to 127.0.0.1:`port` trusting `cert_der`, offering
/// only `h2`; the protocol negotiated is returned with it.
pub async fn tls_connect(
    port: u16,
    cert_der: &[u8],
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der.to_vec()))
        .expect("trust the certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (tls, alpn)
}

/// An HTTP/2 client connection (driven by a task of its own) whose
/// streams get a receive window of `stream_window` bytes.
pub async fn h2_connect(
    port: u16,
    cert_der: &[u8],
    stream_window: u32,
) -> h2::client::SendRequest<Bytes> {
    let (tls, alpn) = tls_connect(port, cert_der, &[b"h2"]).await;
    assert_eq!(
        alpn.as_deref(),
        Some(&b"h2"[..]),
        "the server did not pick h2"
    );
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(stream_window)
        .initial_connection_window_size(64 << 20)
        .handshake::<_, Bytes>(tls)
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// GET `path` on `send`: the response head and its body stream.
pub async fn h2_get(
    send: &mut h2::client::SendRequest<Bytes>,
    path: &str,
) -> (http::response::Parts, h2::RecvStream) {
    let req = http::Request::get(format!("https://127.0.0.1{path}"))
        .body(())
        .expect("request");
    let ready = send.clone().ready().await.expect("ready");
    *send = ready;
    let (resp, _) = send.send_request(req, true).expect("send request");
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("response in time")
        .expect("response");
    resp.into_parts()
}

/// Whether Chromium is there (else the test is skipped, only when
/// `MJPEG_SKIP_BROWSER=1` says so).
pub fn have_chromium() -> bool {
    if Path::new("/usr/bin/chromium").exists() {
        return true;
    }
    assert_eq!(
        std::env::var("MJPEG_SKIP_BROWSER").as_deref(),
        Ok("1"),
        "/usr/bin/chromium is missing: apt-get install chromium (or set MJPEG_SKIP_BROWSER=1)"
    );
    false
}

/// Headless Chromium showing `html` (written to `dir`) with `extra`
/// flags for `ms` milliseconds of real time (virtual time would wait for
/// the requests a browser queues); its DOM afterwards, `None` when it did
/// not finish within a minute.
pub fn chromium_dom(dir: &Path, html: &str, extra: &[&str], ms: u32) -> Option<String> {
    let page = dir.join("page.html");
    std::fs::write(&page, html).expect("page");
    let profile = dir.join(format!("profile-{}", extra.join("")));
    let mut child = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--ignore-certificate-errors",
            "--dump-dom",
        ])
        .arg(format!("--timeout={ms}"))
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium");
    let pid = child.id();
    let reader = std::thread::spawn({
        let mut out = child.stdout.take().expect("stdout");
        move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        }
    });
    let done = super::wait_for(Duration::from_secs(60), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !done {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let _ = child.wait();
    }
    let dom = reader.join().unwrap_or_default();
    done.then_some(dom)
}
