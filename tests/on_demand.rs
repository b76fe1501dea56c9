// SPDX-License-Identifier: MPL-2.0

//! `examples/on_demand.rs`, run as a program against a live fake camera
//! that records its connections: no camera connection before a viewer; one
//! soon after a viewer arrives, whose first frame reaches the viewer; the
//! connection closed `--linger` after the viewer left, not before; and a
//! new connection for the next viewer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::viewers::*;
use common::*;

const LINGER: Duration = Duration::from_secs(1);

/// `examples/on_demand`, built (or found up to date) by cargo in this
/// test's target directory and profile, as tests/embedding.rs builds
/// `viewer`.
fn on_demand_binary() -> PathBuf {
    let profile_dir = profile_dir();
    let target_dir = profile_dir.parent().expect("target directory");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--example", "on_demand", "--target-dir"])
        .arg(target_dir)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build --example on_demand");
    assert!(
        status.success(),
        "cargo build --example on_demand: {status}"
    );
    let bin = profile_dir.join("examples").join("on_demand");
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// The port of the `serving http://127.0.0.1:PORT/stream` line.
fn serving_port(p: &Proc) -> Option<u16> {
    p.stdout().lines().find_map(|l| {
        let rest = l.strip_prefix("serving http://127.0.0.1:")?;
        rest.split('/').next()?.parse().ok()
    })
}

#[test]
fn camera_is_connected_only_while_someone_watches() {
    let cam = LiveCamera::start();
    let dir = TempDir::new("on-demand");
    let mut cmd = Command::new(on_demand_binary());
    cmd.args([
        cam.url().as_str(),
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--linger",
        &LINGER.as_secs_f64().to_string(),
    ]);
    let p = Proc::spawn("on_demand", &mut cmd, dir.path());
    let port = poll_until(LONG_WAIT, || serving_port(&p))
        .unwrap_or_else(|| panic!("on_demand never served\n{}", p.output_tail()));

    // Serving, nobody watching: the camera is left alone.
    assert!(
        cam.connections().is_empty(),
        "camera connected before any viewer\n{}",
        p.output_tail()
    );

    // A viewer arrives: the camera is connected, its frame reaches the viewer.
    let mut viewer = PartReader::open(port, "/stream", &[]);
    assert_eq!(viewer.status, 200, "{}", viewer.head);
    assert!(
        wait_for(WAIT, || cam.connections().len() == 1),
        "no camera connection after a viewer arrived\n{}",
        p.output_tail()
    );
    let first = viewer
        .next_part(Instant::now() + WAIT)
        .unwrap_or_else(|| panic!("no frame reached the viewer\n{}", p.output_tail()));
    assert!(is_jpeg(&first.jpeg));
    assert!(cam.connections()[0].frames_written > 0);

    // The viewer leaves: the camera stays connected for the linger time,
    // then is disconnected.
    drop(viewer);
    let left = Instant::now();
    let closed = poll_until(LINGER + WAIT, || cam.connections()[0].closed)
        .unwrap_or_else(|| panic!("camera never disconnected\n{}", p.output_tail()));
    let after = closed.duration_since(left);
    eprintln!("camera disconnected {after:?} after the viewer left (linger {LINGER:?})");
    assert!(
        after >= LINGER - Duration::from_millis(100),
        "camera disconnected {after:?} after the viewer left, before the linger of {LINGER:?}"
    );
    assert_eq!(cam.connections().len(), 1);

    // The next viewer brings the camera back.
    let mut again = PartReader::open(port, "/stream", &[]);
    assert!(
        wait_for(WAIT, || cam.connections().len() == 2),
        "no camera connection for the next viewer\n{}",
        p.output_tail()
    );
    let deadline = Instant::now() + WAIT;
    assert!(
        again.next_part(deadline).is_some() && again.next_part(deadline).is_some(),
        "the next viewer got no live frames\n{}",
        p.output_tail()
    );
}
