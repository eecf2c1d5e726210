//! Discarding tasks: every task is checked before any is touched, and each is removed in an
//! order a crash cannot leave half done.
//!
//! Once a discard is decided, a mark (`cms/discarding/<name>.json`) is written before
//! anything is removed; then the worktree, the branch and the record's `discarded` follow, and
//! the mark goes last. Killed anywhere in between, the task is either untouched (no mark) or marked,
//! and every cms command that opens the repository finishes marked discards first
//! ([`finish_pending_discards`]), so no command ever sees a task whose record says it is open
//! while its worktree or branch is already gone.

use super::error::TaskError;
use super::open::{
    committed_unmerged_files, delete_task_branch, ensure_not_running, is_tampered, open_for_change,
    plan_checkout_removal, remove_planned_worktree, remove_tampered_checkout, unmerged_files,
};
use crate::store::{StoreError, TaskName, TaskRecord};
use crate::vocab::Status;
use crate::workspace::Workspace;

/// A task checked for discarding, with what it would lose.
#[derive(Debug, Clone)]
pub struct DiscardPlan {
    pub record: TaskRecord,
    /// Files of its work that its base branch does not hold (0 with `force`: not measured).
    pub unmerged: usize,
}

/// Checks that a task can be discarded, changing nothing: it exists, is neither live nor
/// closed, and its worktree is the one cms made and still on its branch (unless `force`).
pub fn plan_discard(
    ws: &Workspace,
    name: &TaskName,
    force: bool,
) -> Result<DiscardPlan, TaskError> {
    let record = open_for_change(ws, name, "discard")?;
    if is_tampered(ws, &record) {
        let unmerged = if force {
            0
        } else {
            committed_unmerged_files(ws, &record)?
        };
        return Ok(DiscardPlan { record, unmerged });
    }
    plan_checkout_removal(ws, &record, force)?;
    let unmerged = if force {
        0
    } else {
        unmerged_files(ws, &record)?
    };
    Ok(DiscardPlan { record, unmerged })
}

/// What a finished discard removed.
#[derive(Debug, Clone)]
pub struct Discarded {
    pub record: TaskRecord,
    /// The branch its worktree had switched to, kept.
    pub stray: Option<String>,
}

/// Discards a planned task: marks it, then removes its worktree and branch and records it
/// `discarded`. `force` also removes a worktree that left the task's branch.
pub fn discard(ws: &Workspace, plan: &DiscardPlan, force: bool) -> Result<Discarded, TaskError> {
    let name = &plan.record.name;
    crate::fault::step("discard: decided");
    // Under the task's lock, so a `cms continue` cannot start it between the check and the mark.
    ws.store
        .with_task_lock(name, || -> Result<(), TaskError> {
            let record = ws.store.load(name)?;
            ensure_not_running(&record, "discard")?;
            if record.status.is_closed() {
                return Err(TaskError::Closed {
                    name: record.name,
                    status: record.status,
                });
            }
            ws.store
                .mark_discarding(name, &record.created_at, force)
                .map_err(TaskError::from)
        })??;
    crate::fault::step("discard: marked");
    finish_discard(ws, name, force)
}

/// Removes a marked task's worktree and branch, records it `discarded` and clears its mark.
/// Each step is idempotent, so running this again after a crash in it finishes the job.
fn finish_discard(
    ws: &Workspace,
    name: &TaskName,
    even_off_branch: bool,
) -> Result<Discarded, TaskError> {
    let record = ws.store.load(name)?;
    let stray = ws.store.with_refs_lock(|| -> Result<_, TaskError> {
        if is_tampered(ws, &record) {
            remove_tampered_checkout(ws, &record)?;
            crate::fault::step("discard: branch deleted");
            return Ok(None);
        }
        let removal = plan_checkout_removal(ws, &record, even_off_branch)?;
        remove_planned_worktree(ws, &removal)?;
        crate::fault::step("discard: worktree removed");
        delete_task_branch(ws, &record)?;
        crate::fault::step("discard: branch deleted");
        Ok(removal.stray)
    })??;
    let record = ws.store.update(name, |r| r.status = Status::Discarded)?;
    crate::fault::step("discard: record saved");
    ws.store.clear_discarding(name)?;
    Ok(Discarded { record, stray })
}

/// Finishes every discard a killed cms left marked, returning each task's outcome (one that
/// could not be finished stays marked, and is tried again by the next command).
pub fn finish_pending_discards(ws: &Workspace) -> Vec<(TaskName, Result<(), TaskError>)> {
    let mut outcomes = Vec::new();
    for mark in ws.store.discarding() {
        let result = match ws.store.load(&mark.name) {
            // A mark outlived its task, or the name now belongs to another task: the mark
            // is about a task that no longer exists, and must not touch the new one.
            Err(StoreError::UnknownTask { .. }) => {
                let _ = ws.store.clear_discarding(&mark.name);
                continue;
            }
            Ok(record) if record.created_at != mark.created_at => {
                let _ = ws.store.clear_discarding(&mark.name);
                continue;
            }
            Ok(_) => finish_discard(ws, &mark.name, mark.even_off_branch).map(drop),
            Err(err) => Err(err.into()),
        };
        outcomes.push((mark.name, result));
    }
    outcomes
}
