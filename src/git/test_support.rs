//! What the git modules' unit tests share: running the real `git` in a test repository.

use std::path::Path;

/// Runs `git -C dir args` with a stand-in identity and fails the test if it fails.
pub(crate) fn git_ok(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}
