//! Where git runs hooks from, as git itself resolves it: `core.hooksPath`, linked worktrees and
//! all. cms asks git rather than guessing `.git/hooks`, so its hooks land where git looks.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::GitError;
use super::cmd::{git, run};

/// The absolute hooks directory of the checkout at `checkout` (which need not exist yet).
pub fn hooks_dir(checkout: &Path) -> Result<PathBuf, GitError> {
    let mut cmd = git(checkout);
    cmd.args(["rev-parse", "--path-format=absolute", "--git-path", "hooks"]);
    let mut out = run(cmd)?;
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    // Bytes, not text: a hooks path need not be UTF-8, and a lossy path would be a wrong one.
    Ok(PathBuf::from(OsStr::from_bytes(&out)))
}

/// The hooks git runs when it makes a commit (a merge commit's included).
const COMMIT_HOOKS: &[&str] = &[
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
];

/// Whether git would run any hook of its own when a commit is made in `checkout`.
pub fn has_commit_hooks(checkout: &Path) -> Result<bool, GitError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = hooks_dir(checkout)?;
    Ok(COMMIT_HOOKS.iter().any(|hook| {
        std::fs::metadata(dir.join(hook))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }))
}
