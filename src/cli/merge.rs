//! `cms merge`: bring tasks' changes into the branch they were based on.

use clap::Args;
use serde_json::{Value, json};

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::git::merge::MergeMode;
use crate::report;
use crate::store::TaskName;
use crate::task::{self, MergeOptions, Merged, remove_task_checkout};

/// Merge tasks into the branch they were based on, then remove their worktrees and branches
///
/// By default each task becomes one commit on the target branch (a squash), its message the
/// prompt, the task's result and Cms-* trailers. The merge is computed in memory first, its
/// commit made through the repository's own hooks and `[merge] check` run on the result, all
/// before the target moves: on a conflict, a failing hook or check, or where it would
/// overwrite uncommitted changes in the checkout of the target branch, nothing is changed.
/// Unrelated uncommitted changes in that checkout are kept as they are. Several tasks merge
/// in the order given and stop at the first that cannot, which is named.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The tasks, merged in this order
    #[arg(required = true, value_parser = super::parse_task_name, add = super::completes_tasks())]
    pub tasks: Vec<TaskName>,

    /// One new commit with the task's whole change (the default)
    #[arg(long, group = "mode")]
    pub squash: bool,

    /// Fast-forward to the task's commits when possible, else a merge commit
    #[arg(long, group = "mode")]
    pub ff: bool,

    /// Always create a merge commit, even when a fast-forward is possible
    #[arg(long, group = "mode")]
    pub no_ff: bool,

    /// Replay the task's commits on top of the target branch
    #[arg(long, group = "mode")]
    pub rebase: bool,

    /// Merge into this branch instead of the one the task was based on
    #[arg(long, value_name = "BRANCH")]
    pub into: Option<String>,

    /// Keep the task's worktree and branch after merging
    #[arg(long)]
    pub keep: bool,

    /// Merge even though the task has safety violations (protected paths, refs, ...)
    #[arg(long)]
    pub allow_protected: bool,

    /// Do not run the repository's git hooks on the commit cms makes
    #[arg(long)]
    pub no_verify: bool,

    /// Do not run `[merge] check`
    #[arg(long)]
    pub no_check: bool,
}

pub fn cmd_merge(ctx: &CommandContext, args: MergeArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let mode = if args.ff {
        MergeMode::Auto
    } else if args.no_ff {
        MergeMode::NoFastForward
    } else if args.rebase {
        MergeMode::Rebase
    } else {
        MergeMode::Squash
    };
    let opts = MergeOptions {
        mode,
        into: args.into.clone(),
        allow_protected: args.allow_protected,
        verify: !args.no_verify,
        check: !args.no_check,
    };
    let ui = &ctx.ui;
    let mut done: Vec<Value> = Vec::new();
    let mut merged_names: Vec<String> = Vec::new();
    for name in &args.tasks {
        let merged = task::merge(&ws, name, &opts, |check| {
            ui.status(&format!("  {} {check}", ui.err.dim.apply_to("check")));
        });
        let merged = match merged {
            Ok(merged) => merged,
            Err(err) => {
                let mut err = CommandError::from(err);
                if !merged_names.is_empty() {
                    // Say what did happen before the stop: those merges stand.
                    err.message = format!(
                        "{} (merged before it: {})",
                        err.message,
                        merged_names.join(", ")
                    );
                }
                if ui.json && !done.is_empty() {
                    err = err.with_json_detail("merged", Value::Array(done));
                }
                return Err(err);
            }
        };
        crate::fault::step("merge:before-cleanup");
        let removed = !args.keep && remove_checkout(ctx, &ws, &merged);
        merged_names.push(name.to_string());
        if ui.json {
            let mut value = report::task_json(&merged.record);
            value["merge"]["removed"] = json!(removed);
            value["merge"]["checks"] = json!(merged.checks);
            done.push(value);
        } else {
            ui.println(&report::merge_summary(
                &ui.out,
                &merged.record,
                &merged.plan,
                merged.checks.len(),
                removed,
            ));
        }
    }
    if ui.json {
        // One task, one object (as `show --json`); several, an array of them.
        match <[Value; 1]>::try_from(done) {
            Ok([one]) => ui.print_json(&one),
            Err(many) => ui.print_json(&Value::Array(many)),
        }
    }
    Ok(exit_code::OK)
}

fn remove_checkout(
    ctx: &CommandContext,
    ws: &crate::workspace::Workspace,
    merged: &Merged,
) -> bool {
    match remove_task_checkout(ws, &merged.record, false) {
        Ok(_) => true,
        Err(err) => {
            ctx.ui.warn(&report::not_removed_warning(&err));
            false
        }
    }
}
