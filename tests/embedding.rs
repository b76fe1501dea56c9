// SPDX-License-Identifier: MPL-2.0

//! The embedding examples work: the Rust (`examples/viewer.rs`), Python
//! (`examples/python/viewer.py`, PyGObject) and C (`examples/c/viewer.c`,
//! built with its Makefile and pkg-config) viewers each read a local camera
//! for a few seconds, print a statistics line per second with frames > 0,
//! report the `mjpegsrc-connected` bus message, and exit with status 0.
//!
//! The Python and C viewers load the built `libgstmjpeg.so` through
//! `GST_PLUGIN_PATH`, as an installed plugin would be; the Rust one is built
//! here with `cargo build --example viewer` (in the test's target directory).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SECONDS: &str = "3";

/// `total frames: N` of the last statistics line.
fn last_total_frames(stdout: &str) -> Option<u64> {
    stdout.lines().rev().find_map(|l| {
        let rest = l.split("total frames: ").nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

fn run_viewer(name: &str, mut cmd: Command, cam: &LocalCamera, dir: &TempDir) {
    cmd.args([cam.url().as_str(), "--seconds", SECONDS]);
    let mut p = Proc::spawn(name, &mut cmd, dir.path());
    let status = p
        .wait(LONG_WAIT)
        .unwrap_or_else(|| panic!("{name} did not stop after {SECONDS} s\n{}", p.output_tail()));
    let out = p.stdout();
    assert!(status.success(), "{name}: {status}\n{}", p.output_tail());
    let stats_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("URL: ")).collect();
    assert!(
        stats_lines.len() >= 2,
        "{name}: expected a statistics line per second\n{}",
        p.output_tail()
    );
    for field in [
        "fps: ",
        "buffer overruns: ",
        "reconnects: ",
        "total frames: ",
        "discarded frames: ",
        "free buffers: ",
    ] {
        assert!(
            stats_lines[0].contains(field),
            "{name}: no {field:?}: {}",
            stats_lines[0]
        );
    }
    assert!(
        out.contains("connected: HTTP 200"),
        "{name}: no mjpegsrc-connected report\n{}",
        p.output_tail()
    );
    let frames = last_total_frames(&out).unwrap_or(0);
    assert!(frames > 0, "{name}: no frames\n{}", p.output_tail());
    eprintln!(
        "{name}: {frames} frames; last line: {}",
        stats_lines[stats_lines.len() - 1]
    );
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/viewer`, built (or found up to date) by cargo in this test's
/// target directory and profile: `cargo test` builds examples only as test
/// harnesses, not as the programs themselves.
fn rust_viewer() -> PathBuf {
    let profile_dir = profile_dir();
    let target_dir = profile_dir.parent().expect("target directory");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--example", "viewer", "--target-dir"])
        .arg(target_dir)
        .current_dir(manifest_dir());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build --example viewer");
    assert!(status.success(), "cargo build --example viewer: {status}");
    let bin = profile_dir.join("examples").join("viewer");
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

#[test]
fn rust_viewer_prints_stats() {
    let cam = LocalCamera::start(None);
    let dir = TempDir::new("viewer-rust");
    // It registers the plugin statically (the crate is linked in).
    run_viewer("viewer.rs", Command::new(rust_viewer()), &cam, &dir);
}

#[test]
fn python_viewer_prints_stats() {
    let python = python_with("gi; gi.require_version('Gst', '1.0')")
        .expect("no python3 with PyGObject: apt-get install python3-gi gir1.2-gstreamer-1.0");
    let cam = LocalCamera::start(None);
    let dir = TempDir::new("viewer-python");
    let mut cmd = Command::new(python);
    gst_env(&mut cmd).arg(manifest_dir().join("examples/python/viewer.py"));
    run_viewer("viewer.py", cmd, &cam, &dir);
}

#[test]
fn c_viewer_builds_and_prints_stats() {
    let dir = TempDir::new("viewer-c");
    let out = Command::new("make")
        .args(["-s", "-C"])
        .arg(manifest_dir().join("examples/c"))
        .arg(format!("OUT={}", dir.path().display()))
        .output()
        .expect("run make (Debian: make, gcc, libgstreamer1.0-dev)");
    assert!(
        out.status.success(),
        "building examples/c/viewer.c failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cam = LocalCamera::start(None);
    let mut cmd = Command::new(dir.path().join("viewer"));
    gst_env(&mut cmd);
    run_viewer("viewer.c", cmd, &cam, &dir);
}
