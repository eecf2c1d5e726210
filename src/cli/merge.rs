//! `cms merge`: bring a task's change into the branch it was based on.

use clap::Args;
use serde_json::json;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::git::{self, merge::MergeMessages, merge::MergeMode};
use crate::report;
use crate::store::{MergeInfo, Status};
use crate::task::{current_violations, ensure_on_branch, open_for_change, remove_task_checkout};

/// Merge a task into the branch it was based on, then remove its worktree and branch
///
/// The merge is computed in memory first: on a conflict, or where it would overwrite
/// uncommitted changes in the checkout of the target branch, nothing is changed. Unrelated
/// uncommitted changes in that checkout are kept as they are. A task that touched protected
/// paths is refused unless --allow-protected.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The task's name
    #[arg(value_parser = super::parse_task_name)]
    pub task: crate::store::TaskName,

    /// Squash the task's change into one new commit
    #[arg(long, group = "mode")]
    pub squash: bool,

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

    /// Merge even though the task touched protected paths
    #[arg(long)]
    pub allow_protected: bool,
}

pub fn cmd_merge(ctx: &CommandContext, args: MergeArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let record = open_for_change(&ws, &args.task, "merge")?;
    let Some(target) = args.into.clone().or(record.base_branch.clone()) else {
        return Err(CommandError::user(format!(
            "task '{}' was started from a detached HEAD, so it has no branch to merge into",
            record.name
        ))
        .with_hint(format!(
            "name one: cms merge {} --into <BRANCH>",
            record.name
        )));
    };
    let mode = if args.squash {
        MergeMode::Squash
    } else if args.no_ff {
        MergeMode::NoFastForward
    } else if args.rebase {
        MergeMode::Rebase
    } else {
        MergeMode::Auto
    };

    ensure_on_branch(&record)?;
    let (plan, record) = ws.store.with_refs_lock(|| -> Result<_, CommandError> {
        let task_tip = ws.repo.branch_tip(&record.branch).map_err(|_| {
            CommandError::user(format!("the branch of task '{}' is gone", record.name))
                .with_hint("it may have been deleted by hand; `cms discard` the task")
        })?;
        if record.worktree.is_dir() {
            let snapshot = git::snapshot::snapshot_tree(&record.worktree)?;
            if snapshot != ws.repo.tree_of(task_tip)? {
                return Err(CommandError::user(format!(
                    "task '{}' has uncommitted changes in its worktree",
                    record.name
                ))
                .with_hint(format!(
                    "`cms commit {0}` commits them to the task (or undo them in {1}), then merge again",
                    record.name,
                    record.worktree.display()
                )));
            }
        }
        let violations = current_violations(&ws, &record)?;
        if !violations.is_empty() && !args.allow_protected {
            let n = violations.len();
            return Err(CommandError::user(format!(
                "task '{}' touched protected paths ({n} violation{}): {}",
                record.name,
                if n == 1 { "" } else { "s" },
                violations[0].detail
            ))
            .with_hint(format!(
                "review them with `cms show {0}` and `cms diff {0}`; merge anyway with \
                 --allow-protected, or `cms discard {0}`",
                record.name
            )));
        }
        let plan = git::merge::plan(&ws.repo, &target, task_tip, mode, &messages(&record))?;
        git::merge::apply(&ws.repo, &plan, &format!("cms: merge task {}", record.name))?;
        let record = ws.store.update(&record.name, |r| {
            r.status = Status::Merged;
            r.merge = Some(MergeInfo {
                into: target.clone(),
                commit: plan.new_tip,
                kind: plan.kind.as_str().to_owned(),
            });
        })?;
        Ok((plan, record))
    })??;

    let mut removed = false;
    if !args.keep {
        match remove_task_checkout(&ws, &record, false) {
            Ok(_) => removed = true,
            Err(err) => ctx.ui.warn(&format!(
                "merged, but could not remove the task's worktree or branch: {err}"
            )),
        }
    }
    let ui = &ctx.ui;
    if ui.json {
        let mut value = report::task_json(&record);
        value["merge"]["removed"] = json!(removed);
        ui.print_json(&value);
    } else {
        let s = &ui.out;
        let short = &plan.new_tip.to_string()[..12];
        let how = plan.kind.as_str().replace('_', "-");
        let mut text = format!(
            "Merged {} into {} ({how}, {short}).",
            s.name.apply_to(&record.name),
            s.bold.apply_to(&target)
        );
        if plan.checkout.is_some() {
            text.push_str(" Its checkout was updated.");
        }
        if removed {
            text.push_str(" Removed the task's worktree and branch.");
        }
        ui.println(&text);
    }
    Ok(exit_code::OK)
}

fn messages(record: &crate::store::TaskRecord) -> MergeMessages {
    let subject: String = record
        .prompt
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(72)
        .collect();
    let mut trailers = format!("Cms-Task: {}\n", record.name);
    if let Some(session) = &record.session_id {
        trailers.push_str(&format!("Cms-Session: {session}\n"));
    }
    trailers.push_str(&format!(
        "Cms-Cost: {}\n",
        report::format_cost(record.cost_usd)
    ));
    let body = record
        .response
        .as_deref()
        .map(|r| format!("{}\n\n", r.trim()))
        .unwrap_or_default();
    MergeMessages {
        merge: format!("Merge cms task '{}': {subject}\n\n{trailers}", record.name),
        squash: format!("{subject}\n\n{body}{trailers}"),
    }
}
