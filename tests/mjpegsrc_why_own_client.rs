// SPDX-License-Identifier: MPL-2.0

//! Why `mjpegsrc` has its own HTTP/1.x client: two responses real cameras
//! send (WIRE.md), read by reqwest (hyper) and by `mjpegsrc`.
//! * HTTP/1.0 with `Transfer-Encoding: chunked` (TP-Link Kasa): hyper
//!   refuses the response head;
//! * an endless multipart stream with a bogus `Content-Length`: hyper ends
//!   the body after that many bytes.
//!
//! `cargo test --test mjpegsrc_why_own_client -- --nocapture` prints what
//! reqwest reports.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;

const B: &str = "frame";
const DELIM: &[u8] = b"\r\n--frame\r\n";

/// Serve `response` once on 127.0.0.1:0 (then close); the URL.
fn serve_once(response: Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_read_timeout(Some(WAIT));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&response);
        }
    });
    format!("http://127.0.0.1:{port}/")
}

/// reqwest's answer: the body's length, or the error with its sources.
fn reqwest_get(url: &str) -> Result<usize, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let chain = |e: &dyn std::error::Error| {
            let mut s = e.to_string();
            let mut src = e.source();
            while let Some(e) = src {
                s.push_str(&format!(": {e}"));
                src = e.source();
            }
            s
        };
        let client = reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .map_err(|e| chain(&e))?;
        let resp = client.get(url).send().await.map_err(|e| chain(&e))?;
        let body = resp.bytes().await.map_err(|e| chain(&e))?;
        Ok(body.len())
    })
}

#[test]
fn http10_chunked_is_refused_by_reqwest_and_read_by_mjpegsrc() {
    let f = frames(3, 320, 240, 7000);
    let body = cat(&[&chunked(&boundary_after(B, &f), 500), CHUNK_END]);
    let response = cat(&[&head_http10_chunked(&mjpeg_type(B)), &body]);
    let got = reqwest_get(&serve_once(response.clone()));
    println!("reqwest, HTTP/1.0 + chunked: {got:?}");
    let err = got.expect_err("reqwest accepted HTTP/1.0 + chunked");
    assert!(err.contains("unexpected transfer-encoding parsed"), "{err}");

    let mut steps = paced(
        &head_http10_chunked(&mjpeg_type(B)),
        &boundary_after(B, &f),
        &f,
        Some(DELIM),
        Coding::Chunked(500),
        0,
    );
    steps.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![steps]);
    let src = Src::for_camera(&cam, "/").play();
    assert_frames(&src.frame_data(3), &f);
}

#[test]
fn bogus_content_length_truncates_reqwest_not_mjpegsrc() {
    let f = frames(3, 320, 240, 7010);
    let body = boundary_after(B, &f);
    let head = head(
        "HTTP/1.0 200 OK",
        &[("Content-Type", &mjpeg_type(B)), ("Content-Length", "100")],
    );
    let response = cat(&[&head, &body]);
    let got = reqwest_get(&serve_once(response.clone()));
    println!(
        "reqwest, multipart with Content-Length: 100 on a {}-byte body: {got:?}",
        body.len()
    );
    assert_eq!(got, Ok(100), "reqwest read the body past its length");

    let mut steps = paced(&head, &body, &f, Some(DELIM), Coding::Identity, 0);
    steps.push(Step::Stall);
    let cam = FakeCamera::scripted(vec![steps]);
    let src = Src::for_camera(&cam, "/").play();
    assert_frames(&src.frame_data(3), &f);
}
