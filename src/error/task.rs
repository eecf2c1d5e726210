//! The hints and exit codes of the task engine's errors, and of a runner's worker.

use super::{CommandError, ErrorKind, Hinted};

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
