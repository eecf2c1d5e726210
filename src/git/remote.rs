//! Remotes: which one a task's branch goes to, and pushing it there.

use std::path::Path;

use super::GitError;
use super::cmd::{git, run, run_text};

/// The remote a branch based on `base_branch` is pushed to: that branch's upstream remote,
/// else `origin`, else the only remote there is.
pub fn default_remote(dir: &Path, base_branch: Option<&str>) -> Result<Option<String>, GitError> {
    if let Some(branch) = base_branch
        && let Ok(remote) = run_text(dir, ["config", "--get", &format!("branch.{branch}.remote")])
        && !remote.is_empty()
        && remote != "."
    {
        return Ok(Some(remote));
    }
    let remotes: Vec<String> = run_text(dir, ["remote"])?
        .lines()
        .map(str::to_owned)
        .collect();
    if remotes.iter().any(|r| r == "origin") {
        return Ok(Some("origin".to_owned()));
    }
    Ok(match remotes.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    })
}

/// Whether `remote` names a configured remote.
pub fn remote_exists(dir: &Path, remote: &str) -> bool {
    run_text(dir, ["remote", "get-url", remote]).is_ok()
}

/// Pushes `branch` to the branch of the same name on `remote`, replacing it only if it is
/// still `lease` (what cms pushed last; `None`: it must not exist yet), so a `--rebase`d task
/// can be pushed again but nobody else's commits there are ever overwritten. The user's
/// `pre-push` hook runs unless `no_verify`. Returns git's porcelain report.
pub fn push_branch(
    dir: &Path,
    remote: &str,
    branch: &str,
    lease: Option<git2::Oid>,
    no_verify: bool,
) -> Result<String, GitError> {
    let refname = format!("refs/heads/{branch}");
    let refspec = format!("{refname}:{refname}");
    let expect = lease.map(|oid| oid.to_string()).unwrap_or_default();
    let mut cmd = git(dir);
    cmd.args(["push", "--porcelain"])
        .arg(format!("--force-with-lease={refname}:{expect}"));
    if no_verify {
        cmd.arg("--no-verify");
    }
    cmd.arg(remote).arg(refspec);
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
