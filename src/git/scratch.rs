//! A scratch worktree: a detached checkout of one commit in a temp dir, where cms makes a
//! merge's commit with git's own `git commit` (so the repository's hooks run on it) and runs
//! the user's merge checks, before the target branch moves. It is removed when dropped.

use std::path::{Path, PathBuf};

use git2::Oid;

use super::GitError;
use super::cmd::{git, run, run_text};
use super::snapshot::has_identity;

pub struct Scratch {
    common_dir: PathBuf,
    path: PathBuf,
    /// Holds the temp dir until the worktree in it is removed.
    _dir: tempfile::TempDir,
}

impl Scratch {
    /// A detached checkout of `at`.
    pub fn new(common_dir: &Path, at: Oid) -> Result<Scratch, GitError> {
        let dir = tempfile::Builder::new().prefix("cms-merge-").tempdir()?;
        let path = dir.path().join("tree");
        let mut cmd = git(common_dir);
        cmd.args(["worktree", "add", "--quiet", "--detach"])
            .arg(&path)
            .arg(at.to_string());
        run(cmd)?;
        Ok(Scratch {
            common_dir: common_dir.to_owned(),
            path,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits `tree` on top of the checked-out commit with `git commit`, so the repository's
    /// `pre-commit`, `prepare-commit-msg`, `commit-msg` and `post-commit` hooks run as for
    /// any commit of the user's. Returns the commit, which may differ from `tree` if a hook
    /// changed it.
    pub fn commit_tree(&self, tree: Oid, message: &str) -> Result<Oid, GitError> {
        let mut read = git(&self.path);
        read.args(["read-tree", "-m", "-u", "HEAD"])
            .arg(tree.to_string());
        run(read)?;
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut file, message.as_bytes())?;
        let mut cmd = git(&self.path);
        if !has_identity(&self.path) {
            cmd.args(["-c", "user.name=cms", "-c", "user.email=cms@localhost"]);
        }
        cmd.args([
            "commit",
            "--quiet",
            "--cleanup=verbatim",
            "--allow-empty",
            "-F",
        ])
        .arg(file.path());
        run(cmd)?;
        self.head()
    }

    /// Merges `theirs` into the checked-out commit with `git merge --no-ff`, so the
    /// repository's `pre-merge-commit` and `commit-msg` hooks run. Returns the merge commit.
    pub fn merge_commit(&self, theirs: Oid, message: &str) -> Result<Oid, GitError> {
        let mut cmd = git(&self.path);
        if !has_identity(&self.path) {
            cmd.args(["-c", "user.name=cms", "-c", "user.email=cms@localhost"]);
        }
        cmd.args(["merge", "--quiet", "--no-ff", "--no-edit", "-m", message])
            .arg(theirs.to_string());
        run(cmd)?;
        self.head()
    }

    fn head(&self) -> Result<Oid, GitError> {
        let head = run_text(&self.path, ["rev-parse", "HEAD"])?;
        Oid::from_str(&head).map_err(GitError::libgit2("read the new commit id"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut cmd = git(&self.common_dir);
        cmd.args(["worktree", "remove", "--force"]).arg(&self.path);
        let _ = run(cmd);
        let _ = super::worktree::prune(&self.common_dir);
    }
}
