//! The safety net: the limits a task may not cross and the paths it may not touch, enforced
//! before a write (the PreToolUse hook), on the task's diff, and on the user's checkouts.

pub mod boundary;
pub mod check;
pub mod guard;
pub mod limits;
pub mod paths;
pub mod sandbox;

pub use limits::{LimitKind, LimitState};
pub use paths::{Rules, normalize, validate_glob};

/// What kind of rule a violation broke; the strings are part of the JSON contract.
pub mod kind {
    /// A protected path was added, changed, deleted, renamed or had its mode changed.
    pub const PROTECTED_PATH: &str = "protected_path";
    /// A write aimed outside the task's worktree.
    pub const OUTSIDE_WORKTREE: &str = "outside_worktree";
    /// A symlink that points at a protected path or out of the worktree.
    pub const SYMLINK: &str = "symlink";
    /// A submodule pointer change over protected paths.
    pub const SUBMODULE: &str = "submodule";
    /// Git metadata (hooks, config, the worktree's `.git`) that would run code in the user's
    /// repository or redirect it.
    pub const GIT_METADATA: &str = "git_metadata";
    /// A change in one of the user's checkouts while the task ran.
    pub const MAIN_CHECKOUT: &str = "main_checkout";
    /// A ref other than the task's own branch was created, moved or deleted.
    pub const GIT_REF: &str = "git_ref";
    /// The task's worktree left its branch (`git checkout -b`, `--detach`).
    pub const TASK_HEAD: &str = "task_head";
    /// Another task's worktree or branch changed while this task ran.
    pub const OTHER_TASK: &str = "other_task";
    /// A git object (a commit, tree or file of any branch) was deleted; cms put it back.
    pub const GIT_OBJECT: &str = "git_object";
    /// The task's record (its limits, protected paths, ...) was changed by its session.
    pub const TASK_RECORD: &str = "task_record";
    /// The task's git admin dir (`<common>/worktrees/<admin>`) was renamed, replaced, made a
    /// symlink, or its `commondir`/`gitdir` or the worktree's `.git` link changed: cms runs
    /// no git in that worktree again.
    pub const GIT_ADMIN: &str = "git_admin";
}

/// Whether a violation of `kind` is about a path the task's change touched (its diff), rather
/// than something that moved around its session.
pub fn is_path_kind(name: &str) -> bool {
    matches!(
        name,
        kind::PROTECTED_PATH | kind::OUTSIDE_WORKTREE | kind::SYMLINK | kind::SUBMODULE
    )
}

/// What a task with these violations did, for a message: "touched protected paths" only when
/// each of them is about a path its change touched.
pub fn what_it_did(violations: &[crate::store::Violation]) -> &'static str {
    if violations.iter().all(|v| is_path_kind(&v.kind)) {
        "touched protected paths"
    } else {
        "broke the safety rules"
    }
}
