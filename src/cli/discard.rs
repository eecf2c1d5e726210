//! `cms discard`: drop tasks' worktrees and branches, all of them or none.

use std::io::{BufRead, Write};

use clap::Args;
use serde_json::Value;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::TaskName;
use crate::task::{DiscardPlan, discard, plan_discard};

/// Discard tasks: remove their worktrees and branches
///
/// Every task named is checked first, and if one cannot be discarded none is. Work that is
/// not merged is refused unless --force is given (or you answer yes at a terminal). The
/// tasks' records stay, as `discarded`, for `cms list --all`.
#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// The tasks' names
    #[arg(required = true, value_parser = super::parse_task_name, add = super::completes_tasks())]
    pub tasks: Vec<TaskName>,

    /// Discard even if a task has changes that were never merged
    #[arg(short, long)]
    pub force: bool,
}

pub fn cmd_discard(ctx: &CommandContext, args: DiscardArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let mut names = args.tasks;
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    let plans = names
        .iter()
        .map(|name| plan_discard(&ws, name, args.force))
        .collect::<Result<Vec<_>, _>>()?;
    let unmerged: Vec<&DiscardPlan> = plans.iter().filter(|p| p.unmerged > 0).collect();
    if !unmerged.is_empty() {
        match confirm(ctx, &unmerged) {
            Answer::Yes => {}
            Answer::NotAsked => return Err(refusal(&unmerged, plans.len())),
            // The user chose: what follows is what happened, not an error.
            Answer::No => {
                let names: Vec<String> = plans
                    .iter()
                    .map(|p| format!("'{}'", p.record.name))
                    .collect();
                eprintln!(
                    "Kept {} {}: nothing was discarded.",
                    if names.len() == 1 { "task" } else { "tasks" },
                    names.join(", ")
                );
                return Ok(1);
            }
        }
    }
    let mut done = Vec::with_capacity(plans.len());
    for plan in &plans {
        let discarded = discard(&ws, plan, args.force)?;
        if !ctx.ui.json {
            ctx.ui
                .println(&report::discarded_line(&ctx.ui.out, &discarded.record.name));
            if let Some(stray) = &discarded.stray {
                ctx.ui.warn(&report::stray_branch_warning(stray));
            }
        }
        done.push(discarded);
    }
    if ctx.ui.json {
        let values = done
            .iter()
            .map(|d| {
                let mut value = report::task_json(&d.record);
                value["stray_branch"] = serde_json::json!(d.stray);
                value
            })
            .collect();
        ctx.ui.print_json(&Value::Array(values));
    }
    Ok(exit_code::OK)
}

/// The refusal when tasks hold unmerged work, naming each with its count of files.
fn refusal(unmerged: &[&DiscardPlan], named: usize) -> CommandError {
    if let [plan] = unmerged {
        let name = &plan.record.name;
        let mut error = CommandError::user(format!(
            "task '{name}' has unmerged changes in {} file(s)",
            plan.unmerged
        ))
        .with_hint(format!(
            "`cms diff {name}` shows them; `cms merge {name}` keeps them, `cms discard {name} --force` drops them"
        ));
        if named > 1 {
            error = error.with_hint("nothing was discarded: the tasks go together or not at all");
        }
        return error;
    }
    let list = unmerged
        .iter()
        .map(|p| format!("'{}' ({} file(s))", p.record.name, p.unmerged))
        .collect::<Vec<_>>()
        .join(", ");
    CommandError::user(format!("tasks {list} have unmerged changes")).with_hint(
        "`cms diff <TASK>` shows them; `cms merge <TASK>` keeps them, --force drops them; \
             nothing was discarded",
    )
}

/// What the user said to discarding unmerged work.
enum Answer {
    Yes,
    No,
    /// No terminal to ask at (a script, `--json`): the refusal says why and what to do.
    NotAsked,
}

/// Asks at a terminal; never blocks a script.
fn confirm(ctx: &CommandContext, unmerged: &[&DiscardPlan]) -> Answer {
    if ctx.ui.json || !ctx.ui.stdin_is_terminal() {
        return Answer::NotAsked;
    }
    for plan in unmerged {
        eprintln!(
            "Task '{}' has unmerged changes in {} file(s).",
            plan.record.name, plan.unmerged
        );
    }
    eprint!("Discard them? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Answer::No;
    }
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Answer::Yes,
        _ => Answer::No,
    }
}
