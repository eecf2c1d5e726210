//! Records which commit cms was built from, for `cms --version`.
//!
//! Built from a git checkout of cms, `CMS_GIT_COMMIT` is the short commit id (with `-dirty`
//! when the tree had uncommitted changes) and `CMS_GIT_DATE` the commit's date; anywhere else
//! (a crates.io package, no git installed) both are empty. Nothing here can fail the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| text.trim().to_owned())
}

/// Asks cargo to run this script again when `file` changes. A path that does not exist would
/// make cargo run it on every build, so those are left out.
fn watch(file: Option<String>) {
    if let Some(file) = file.filter(|f| Path::new(f).exists()) {
        println!("cargo:rerun-if-changed={file}");
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Run again when HEAD moves or the index changes (a commit, a checkout, `git add`), in
    // any repository around, even before it tracks this file. An edit alone rebuilds the
    // crate but not this script, so the `-dirty` mark is as fresh as the last of those; the
    // commit id always is.
    watch(git(&["rev-parse", "--git-path", "HEAD"]));
    watch(git(&["rev-parse", "--git-path", "index"]));
    watch(git(&["rev-parse", "--git-path", "packed-refs"]));
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(git(&["rev-parse", "--git-path", &head_ref]));
    }
    // A package unpacked inside some other repository (a home directory kept in git) is not a
    // checkout of cms: only a repository that tracks this very file is.
    let ours = git(&["ls-files", "--error-unmatch", "build.rs"]).is_some();
    let commit = ours
        .then(|| git(&["rev-parse", "--short", "HEAD"]))
        .flatten()
        .unwrap_or_default();
    let mut date = String::new();
    let mut dirty = "";
    if !commit.is_empty() {
        date = git(&["log", "-1", "--format=%cs", "HEAD"]).unwrap_or_default();
        // Untracked files count too: a new module left out of a commit changes the build.
        if git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) {
            dirty = "-dirty";
        }
    }
    println!("cargo:rustc-env=CMS_GIT_COMMIT={commit}{dirty}");
    println!("cargo:rustc-env=CMS_GIT_DATE={date}");
}
