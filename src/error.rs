//! The error every command returns, its hints, and the one table of exit codes.

use std::fmt;

use crate::git::GitError;
use crate::hooks::HooksError;
use crate::session::SessionError;
use crate::store::StoreError;

/// Exit codes, documented in README.md; scripts and git hooks rely on them.
pub mod exit_code {
    /// Success; for `task`, every task ended `completed`.
    pub const OK: u8 = 0;
    /// A user, configuration, repository or git error; nothing was half-made.
    pub const ERROR: u8 = 1;
    /// The command line itself was wrong.
    pub const USAGE: u8 = 2;
    /// A task ended in a status other than `completed`.
    pub const TASK_NOT_COMPLETED: u8 = 3;
    /// `cms check` found protected-path violations (the same code: the change is not clean).
    pub const VIOLATIONS: u8 = 3;
    /// Stopped by Ctrl-C (SIGINT).
    pub const INTERRUPTED: u8 = 130;
    /// A bug in cms.
    pub const INTERNAL: u8 = 255;
}

/// How an error is classified, which picks its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    User,
    Usage,
    Interrupted,
    Internal,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::User => exit_code::ERROR,
            ErrorKind::Usage => exit_code::USAGE,
            ErrorKind::Interrupted => exit_code::INTERRUPTED,
            ErrorKind::Internal => exit_code::INTERNAL,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::User => "error",
            ErrorKind::Usage => "usage",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The error at the command-line boundary: one message, its causes, and hints.
#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub causes: Vec<String>,
    pub hints: Vec<String>,
    /// More for programs, beside `error` in the JSON (e.g. what a command did before it
    /// stopped).
    pub detail: Vec<(String, serde_json::Value)>,
}

impl CommandError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CommandError {
            kind,
            message: message.into(),
            causes: Vec::new(),
            hints: Vec::new(),
            detail: Vec::new(),
        }
    }

    pub fn with_json_detail(mut self, key: &str, value: serde_json::Value) -> Self {
        self.detail.push((key.to_owned(), value));
        self
    }

    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Builds an error from any std error, keeping its source chain as causes.
    pub fn from_error(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut this = Self::new(kind, err.to_string());
        let mut source = err.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // thiserror messages often repeat their source; printing it twice helps nobody.
            if !this.message.contains(&text) {
                this.causes.push(text);
            }
            source = cause.source();
        }
        this
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }

    /// The `error:`, `caused by:` and `hint:` lines people read, in `styles`.
    pub fn lines(&self, styles: &crate::report::Styles) -> Vec<String> {
        let mut lines = vec![format!(
            "{} {}",
            styles.bad.apply_to("error:"),
            self.message
        )];
        for cause in &self.causes {
            lines.push(format!("{} {cause}", styles.dim.apply_to("caused by:")));
        }
        for hint in &self.hints {
            lines.push(format!("{} {hint}", styles.name.apply_to("hint:")));
        }
        lines
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "error": {
                "kind": self.kind.as_str(),
                "message": self.message,
                "causes": self.causes,
                "hints": self.hints,
            },
            "exit_code": self.exit_code(),
        });
        for (key, value) in &self.detail {
            json[key.as_str()] = value.clone();
        }
        json
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An error that knows what the user can do about it. The core modules' errors say what
/// went wrong; what to do about it is the command line's business, so every hint is here and
/// `git`, `store`, `session` and `hooks` know nothing of this module.
pub trait Hinted: std::error::Error + 'static {
    fn hint(&self) -> Option<String>;
}

impl Hinted for GitError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            GitError::NotARepository { .. } => {
                "run cms inside a git repository, or create one with `git init`".into()
            }
            GitError::BareRepository { .. } => {
                "run cms in a clone with a work tree (`git clone <repo>`) or a linked worktree"
                    .into()
            }
            GitError::NoCommits => {
                "make a first commit (`git commit --allow-empty -m init`) so tasks have a base"
                    .into()
            }
            GitError::UnknownRevision { .. } => {
                "pass a branch, tag or commit that `git rev-parse` understands".into()
            }
            GitError::UnknownBranch { .. } => "`git branch --list` shows the branches".into(),
            GitError::GitNotFound => "install git and make sure it is on PATH".into(),
            GitError::GitTooOld { .. } => "upgrade git".into(),
            GitError::MergeConflict { .. } => {
                "resolve in the task's worktree and commit there, then merge again; nothing was changed"
                    .into()
            }
            GitError::WouldOverwrite { .. } => {
                "commit or stash those files first; nothing was changed".into()
            }
            GitError::BranchMoved { .. } => "nothing was changed; run the merge again".into(),
            GitError::AdminDirTampered { .. } => {
                "cms runs no git in that worktree; `cms discard` its task removes it".into()
            }
            GitError::Command { .. } | GitError::Libgit2 { .. } | GitError::Io(_) => return None,
        })
    }
}

impl Hinted for StoreError {
    fn hint(&self) -> Option<String> {
        match self {
            StoreError::UnknownTask {
                closest: Some(closest),
                ..
            } => Some(format!(
                "did you mean '{closest}'? `cms list --all` shows the tasks"
            )),
            StoreError::UnknownTask { .. } => Some("`cms list --all` shows the tasks".into()),
            StoreError::TaskExists { .. } => {
                Some("pick another --name, or `cms discard` the old task".into())
            }
            StoreError::TooNew { .. } => Some("upgrade cms".into()),
            StoreError::Corrupt { name, .. } => Some(format!(
                "inspect or delete the record file; `cms list` skips it meanwhile (task '{name}')"
            )),
            StoreError::Io { .. } => None,
        }
    }
}

impl Hinted for SessionError {
    fn hint(&self) -> Option<String> {
        match self {
            SessionError::ClaudeNotFound { .. } => Some(
                "install Claude Code (`npm install -g @anthropic-ai/claude-code`) or set CMS_CLAUDE_BIN to its path"
                    .into(),
            ),
            SessionError::Spawn { .. } => {
                Some("check that CMS_CLAUDE_BIN (or claude.bin) names an executable".into())
            }
            SessionError::Wait(_) => None,
        }
    }
}

impl Hinted for HooksError {
    fn hint(&self) -> Option<String> {
        match self {
            HooksError::ChainedNameTaken { chained, .. } => Some(format!(
                "cms keeps the hook it chains under that name: move or delete {}, then run \
                 `cms hooks install` again; nothing was changed",
                chained.display()
            )),
            HooksError::OrphanedChained { path, chained, .. } => Some(format!(
                "if it is your own hook, put it back (`mv {} {}`) and run `cms hooks install` \
                 again, which chains it; otherwise delete it. Nothing was changed",
                chained.display(),
                path.display()
            )),
            HooksError::Io { .. } => None,
        }
    }
}

fn hinted<E: Hinted>(err: &E) -> CommandError {
    let mut this = CommandError::from_error(ErrorKind::User, err);
    this.hints.extend(err.hint());
    this
}

macro_rules! from_hinted {
    ($($ty:ty),*) => {$(
        impl From<$ty> for CommandError {
            fn from(err: $ty) -> Self {
                hinted(&err)
            }
        }
    )*};
}

from_hinted!(GitError, HooksError, StoreError, SessionError);

impl Hinted for crate::task::TaskError {
    fn hint(&self) -> Option<String> {
        use crate::task::TaskError as E;
        Some(match self {
            E::EmptyPrompt => "say what the task should do: cms task \"fix the login bug\"".into(),
            E::EmptyMessage => "say what to do next: cms continue <TASK> \"now add tests\"".into(),
            E::NoSession(_) => "start a new task with `cms task`".into(),
            E::NoWorktree { name, .. } => format!(
                "its work is on branch cms/{name}; start a new task from it with \
                 `cms task --base cms/{name}`"
            ),
            E::LimitUsedUp { name, flag, .. } => {
                format!("raise it for this task: cms continue {name} <MESSAGE> {flag} <MORE>")
            }
            E::NotATerminal(name) => format!(
                "in a script, send the task a message instead: cms continue {name} <MESSAGE>"
            ),
            E::SupervisorLog { .. } => {
                "cms keeps each background task's output in its store; check that the \
                 repository's git dir is writable"
                    .into()
            }
            E::SpawnSupervisor(_) | E::Runtime(_) => return None,
            E::NotTakenOver { log } => format!("its output is in {}", log.display()),
            E::BadHandoff(_) | E::NotHandedOver(_) => {
                "`cms supervise` is started by `cms task --detach`, not by hand".into()
            }
            E::AttemptName(_) => "pick a shorter --name for the attempts".into(),
            E::NoPrompts => {
                "give one prompt per line; empty lines and # comments are skipped".into()
            }
            E::NameTaken(_) => "pick another --name, or `cms discard` the old task first".into(),
            E::BranchTaken {
                branch,
                kept_by_closed_task: true,
            } => format!(
                "the task that had this name kept its branch; delete it (`git branch -D {branch}`) \
                 once you no longer need it, or pick another --name"
            ),
            E::BranchTaken { .. } => {
                "pick another --name; cms never reuses a branch it did not make".into()
            }
            E::WorktreePathTaken(_) => {
                "pick another --name, or remove that folder if nothing in it matters".into()
            }
            E::WorktreesFolder { path, .. } => format!(
                "cms keeps worktrees in {}; set worktrees.root or CMS_WORKTREES_ROOT to move them",
                path.display()
            ),
            E::SandboxRequired(_) => format!(
                "{}, or set [safety] sandbox = \"auto\" to run unsandboxed where it is missing",
                crate::safety::sandbox::INSTALL_HINT
            ),
            E::TempDir { dir, .. } => format!(
                "cms makes each task a temp dir in {}; set TMPDIR to a writable folder",
                dir.display()
            ),
            E::OwnPath(_) => "cms must know its own path to give claude its PreToolUse hook".into(),
            E::FailedStart { claude, .. } => format!(
                "check that `{} --version` works and that it is Claude Code; nothing was kept",
                claude.display()
            ),
            E::InvalidGlob(_) => {
                "fix [safety] protected in .cms.toml or your user configuration".into()
            }
            E::NothingToCompare(_) => "it was discarded, so its changes are gone".into(),
            E::StillRunning { name, .. } => {
                format!(
                    "wait for it to end (`cms wait {name}`), or stop it with `cms abort {name}`"
                )
            }
            E::Closed { name, status } if *status == crate::vocab::Status::Merged => {
                format!("nothing was changed; `cms show {name}` says where it was merged")
            }
            E::Closed { .. } => "`cms list --all` shows closed tasks".into(),
            E::NotRunning { .. } => {
                "only running tasks can be aborted; `cms list` shows them".into()
            }
            E::NotWaiting { name, status } if status.is_live() => {
                format!("its session asks nothing now; `cms logs {name} -f` follows it")
            }
            E::NotWaiting { name, .. } => format!(
                "its session has ended; `cms continue {name} \"<MESSAGE>\" --allow <TOOL>` grants a tool to a follow-up"
            ),
            E::AlreadyAnswered { name } => {
                format!("`cms show {name}` shows what the task waits on now")
            }
            E::WaitTimedOut { .. } => {
                "they are still running; wait again, or `cms abort` them".into()
            }
            E::OffBranch { name, branch, .. } => format!(
                "cms merges only {branch}; `cms discard {name} --force` removes the worktree \
                 and keeps the other branch"
            ),
            E::NotOurWorktree { .. } => {
                "cms leaves it alone; remove it yourself with `git worktree remove`".into()
            }
            E::NoMergeTarget(name) => format!("name one: cms merge {name} --into <BRANCH>"),
            E::BranchGone(_) => "it may have been deleted by hand; `cms discard` the task".into(),
            E::AdminTampered { name, branch, .. } => format!(
                "cms runs no git in its worktree; `cms discard {name}` removes the worktree, its \
                 admin dir and branch {branch} without running any"
            ),
            E::UncommittedWork { name, .. } => format!(
                "`cms commit {name}` commits them (or discard them in its worktree), then merge again"
            ),
            E::Protected { name, .. } => format!(
                "review them with `cms show {name}` and `cms diff {name}`; merge anyway with \
                 --allow-protected, or `cms discard {name}`"
            ),
            E::Conflict { name, target, .. } => format!(
                "`cms continue {name} --rebase` has the agent rebase the task onto {target} and \
                 resolve them; nothing was changed"
            ),
            E::HookRefused { .. } => {
                "fix what the hook objects to (`cms continue` the task), or merge with \
                 --no-verify; nothing was changed"
                    .into()
            }
            E::CheckFailed { name, .. } => format!(
                "`cms continue {name} \"make the checks pass\"` lets the agent fix it; \
                 --no-check merges without the checks"
            ),
            E::UntrustedCheck { checks, .. } => format!(
                "`cms trust` if you trust the repository's settings (its checks: {}), or merge \
                 with --no-check",
                checks.join("; ")
            ),
            E::ChangedDuringMerge(_) => "run the merge again".into(),
            E::UnknownRunner { known, .. } if known.is_empty() => {
                "define one as [runners.<NAME>] in your configuration (`cms config` shows where \
                 it is), or run the task here without --on"
                    .into()
            }
            E::UnknownRunner { known, .. } => format!(
                "the runners in your configuration: {}; `--on local` runs the task here",
                known.join(", ")
            ),
            E::AttachRemote { name, .. } => format!(
                "`cms continue {name} <MESSAGE>` follows it up on its runner; `cms logs {name}` \
                 shows its session"
            ),
            E::Runner { runner, .. } => format!(
                "`cms doctor` checks runner '{runner}'; nothing was made (`--on local` runs the \
                 task here)"
            ),
            E::CopyIncluded { .. } => {
                "check .worktreeinclude and [worktree] copy; nothing was made".into()
            }
            E::SetupFailed { .. } => {
                "fix [worktree] setup in .cms.toml; the task's worktree is kept to look into".into()
            }
            E::NoRemote(name) => format!(
                "add one (`git remote add origin <URL>`) or name it: cms push {name} --remote <REMOTE>"
            ),
            E::UnknownRemote(_) => "`git remote -v` lists the remotes".into(),
            E::GhMissing => {
                "install it from https://cli.github.com and `gh auth login`, or push without --pr; \
                 nothing was pushed"
                    .into()
            }
            E::PushFailed { name, .. } => format!(
                "if someone else pushed to its branch there, fetch and look before pushing again; \
                 `cms show {name}` says what cms pushed last"
            ),
            E::PrFailed { name, .. } => format!(
                "open it yourself (`gh pr create --head cms/{name}`), or run `cms push {name} --pr` again"
            ),
            E::AlreadyOnTop { name, .. } => format!(
                "`cms merge {name}` merges it as it is; `cms continue {name} <MESSAGE>` follows it up"
            ),
            E::UnresolvedConflicts { name, .. } => format!(
                "`cms continue {name} \"resolve the remaining conflicts\"` lets the agent finish; \
                 `cms diff {name}` shows them"
            ),
            E::InterruptedBeforeStart
            | E::Git(_)
            | E::Store(_)
            | E::Session(_)
            | E::Workspace(_) => return None,
        })
    }
}

impl From<crate::task::TaskError> for CommandError {
    fn from(err: crate::task::TaskError) -> Self {
        use crate::task::TaskError as E;
        match err {
            // Errors of the layers below keep their own hints.
            E::Git(err) => err.into(),
            E::Store(err) => err.into(),
            E::Session(err) => err.into(),
            E::Workspace(err) => err.into(),
            err => {
                let kind = match err {
                    E::EmptyPrompt
                    | E::EmptyMessage
                    | E::NotATerminal(_)
                    | E::AttemptName(_)
                    | E::NoPrompts => ErrorKind::Usage,
                    E::InterruptedBeforeStart => ErrorKind::Interrupted,
                    E::OwnPath(_)
                    | E::SpawnSupervisor(_)
                    | E::NotTakenOver { .. }
                    | E::BadHandoff(_)
                    | E::Runtime(_) => ErrorKind::Internal,
                    _ => ErrorKind::User,
                };
                let mut this = CommandError::from_error(kind, &err);
                this.hints.extend(err.hint());
                // What the check or hook printed is the why.
                if let E::CheckFailed { output, .. }
                | E::HookRefused { output, .. }
                | E::SetupFailed { output, .. } = &err
                    && !output.is_empty()
                {
                    this.causes.push(format!("its output ends with:\n{output}"));
                }
                this
            }
        }
    }
}

impl From<crate::task::WorkerError> for CommandError {
    fn from(err: crate::task::WorkerError) -> Self {
        use crate::task::WorkerError as E;
        let hint = match &err {
            E::Task(_) | E::Config(_) => None,
            E::BadJobId(_) => Some("`cms worker` is run by a runner's job (`cms task --on`)"),
            E::Scratch(_) => {
                Some("the worker makes its repository under $TMPDIR; check that it is writable")
            }
            E::Fetch { .. } => Some(
                "check that the worker reaches the runner's remote (ssh keys, credential \
                 helper) and that the job was submitted by `cms task --on`",
            ),
            E::BadSpec { .. } => {
                Some("the job was written by another cms version or damaged; run the task again")
            }
            E::Push { .. } => Some("check that the worker may push to the runner's remote"),
        };
        match err {
            E::Task(err) => err.into(),
            E::Config(err) => err.into(),
            err => {
                let kind = match err {
                    E::BadJobId(_) => ErrorKind::Usage,
                    _ => ErrorKind::User,
                };
                let mut this = CommandError::from_error(kind, &err);
                this.hints.extend(hint.map(str::to_owned));
                this
            }
        }
    }
}

impl From<crate::workspace::WorkspaceError> for CommandError {
    fn from(err: crate::workspace::WorkspaceError) -> Self {
        use crate::workspace::WorkspaceError as E;
        match err {
            E::Git(err) => err.into(),
            E::Store(err) => err.into(),
            E::Config(err) => err.into(),
            E::ReadConfig { .. } => CommandError::from_error(ErrorKind::User, &err),
            E::Trust(err) => err.into(),
            E::WorktreesInsideRepository { .. } => CommandError::from_error(ErrorKind::User, &err)
                .with_hint(
                    "set worktrees.root in your configuration (or CMS_WORKTREES_ROOT) to a \
                     folder outside the repository",
                ),
            E::WritableOverlaps { .. } => CommandError::from_error(ErrorKind::User, &err)
                .with_hint(
                    "name a folder outside the repository and its worktrees in [safety] \
                     writable (a package cache such as ~/.cargo/registry)",
                ),
        }
    }
}

impl From<crate::trust::TrustError> for CommandError {
    fn from(err: crate::trust::TrustError) -> Self {
        let hint = match &err {
            crate::trust::TrustError::Corrupt { .. } => {
                "`cms trust --revoke` removes it; `cms trust` records it anew"
            }
            _ => "check that your data folder ($XDG_DATA_HOME or ~/.local/share) is writable",
        };
        CommandError::from_error(ErrorKind::User, &err).with_hint(hint)
    }
}

impl Hinted for crate::runner::RunnerError {
    fn hint(&self) -> Option<String> {
        use crate::runner::RunnerError as E;
        Some(match self {
            E::Unreachable { .. } => "check the runner's address in your configuration and that                  the Ray head's dashboard port answers from here (`cms doctor` checks every                  runner); nothing was started"
                .into(),
            E::Address { .. } => {
                "give the Ray Jobs API as http(s)://HOST:PORT in [runners.NAME] address".into()
            }
            E::UnknownJob { .. } => {
                "the cluster no longer knows the job (deleted, or the head restarted)".into()
            }
            E::Refused { .. } | E::Protocol { .. } => {
                "`cms doctor` checks the runner; the head's dashboard shows the job".into()
            }
            E::Package { .. } => {
                "cms uploads its own binary to the cluster unless [runners.NAME] cms names                  one installed on the workers"
                    .into()
            }
        })
    }
}

from_hinted!(crate::runner::RunnerError);

impl From<crate::config::ConfigError> for CommandError {
    fn from(err: crate::config::ConfigError) -> Self {
        match &err {
            // Like a bad flag: the invocation is wrong, not a file.
            crate::config::ConfigError::Env { key, .. } => {
                let hint = format!("fix or unset {key}");
                CommandError::from_error(ErrorKind::Usage, &err).with_hint(hint)
            }
            _ => CommandError::from_error(ErrorKind::User, &err)
                .with_hint("fix the file it names, or remove the offending key"),
        }
    }
}

impl From<std::io::Error> for CommandError {
    fn from(err: std::io::Error) -> Self {
        CommandError::from_error(ErrorKind::User, &err)
    }
}
