//! `cms allow` and `cms deny`: answering the permission prompt a waiting task is paused on,
//! from any process; and the same prompt asked at the supervisor's own terminal.

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::{PendingPermission, PermissionAnswer, TaskName, TaskRecord};
use crate::task::{self, AskOptions};
use crate::ui::Ui;

/// Allow the tool call a waiting task asks for
///
/// The task's session goes on at once with the call allowed. With --always, later calls of
/// the same tool are allowed without asking, in this session and in the task's follow-ups.
#[derive(Debug, Args)]
pub struct AllowArgs {
    /// The waiting task
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: TaskName,

    /// Allow this tool for the rest of the task, without asking again
    #[arg(long)]
    pub always: bool,
}

/// Deny the tool call a waiting task asks for
///
/// The agent gets MESSAGE (or a plain refusal) as the tool's error and carries on without it.
#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The waiting task
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: TaskName,

    /// What the agent is told, e.g. "use the test script instead"
    pub message: Option<String>,
}

/// How long `allow`/`deny` wait for the supervisor to pass the answer on.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);

pub fn cmd_allow(ctx: &CommandContext, args: AllowArgs) -> Result<u8, CommandError> {
    let answer = PermissionAnswer {
        allow: true,
        always: args.always,
        message: None,
        by: format!("cms allow (pid {})", std::process::id()),
    };
    answer_and_report(ctx, &args.task, answer)
}

pub fn cmd_deny(ctx: &CommandContext, args: DenyArgs) -> Result<u8, CommandError> {
    let answer = PermissionAnswer {
        allow: false,
        always: false,
        message: args.message,
        by: format!("cms deny (pid {})", std::process::id()),
    };
    answer_and_report(ctx, &args.task, answer)
}

fn answer_and_report(
    ctx: &CommandContext,
    name: &TaskName,
    answer: PermissionAnswer,
) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let allow = answer.allow;
    let task::Delivered {
        answered,
        record,
        passed_on,
    } = task::answer_and_deliver(&ws, name, None, answer, HANDOVER_WAIT)?;
    let ui = &ctx.ui;
    if !passed_on {
        ui.warn(&format!(
            "the answer is recorded, but task '{name}''s supervisor has not passed it on yet"
        ));
    }
    if ui.json {
        ui.print_json(&report::task_json(&record));
        return Ok(exit_code::OK);
    }
    let verb = if allow { "allowed" } else { "denied" };
    let what = pending_text(&answered, &record);
    ui.println(&format!("{verb} {what} for {}", ui.out.name.apply_to(name)));
    if let Some(next) = report::pending_line(&record) {
        ui.status(&format!(
            "task '{name}' now asks for {next}: `cms allow {name}` or `cms deny {name}`"
        ));
    }
    Ok(exit_code::OK)
}

/// "Bash: touch x", the way the prompt is shown everywhere.
fn pending_text(pending: &PendingPermission, record: &TaskRecord) -> String {
    let what = report::tool_detail(&pending.tool_name, &pending.input, &record.worktree);
    if what.is_empty() {
        pending.tool_name.clone()
    } else {
        format!("{}: {what}", pending.tool_name)
    }
}

/// Whether a supervisor asks its prompts inline: at a terminal, someone can type the answer.
pub(super) fn asks_inline() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// How a supervisor's prompts are answered besides `cms allow`/`cms deny`: typed at its
/// terminal when it runs at one.
pub(super) fn answers(ui: &Ui, notify: Option<Vec<String>>) -> AskOptions {
    AskOptions {
        typed: asks_inline().then(|| typed_answers(ui.clone())),
        notify,
    }
}

/// Shows a prompt the supervised task waits on: asked inline when it runs at a terminal,
/// otherwise one line saying how to answer.
pub(super) fn show_prompt(ui: &Ui, record: &TaskRecord, pending: &PendingPermission) {
    let s = &ui.err;
    let name = &record.name;
    let what = pending_text(pending, record);
    let why = pending
        .description
        .as_deref()
        .filter(|d| !what.contains(*d))
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    ui.status(&format!("  {} {what}{why}", s.warn.apply_to("?")));
    if asks_inline() {
        ui.status(&format!(
            "    allow it? [y]es, [n]o [why], [a]lways {} (or `cms allow {name}` elsewhere)",
            pending.tool_name
        ));
    } else {
        ui.status(&format!(
            "    waiting: `cms allow {name}` or `cms deny {name} [MESSAGE]` answers it"
        ));
    }
}

/// Reads answers typed at the terminal, one per line.
fn typed_answers(ui: Ui) -> mpsc::UnboundedReceiver<PermissionAnswer> {
    let (tx, rx) = mpsc::unbounded_channel();
    // A thread of its own: a read from the terminal cannot be cancelled, and it must not hold
    // up the session. It ends with the process.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            match parse_typed(&line) {
                Some(answer) => {
                    if tx.send(answer).is_err() {
                        return;
                    }
                }
                None if line.trim().is_empty() => {}
                None => ui.status("    answer y, n (optionally followed by why), or a"),
            }
        }
    });
    rx
}

/// `y`/`yes`, `a`/`always`, `n`/`no` with an optional reason for the agent.
fn parse_typed(line: &str) -> Option<PermissionAnswer> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let answer = |allow, always, message: Option<String>| PermissionAnswer {
        allow,
        always,
        message,
        by: "the supervisor's terminal".to_owned(),
    };
    match word.to_ascii_lowercase().as_str() {
        "y" | "yes" if rest.is_empty() => Some(answer(true, false, None)),
        "a" | "always" if rest.is_empty() => Some(answer(true, true, None)),
        "n" | "no" => Some(answer(
            false,
            false,
            Some(rest.trim().to_owned()).filter(|m| !m.is_empty()),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_typed;

    #[test]
    fn typed_answers_read_as_the_prompt_offers() {
        let yes = parse_typed(" y ").unwrap();
        assert!(yes.allow && !yes.always);
        let always = parse_typed("Always").unwrap();
        assert!(always.allow && always.always);
        let no = parse_typed("n use the test script").unwrap();
        assert!(!no.allow);
        assert_eq!(no.message.as_deref(), Some("use the test script"));
        assert_eq!(parse_typed("no").unwrap().message, None);
        assert!(parse_typed("maybe").is_none());
        assert!(parse_typed("y please").is_none());
        assert!(parse_typed("").is_none());
    }
}
