//! `cms push`: send a task's branch to a remote for review instead of merging it.

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::TaskName;
use crate::task::{self, PushOptions};

/// Push a task's branch for review, optionally opening a pull request
///
/// Pushes `cms/<TASK>` to the branch of the same name on the remote (the base branch's
/// upstream remote, else origin, else the only one). A later push replaces only what cms
/// pushed there itself, so a task continued or rebased since can be pushed again while commits
/// someone else pushed to that branch are never overwritten. With --pr, opens a pull request
/// through the GitHub CLI (gh), its description the task's result and the files it changed.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The task to push
    #[arg(value_parser = super::parse_task_name, add = super::completes_tasks())]
    pub task: TaskName,

    /// The remote to push to
    #[arg(long, value_name = "REMOTE")]
    pub remote: Option<String>,

    /// Open a pull request with gh after pushing (once; later pushes update it)
    #[arg(long)]
    pub pr: bool,

    /// Push even though the task has safety violations (protected paths, refs, ...)
    #[arg(long)]
    pub allow_protected: bool,

    /// Do not run the repository's pre-push hook
    #[arg(long)]
    pub no_verify: bool,
}

pub fn cmd_push(ctx: &CommandContext, args: PushArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let opts = PushOptions {
        remote: args.remote,
        pr: args.pr,
        allow_protected: args.allow_protected,
        no_verify: args.no_verify,
    };
    let record = task::push(&ws, &args.task, &opts)?;
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&report::task_json(&record));
        return Ok(exit_code::OK);
    }
    if let Some(push) = &record.push {
        ui.println(&format!(
            "Pushed {} to {} as {} ({}).",
            ui.out.name.apply_to(&record.name),
            push.remote,
            push.branch,
            &push.commit.to_string()[..12]
        ));
        if let Some(pr) = &push.pr {
            ui.println(&format!("Pull request: {pr}"));
        }
    }
    Ok(exit_code::OK)
}
