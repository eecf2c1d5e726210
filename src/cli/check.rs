//! `cms check`: the protected-path rules applied to the index, to revision ranges or to a
//! task, for git hooks and scripts.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::CommandContext;
use crate::error::{CommandError, ErrorKind, exit_code};
use crate::git::{Oid, Repo};
use crate::report::JSON_VERSION;
use crate::safety::check::{add_new, check_range};
use crate::store::TaskName;
use crate::task::{RuleScope, current_violations, rules_for};
use crate::vocab::Violation;

/// Check changes against the protected paths, for git hooks and scripts
///
/// With --staged, checks what the next commit would record (pre-commit); with revision
/// ranges, what they bring (pre-push: A..B is what B adds since it forked from A, a single
/// commit is its own change); with --task, a task's whole change. Exits 0 when nothing
/// protected is touched and 3 with the list when something is. `cms hooks install` sets up
/// the git hooks that call it.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ranges", "staged", "task"])))]
pub struct CheckArgs {
    /// Revision ranges (A..B) or single commits
    #[arg(value_name = "REV-RANGE")]
    pub ranges: Vec<String>,

    /// Check the index: what `git commit` would record now
    #[arg(long)]
    pub staged: bool,

    /// Check a task's change, uncommitted work in its worktree included
    #[arg(long, value_name = "TASK", value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: Option<TaskName>,
}

pub fn cmd_check(ctx: &CommandContext, args: CheckArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let mut checked = Vec::new();
    let mut violations: Vec<Violation> = Vec::new();
    if let Some(task) = &args.task {
        let record = ws.task(task)?;
        violations = current_violations(&ws, &record)?;
        checked.push(format!("task {}", record.name));
    } else {
        let rules = rules_for(&ws, RuleScope::Checkout)?;
        if args.staged {
            let head = match ws.repo.head() {
                Ok(head) => head.oid(),
                // Before the first commit, everything staged is new.
                Err(crate::git::GitError::NoCommits) => ws.repo.empty_tree()?,
                Err(err) => return Err(err.into()),
            };
            let index = hook_index_file(ctx);
            let staged = crate::git::snapshot::index_tree(&ws.repo.checkout, index.as_deref())?;
            add_new(
                &mut violations,
                check_range(&ws.repo, head, staged, &rules)?,
            );
            checked.push("the index".to_owned());
        }
        for range in &args.ranges {
            let (from, to) = resolve_range(&ws.repo, range)?;
            add_new(&mut violations, check_range(&ws.repo, from, to, &rules)?);
            checked.push(range.clone());
        }
    }

    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&json!({
            "version": JSON_VERSION,
            "ok": violations.is_empty(),
            "checked": checked,
            "violations": violations,
        }));
    } else if violations.is_empty() {
        ui.println(&format!(
            "{} no protected path touched in {}",
            ui.out.good.apply_to("ok"),
            checked.join(", ")
        ));
    } else {
        let s = &ui.out;
        let lines: Vec<String> = violations
            .iter()
            .map(|v| format!("{} {} {}", s.bad.apply_to("violation:"), v.kind, v.detail))
            .collect();
        ui.println(&lines.join("\n"));
        let hint = if args.task.is_some() {
            "`cms merge --allow-protected` merges it anyway; `cms discard` drops it"
        } else {
            "undo those changes; if you made them yourself and mean them, commit or push \
             with --no-verify"
        };
        ui.status(&format!("{} {hint}", ui.err.name.apply_to("hint:")));
    }
    Ok(if violations.is_empty() {
        exit_code::OK
    } else {
        exit_code::VIOLATIONS
    })
}

/// The index git asked a pre-commit hook to look at, if it named one: a relative path is
/// relative to the directory the hook runs in.
fn hook_index_file(ctx: &CommandContext) -> Option<PathBuf> {
    let index = std::env::var_os("GIT_INDEX_FILE").filter(|v| !v.is_empty())?;
    Some(ctx.cwd.join(index))
}

/// `A..B` or `A...B` (what B adds since it forked from A), or one commit (its own change).
fn resolve_range(repo: &Repo, range: &str) -> Result<(Oid, Oid), CommandError> {
    let bad = || {
        CommandError::new(
            ErrorKind::Usage,
            format!("'{range}' is not a revision range"),
        )
        .with_hint("give A..B (what B adds since A) or a single commit")
    };
    let (left, right) = match range.split_once("...").or_else(|| range.split_once("..")) {
        Some((left, right)) => (Some(left), right),
        None => (None, range),
    };
    let side = |rev: &str| -> Result<(Oid, bool), CommandError> {
        let rev = if rev.is_empty() { "HEAD" } else { rev };
        Ok(repo.resolve_tree_ish(rev)?)
    };
    let (to, to_is_commit) = side(right)?;
    let from = match left {
        Some(left) => {
            let (from, from_is_commit) = side(left)?;
            if from_is_commit && to_is_commit {
                repo.merge_base(from, to).unwrap_or(from)
            } else {
                from
            }
        }
        None if to_is_commit => match repo.first_parent(to)? {
            Some(parent) => parent,
            None => repo.empty_tree()?,
        },
        None => return Err(bad()),
    };
    Ok((from, to))
}
