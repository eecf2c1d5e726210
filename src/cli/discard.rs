//! `cms discard`: drop a task's worktree and branch.

use std::io::{BufRead, Write};

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::{Status, TaskName};
use crate::task::{change_range, open_for_change, remove_task_checkout};

/// Discard a task: remove its worktree and branch
///
/// Refuses to drop work that is not merged unless --force is given (or you answer yes at a
/// terminal). The task's record stays, as `discarded`, for `cms list --all`.
#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// The task's name
    #[arg(value_parser = super::parse_task_name)]
    pub task: TaskName,

    /// Discard even if the task has changes that were never merged
    #[arg(short, long)]
    pub force: bool,
}

pub fn cmd_discard(ctx: &CommandContext, args: DiscardArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let record = open_for_change(&ws, &args.task, "discard")?;
    if !args.force {
        let unmerged = unmerged_files(&ws, &record)?;
        if unmerged > 0 && !confirm(ctx, &record.name, unmerged) {
            return Err(CommandError::user(format!(
                "task '{}' has unmerged changes in {unmerged} file(s)",
                record.name
            ))
            .with_hint(format!(
                "`cms diff {0}` shows them; `cms merge {0}` keeps them, `cms discard {0} --force` drops them",
                record.name
            )));
        }
    }
    let stray = ws
        .store
        .with_refs_lock(|| remove_task_checkout(&ws, &record, args.force))??;
    let record = ws
        .store
        .update(&record.name, |r| r.status = Status::Discarded)?;
    if ctx.ui.json {
        let mut value = report::task_json(&record);
        value["stray_branch"] = serde_json::json!(stray);
        ctx.ui.print_json(&value);
    } else {
        ctx.ui.println(&format!(
            "Discarded {}: removed its worktree and branch.",
            ctx.ui.out.name.apply_to(&record.name)
        ));
        if let Some(stray) = &stray {
            ctx.ui.warn(&format!(
                "its session had switched to branch '{stray}', which cms did not make and \
                 kept; `git branch -D {stray}` deletes it"
            ));
        }
    }
    Ok(exit_code::OK)
}

/// How many files the task changed that its base branch does not already have.
fn unmerged_files(
    ws: &crate::workspace::Workspace,
    record: &crate::store::TaskRecord,
) -> Result<usize, CommandError> {
    if !record.worktree.is_dir() && !ws.repo.branch_exists(&record.branch) {
        return Ok(0);
    }
    let (from, to) = change_range(ws, record)?;
    let files = crate::git::snapshot::changed_files(&ws.repo, from, to)?;
    if files.is_empty() {
        return Ok(0);
    }
    // Merged by hand (e.g. `git merge cms/x`): the target already holds the change.
    let merged = record.base_branch.as_deref().is_some_and(|branch| {
        let Ok(target) = ws.repo.branch_tip(branch) else {
            return false;
        };
        let Ok(tip) = ws.repo.branch_tip(&record.branch) else {
            return false;
        };
        ws.repo.tree_of(tip).ok() == Some(to) && ws.repo.is_ancestor(tip, target).unwrap_or(false)
    });
    Ok(if merged { 0 } else { files.len() })
}

/// Asks at a terminal; never blocks a script (no TTY means no).
fn confirm(ctx: &CommandContext, name: &TaskName, files: usize) -> bool {
    if ctx.ui.json || !ctx.ui.stdin_is_terminal() {
        return false;
    }
    eprint!("Task '{name}' has unmerged changes in {files} file(s). Discard them? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}
