//! `cms diff`: what a task changed, from where it forked to its current state; or, with
//! `--base`, what its target branch changed meanwhile.

use clap::Args;
use serde_json::json;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::git::{self, DiffFormat};
use crate::task::change_range;

/// Show what a task changed: base...task, uncommitted work in its worktree included
///
/// At a terminal the diff is colored and paged the way `git diff` would be. The change is
/// checked against the protected paths as `cms check --task` would: what it touches is said
/// after the diff (in `violations` with --json); the exit code stays 0. With --base, the diff
/// is what the branch the task merges into changed since the task forked from it: what the
/// task's change will be merged onto; when it has not changed, that is said on stderr.
///
/// With --json, `from` is the commit the task forked from (where its branch and its base
/// branch meet) and `to` the other end: the id of a git tree snapshotting the task's worktree,
/// uncommitted work included, while the worktree exists (`git diff <from> <to>` shows the
/// same), else the task's last commit; with --base, `to` is the target branch's tip commit and
/// `target` its name.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The task's name
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: crate::store::TaskName,

    /// Compare with another task instead: what OTHER's work has that TASK's has not (two
    /// attempts side by side)
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks(),
          conflicts_with = "base")]
    pub other: Option<crate::store::TaskName>,

    /// Show a diffstat instead of the patch
    #[arg(long, conflicts_with = "name_only")]
    pub stat: bool,

    /// Show only the names of changed files
    #[arg(long)]
    pub name_only: bool,

    /// Show what the target branch changed since the task forked from it instead
    #[arg(long)]
    pub base: bool,
}

impl DiffArgs {
    /// What of the change the flags ask to see.
    fn format(&self) -> DiffFormat {
        if self.stat {
            DiffFormat::Stat
        } else if self.name_only {
            DiffFormat::NameOnly
        } else {
            DiffFormat::Patch
        }
    }
}

pub fn cmd_diff(ctx: &CommandContext, args: DiffArgs) -> Result<u8, CommandError> {
    if let Some(other) = &args.other {
        return diff_tasks(ctx, &args, other);
    }
    let ws = ctx.workspace()?;
    let record = ws.task(&args.task)?;
    let (from, mut to) = change_range(&ws, &record)?;
    let mut target = None;
    // The task's own change is the one a reviewer must hear about; taken on the range already
    // in hand, since snapshotting a big worktree twice would double the command's time.
    let violations = if args.base {
        None
    } else {
        Some(crate::task::violations_in(&ws, &record, from, to)?)
    };
    if args.base {
        let branch = match &record.merge {
            Some(merge) => merge.into.clone(),
            None => record.base_branch.clone().ok_or_else(|| {
                CommandError::user(format!(
                    "task '{}' was started from a detached HEAD, so it has no target branch",
                    record.name
                ))
                .with_hint(format!(
                    "compare by hand: git diff {} <BRANCH>",
                    &from.to_string()[..12]
                ))
            })?,
        };
        to = ws.repo.branch_tip(&branch)?;
        target = Some(branch);
    }
    if ctx.ui.json {
        let files = git::snapshot::changed_files(&ws.repo, from, to)?;
        let mut value = json!({
            "version": crate::report::JSON_VERSION,
            "task": record.name,
            "from": from.to_string(),
            "to": to.to_string(),
            "target": target,
            "files": files,
        });
        if let Some(violations) = &violations {
            value["violations"] = json!(violations);
        }
        if !args.stat && !args.name_only {
            value["patch"] = json!(git::snapshot::diff_text(&ws.repo.checkout, from, to)?);
        }
        ctx.ui.print_json(&value);
        return Ok(exit_code::OK);
    }
    if let Some(branch) = &target
        && ws.repo.tree_of(from)? == ws.repo.tree_of(to)?
    {
        // An empty diff would read as a failure to look; say what it means.
        ctx.ui.status(&format!(
            "{branch} has not changed since task '{}' started from it",
            record.name
        ));
        return Ok(exit_code::OK);
    }
    git::snapshot::show_diff(
        &ws.repo.checkout,
        from,
        to,
        args.format(),
        ctx.ui.color_override(),
    )?;
    // After the diff, so that a pager does not hide it.
    if let Some(violations) = violations.filter(|v| !v.is_empty()) {
        let ui = &ctx.ui;
        let what = match crate::safety::what_it_did(&violations) {
            "touched protected paths" => "touches protected paths",
            _ => "broke the safety rules",
        };
        ui.warn(&format!("task '{}' {what}:", record.name));
        for v in &violations {
            ui.status(&format!(
                "  {} {} {}",
                ui.err.bad.apply_to("violation:"),
                v.kind,
                v.detail
            ));
        }
        ui.status(&format!(
            "{} `cms merge --allow-protected` merges it anyway; `cms discard` drops it",
            ui.err.name.apply_to("hint:")
        ));
    }
    Ok(exit_code::OK)
}

/// `cms diff A B`: the work of task B against the work of task A, each as `cms diff` shows it
/// (uncommitted work in its worktree included), whatever commits each started from.
fn diff_tasks(
    ctx: &CommandContext,
    args: &DiffArgs,
    other: &crate::store::TaskName,
) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let first = ws.task(&args.task)?;
    let second = ws.task(other)?;
    let (_, from) = change_range(&ws, &first)?;
    let (_, to) = change_range(&ws, &second)?;
    if ctx.ui.json {
        let mut value = json!({
            "version": crate::report::JSON_VERSION,
            "task": first.name,
            "other": second.name,
            "from": from.to_string(),
            "to": to.to_string(),
            "files": git::snapshot::changed_files(&ws.repo, from, to)?,
        });
        if !args.stat && !args.name_only {
            value["patch"] = json!(git::snapshot::diff_text(&ws.repo.checkout, from, to)?);
        }
        ctx.ui.print_json(&value);
        return Ok(exit_code::OK);
    }
    if ws.repo.tree_of(from)? == ws.repo.tree_of(to)? {
        ctx.ui.status(&format!(
            "tasks '{}' and '{}' hold the same files",
            first.name, second.name
        ));
        return Ok(exit_code::OK);
    }
    git::snapshot::show_diff(
        &ws.repo.checkout,
        from,
        to,
        args.format(),
        ctx.ui.color_override(),
    )?;
    Ok(exit_code::OK)
}
