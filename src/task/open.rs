//! What `diff`, `merge`, `discard` and `check` need of a finished task: opening it for a
//! change, its change range, its protected-path rules and violations, and removing its
//! checkout.

use std::path::PathBuf;

use super::error::TaskError;
use super::rules::{RuleScope, rules_for};
use super::start::lock_reason;
use crate::config::Config;
use crate::git::{self, Oid};
use crate::safety::{self};
use crate::store::{TaskName, TaskRecord};
use crate::vocab::ViolationKind;
use crate::workspace::Workspace;

/// Opens a task for a command that changes it (`merge`, `discard`): it must exist, not be
/// running, and not be merged or discarded already.
pub fn open_for_change(
    ws: &Workspace,
    name: &TaskName,
    action: &str,
) -> Result<TaskRecord, TaskError> {
    let record = ws.task(name)?;
    ensure_not_running(&record, action)?;
    if record.status.is_closed() {
        return Err(TaskError::Closed {
            name: record.name,
            status: record.status,
        });
    }
    Ok(record)
}

/// The git of a task's worktree, its admin dir checked (see [`git::TaskGit`]). Refuses a task
/// whose admin dir is not the one git made, or was found tampered with when a session ended
/// (a look-alike that now says all the right things is still not the folder git made).
pub fn task_git(ws: &Workspace, record: &TaskRecord) -> Result<git::TaskGit, TaskError> {
    let tampered = |what: String| TaskError::AdminTampered {
        name: record.name.clone(),
        branch: record.branch.clone(),
        what,
    };
    if let Some(found) = admin_violation(record) {
        return Err(tampered(found.detail.clone()));
    }
    git::TaskGit::open(&ws.repo.common_dir, &record.worktree).map_err(|err| match err {
        git::GitError::AdminDirTampered { what, .. } => tampered(what),
        other => other.into(),
    })
}

/// Whether cms must run no git in the task's worktree: its admin dir was found tampered with
/// when a session ended, or is not git's own now.
pub fn is_tampered(ws: &Workspace, record: &TaskRecord) -> bool {
    admin_violation(record).is_some()
        || (record.worktree.is_dir()
            && git::TaskGit::open(&ws.repo.common_dir, &record.worktree).is_err())
}

/// How many files of a tampered task's committed work (its branch; its worktree is not looked
/// into) the branch it would go into does not hold.
pub fn committed_unmerged_files(ws: &Workspace, record: &TaskRecord) -> Result<usize, TaskError> {
    let Ok(tip) = ws.repo.branch_tip(&record.branch) else {
        return Ok(0);
    };
    let from = ws.repo.merge_base(record.base, tip).unwrap_or(record.base);
    let target = match &record.merge {
        Some(merge) => Some(merge.into.clone()),
        None => record.base_branch.clone(),
    };
    files_missing_from(ws, from, tip, target.as_slice())
}

/// Removes a tampered task's worktree, its admin dir entries and its branch without running
/// git in the worktree (see [`git::worktree::remove_tampered`]).
pub(super) fn remove_tampered_checkout(
    ws: &Workspace,
    record: &TaskRecord,
) -> Result<(), TaskError> {
    git::worktree::remove_tampered(&ws.repo.common_dir, &record.worktree, &record.branch)
        .map_err(git::GitError::Io)?;
    delete_task_branch(ws, record)
}

/// The `git_admin` violation recorded on a task, if it has one.
pub fn admin_violation(record: &TaskRecord) -> Option<&crate::vocab::Violation> {
    record
        .safety
        .violations
        .iter()
        .find(|v| v.kind == ViolationKind::GitAdmin)
}

/// The two ends of a task's change: the point it forked from its base, and its current state
/// (the worktree's uncommitted work included while the worktree exists).
pub fn change_range(ws: &Workspace, record: &TaskRecord) -> Result<(Oid, Oid), TaskError> {
    let base = record.base;
    let tip = ws.repo.branch_tip(&record.branch).ok();
    let from = match tip {
        Some(tip) => ws.repo.merge_base(base, tip).unwrap_or(base),
        None => base,
    };
    if record.worktree.is_dir() {
        let task = task_git(ws, record)?;
        return Ok((
            from,
            git::snapshot::snapshot_tree(&ws.repo, &task, &record.links)?,
        ));
    }
    let to = tip
        .or(record.head)
        .filter(|oid| ws.repo.tree_of(*oid).is_ok());
    match to {
        Some(to) => Ok((from, to)),
        None => Err(TaskError::NothingToCompare(record.name.clone())),
    }
}

/// Every protected-path violation of a task as it stands now: its change (uncommitted work
/// in its worktree included) checked against its own rules and the repository's current
/// ones, plus what was recorded when its sessions ended (changes outside its change, such as
/// the user's checkout or git metadata, can only be seen then).
pub fn current_violations(
    ws: &Workspace,
    record: &TaskRecord,
) -> Result<Vec<crate::vocab::Violation>, TaskError> {
    let (from, to) = change_range(ws, record)?;
    violations_in(ws, record, from, to)
}

/// [`current_violations`] for a change range the caller already has (a snapshot of a big
/// worktree is worth taking once).
pub fn violations_in(
    ws: &Workspace,
    record: &TaskRecord,
    from: Oid,
    to: Oid,
) -> Result<Vec<crate::vocab::Violation>, TaskError> {
    violations_under(ws, record, &ws.config(Some(record.base))?, from, to)
}

/// [`violations_in`] under the repository's configuration at the task's base, already read.
pub(super) fn violations_under(
    ws: &Workspace,
    record: &TaskRecord,
    config: &Config,
    from: Oid,
    to: Oid,
) -> Result<Vec<crate::vocab::Violation>, TaskError> {
    let rules = rules_for(ws, RuleScope::Change { record, config })?;
    let mut violations = record.safety.violations.clone();
    safety::check::add_new(
        &mut violations,
        safety::check::check_range(&ws.repo, from, to, &rules)?,
    );
    Ok(violations)
}

/// Refuses when the task's worktree left the task's branch (its session ran `git checkout -b`
/// or `--detach`): the work there is no longer what the task's branch holds.
pub fn ensure_on_branch(ws: &Workspace, record: &TaskRecord) -> Result<(), TaskError> {
    if !record.worktree.is_dir() {
        return Ok(());
    }
    let own = format!("refs/heads/{}", record.branch);
    let head = git::state::head_ref(&task_git(ws, record)?);
    if head.as_deref() == Some(own.as_str()) {
        return Ok(());
    }
    let now = match &head {
        Some(other) => other
            .strip_prefix("refs/heads/")
            .unwrap_or(other)
            .to_owned(),
        None => "a detached HEAD".to_owned(),
    };
    Err(TaskError::OffBranch {
        name: record.name.clone(),
        branch: record.branch.clone(),
        now,
    })
}

/// Refuses when a task is still running under a live supervisor.
pub fn ensure_not_running(record: &TaskRecord, action: &str) -> Result<(), TaskError> {
    if record.status.is_live() {
        return Err(TaskError::StillRunning {
            name: record.name.clone(),
            action: action.to_owned(),
        });
    }
    Ok(())
}

/// How many files of a task's work (its branch, and the uncommitted changes in its worktree)
/// the branch it goes into does not hold: 0 when removing them loses nothing. The target is
/// the branch it was merged into, else its base branch; a change the target already holds in
/// any form (fast-forwarded, merged, squashed, rebased, cherry-picked) counts as merged.
pub fn unmerged_files(ws: &Workspace, record: &TaskRecord) -> Result<usize, TaskError> {
    if !record.worktree.is_dir() && !ws.repo.branch_exists(&record.branch) {
        return Ok(0);
    }
    let (from, to) = change_range(ws, record)?;
    let target = match &record.merge {
        Some(merge) => Some(merge.into.clone()),
        None => record.base_branch.clone(),
    };
    files_missing_from(ws, from, to, target.as_slice())
}

/// How many files of the change `from`..`to` none of the `targets` branches holds (0 when
/// one holds all of it, or the change is empty).
pub fn files_missing_from(
    ws: &Workspace,
    from: Oid,
    to: Oid,
    targets: &[String],
) -> Result<usize, TaskError> {
    let files = git::snapshot::changed_files(&ws.repo, from, to)?;
    if files.is_empty() {
        return Ok(0);
    }
    for target in targets {
        let Ok(tip) = ws.repo.branch_tip(target) else {
            continue;
        };
        if git::snapshot::change_is_in(&ws.repo, from, to, tip)? {
            return Ok(0);
        }
    }
    Ok(files.len())
}

/// What removing a task's checkout will do, decided before anything is removed.
#[derive(Debug, Clone)]
pub struct CheckoutRemoval {
    /// The registered worktree to remove; `None` when git no longer knows one at the task's
    /// path (only its administrative leftovers are pruned).
    worktree: Option<PathBuf>,
    /// The branch the worktree had switched to, which cms did not make and keeps.
    pub stray: Option<String>,
}

/// Decides how to remove a task's worktree and branch, refusing unless they are the ones cms
/// made for it.
///
/// A worktree at the task's path that left the task's branch (its session ran `git checkout
/// -b` or `--detach`) is still the one cms made, but removing it is only done when
/// `even_off_branch` (an explicit `discard --force`); the branch it moved to is never
/// deleted, and is named in `stray` so the user can be told where it is.
pub fn plan_checkout_removal(
    ws: &Workspace,
    record: &TaskRecord,
    even_off_branch: bool,
) -> Result<CheckoutRemoval, TaskError> {
    let ours = format!("refs/heads/{}", record.branch);
    let reason = lock_reason(record.name.as_str());
    let entries = git::worktree::list(&ws.repo.common_dir)?;
    let registered = entries
        .iter()
        .find(|e| git::canonical(&e.path) == record.worktree);
    let Some(entry) = registered else {
        return Ok(CheckoutRemoval {
            worktree: None,
            stray: None,
        });
    };
    let remove = |stray| {
        Ok(CheckoutRemoval {
            worktree: Some(record.worktree.clone()),
            stray,
        })
    };
    if entry.branch.as_deref() == Some(ours.as_str()) {
        return remove(None);
    }
    // Still locked with the reason cms gave it: the worktree cms made, whose HEAD moved.
    let made_by_cms = !entry.bare && entry.lock_reason.as_deref() == Some(reason.as_str());
    if !made_by_cms {
        return Err(TaskError::NotOurWorktree {
            path: record.worktree.clone(),
            name: record.name.clone(),
        });
    }
    let now = entry
        .branch
        .as_deref()
        .map(|b| b.strip_prefix("refs/heads/").unwrap_or(b).to_owned());
    if even_off_branch {
        return remove(now);
    }
    Err(TaskError::OffBranch {
        name: record.name.clone(),
        branch: record.branch.clone(),
        now: now.unwrap_or_else(|| "a detached HEAD".to_owned()),
    })
}

/// Removes the worktree a plan names (or prunes what is left of one deleted by hand).
pub(super) fn remove_planned_worktree(
    ws: &Workspace,
    plan: &CheckoutRemoval,
) -> Result<(), TaskError> {
    match &plan.worktree {
        Some(path) => git::worktree::remove(&ws.repo.common_dir, path)?,
        None => git::worktree::prune(&ws.repo.common_dir)?,
    }
    Ok(())
}

/// Deletes the task's own `cms/<name>` branch, if it is still there.
pub(super) fn delete_task_branch(ws: &Workspace, record: &TaskRecord) -> Result<(), TaskError> {
    if ws.repo.branch_exists(&record.branch) {
        git::worktree::delete_branch(&ws.repo.common_dir, &record.branch)?;
    }
    // The tip kept from before a `--rebase` goes with the task.
    let _ = git::merge::delete_ref(&ws.repo.common_dir, &record.name.rebased_ref());
    Ok(())
}

/// Removes a task's worktree and branch, but only if they are the ones cms made for it (see
/// [`plan_checkout_removal`]); returns the stray branch its worktree had moved to, if any.
pub fn remove_task_checkout(
    ws: &Workspace,
    record: &TaskRecord,
    even_off_branch: bool,
) -> Result<Option<String>, TaskError> {
    let plan = plan_checkout_removal(ws, record, even_off_branch)?;
    remove_planned_worktree(ws, &plan)?;
    delete_task_branch(ws, record)?;
    Ok(plan.stray)
}
