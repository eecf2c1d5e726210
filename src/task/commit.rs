//! Committing what a task's worktree holds uncommitted (what a killed session left, or the
//! user's own edits there), then checking the task's whole change again, so `merge` sees
//! exactly what it would merge.

use super::error::TaskError;
use super::finish::describe_violations;
use super::open::{current_violations, ensure_not_running, ensure_on_branch, task_git};
use crate::git::Oid;
use crate::store::{TaskName, TaskRecord};
use crate::vocab::Status;
use crate::workspace::{Workspace, commit_task_work};

/// The message of `cms commit` when none is given.
pub const DEFAULT_MESSAGE: &str = "cms: work left uncommitted in the task's worktree";

/// A task after `cms commit`, and the commit made (`None` when nothing was uncommitted).
#[derive(Debug, Clone)]
pub struct Committed {
    pub record: TaskRecord,
    pub commit: Option<Oid>,
}

/// Commits the task's uncommitted work on its branch with cms's trailers, records the new
/// head and files, and re-runs the protected-path check on its change: a violation makes the
/// task `protected_path`. Refuses live, merged and discarded tasks, and a worktree that is
/// gone or left the task's branch (the commit would land elsewhere).
pub fn commit_task(
    ws: &Workspace,
    name: &TaskName,
    message: Option<&str>,
) -> Result<Committed, TaskError> {
    // Loading through the workspace first settles a task whose supervisor died.
    ws.task(name)?;
    ws.store.with_task_lock(name, || {
        let mut record = ws.store.load(name)?;
        ensure_not_running(&record, "commit")?;
        if record.status.is_closed() {
            return Err(TaskError::Closed {
                name: record.name,
                status: record.status,
            });
        }
        if !record.worktree.is_dir() {
            return Err(TaskError::NoWorktree {
                name: record.name.clone(),
                path: record.worktree,
            });
        }
        ensure_on_branch(ws, &record)?;
        let task = task_git(ws, &record)?;
        let session = record.session_id.clone().unwrap_or_default();
        let commit =
            commit_task_work(&task, &record, &session, message.unwrap_or(DEFAULT_MESSAGE))?;
        ws.record_branch_tip(&mut record)?;
        let violations = current_violations(ws, &record)?;
        if let Some(described) = describe_violations(&violations) {
            record.status = Status::ProtectedPath;
            record.error = Some(described);
        }
        record.safety.violations = violations;
        ws.store.save(&mut record)?;
        Ok(Committed { record, commit })
    })?
}
