//! Doing what a key asked, through the engine the command line uses (`task::`), on a thread of
//! its own so the dashboard stays live. What it shows is what the matching cms command would
//! print without a terminal: its output lines, or, when it refuses or fails, its warnings and
//! its `error:` and `hint:` lines (the warnings of a command that succeeds are not shown).
//!
//! Nothing here writes to the terminal, which the dashboard owns: the commands cms runs for
//! the user (`[merge] check`, `[worktree] setup`, `[notify] command`) have their output
//! captured or discarded, and a background task's supervisor writes to its log in the store.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use super::app::Action;
use crate::error::CommandError;
use crate::git::merge::MergeMode;
use crate::report::{self, Styles};
use crate::store::{PermissionAnswer, Store, TaskName};
use crate::task::{self, ContinueOptions, MergeOptions, Started, TaskOptions};
use crate::workspace::Workspace;

/// How an action went, for the dashboard.
#[derive(Debug)]
pub enum Outcome {
    /// A line or two to show; `error` when cms refused or failed.
    Report { error: bool, lines: Vec<String> },
    /// The diff of a task, to show full screen.
    Diff { name: TaskName, lines: Vec<String> },
}

/// The actions under way. The process waits for them before it ends, however it ends: each is
/// a cms command that would have run to its end as a child of the dashboard.
static UNDER_WAY: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Waits for the actions under way to end (a second caller waits for the first).
pub fn finish_under_way() {
    let mut under_way = UNDER_WAY.lock().unwrap_or_else(PoisonError::into_inner);
    for action in under_way.drain(..) {
        let _ = action.join();
    }
}

/// Runs actions, handing back their outcomes when they are done.
pub struct Runner {
    cwd: PathBuf,
    done_tx: mpsc::Sender<Outcome>,
    pub done: mpsc::Receiver<Outcome>,
}

impl Runner {
    pub fn new(cwd: PathBuf) -> Runner {
        let (done_tx, done) = mpsc::channel();
        Runner { cwd, done_tx, done }
    }

    /// Starts `action`; its outcome arrives on `done`. Attach and quit are the caller's, as
    /// they need the terminal.
    pub fn start(&self, store: &Store, action: Action) {
        match action {
            Action::Answer {
                name,
                request_id,
                allow,
                always,
                message,
            } => {
                // Only writes the answer into the record: quick enough to do here.
                let answer = PermissionAnswer {
                    allow,
                    always,
                    message,
                    by: format!("cms top (pid {})", std::process::id()),
                };
                let _ = self
                    .done_tx
                    .send(answer_prompt(store, &name, &request_id, answer));
            }
            Action::Attach(_) | Action::Quit => {}
            action => {
                let (cwd, tx) = (self.cwd.clone(), self.done_tx.clone());
                let thread = std::thread::spawn(move || {
                    let _ = tx.send(run(&cwd, action));
                });
                let mut under_way = UNDER_WAY.lock().unwrap_or_else(PoisonError::into_inner);
                under_way.retain(|action| !action.is_finished());
                under_way.push(thread);
            }
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        finish_under_way();
    }
}

fn answer_prompt(
    store: &Store,
    name: &TaskName,
    request_id: &str,
    answer: PermissionAnswer,
) -> Outcome {
    let (allow, always) = (answer.allow, answer.always);
    match crate::task::answer_prompt(store, name, Some(request_id), answer) {
        Ok(pending) => {
            let verb = match (allow, always) {
                (true, true) => "allowed (always)",
                (true, false) => "allowed",
                (false, _) => "denied",
            };
            Outcome::Report {
                error: false,
                lines: vec![format!("{verb} {} for {name}", pending.tool_name)],
            }
        }
        Err(err) => Outcome::Report {
            error: true,
            lines: CommandError::from(err).lines(&Styles::plain()),
        },
    }
}

/// Runs `action` as its cms command would from `cwd`: the repository opened afresh and what
/// dead or killed cms processes left settled first.
fn run(cwd: &std::path::Path, action: Action) -> Outcome {
    let mut warnings = Vec::new();
    let result = Workspace::discover(cwd)
        .map_err(CommandError::from)
        .and_then(|ws| {
            warnings.extend(task::settle(&ws).into_iter().map(warning));
            perform(&ws, action, &mut warnings)
        });
    match result {
        Ok(outcome) => outcome,
        Err(err) => {
            warnings.extend(err.lines(&Styles::plain()));
            Outcome::Report {
                error: true,
                lines: warnings,
            }
        }
    }
}

fn warning(text: String) -> String {
    format!("warning: {text}")
}

/// Does `action`; `stderr` gathers what its command would have said on the side (warnings,
/// the checks it runs), shown only if it fails.
fn perform(
    ws: &Workspace,
    action: Action,
    stderr: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    let plain = Styles::plain();
    let lines = match action {
        Action::Abort(name) => {
            let records = task::running_tasks(ws, &[name])?;
            let ended = task::abort(ws, &records);
            let lines = ended
                .iter()
                .map(|r| report::abort_line(&plain, r))
                .collect();
            // `cms abort` fails when a supervisor did not stop.
            let error = ended.iter().any(|r| r.status.is_live());
            return Ok(Outcome::Report { error, lines });
        }
        Action::Merge(name) => vec![merge(ws, &name, stderr)?],
        Action::Discard(name) => {
            // The dashboard asked already: this is `cms discard --force`.
            let plan = task::plan_discard(ws, &name, true)?;
            let discarded = task::discard(ws, &plan, true)?;
            vec![report::discarded_line(&plain, &discarded.record.name)]
        }
        Action::Continue { name, message } => {
            // Before anything is made, as `cms continue` checks them.
            crate::config::env_timeouts()?;
            let opts = ContinueOptions {
                name,
                message,
                allow: Vec::new(),
                preset: None,
                max_cost_usd: None,
                max_turns: None,
                max_duration: None,
                sandbox: None,
                rebase: false,
            };
            launch(ws, task::resume(ws, &opts)?, stderr)?
        }
        Action::NewTask { prompt } => {
            crate::config::env_timeouts()?;
            let opts = TaskOptions {
                prompt,
                ..TaskOptions::default()
            };
            launch(ws, task::start(ws, &opts)?, stderr)?
        }
        Action::Diff(name) => {
            let record = ws.task(&name)?;
            let (from, to) = task::change_range(ws, &record)?;
            let text = crate::git::snapshot::diff_text(&ws.repo.checkout, from, to)?;
            let lines = text.lines().map(str::to_owned).collect();
            return Ok(Outcome::Diff { name, lines });
        }
        // Never sent here: `Runner::start` answers at once, and attach and quit are the loop's.
        Action::Answer { .. } | Action::Attach(_) | Action::Quit => Vec::new(),
    };
    Ok(Outcome::Report {
        error: false,
        lines,
    })
}

/// `cms merge <name>`: a squash into the branch the task was based on, its hooks and checks
/// run, then its worktree and branch removed.
fn merge(
    ws: &Workspace,
    name: &TaskName,
    stderr: &mut Vec<String>,
) -> Result<String, CommandError> {
    let opts = MergeOptions {
        mode: MergeMode::Squash,
        into: None,
        allow_protected: false,
        verify: true,
        check: true,
    };
    let checks = RefCell::new(Vec::new());
    let merged = task::merge(ws, name, &opts, |check| {
        checks.borrow_mut().push(format!("  check {check}"));
    });
    stderr.append(&mut checks.into_inner());
    let merged = merged?;
    let removed = match task::remove_task_checkout(ws, &merged.record, false) {
        Ok(_) => true,
        Err(err) => {
            stderr.push(warning(report::not_removed_warning(&err)));
            false
        }
    };
    Ok(report::merge_summary(
        &Styles::plain(),
        &merged.record,
        &merged.plan,
        merged.checks.len(),
        removed,
    ))
}

/// `cms task -d` and `cms continue -d` once the task is started: hands it to a background
/// supervisor, which asks for permissions as detached tasks do (answered here, or by `cms
/// allow`); the line shown is the task's name.
fn launch(
    ws: &Workspace,
    started: Started,
    stderr: &mut Vec<String>,
) -> Result<Vec<String>, CommandError> {
    let name = started.record.name.clone();
    stderr.extend(started.sandbox_warning.clone().map(warning));
    stderr.extend(started.settings.config.untrusted.warning().map(warning));
    task::hand_off(ws, started, true)?;
    ws.task(&name)?;
    Ok(vec![name.to_string()])
}
