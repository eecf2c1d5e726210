//! What a worker sends back: the `out` commit (its record, claude's transcript, stderr and
//! session file) and the task's branch, pushed to the job's refs at the runner's remote.

use std::path::Path;

use crate::git::{self, GitError, Oid};
use crate::runner::wire::{JobRef, LOG_FILE, RECORD_FILE, SESSION_FILE, STDERR_FILE, job_ref};
use crate::session;
use crate::store::{Store, TaskRecord};

/// `<id>.jsonl`, for a session id that is a plain file name.
pub(super) fn session_file_name(id: &str) -> Option<String> {
    let plain = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    plain.then(|| format!("{id}.jsonl"))
}

/// claude's session file for `record`, if it has one yet.
fn session_bytes(record: &TaskRecord) -> Option<Vec<u8>> {
    let id = record.session_id.as_deref()?;
    let file = session_file_name(id)?;
    std::fs::read(session::interactive::project_dir(&record.worktree, Some(id)).join(file)).ok()
}

/// Writes the `out` commit (the record, the transcript, claude's stderr and session file) and
/// pushes it, with the task's branch tip `branch` when given; returns the `out` commit.
pub(super) fn push_results(
    store: &Store,
    repo_dir: &Path,
    remote: &str,
    job: &str,
    record: &TaskRecord,
    branch: Option<Oid>,
) -> Result<Oid, GitError> {
    let json = serde_json::to_vec_pretty(record).expect("records serialize");
    let log = std::fs::read(store.log_path(&record.name)).unwrap_or_default();
    let stderr = std::fs::read(store.stderr_path(&record.name)).unwrap_or_default();
    let session = session_bytes(record);
    let mut files: Vec<(&str, &[u8])> = vec![
        (RECORD_FILE, &json),
        (LOG_FILE, &log),
        (STDERR_FILE, &stderr),
    ];
    if let Some(session) = &session {
        files.push((SESSION_FILE, session));
    }
    let out = git::remote::files_commit(repo_dir, &files, &[])?;
    let out_hex = out.to_string();
    let out_ref = job_ref(job, JobRef::Out);
    let branch_hex = branch.map(|tip| tip.to_string());
    let branch_ref = job_ref(job, JobRef::Branch);
    let mut refs = vec![(out_hex.as_str(), out_ref.as_str())];
    if let Some(tip) = &branch_hex {
        refs.push((tip.as_str(), branch_ref.as_str()));
    }
    git::remote::push(repo_dir, remote, &refs, true)?;
    Ok(out)
}
