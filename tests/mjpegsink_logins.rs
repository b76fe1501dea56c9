// SPDX-License-Identifier: MPL-2.0

//! mjpegsink login throttling, trusted proxies and signed links, with raw
//! HTTP requests from chosen loopback addresses (127.0.0.1 the viewer,
//! 127.0.0.2 the attacker). Ports are picked by the OS; every read is
//! bounded.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use common::logins::{Sink, basic, get_from};

const VIEWER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

fn creds() -> Vec<(&'static str, glib::Value)> {
    vec![
        ("user-id", "user".to_value()),
        ("user-pw", "s3cret".to_value()),
    ]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn retry_after(r: &common::logins::Response) -> u64 {
    r.header("Retry-After")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in {}", r.head))
}

/// 100 wrong passwords from 127.0.0.2: the first 10 get 401, the rest 429
/// with Retry-After, a correct password from there too; the viewer on
/// 127.0.0.1 is served all along, as fast as without the attack.
#[test]
fn hundred_wrong_passwords_cost_another_address_nothing() {
    let mut sink = Sink::start(&creds());
    sink.push();
    let port = sink.port;
    let good = basic("user", "s3cret");
    let login = |good: &str| {
        let t = Instant::now();
        let r = get_from(VIEWER, port, "/snapshot", good);
        assert_eq!(r.status, 200, "viewer: {}", r.head);
        t.elapsed()
    };
    // Warm up, then the viewer's login latency without an attack.
    login(&good);
    let quiet: Vec<Duration> = (0..30).map(|_| login(&good)).collect();

    // The attack, while the viewer keeps logging in.
    let attacker = std::thread::spawn(move || {
        let wrong = basic("user", "guess");
        (0..100)
            .map(|_| get_from(ATTACKER, port, "/snapshot", &wrong))
            .collect::<Vec<_>>()
    });
    let mut attacked = Vec::new();
    while !attacker.is_finished() || attacked.len() < 30 {
        attacked.push(login(&good));
    }
    let answers = attacker.join().expect("attacker");

    for (i, r) in answers.iter().enumerate() {
        if i < 10 {
            assert_eq!(r.status, 401, "attempt {i}: {}", r.head);
        } else {
            assert_eq!(r.status, 429, "attempt {i}: {}", r.head);
            assert!((1..=60).contains(&retry_after(r)), "{}", r.head);
            assert!(common::logins::find(&r.body, &[0xFF, 0xD8]).is_none());
        }
    }
    // The right password does not get through from the throttled address.
    let r = get_from(ATTACKER, port, "/snapshot", &good);
    assert_eq!(r.status, 429, "{}", r.head);
    // ... but does from the viewer's.
    login(&good);

    let (q, a) = (median(quiet.clone()), median(attacked.clone()));
    let (q_max, a_max) = (
        quiet.iter().max().copied().unwrap_or_default(),
        attacked.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "viewer login latency: without attack median {q:?} (max {q_max:?}, n={}), \
         during 100 wrong passwords from another address median {a:?} (max {a_max:?}, n={})",
        quiet.len(),
        attacked.len()
    );
    assert!(
        a <= q * 3 + Duration::from_millis(5),
        "the attack slowed the viewer: median {q:?} -> {a:?}"
    );
    assert_eq!(sink.stat("logins-failed"), 10);
    assert_eq!(sink.stat("requests-throttled"), 91);
}

/// Behind a trusted proxy the throttle counts by the last X-Forwarded-For
/// hop; from any other peer the header is ignored.
#[test]
fn trusted_proxies_key_on_the_forwarded_client() {
    let mut props = creds();
    props.push(("trusted-proxies", gst::Array::new(["127.0.0.1"]).to_value()));
    let mut sink = Sink::start(&props);
    sink.push();
    let port = sink.port;
    let good = basic("user", "s3cret");
    let wrong = basic("user", "nope");
    let xff = |ip: &str, auth: &str| format!("X-Forwarded-For: 192.0.2.77, {ip}\r\n{auth}");

    // Through the proxy (127.0.0.1): client 10.0.0.1 is throttled ...
    for i in 0..10 {
        let r = get_from(VIEWER, port, "/snapshot", &xff("10.0.0.1", &wrong));
        assert_eq!(r.status, 401, "attempt {i}: {}", r.head);
    }
    let r = get_from(VIEWER, port, "/snapshot", &xff("10.0.0.1", &good));
    assert_eq!(r.status, 429, "{}", r.head);
    // ... client 10.0.0.2, the proxy itself and the first hop are not.
    assert_eq!(
        get_from(VIEWER, port, "/snapshot", &xff("10.0.0.2", &good)).status,
        200
    );
    assert_eq!(get_from(VIEWER, port, "/snapshot", &good).status, 200);
    assert_eq!(
        get_from(
            VIEWER,
            port,
            "/snapshot",
            &format!("X-Forwarded-For: 10.0.0.1, 192.0.2.77\r\n{good}")
        )
        .status,
        200
    );

    // 127.0.0.2 is no trusted proxy: its X-Forwarded-For is ignored, all
    // its attempts count against 127.0.0.2.
    for i in 0..10 {
        let ip = format!("10.9.0.{i}");
        let r = get_from(ATTACKER, port, "/snapshot", &xff(&ip, &wrong));
        assert_eq!(r.status, 401, "attempt {i}: {}", r.head);
    }
    let r = get_from(ATTACKER, port, "/snapshot", &xff("10.9.9.9", &good));
    assert_eq!(r.status, 429, "{}", r.head);
    assert_eq!(sink.stat("logins-failed"), 20);
    assert_eq!(sink.stat("requests-throttled"), 2);
}

/// `trusted-proxies` is a GstValueArray of addresses, settable from a
/// gst-launch string; a bad entry is refused and the old value kept.
#[test]
fn trusted_proxies_property() {
    common::init();
    let e = gst::ElementFactory::make("mjpegsink")
        .build()
        .expect("mjpegsink");
    e.set_property_from_str("trusted-proxies", r#"<"127.0.0.1", "::1">"#);
    let got = e.property::<gst::Array>("trusted-proxies");
    let got: Vec<String> = got
        .iter()
        .map(|v| v.get::<String>().expect("str"))
        .collect();
    assert_eq!(got, ["127.0.0.1", "::1"]);
    e.set_property("trusted-proxies", gst::Array::new(["proxy.lan"]));
    assert_eq!(e.property::<gst::Array>("trusted-proxies").len(), 2);
    let p = gst::parse::launch(r#"fakesrc ! mjpegsink name=s trusted-proxies=<"10.0.0.1">"#)
        .expect("launch");
    let s = p
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("s"))
        .expect("sink");
    assert_eq!(s.property::<gst::Array>("trusted-proxies").len(), 1);
}

fn link_sink(with_credentials: bool) -> Sink {
    let mut props = vec![("link-secret", "hunter2-link-key".to_value())];
    if with_credentials {
        props.extend(creds());
    }
    let mut s = Sink::start(&props);
    s.push();
    s
}

/// A signed link opens exactly its path until it expires; other query
/// parameters stay free; a wrong or expired one is 403 and a failed login.
#[test]
fn signed_links_open_exactly_their_path() {
    let sink = link_sink(true);
    let port = sink.port;
    let snap = sink.sign_url("/snapshot", 60).expect("signed");
    let (path, query) = snap.split_once('?').expect("query");
    assert_eq!(path, "/snapshot");
    assert!(query.starts_with("exp="), "{snap}");
    let sig = query.split("&sig=").nth(1).expect("sig");
    assert_eq!(sig.len(), 64);
    assert!(
        sig.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    let r = get_from(VIEWER, port, &snap, "");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.body.starts_with(&[0xFF, 0xD8]));
    assert_eq!(
        get_from(VIEWER, port, &format!("{snap}&fps=5"), "").status,
        200
    );
    assert_eq!(
        get_from(VIEWER, port, &format!("/snapshot?fps=5&{query}"), "").status,
        200
    );

    let stream = sink.sign_url("/stream", 60).expect("signed");
    let r = get_from(VIEWER, port, &stream, "");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("multipart/"))
    );

    let failed_before = sink.stat("logins-failed");
    let expired = sink.sign_url("/snapshot", 0).expect("signed");
    let tampered = snap.replace(&sig[..4], if &sig[..4] == "0000" { "1111" } else { "0000" });
    let refused = [
        format!("/stream?{query}"),
        format!("/?{query}"),
        format!("/?action=snapshot&{query}"),
        format!("/snapshot?{query}&action=snapshot"),
        format!("/state?{query}"),
        format!("/snapshot/?{query}"),
        format!("/%73napshot?{query}"),
        tampered,
        expired,
        snap.replace("&sig=", "&sig=0"),
        format!("{snap}&exp=1"),
        snap.to_uppercase()
            .replace("/SNAPSHOT?EXP", "/snapshot?exp")
            .replace("&SIG", "&sig"),
    ];
    for (i, target) in refused.iter().enumerate() {
        // Ten from the attacker, the rest from a third address.
        let from = if i < 10 { ATTACKER } else { OTHER };
        let r = get_from(from, port, target, "");
        assert_eq!(r.status, 403, "{target}: {}", r.head);
        assert!(common::logins::find(&r.body, &[0xFF, 0xD8]).is_none());
        assert_eq!(sink.stat("logins-failed"), failed_before + i as u64 + 1);
    }
    // A bad link with the right password is still served (credentials win),
    // and no link, no password asks for one.
    let r = get_from(
        VIEWER,
        port,
        &format!("/stream?{query}"),
        &basic("user", "s3cret"),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let r = get_from(VIEWER, port, "/snapshot", "");
    assert_eq!(r.status, 401, "{}", r.head);
    // Ten bad links throttle the address like ten wrong passwords.
    let r = get_from(ATTACKER, port, &snap, "");
    assert_eq!(r.status, 429, "{}", r.head);
    assert_eq!(get_from(VIEWER, port, &snap, "").status, 200);
}

/// With a link secret and no user-id/user-pw only signed links are served.
#[test]
fn signed_links_only() {
    let sink = link_sink(false);
    let port = sink.port;
    let r = get_from(VIEWER, port, "/snapshot", "");
    assert_eq!(r.status, 403, "{}", r.head);
    assert!(r.header("WWW-Authenticate").is_none());
    let snap = sink.sign_url("/snapshot", 60).expect("signed");
    assert_eq!(get_from(VIEWER, port, &snap, "").status, 200);
    assert_eq!(sink.stat("logins-failed"), 0);
}

/// `sign-url` refuses what cannot be a link, and needs a link-secret.
#[test]
fn sign_url_signal() {
    let sink = link_sink(false);
    for bad in ["snapshot", "/snapshot?x=1", "/a#b", "", "/a b"] {
        assert_eq!(sink.sign_url(bad, 60), None, "{bad:?}");
    }
    let before = SystemTimeSecs::now();
    let url = sink.sign_url("/", 3600).expect("signed");
    let exp: u64 = url
        .strip_prefix("/?exp=")
        .and_then(|r| r.split('&').next())
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("{url}"));
    assert!(
        (before + 3600..=SystemTimeSecs::now() + 3600).contains(&exp),
        "{url}"
    );

    let plain = Sink::start(&[]);
    assert_eq!(plain.sign_url("/snapshot", 60), None);
}

struct SystemTimeSecs;

impl SystemTimeSecs {
    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}
