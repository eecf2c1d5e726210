//! What a session must leave alone: the state around the task taken before claude has its
//! message, and what changed by the session's end, held against the task only where it could
//! have made the change.

use std::path::PathBuf;
use std::sync::Arc;

use crate::git;
use crate::safety::{self, Rules};
use crate::store::{TaskName, TaskRecord};
use crate::vocab::ViolationKind;
use crate::workspace::Workspace;

use super::TaskError;

/// What a session must leave alone, fingerprinted before it starts.
pub(super) struct Watched {
    pub(super) baseline: safety::check::Baseline,
    /// The records of the other tasks that were not running, as they were.
    pub(super) quiet_records: Vec<TaskRecord>,
    /// The task's git, its admin dir as it was before the session.
    pub(super) task: Result<git::TaskGit, git::GitError>,
    /// The protected paths, compiled when the task started: what its change is judged by.
    pub(super) rules: Arc<Rules>,
}

impl Watched {
    /// `sandbox_deny` is what the task's Bash sandbox denied, as claude was given it (`None`:
    /// unsandboxed); `rules` are the task's protected paths.
    pub(super) fn capture(
        ws: &Workspace,
        record: &TaskRecord,
        sandbox_deny: Option<Vec<PathBuf>>,
        rules: &Arc<Rules>,
    ) -> Result<Watched, TaskError> {
        let (around, quiet_records) = surroundings(ws, record, sandbox_deny)?;
        Ok(Watched {
            baseline: safety::check::Baseline::capture(around)?,
            quiet_records,
            task: git::TaskGit::open(&ws.repo.common_dir, &record.worktree),
            rules: Arc::clone(rules),
        })
    }
}

/// (running ones change their own worktree and branch; merged and discarded ones are gone).
fn surroundings(
    ws: &Workspace,
    record: &TaskRecord,
    sandbox_deny: Option<Vec<PathBuf>>,
) -> Result<(safety::check::Surroundings, Vec<TaskRecord>), TaskError> {
    let (tasks, _unreadable) = ws.tasks()?;
    let quiet_records: Vec<TaskRecord> = tasks
        .into_iter()
        .filter(|t| t.name != record.name && is_quiet(t))
        .collect();
    let quiet_tasks = quiet_records
        .iter()
        .map(|t| safety::check::QuietTask {
            name: t.name.to_string(),
            worktree: t.worktree.clone(),
            branch_ref: format!("refs/heads/{}", t.branch),
        })
        .collect();
    let around = safety::check::Surroundings {
        common_dir: ws.repo.common_dir.clone(),
        worktree: record.worktree.clone(),
        branch_ref: format!("refs/heads/{}", record.branch),
        checkouts: user_checkouts(ws, record),
        quiet_tasks,
        object_backup: Some(
            ws.store
                .object_backup_dir(&record.name, record.supervisor.map_or(0, |s| s.token)),
        ),
        sandbox_deny,
    };
    Ok((around, quiet_records))
}

fn is_quiet(record: &TaskRecord) -> bool {
    !record.status.is_live() && !record.status.is_closed()
}

/// The user's checkouts a task must leave alone: the main one and the one cms was started
/// from, unless that is itself a task's worktree.
fn user_checkouts(ws: &Workspace, record: &TaskRecord) -> Vec<PathBuf> {
    let tasks_dir = record.worktree.parent().map(git::canonical);
    let mut checkouts: Vec<PathBuf> = ws.main_checkout().into_iter().collect();
    checkouts.push(ws.repo.checkout.clone());
    let mut out: Vec<PathBuf> = Vec::new();
    for checkout in checkouts {
        let checkout = git::canonical(&checkout);
        let is_task = tasks_dir
            .as_ref()
            .is_some_and(|dir| checkout.starts_with(dir));
        if !is_task && checkout != record.worktree && !out.contains(&checkout) {
            out.push(checkout);
        }
    }
    out
}

/// What changed around the task's change: its own record, the user's checkouts, the refs, git
/// metadata and the other tasks, as violations where the task could have made the change and
/// warnings where it may have (see [`safety::check::Baseline::elsewhere`]). cms puts nothing
/// back but deleted loose objects: another task's record or branch that changed may be cms's
/// own work (a follow-up, a merge) or the user's.
pub(super) fn check_surroundings(
    ws: &Workspace,
    record: &TaskRecord,
    watched: &Watched,
) -> Result<safety::check::Changes, TaskError> {
    let baseline = &watched.baseline;
    let mut changes = safety::check::Changes::default();
    baseline.restore_objects(&mut changes);
    // The task's own record is rewritten from the supervisor's copy whoever changed it; it is
    // the task's violation only if the task could write the store.
    let own_record = ws.store.record_path(&record.name);
    if baseline.could_write(&own_record) {
        changes.violations.extend(record_tampering(ws, record));
    }
    let mut now: Vec<(String, safety::check::TaskNow)> = Vec::new();
    for before in &watched.quiet_records {
        let after = ws.store.load(&before.name);
        let state = match &after {
            Ok(after) if after == before => safety::check::TaskNow::Quiet,
            // The user merged or discarded it meanwhile.
            Ok(after) if after.status.is_closed() => safety::check::TaskNow::Busy,
            // Followed up, answered or edited by cms or the user, or (where the task could
            // write the store) forged: left as it is, since putting it back could undo cms's
            // own ledger; its worktree and branch are then its own session's business.
            _ => {
                let path = ws.store.record_path(&before.name);
                baseline.elsewhere(
                    &mut changes,
                    &path,
                    crate::vocab::Violation {
                        kind: ViolationKind::TaskRecord,
                        path: path.display().to_string(),
                        detail: format!(
                            "task '{}''s record changed while this task ran; cms left it as it \
                             is",
                            before.name
                        ),
                    },
                );
                safety::check::TaskNow::Busy
            }
        };
        now.push((before.name.to_string(), state));
    }
    let task_now = |name: &str| {
        if let Some((_, state)) = now.iter().find(|(n, _)| n == name) {
            return *state;
        }
        match TaskName::parse(name).map(|name| ws.store.load(&name)) {
            Ok(Ok(_)) => safety::check::TaskNow::Busy,
            _ => safety::check::TaskNow::Unknown,
        }
    };
    // The refs under the refs lock, and only they (the rest can take a while on a big
    // repository): a task being started makes its branch before its record, so a look at the
    // refs between the two would take a parallel start for a stray branch.
    ws.store
        .with_refs_lock(|| baseline.ref_changes(&mut changes, &task_now))?;
    baseline.changes(&mut changes, &task_now);
    Ok(changes)
}

/// How the task's record on disk differs from the one its supervisor holds, in what only cms
/// may set: the record lives in the repository's git dir, which the agent's git commands can
/// write, and a record with looser limits or fewer protected paths must not be believed.
fn record_tampering(ws: &Workspace, record: &TaskRecord) -> Vec<crate::vocab::Violation> {
    let path = ws.store.record_path(&record.name);
    let on_disk = match ws.store.load(&record.name) {
        Ok(on_disk) => on_disk,
        Err(err) => {
            return vec![crate::vocab::Violation {
                kind: ViolationKind::TaskRecord,
                path: path.display().to_string(),
                detail: format!("the task's record became unreadable while it ran: {err}"),
            }];
        }
    };
    let mut expected = record.clone();
    // What the session's own events and cms's hook legitimately write while it runs.
    expected.session_id = on_disk.session_id.clone();
    expected.model = on_disk.model.clone();
    expected.safety.blocked = on_disk.safety.blocked.clone();
    // Permission prompts are the supervisor's and the user's to write; the wait is over now.
    expected.pending = on_disk.pending.clone();
    expected.safety.answered = on_disk.safety.answered.clone();
    // The live figures the supervisor itself writes while the session runs.
    expected.turns = on_disk.turns;
    expected.cost_usd = on_disk.cost_usd;
    expected.updated_at = on_disk.updated_at.clone();
    let (Ok(serde_json::Value::Object(want)), Ok(serde_json::Value::Object(got))) = (
        serde_json::to_value(&expected),
        serde_json::to_value(&on_disk),
    ) else {
        return Vec::new();
    };
    let mut fields: Vec<String> = Vec::new();
    for (key, value) in &want {
        match (key.as_str(), value, got.get(key)) {
            (
                "safety",
                serde_json::Value::Object(inner),
                Some(serde_json::Value::Object(other)),
            ) => {
                fields.extend(
                    inner
                        .iter()
                        .filter(|(k, v)| other.get(*k) != Some(*v))
                        .map(|(k, _)| format!("safety.{k}")),
                );
            }
            (_, value, got) if got != Some(value) => fields.push(key.clone()),
            _ => {}
        }
    }
    if fields.is_empty() {
        return Vec::new();
    }
    vec![crate::vocab::Violation {
        kind: ViolationKind::TaskRecord,
        path: path.display().to_string(),
        detail: format!(
            "the task's record was changed while it ran ({}); cms kept the settings the task \
             started with",
            fields.join(", ")
        ),
    }]
}
