//! `cms commit`: commit what is uncommitted in a task's worktree.

use clap::Args;
use clap::builder::NonEmptyStringValueParser;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::TaskName;
use crate::task::commit_task;
use crate::vocab::Status;

/// Commit what is uncommitted in a task's worktree
///
/// For work a killed session left behind, or your own edits in the worktree. The commit gets
/// cms's `Cms-Task` and `Cms-Session` trailers, and the task's change is checked again
/// against its protected paths, so `cms merge` sees all of it.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The task's name
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: TaskName,

    /// The commit message
    #[arg(short, long, value_name = "MESSAGE", value_parser = NonEmptyStringValueParser::new())]
    pub message: Option<String>,
}

pub fn cmd_commit(ctx: &CommandContext, args: CommitArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let committed = commit_task(&ws, &args.task, args.message.as_deref())?;
    let record = &committed.record;
    let ui = &ctx.ui;
    if ui.json {
        let mut value = report::task_json(record);
        value["commit"] = serde_json::json!(committed.commit.map(|c| c.to_string()));
        ui.print_json(&value);
        return Ok(exit_code::OK);
    }
    let name = ui.out.name.apply_to(&record.name);
    match committed.commit {
        Some(commit) => ui.println(&format!(
            "Committed {name}'s uncommitted work ({}); it changes {} file(s) in all.",
            &commit.to_string()[..12],
            record.files_changed.len()
        )),
        None => ui.println(&format!("Nothing to commit in {name}'s worktree.")),
    }
    if record.status == Status::ProtectedPath
        && let Some(error) = &record.error
    {
        ui.warn(&format!(
            "{error}; `cms merge {0}` refuses it without --allow-protected",
            record.name
        ));
    }
    Ok(exit_code::OK)
}
