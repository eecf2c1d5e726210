//! `cms diff`: what a task changed, from where it forked to its current state.

use clap::Args;
use serde_json::json;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::git::{self, DiffFormat};
use crate::task::change_range;

/// Show what a task changed: base...task, uncommitted work in its worktree included
///
/// At a terminal the diff is colored and paged the way `git diff` would be.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The task's name
    #[arg(value_parser = super::parse_task_name)]
    pub task: crate::store::TaskName,

    /// Show a diffstat instead of the patch
    #[arg(long, conflicts_with = "name_only")]
    pub stat: bool,

    /// Show only the names of changed files
    #[arg(long)]
    pub name_only: bool,
}

pub fn cmd_diff(ctx: &CommandContext, args: DiffArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let record = ws.task(&args.task)?;
    let (from, to) = change_range(&ws, &record)?;
    if ctx.ui.json {
        let files = git::snapshot::changed_files(&ws.repo, from, to)?;
        let mut value = json!({
            "version": crate::report::JSON_VERSION,
            "task": record.name,
            "from": from.to_string(),
            "files": files,
        });
        if !args.stat && !args.name_only {
            value["patch"] = json!(git::snapshot::diff_text(&ws.repo.checkout, from, to)?);
        }
        ctx.ui.print_json(&value);
        return Ok(exit_code::OK);
    }
    let format = if args.stat {
        DiffFormat::Stat
    } else if args.name_only {
        DiffFormat::NameOnly
    } else {
        DiffFormat::Patch
    };
    git::snapshot::show_diff(&ws.repo.checkout, from, to, format, ctx.ui.color_override())?;
    Ok(exit_code::OK)
}
