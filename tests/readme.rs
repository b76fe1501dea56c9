// SPDX-License-Identifier: MPL-2.0

//! The README works when pasted: every `gst-launch-1.0` command in a code
//! block of README.md is run, with the built plugin on `GST_PLUGIN_PATH`,
//! after these substitutions (README.md lists them too):
//!
//! * `http://camera/<anything>` → a local camera (`videotestsrc ! jpegenc !
//!   mjpegsink` in this process, with the line's `user-id`/`user-pw` as its
//!   Basic credentials when the line has them);
//! * `port=<n>` → a free port (the same one for every `port=<n>` of a line
//!   with the same `<n>`: sinks sharing a port); `host=0.0.0.0` →
//!   `host=127.0.0.1`;
//! * `location=<file>` → a file in a temporary directory;
//! * `autovideosink` → `fakesink` (no display here);
//! * `v4l2src <props>` → `videotestsrc is-live=true ! jpegenc` (no webcam).
//!
//! Then each command must show it works: a server line serves a JPEG on
//! `/snapshot` and whole frames on `/stream` (under the first `mount=` of
//! the line, if any); a client line receives frames
//! from the camera; a line with `num-buffers` ends by itself, any other is
//! stopped with SIGINT (Ctrl-C) once it has shown that; every line exits
//! with status 0; files written are a whole JPEG or Matroska; `-m` prints
//! the `mjpegsrc-connected` message; `GST_DEBUG=mjpegsrc:5` logs.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

#[derive(Debug)]
struct Case {
    line: usize,
    text: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

/// Every `gst-launch-1.0` command in a fenced code block.
fn extract(readme: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let (start, mut text) = match pending.take() {
            Some((start, mut acc)) => {
                acc.push(' ');
                acc.push_str(line.trim());
                (start, acc)
            }
            None => (i + 1, line.trim().to_string()),
        };
        if let Some(stripped) = text.strip_suffix('\\') {
            text = stripped.trim_end().to_string();
            pending = Some((start, text));
            continue;
        }
        if !text.contains("gst-launch-1.0") || text.starts_with('#') {
            continue;
        }
        let mut tokens = text.split_whitespace().peekable();
        let mut env = Vec::new();
        while let Some(t) = tokens.next_if(|t| {
            t.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
        }) {
            let (k, v) = t.split_once('=').expect("NAME=value");
            env.push((k.to_string(), v.to_string()));
        }
        assert_eq!(
            tokens.next(),
            Some("gst-launch-1.0"),
            "README.md:{start}: a command mentioning gst-launch-1.0 must start with it \
             (after NAME=value variables): {text}"
        );
        assert!(
            !text.contains(['"', '\'', '$', '|', ';', '&', '`']),
            "README.md:{start}: keep gst-launch-1.0 lines free of shell syntax: {text}"
        );
        cases.push(Case {
            line: start,
            text: text.clone(),
            env,
            args: tokens.map(str::to_string).collect(),
        });
    }
    cases
}

/// What a command needs and what it should produce.
struct Plan {
    args: Vec<String>,
    camera: Option<LocalCamera>,
    serve_port: Option<u16>,
    files: Vec<PathBuf>,
    ends_by_itself: bool,
}

impl Plan {
    /// The value of the first `name=value` argument.
    fn arg(&self, name: &str) -> Option<&str> {
        find_arg(&self.args, name)
    }
}

fn find_arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

fn plan(case: &Case, dir: &TempDir) -> Plan {
    let arg = |name: &str| find_arg(&case.args, name);
    let camera = case
        .args
        .iter()
        .any(|a| a.contains("http://camera/"))
        .then(|| match (arg("user-id"), arg("user-pw")) {
            (Some(u), Some(p)) => LocalCamera::start(Some((u, p))),
            _ => LocalCamera::start(None),
        });
    let mut args = Vec::new();
    let mut serve_port = None;
    let mut files = Vec::new();
    let mut skipping_v4l2_props = false;
    let mut ports = std::collections::HashMap::new();
    for a in &case.args {
        if skipping_v4l2_props {
            if a.contains('=') {
                continue;
            }
            skipping_v4l2_props = false;
        }
        if a == "v4l2src" {
            args.extend(["videotestsrc", "is-live=true", "!", "jpegenc"].map(String::from));
            skipping_v4l2_props = true;
        } else if a == "autovideosink" {
            args.push("fakesink".into());
        } else if a.starts_with("location=http://camera/") {
            let cam = camera.as_ref().expect("camera started");
            args.push(format!("location={}", cam.url()));
        } else if let Some(file) = a.strip_prefix("location=").filter(|f| !f.contains("://")) {
            let path = dir.path().join(file);
            files.push(path.clone());
            args.push(format!("location={}", path.display()));
        } else if let Some(n) = a.strip_prefix("port=") {
            let port = *ports.entry(n.to_string()).or_insert_with(free_port);
            serve_port = Some(port);
            args.push(format!("port={port}"));
        } else if a == "host=0.0.0.0" || a == "host=::" {
            args.push("host=127.0.0.1".into());
        } else {
            args.push(a.clone());
        }
    }
    if args.iter().any(|a| a == "mjpegsink") && serve_port.is_none() {
        // mjpegsink's default port.
        let port = free_port();
        serve_port = Some(port);
        args.push(format!("port={port}"));
    }
    Plan {
        ends_by_itself: args.iter().any(|a| a.starts_with("num-buffers=")),
        args,
        camera,
        serve_port,
        files,
    }
}

/// Run one command; Err(explanation) if it did not work.
fn run(case: &Case, dir: &TempDir) -> Result<String, String> {
    let plan = plan(case, dir);
    if plan.camera.is_none() && plan.serve_port.is_none() {
        return Err("neither reads http://camera/ nor serves: nothing to check".into());
    }
    let mut cmd = Command::new("gst-launch-1.0");
    gst_env(&mut cmd).args(&plan.args);
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn(&format!("line{}", case.line), &mut cmd, dir.path());
    let fail = |proc: &Proc, what: String| {
        Err(format!(
            "{what}\n  ran: gst-launch-1.0 {}\n{}",
            plan.args.join(" "),
            proc.output_tail()
        ))
    };

    let mut checks = Vec::new();
    if let Some(port) = plan.serve_port {
        // A server line with user-id/user-pw protects its endpoints.
        let auth = match (plan.arg("user-id"), plan.arg("user-pw")) {
            (Some(u), Some(p)) if plan.camera.is_none() => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                vec![("Authorization".to_string(), format!("Basic {b64}"))]
            }
            _ => Vec::new(),
        };
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mount = plan.arg("mount").unwrap_or("").trim_end_matches('/');
        let (snapshot_path, stream_path) = (format!("{mount}/snapshot"), format!("{mount}/stream"));
        let mut snapshot = None;
        let served = wait_for(LONG_WAIT, || {
            if proc.try_status().is_some() {
                return true;
            }
            snapshot = http_get(
                port,
                &snapshot_path,
                &headers,
                Duration::from_secs(5),
                |_| false,
            )
            .filter(|r| r.status == 200 && is_jpeg(&r.body));
            snapshot.is_some()
        });
        if !served || snapshot.is_none() {
            return fail(
                &proc,
                format!("no JPEG on http://127.0.0.1:{port}{snapshot_path}"),
            );
        }
        let resp = stream_frames(port, &stream_path, 3, &headers);
        checks.push(format!(
            "served /snapshot and {} frames on /stream",
            multipart_frames(resp.header("content-type"), &resp.body).len()
        ));
    }
    if let Some(cam) = &plan.camera {
        let before = cam.stat("frames-out");
        let want = if plan.ends_by_itself { 1 } else { 10 };
        let read = wait_for(LONG_WAIT, || {
            cam.stat("frames-out") >= before + want
                || (proc.try_status().is_some() && !plan.ends_by_itself)
        });
        if !read || cam.stat("frames-out") < before + want {
            return fail(&proc, "read no frames from the local camera".into());
        }
        checks.push(format!(
            "read {} frames from the camera",
            cam.stat("frames-out") - before
        ));
    }
    if !plan.ends_by_itself {
        if let Some(status) = proc.try_status() {
            return fail(
                &proc,
                format!("ended by itself ({status}) instead of running"),
            );
        }
        proc.interrupt();
    }
    let Some(status) = proc.wait(LONG_WAIT) else {
        return fail(&proc, "did not end (after SIGINT or EOS)".into());
    };
    if !status.success() {
        return fail(&proc, format!("exit status {status}"));
    }

    for f in &plan.files {
        let data = std::fs::read(f).unwrap_or_default();
        let name = f.display();
        let ok = match f.extension().and_then(|e| e.to_str()) {
            Some("jpg" | "jpeg") => is_jpeg(&data),
            Some("mkv") => data.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) && data.len() > 10_000,
            _ => !data.is_empty(),
        };
        if !ok {
            return fail(
                &proc,
                format!("{name}: {} bytes, not the expected file", data.len()),
            );
        }
        checks.push(format!("wrote {} bytes to {name}", data.len()));
    }
    if case.args.iter().any(|a| a == "-m") {
        if !proc.stdout().contains("mjpegsrc-connected") {
            return fail(&proc, "-m printed no mjpegsrc-connected message".into());
        }
        checks.push("printed mjpegsrc-connected".into());
    }
    if case
        .env
        .iter()
        .any(|(k, v)| k == "GST_DEBUG" && v.contains("mjpegsrc"))
    {
        let err = proc.stderr();
        if !(err.contains("DEBUG") && err.contains("mjpegsrc")) {
            return fail(&proc, "GST_DEBUG=mjpegsrc:5 logged nothing".into());
        }
        checks.push(format!("logged {} debug lines", err.lines().count()));
    }
    Ok(checks.join(", "))
}

#[test]
fn every_gst_launch_line_in_the_readme_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let cases = extract(&readme);
    assert!(
        cases.len() >= 8,
        "expected the README's pipelines, found {} gst-launch-1.0 lines",
        cases.len()
    );
    let dir = TempDir::new("readme");
    let mut failures = Vec::new();
    for case in &cases {
        match run(case, &dir) {
            Ok(what) => eprintln!("README.md:{}: ok: {what}\n    {}", case.line, case.text),
            Err(e) => failures.push(format!("README.md:{}: {}\n  {e}", case.line, case.text)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} README commands failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn extraction_joins_continued_lines_and_reads_variables() {
    let md = "text gst-launch-1.0 in prose\n```sh\n# comment gst-launch-1.0\n\
              GST_DEBUG=mjpegsrc:5 gst-launch-1.0 a \\\n   ! b\nls\n```\n";
    let cases = extract(md);
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].line, 4);
    assert_eq!(cases[0].env, [("GST_DEBUG".into(), "mjpegsrc:5".into())]);
    assert_eq!(cases[0].args, ["a", "!", "b"]);
}

/// The Rust code blocks of the README's gst-check section are, byte for
/// byte, the bodies of the modules of `tests/readme_gstcheck.rs` (indented
/// one level there), so the README shows exactly what the suite runs.
#[test]
fn gst_check_snippets_are_the_tested_code() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let tested = std::fs::read_to_string(format!("{root}/tests/readme_gstcheck.rs"))
        .expect("tests/readme_gstcheck.rs");
    let section = readme
        .split_once("\n## Testing your pipeline with gst-check\n")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .expect("README section \"Testing your pipeline with gst-check\"");
    let blocks: Vec<&str> = section
        .split("```rust\n")
        .skip(1)
        .map(|b| b.split_once("\n```").expect("closed code block").0)
        .collect();
    let modules = tested.matches("\nmod ").count();
    assert_eq!(blocks.len(), 2, "one gst-check test per element");
    assert_eq!(blocks.len(), modules, "a README block per tested module");
    for block in blocks {
        let indented: Vec<String> = block
            .lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("    {l}")
                }
            })
            .collect();
        let module_body = format!(" {{\n{}\n}}\n", indented.join("\n"));
        assert!(
            tested.contains(&module_body),
            "README block not in tests/readme_gstcheck.rs as a module body:\n{block}"
        );
    }
}
