use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    // COMMIT_ID (short hash, "+" when files are modified) and BUILD_REL_DATE
    // for the plugin's version, as gst-inspect-1.0 shows it.
    gst_plugin_version_helper::info();

    // Without these, cargo would not run this script again after a commit
    // that changes no file, and the version would name an older commit.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=src");
    let (Some(git_dir), Some(common_dir)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) else {
        return;
    };
    let mut watch = vec![
        format!("{git_dir}/HEAD"),
        format!("{common_dir}/packed-refs"),
    ];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(format!("{common_dir}/{branch}"));
    }
    // A path that does not exist would make cargo run this script every time.
    for p in watch.iter().filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={p}");
    }
}
