// SPDX-License-Identifier: MPL-2.0

//! What a GStreamer user sees first: `gst-inspect-1.0` on the built
//! `libgstmjpeg.so` (loaded from `GST_PLUGIN_PATH`, as after an install).
//!
//! Checks that the plugin is found with its version carrying the git commit,
//! that both elements have a long name, the HTTP network classification, a
//! description and an author, and that every property of each element
//! (those of the base classes included) is listed with a non-empty blurb,
//! our own stating their default (or that they are read-only).

mod common;

use common::*;

use std::process::Command;

use gst::prelude::*;

fn inspect(what: &str) -> String {
    let out = gst_env(&mut Command::new("gst-inspect-1.0"))
        .arg(what)
        .output()
        .expect("run gst-inspect-1.0 (Debian: gstreamer1.0-tools)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gst-inspect-1.0 {what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The value of a `Key    value` line of gst-inspect's details blocks.
fn detail<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix(key)?;
            rest.starts_with(char::is_whitespace).then(|| rest.trim())
        })
        .unwrap_or_else(|| panic!("no {key:?} in gst-inspect output:\n{out}"))
}

/// `(name, blurb, details)` of the "Element Properties:" section; `details`
/// are the indented lines after the blurb (flags, type, default).
fn listed_properties(out: &str) -> Vec<(String, String, String)> {
    let section = out
        .split_once("Element Properties:")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no Element Properties section:\n{out}"));
    let mut props: Vec<(String, String, String)> = Vec::new();
    for line in section.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            break; // next section
        }
        // "  name                : blurb" (property lines are indented by two).
        let Some(rest) = line.strip_prefix("  ") else {
            continue;
        };
        if rest.starts_with(' ') {
            // flags, type, default, enum values
            if let Some((_, _, details)) = props.last_mut() {
                details.push_str(rest.trim());
                details.push('\n');
            }
            continue;
        }
        if let Some((name, blurb)) = rest.split_once(" : ").or_else(|| rest.split_once(":")) {
            props.push((
                name.trim().to_string(),
                blurb.trim().to_string(),
                String::new(),
            ));
        }
    }
    props
}

fn check_element(name: &str, long_name: &str, klass: &str) {
    init();
    let out = inspect(name);
    assert_eq!(detail(&out, "Long-name"), long_name);
    assert_eq!(detail(&out, "Klass"), klass);
    assert!(detail(&out, "Description").len() > 40, "short description");
    assert_eq!(detail(&out, "Author"), "gst-mjpeg contributors");
    assert!(
        detail(&out, "Filename").ends_with("libgstmjpeg.so"),
        "not loaded from the built cdylib"
    );

    let listed = listed_properties(&out);
    let element = gst::ElementFactory::make(name)
        .build()
        .expect("element from the statically registered plugin");
    let own_type = element.type_();
    for pspec in element.list_properties() {
        let pname = pspec.name();
        let Some((_, blurb, details)) = listed.iter().find(|(n, _, _)| n == pname) else {
            panic!("{name}: property {pname} missing from gst-inspect-1.0 output:\n{out}");
        };
        assert!(!blurb.is_empty(), "{name}: {pname} has an empty blurb");
        if pspec.owner_type() == own_type {
            // gst-inspect prints the default and the flags itself: the
            // blurb does not repeat them.
            assert!(
                !blurb.contains("(default") && !blurb.contains("(read-only)"),
                "{name}: the blurb of {pname} repeats what gst-inspect prints: {blurb:?}"
            );
            let boxed = pspec.value_type().is_a(glib::Type::BOXED);
            let writable = pspec.flags().contains(glib::ParamFlags::WRITABLE);
            if writable && !boxed {
                assert!(
                    details.contains("Default:"),
                    "{name}: gst-inspect prints no default for {pname}: {details:?}"
                );
            }
        }
    }
    assert_eq!(
        listed.len(),
        element.list_properties().len(),
        "{name}: gst-inspect lists other properties than the element has: {listed:?}"
    );
}

#[test]
fn mjpegsrc_reads_well_in_gst_inspect() {
    check_element("mjpegsrc", "MJPEG HTTP source", "Source/Network/HTTP");
    let out = inspect("mjpegsrc");
    assert!(
        out.contains("http\n") && out.contains("https"),
        "URI protocols:\n{out}"
    );
}

#[test]
fn mjpegsink_reads_well_in_gst_inspect() {
    check_element("mjpegsink", "MJPEG HTTP server sink", "Sink/Network/HTTP");
    let out = inspect("mjpegsink");
    assert!(out.contains("client-connected"), "signals:\n{out}");
    assert!(out.contains("client-disconnected"), "signals:\n{out}");
}

#[test]
fn plugin_version_names_the_commit() {
    let out = inspect("mjpeg");
    assert_eq!(detail(&out, "Name"), "mjpeg");
    assert_eq!(detail(&out, "License"), "MPL-2.0");
    assert!(
        out.contains("mjpegsrc") && out.contains("mjpegsink"),
        "{out}"
    );
    let version = detail(&out, "Version");
    let suffix = version
        .strip_prefix(concat!(env!("CARGO_PKG_VERSION"), "-"))
        .unwrap_or_else(|| panic!("version {version:?} lacks the package version"));
    // In a git checkout the build names the commit it was built from.
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "log", "-1", "--format=%h"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(hash) if !hash.is_empty() => assert_eq!(
            suffix.trim_end_matches('+'),
            hash,
            "the plugin version names another commit than HEAD"
        ),
        _ => assert_eq!(suffix, "RELEASE", "outside git the version is a release"),
    }
}
