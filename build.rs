//! Build identity for `drover --version` and the results' environment: the git commit the binary
//! was built from (`unknown` outside a git checkout or without git) and the build profile
//! (`debug`, `release`, `dist`: the folder cargo builds into).

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|commit| commit.trim().to_string())
        .filter(|commit| !commit.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DROVER_GIT_COMMIT={commit}");

    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let profile = std::env::var("OUT_DIR")
        .ok()
        .and_then(|out| {
            Path::new(&out)
                .ancestors()
                .nth(3)
                .and_then(|dir| dir.file_name())
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into()));
    println!("cargo:rustc-env=DROVER_BUILD_PROFILE={profile}");

    // A new commit (HEAD moving, or the branch it names) gives a new identity.
    println!("cargo:rerun-if-changed=build.rs");
    for git_file in [".git/HEAD", ".git/packed-refs"] {
        if Path::new(git_file).exists() {
            println!("cargo:rerun-if-changed={git_file}");
        }
    }
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            let path = format!(".git/{reference}");
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
