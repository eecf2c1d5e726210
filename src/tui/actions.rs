//! Doing what a key asked, through the same code as the command line: a permission answer
//! through `task::answer_prompt`, everything whose logic lives in `cli/` by running this cms
//! executable's own subcommand in the background, its refusal and hint shown as it prints them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use super::app::Action;
use crate::error::CommandError;
use crate::store::{PermissionAnswer, Store, TaskName};

/// How an action went, for the dashboard.
#[derive(Debug)]
pub enum Outcome {
    /// A line or two to show; `error` when cms refused or failed.
    Report { error: bool, lines: Vec<String> },
    /// The diff of a task, to show full screen.
    Diff { name: TaskName, lines: Vec<String> },
}

/// Runs actions, handing back their outcomes when they are done.
pub struct Runner {
    exe: PathBuf,
    cwd: PathBuf,
    done_tx: mpsc::Sender<Outcome>,
    pub done: mpsc::Receiver<Outcome>,
}

impl Runner {
    pub fn new(exe: PathBuf, cwd: PathBuf) -> Runner {
        let (done_tx, done) = mpsc::channel();
        Runner {
            exe,
            cwd,
            done_tx,
            done,
        }
    }

    /// Starts `action`; its outcome arrives on `done`. Attach and quit are the caller's, as
    /// they need the terminal.
    pub fn start(&self, store: &Store, action: Action) {
        let args: Vec<String> = match action {
            Action::Answer {
                name,
                request_id,
                allow,
                always,
            } => {
                // Only writes the answer into the record: quick enough to do here.
                let _ = self
                    .done_tx
                    .send(answer(store, &name, &request_id, allow, always));
                return;
            }
            Action::Abort(name) => vec!["abort".into(), name.to_string()],
            Action::Merge(name) => vec!["merge".into(), name.to_string()],
            // The dashboard asked already; --force stands for the terminal's yes.
            Action::Discard(name) => vec!["discard".into(), "--force".into(), name.to_string()],
            Action::Continue { name, message } => {
                vec![
                    "continue".into(),
                    "--detach".into(),
                    name.to_string(),
                    message,
                ]
            }
            Action::NewTask { prompt } => vec!["task".into(), "--detach".into(), prompt],
            Action::Diff(name) => {
                let (exe, cwd, tx) = (self.exe.clone(), self.cwd.clone(), self.done_tx.clone());
                std::thread::spawn(move || {
                    let args = ["diff".to_owned(), name.to_string()];
                    let outcome = match run_cms(&exe, &cwd, &args) {
                        Ok(out) => Outcome::Diff {
                            name,
                            lines: out.lines().map(str::to_owned).collect(),
                        },
                        Err(lines) => Outcome::Report { error: true, lines },
                    };
                    let _ = tx.send(outcome);
                });
                return;
            }
            Action::Attach(_) | Action::Quit => return,
        };
        let (exe, cwd, tx) = (self.exe.clone(), self.cwd.clone(), self.done_tx.clone());
        std::thread::spawn(move || {
            let outcome = match run_cms(&exe, &cwd, &args) {
                Ok(out) => {
                    let mut lines: Vec<String> = out
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_owned)
                        .collect();
                    if lines.is_empty() {
                        lines.push(format!("cms {} done.", args[0]));
                    }
                    Outcome::Report {
                        error: false,
                        lines,
                    }
                }
                Err(lines) => Outcome::Report { error: true, lines },
            };
            let _ = tx.send(outcome);
        });
    }
}

fn answer(store: &Store, name: &TaskName, request_id: &str, allow: bool, always: bool) -> Outcome {
    let answer = PermissionAnswer {
        allow,
        always,
        message: None,
        by: format!("cms top (pid {})", std::process::id()),
    };
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
        Err(err) => {
            let err = CommandError::from(err);
            let mut lines = vec![format!("error: {}", err.message)];
            lines.extend(err.hints.iter().map(|h| format!("hint: {h}")));
            Outcome::Report { error: true, lines }
        }
    }
}

/// Runs `cms <args>` without a terminal; its stdout when it succeeds, else what it printed on
/// stderr (its `error:` and `hint:` lines).
fn run_cms(exe: &Path, cwd: &Path, args: &[String]) -> Result<String, Vec<String>> {
    let output = Command::new(exe)
        .args(["--color", "never"])
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| vec![format!("error: could not run {}: {err}", exe.display())])?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut lines: Vec<String> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        lines.push(format!("error: cms {} failed ({})", args[0], output.status));
    }
    Err(lines)
}
