// SPDX-License-Identifier: MPL-2.0

//! Property metadata and the URI handler: every property has a nick and a
//! real blurb, the documented default, and round-trips; `stats` is
//! read-only.

mod common;

use common::*;
use gst::prelude::*;

fn element() -> gst::Element {
    init();
    gst::ElementFactory::make("mjpegsrc")
        .build()
        .expect("create mjpegsrc")
}

/// Properties from the contract, with their value type.
const PROPS: &[(&str, &str)] = &[
    ("location", "gchararray"),
    ("user-id", "gchararray"),
    ("user-pw", "gchararray"),
    ("proxy", "gchararray"),
    ("proxy-id", "gchararray"),
    ("proxy-pw", "gchararray"),
    ("user-agent", "gchararray"),
    ("extra-headers", "GstStructure"),
    ("cookies", "GStrv"),
    ("ssl-strict", "gboolean"),
    ("timeout", "guint"),
    ("connect-timeout", "guint"),
    ("retries", "gint"),
    ("retry-delay", "guint"),
    ("retry-delay-max", "guint"),
    ("max-frame-size", "guint"),
    ("pool-size", "guint"),
    ("is-live", "gboolean"),
    ("do-timestamp", "gboolean"),
    ("num-buffers", "gint"),
    ("stats", "GstStructure"),
];

/// Value equality that also covers NULL strings, string arrays and
/// structures.
fn same(a: &glib::Value, b: &glib::Value) -> bool {
    if a.type_() != b.type_() {
        return false;
    }
    if a.type_() == glib::Type::STRING {
        return a.get::<Option<String>>().ok() == b.get::<Option<String>>().ok();
    }
    if a.type_() == glib::StrV::static_type() {
        return a.get::<Vec<String>>().ok() == b.get::<Vec<String>>().ok();
    }
    if a.type_() == gst::Structure::static_type() {
        return a.get::<Option<gst::Structure>>().ok() == b.get::<Option<gst::Structure>>().ok();
    }
    gst::prelude::GstValueExt::eq(a, b)
}

fn show(v: &glib::Value) -> String {
    gst::prelude::GstValueExt::serialize(v)
        .map(|s| s.to_string())
        .unwrap_or_else(|_| format!("{v:?}"))
}

#[test]
fn contract_properties_exist_with_their_types() {
    let e = element();
    for (name, ty) in PROPS {
        let p = e
            .find_property(name)
            .unwrap_or_else(|| panic!("property {name} missing"));
        assert_eq!(p.value_type().name(), *ty, "type of {name}");
    }
}

#[test]
fn every_property_has_nick_and_blurb() {
    let e = element();
    let own = e.type_();
    for p in e.list_properties().iter() {
        // GstObject's name/parent are not ours to document.
        if ["name", "parent"].contains(&p.name()) {
            continue;
        }
        assert!(!p.nick().is_empty(), "{} has no nick", p.name());
        let blurb = p.blurb().unwrap_or_default();
        assert!(!blurb.is_empty(), "{} has no blurb", p.name());
        if p.owner_type() == own {
            assert!(
                blurb.len() >= 10,
                "{}: blurb {blurb:?} is not a real description",
                p.name()
            );
            assert_ne!(blurb, p.nick(), "{}: blurb repeats the nick", p.name());
        }
    }
}

#[test]
fn defaults_match_the_contract() {
    let e = element();
    let u = |n: &str| e.property::<u32>(n);
    assert_eq!(
        e.property::<Option<String>>("location").unwrap_or_default(),
        ""
    );
    for n in ["user-id", "user-pw", "proxy", "proxy-id", "proxy-pw"] {
        assert_eq!(
            e.property::<Option<String>>(n).unwrap_or_default(),
            "",
            "{n}"
        );
    }
    let ua = e
        .property::<Option<String>>("user-agent")
        .unwrap_or_default();
    assert!(
        ua.starts_with("gst-mjpeg/") && ua.contains(env!("CARGO_PKG_VERSION")),
        "user-agent {ua:?}"
    );
    assert!(
        e.property::<Option<gst::Structure>>("extra-headers")
            .is_none_or(|s| s.n_fields() == 0)
    );
    assert!(e.property::<Vec<String>>("cookies").is_empty());
    assert!(e.property::<bool>("ssl-strict"));
    assert_eq!(u("timeout"), 10);
    assert_eq!(u("connect-timeout"), 10);
    assert_eq!(e.property::<i32>("retries"), -1);
    assert_eq!(u("retry-delay"), 500);
    assert_eq!(u("retry-delay-max"), 10_000);
    assert_eq!(u("max-frame-size"), 4 * 1024 * 1024);
    assert_eq!(u("pool-size"), 8);
    assert!(e.property::<bool>("is-live"));
    assert_eq!(e.property::<i32>("num-buffers"), -1);

    // The pspec defaults say the same.
    let pspec = |n: &str| e.find_property(n).expect(n);
    assert_eq!(pspec("timeout").default_value().get::<u32>().ok(), Some(10));
    assert_eq!(pspec("retries").default_value().get::<i32>().ok(), Some(-1));
    assert_eq!(
        pspec("pool-size").default_value().get::<u32>().ok(),
        Some(8)
    );
    assert_eq!(
        pspec("ssl-strict").default_value().get::<bool>().ok(),
        Some(true)
    );
    let pool = pspec("pool-size");
    let pool = pool
        .downcast_ref::<glib::ParamSpecUInt>()
        .expect("pool-size is a guint property");
    assert_eq!(pool.minimum(), 2, "pool-size minimum");
    let retries = pspec("retries");
    let retries = retries
        .downcast_ref::<glib::ParamSpecInt>()
        .expect("retries is a gint property");
    assert_eq!(retries.minimum(), -1, "retries: -1 = forever");
}

#[test]
fn initial_values_equal_pspec_defaults_and_round_trip() {
    let e = element();
    for p in e.list_properties().iter() {
        let flags = p.flags();
        if !flags.contains(glib::ParamFlags::READABLE) {
            continue;
        }
        let name = p.name();
        let current = e.property_value(name);
        if name == "stats" || name == "name" || name == "parent" {
            continue;
        }
        assert!(
            same(&current, p.default_value()),
            "{name}: initial value {} != pspec default {}",
            show(&current),
            show(p.default_value())
        );
        if flags.contains(glib::ParamFlags::WRITABLE)
            && !flags.contains(glib::ParamFlags::CONSTRUCT_ONLY)
        {
            e.set_property_from_value(name, p.default_value());
            let back = e.property_value(name);
            assert!(
                same(&back, p.default_value()),
                "{name}: set default {} read back {}",
                show(p.default_value()),
                show(&back)
            );
        }
    }
}

#[test]
fn non_default_values_round_trip() {
    let e = element();
    let extra = gst::Structure::builder("extra-headers")
        .field("X-Api-Key", "abc")
        .field("X-Channel", 2i32)
        .build();
    let values: Vec<(&str, glib::Value)> = vec![
        (
            "location",
            "http://127.0.0.1:8080/?action=stream".to_value(),
        ),
        ("user-id", "admin".to_value()),
        ("user-pw", "secret".to_value()),
        ("proxy", "http://127.0.0.1:3128".to_value()),
        ("proxy-id", "pu".to_value()),
        ("proxy-pw", "pp".to_value()),
        ("user-agent", "Viewer/1.0".to_value()),
        ("extra-headers", extra.to_value()),
        ("cookies", glib::StrV::from(vec!["a=1", "b=2"]).to_value()),
        ("ssl-strict", false.to_value()),
        ("timeout", 3u32.to_value()),
        ("timeout", 0u32.to_value()),
        ("connect-timeout", 4u32.to_value()),
        ("retries", 7i32.to_value()),
        ("retries", 0i32.to_value()),
        ("retry-delay", 25u32.to_value()),
        ("retry-delay-max", 2500u32.to_value()),
        ("max-frame-size", 65_536u32.to_value()),
        ("pool-size", 2u32.to_value()),
        ("pool-size", 32u32.to_value()),
        ("is-live", false.to_value()),
        ("do-timestamp", true.to_value()),
        ("num-buffers", 5i32.to_value()),
    ];
    for (name, v) in values {
        e.set_property_from_value(name, &v);
        let back = e.property_value(name);
        assert!(
            same(&back, &v),
            "{name}: set {} read back {}",
            show(&v),
            show(&back)
        );
    }
}

#[test]
fn stats_is_read_only_and_well_formed_before_start() {
    let e = element();
    let p = e.find_property("stats").expect("stats");
    assert!(p.flags().contains(glib::ParamFlags::READABLE));
    assert!(
        !p.flags().contains(glib::ParamFlags::WRITABLE),
        "stats must be read-only"
    );
    e.set_property("location", "http://127.0.0.1:1/x");
    let s = e.property::<gst::Structure>("stats");
    assert_eq!(s.name(), "mjpegsrc-stats");
    for &f in SRC_STATS_U64 {
        assert_eq!(s.get::<u64>(f).ok(), Some(0), "{f} in {s}");
    }
    assert!(s.get::<f64>("fps").is_ok(), "{s}");
    assert_eq!(
        s.get::<String>("last-reconnect-reason").ok().as_deref(),
        Some(""),
        "{s}"
    );
    assert!(s.get::<u32>("free-buffers").is_ok(), "{s}");
    assert_eq!(s.get::<bool>("connected").ok(), Some(false), "{s}");
    assert_eq!(
        s.get::<String>("location").ok().as_deref(),
        Some("http://127.0.0.1:1/x"),
        "{s}"
    );
}

#[test]
fn factory_metadata_and_rank() {
    init();
    let f = gst::ElementFactory::find("mjpegsrc").expect("factory");
    assert!(
        f.rank() <= gst::Rank::MARGINAL,
        "must not take playbin away from souphttpsrc: rank {:?}",
        f.rank()
    );
    let klass = f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default();
    assert!(klass.contains("Source"), "klass {klass:?}");
    assert!(
        !f.metadata(gst::ELEMENT_METADATA_LONGNAME)
            .unwrap_or_default()
            .is_empty()
    );
    assert!(
        !f.metadata(gst::ELEMENT_METADATA_DESCRIPTION)
            .unwrap_or_default()
            .is_empty()
    );
    let e = element();
    assert!(e.is::<gst_base::PushSrc>(), "mjpegsrc is a PushSrc");
    let templ = f
        .static_pad_templates()
        .into_iter()
        .find(|t| t.direction() == gst::PadDirection::Src)
        .expect("src template");
    assert!(
        templ.caps().to_string().starts_with("image/jpeg"),
        "{}",
        templ.caps()
    );
}

#[test]
fn uri_handler_accepts_http_and_https_and_sets_location() {
    let e = element();
    let h = e.dynamic_cast_ref::<gst::URIHandler>().expect("URIHandler");
    assert_eq!(h.uri_type(), gst::URIType::Src);
    let protocols: Vec<String> = h.protocols().iter().map(|p| p.to_string()).collect();
    assert!(protocols.contains(&"http".to_string()), "{protocols:?}");
    assert!(protocols.contains(&"https".to_string()), "{protocols:?}");
    for uri in [
        "http://127.0.0.1:8080/?action=stream",
        "https://camera.example:8443/mjpg/video.mjpg?resolution=640x480",
        "http://user:pass@192.0.2.1/cgi-bin/mjpg/video.cgi?channel=1&subtype=1",
    ] {
        h.set_uri(uri)
            .unwrap_or_else(|err| panic!("set_uri({uri}): {err}"));
        assert_eq!(
            e.property::<Option<String>>("location").as_deref(),
            Some(uri)
        );
        assert_eq!(h.uri().map(|u| u.to_string()).as_deref(), Some(uri));
    }
    e.set_property("location", "http://127.0.0.1:9/x");
    assert_eq!(
        h.uri().map(|u| u.to_string()).as_deref(),
        Some("http://127.0.0.1:9/x")
    );
}

#[test]
fn uri_handler_rejects_other_schemes() {
    let e = element();
    let h = e.dynamic_cast_ref::<gst::URIHandler>().expect("URIHandler");
    h.set_uri("http://127.0.0.1/keep").expect("http");
    for uri in [
        "rtsp://127.0.0.1/stream",
        "file:///tmp/x.mjpeg",
        "not a uri",
    ] {
        assert!(h.set_uri(uri).is_err(), "{uri} must be rejected");
    }
    assert_eq!(
        e.property::<Option<String>>("location").as_deref(),
        Some("http://127.0.0.1/keep"),
        "a rejected URI keeps the old location"
    );
}
