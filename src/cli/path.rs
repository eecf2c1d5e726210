//! `cms path`: where a task's worktree is, for `cd "$(cms path x)"`, editors and `cmscd`.

use clap::Args;
use serde_json::json;

use super::CommandContext;
use crate::error::{CommandError, ErrorKind, exit_code};
use crate::report::JSON_VERSION;

/// Print the path of a task's worktree
///
/// Prints the path alone on stdout, so `cd "$(cms path fix-login)"` and `code "$(cms path
/// fix-login)"` work; `cms shell-init` defines `cmscd <TASK>`, which does the `cd`. A merged or
/// discarded task has no worktree left: exit 1.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// The task's name
    #[arg(value_parser = super::parse_task_name, add = super::completes_tasks())]
    pub task: crate::store::TaskName,
}

pub fn cmd_path(ctx: &CommandContext, args: PathArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let record = ws.task(&args.task)?;
    if !record.worktree.is_dir() {
        let why = if record.status.is_closed() {
            format!("was {}", record.status.as_str())
        } else {
            "was removed".to_owned()
        };
        let hint = if ws.repo.branch_exists(&record.branch) {
            format!(
                "its work is still on branch {} (`git switch {}`)",
                record.branch, record.branch
            )
        } else {
            format!("`cms show {}` says what became of it", record.name)
        };
        return Err(CommandError::new(
            ErrorKind::User,
            format!(
                "task {} has no worktree: it {why} ({} is gone)",
                record.name,
                record.worktree.display()
            ),
        )
        .with_hint(hint));
    }
    if ctx.ui.json {
        ctx.ui.print_json(&json!({
            "version": JSON_VERSION,
            "task": record.name.to_string(),
            "path": record.worktree.display().to_string(),
        }));
    } else {
        ctx.ui.println(&record.worktree.display().to_string());
    }
    Ok(exit_code::OK)
}
