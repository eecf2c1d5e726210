//! The error every command returns, its hints, and the one table of exit codes.

use std::fmt;

use crate::git::GitError;
use crate::hooks::HooksError;
use crate::session::SessionError;
use crate::store::StoreError;

mod task;

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
