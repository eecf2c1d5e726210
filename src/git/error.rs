//! Errors of the git layer, each with the hint a user needs to get past it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("not in a git repository: {}", path.display())]
    NotARepository { path: PathBuf },

    #[error("{} is a bare repository; cms needs a work tree", path.display())]
    BareRepository { path: PathBuf },

    #[error("the repository has no commits yet")]
    NoCommits,

    #[error("unknown revision '{rev}'")]
    UnknownRevision { rev: String },

    #[error("branch '{branch}' does not exist")]
    UnknownBranch { branch: String },

    #[error("git was not found on PATH")]
    GitNotFound,

    #[error("git {found} is too old; cms needs git {required} or newer")]
    GitTooOld {
        found: String,
        required: &'static str,
    },

    #[error("`git {args}` failed: {stderr}")]
    Command { args: String, stderr: String },

    #[error("failed to {action}")]
    Libgit2 {
        action: &'static str,
        #[source]
        source: git2::Error,
    },

    #[error("merging would conflict in {}", join_paths(files))]
    MergeConflict { files: Vec<String> },

    #[error(
        "merging would overwrite uncommitted changes in {}: {}",
        checkout.display(),
        join_paths(files)
    )]
    WouldOverwrite {
        checkout: PathBuf,
        files: Vec<String>,
    },

    #[error("branch '{branch}' moved while cms was merging into it")]
    BranchMoved { branch: String },

    #[error("task worktree {}'s git admin dir was tampered with: {what}", worktree.display())]
    AdminDirTampered { worktree: PathBuf, what: String },

    #[error("failed to run git")]
    Io(#[from] std::io::Error),
}

fn join_paths(files: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = files
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    text
}

impl GitError {
    pub fn libgit2(action: &'static str) -> impl FnOnce(git2::Error) -> GitError {
        move |source| GitError::Libgit2 { action, source }
    }
}
