//! What can go wrong in a task's life, said without hints: what the user can do about each is
//! the command line's business (`error.rs`).

use std::path::PathBuf;

use crate::git::GitError;
use crate::session::SessionError;
use crate::store::{StoreError, TaskName};
use crate::vocab::Status;
use crate::workspace::WorkspaceError;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("the prompt is empty")]
    EmptyPrompt,

    #[error("the follow-up message is empty")]
    EmptyMessage,

    #[error("task '{0}' never started a claude session, so there is none to continue")]
    NoSession(TaskName),

    #[error("task '{name}''s worktree {} is gone", path.display())]
    NoWorktree { name: TaskName, path: PathBuf },

    #[error("task '{name}' has used up its {limit} limit ({used} of {allowed})")]
    LimitUsedUp {
        name: TaskName,
        limit: &'static str,
        used: String,
        allowed: String,
        flag: &'static str,
    },

    #[error("cms attach needs a terminal, and its stdin or stdout is not one")]
    NotATerminal(TaskName),

    #[error("cannot write the supervisor's log {}", path.display())]
    SupervisorLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot start a background supervisor")]
    SpawnSupervisor(#[source] std::io::Error),

    #[error("cms could not hand the task to a background supervisor")]
    NotTakenOver { log: PathBuf },

    #[error("the hand-off to this supervisor is not readable")]
    BadHandoff(#[source] serde_json::Error),

    #[error("task '{0}' was not handed to this supervisor")]
    NotHandedOver(TaskName),

    #[error("cannot start the runtime that supervises the session")]
    Runtime(#[source] std::io::Error),

    #[error("{0}")]
    AttemptName(#[source] crate::store::InvalidName),

    #[error("--each found no prompt")]
    NoPrompts,

    #[error("task '{0}' already exists")]
    NameTaken(TaskName),

    #[error("branch '{branch}' already exists")]
    BranchTaken {
        branch: String,
        /// It is the branch of a merged task that kept it (`merge --keep`).
        kept_by_closed_task: bool,
    },

    #[error("the worktree path {} already exists", .0.display())]
    WorktreePathTaken(PathBuf),

    #[error("cannot create the worktrees folder {}", path.display())]
    WorktreesFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the Bash sandbox is required but unavailable: {0}")]
    SandboxRequired(String),

    #[error("cannot make the task's temp dir in {}", dir.display())]
    TempDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cms cannot find its own executable")]
    OwnPath(#[source] std::io::Error),

    #[error("interrupted before claude started a session; nothing was kept")]
    InterruptedBeforeStart,

    /// claude ended before `system/init`; the message says how and why.
    #[error("{message}")]
    FailedStart { message: String, claude: PathBuf },

    #[error("invalid protected path glob: {0}")]
    InvalidGlob(String),

    #[error("task '{0}' has no branch or worktree left to compare")]
    NothingToCompare(TaskName),

    #[error("task '{name}' is still running; cannot {action} it")]
    StillRunning { name: TaskName, action: String },

    #[error("task '{name}' is not running (it is {status})")]
    NotRunning { name: TaskName, status: Status },

    #[error("task '{name}' is not waiting for a permission answer (it is {status})")]
    NotWaiting { name: TaskName, status: Status },

    #[error("task '{name}''s permission prompt was already answered")]
    AlreadyAnswered { name: TaskName },

    #[error("task '{name}' is already {status}")]
    Closed { name: TaskName, status: Status },

    /// The task's worktree left its branch: `now` says for what.
    #[error("task '{name}''s worktree left its branch {branch} for {now}")]
    OffBranch {
        name: TaskName,
        branch: String,
        now: String,
    },

    #[error("{} is a worktree cms did not make for task '{name}'", path.display())]
    NotOurWorktree { path: PathBuf, name: TaskName },

    #[error("task '{0}' was started from a detached HEAD, so it has no branch to merge into")]
    NoMergeTarget(TaskName),

    #[error("the branch of task '{0}' is gone")]
    BranchGone(TaskName),

    /// The task's git admin dir is not the one git made for it (see [`crate::git::TaskGit`]).
    #[error("the git admin dir of task '{name}' was tampered with: {what}")]
    AdminTampered {
        name: TaskName,
        branch: String,
        what: String,
    },

    #[error("task '{name}' has uncommitted changes in its worktree")]
    UncommittedWork { name: TaskName, worktree: PathBuf },

    #[error("task '{name}' {what} ({count} violation{}): {first}", if *count == 1 { "" } else { "s" })]
    Protected {
        name: TaskName,
        /// What it did: see [`crate::safety::what_it_did`].
        what: &'static str,
        count: usize,
        first: String,
    },

    #[error("task '{name}' conflicts with {target} in {}", files.join(", "))]
    Conflict {
        name: TaskName,
        target: String,
        files: Vec<String>,
    },

    #[error("the repository's hooks refused the merge commit of task '{name}'")]
    HookRefused { name: TaskName, output: String },

    #[error("merge check `{command}` failed{} on task '{name}'s merge; nothing was changed", code.map(|c| format!(" (exit {c})")).unwrap_or_default())]
    CheckFailed {
        name: TaskName,
        command: String,
        code: Option<i32>,
        output: String,
    },

    #[error(
        "the repository's [merge] check is not trusted, so task '{name}' cannot be merged checked; nothing was changed"
    )]
    UntrustedCheck { name: TaskName, checks: Vec<String> },

    #[error("task '{name}' already starts from the tip of {onto}; there is nothing to rebase")]
    AlreadyOnTop { name: TaskName, onto: String },

    #[error("task '{name}' still has conflict markers in {}", files.join(", "))]
    UnresolvedConflicts { name: TaskName, files: Vec<String> },

    #[error("cannot copy {path} into the new worktree")]
    CopyIncluded {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("worktree setup `{command}` failed{}", code.map(|c| format!(" (exit {c})")).unwrap_or_default())]
    SetupFailed {
        command: String,
        code: Option<i32>,
        output: String,
    },

    #[error("task '{0}' has no remote to push to")]
    NoRemote(TaskName),

    #[error("no remote named '{0}'")]
    UnknownRemote(String),

    #[error("--pr needs the GitHub CLI (gh), which is not on PATH")]
    GhMissing,

    #[error("pushing task '{name}' to {remote} failed: {why}")]
    PushFailed {
        name: TaskName,
        remote: String,
        why: String,
    },

    #[error("task '{name}' was pushed, but gh could not open a pull request: {why}")]
    PrFailed { name: TaskName, why: String },

    #[error("timed out waiting for {}", names.join(", "))]
    WaitTimedOut { names: Vec<String> },

    #[error("no runner named '{name}'")]
    UnknownRunner { name: String, known: Vec<String> },

    #[error("task '{name}' runs on runner '{runner}', not at this terminal")]
    AttachRemote { name: TaskName, runner: String },

    #[error("runner '{runner}': {reason}")]
    Runner { runner: String, reason: String },

    #[error("task '{0}''s branch moved while it was being merged")]
    ChangedDuringMerge(TaskName),

    #[error(transparent)]
    Git(#[from] GitError),

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Session(#[from] SessionError),

    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}
