//! Bringing a remote task's session home: its branch and results are fetched from the remote,
//! the local branch and worktree move to the worker's tip (never over the user's changes), the
//! worker's transcript, stderr and claude's session file replace what the logs showed, and the
//! task finishes here with this machine's own check of the change. A follower that died is
//! settled the same way by the next cms command.

use std::time::Duration;

use super::follow::Followed;
use super::plan::runner_error;
use super::{Submitted, all_refs};
use crate::git::{self, Oid};
use crate::runner::{ray, wire};
use crate::safety;
use crate::session::Ledger;
use crate::store::{TaskName, TaskRecord, write_atomic};
use crate::task::error::TaskError;
use crate::task::finish::describe_violations;
use crate::task::settings::Settings;
use crate::vocab::{Status, Violation};
use crate::workspace::Workspace;

/// What came back of a job: the worker's files and its branch tip.
#[derive(Default)]
struct Fetched {
    record: Option<TaskRecord>,
    branch: Option<Oid>,
}

/// The first `len` bytes of the file at `path` (fewer if it is shorter or missing).
fn read_prefix(path: &std::path::Path, len: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    bytes.truncate(len as usize);
    bytes
}

/// Where the job's refs are fetched to here, until they are imported.
fn local_ref(name: &TaskName, what: &str) -> String {
    format!("refs/cms/remote/{name}/{what}")
}

/// Fetches the job's `out` and `branch` refs and puts the worker's files in the store.
/// Returns what came back, and why something could not be fetched.
fn fetch(
    ws: &Workspace,
    name: &TaskName,
    remote: &str,
    job: &str,
    earlier: (u64, u64),
) -> (Fetched, Option<String>) {
    let mut fetched = Fetched::default();
    let mut problem = None;
    for (what, from) in [
        ("out", wire::job_ref(job, wire::JobRef::Out)),
        ("branch", wire::job_ref(job, wire::JobRef::Branch)),
    ] {
        let to = local_ref(name, what);
        let refspec = format!("+{from}:{to}");
        // A ref the worker never pushed is simply not there.
        match git::remote::ls_remote(Some(&ws.repo.common_dir), remote, &from) {
            Ok(found) if found.is_empty() => continue,
            Ok(_) => {}
            Err(err) => {
                problem.get_or_insert(err.to_string());
                continue;
            }
        }
        match git::remote::fetch(&ws.repo.common_dir, remote, &[refspec.as_str()]) {
            Ok(()) => {}
            Err(err) => {
                problem.get_or_insert(err.to_string());
                continue;
            }
        }
        let Ok(oid) = ws.repo.resolve(&to).map(|(oid, _)| oid) else {
            continue;
        };
        if what == "branch" {
            fetched.branch = Some(oid);
            continue;
        }
        let Ok(files) = git::remote::read_commit_files(&ws.repo.common_dir, oid) else {
            continue;
        };
        if let Some(bytes) = files.get(wire::RECORD_FILE) {
            fetched.record = serde_json::from_slice(bytes).ok();
        }
        let store = &ws.store;
        // The worker's transcript and stderr are this session's: they take the place of what
        // the logs showed of it, after the task's earlier sessions.
        let puts = [
            (wire::LOG_FILE, store.log_path(name), Some(earlier.0)),
            (wire::STDERR_FILE, store.stderr_path(name), Some(earlier.1)),
            // claude's session file holds the whole conversation.
            (wire::SESSION_FILE, store.session_file_path(name), None),
        ];
        for (file, path, keep) in puts {
            let Some(bytes) = files.get(file) else {
                continue;
            };
            let mut whole = match keep {
                Some(len) => read_prefix(&path, len),
                None => Vec::new(),
            };
            whole.extend_from_slice(bytes);
            if let Err(err) = write_atomic(&path, &whole) {
                problem.get_or_insert(err.to_string());
            }
        }
    }
    (fetched, problem)
}

/// Moves the task's branch and worktree from `start` to the worker's `tip`. Refused (and the
/// tip kept under `refs/cms/remote/<task>/branch`) when the branch moved here meanwhile or the
/// worktree's changes would be overwritten.
fn move_branch(ws: &Workspace, record: &TaskRecord, start: Oid, tip: Oid) -> Result<(), String> {
    let kept = || {
        format!(
            "the worker's work is kept at {}",
            local_ref(&record.name, "branch")
        )
    };
    if tip == start {
        return Ok(());
    }
    match ws.repo.branch_tip(&record.branch) {
        Ok(now) if now == start => {}
        Ok(_) => {
            return Err(format!(
                "branch {} moved here while the task ran; {}",
                record.branch,
                kept()
            ));
        }
        Err(err) => return Err(format!("{err}; {}", kept())),
    }
    git::TaskGit::open(&ws.repo.common_dir, &record.worktree)
        .and_then(|task| git::worktree::fast_forward(&task, &record.branch, start, tip))
        .map_err(|err| format!("{err}; {}", kept()))
}

/// Finishes a remote task after following its job: imports what came back and writes the
/// final record.
pub(super) fn finish(
    ws: &Workspace,
    record: TaskRecord,
    settings: &Settings,
    job: &Submitted,
    followed: Followed,
) -> Result<TaskRecord, TaskError> {
    let name = record.name.clone();
    let earlier = (job.remote.log_from, job.remote.stderr_from);
    let (fetched, fetch_problem) = fetch(ws, &name, &job.remote.remote, &job.job, earlier);
    let moved = fetched
        .branch
        .map(|tip| move_branch(ws, &record, job.start, tip));
    let ended_how = |followed: &Followed| match &followed.job {
        Some(status) => format!(
            "its job {} ended {}{}",
            job.job,
            status.state.as_str(),
            // Ray's message for a failed job goes on with its last 20,000 characters of log,
            // which the task's transcript and stderr already hold: its first line says it.
            status
                .message
                .as_deref()
                .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()))
                .map(|m| m.split(", last available logs").next().unwrap_or(m))
                .map(|m| format!(" ({})", m.trim_end_matches(':')))
                .unwrap_or_default()
        ),
        None => format!("its job {} could not be followed", job.job),
    };
    let (mut status, mut error) = match (&followed.end, &followed.worker_error) {
        // A stop that came before the session began leaves the worker nothing to run.
        (_, Some(why)) if followed.stopped => (
            Status::Aborted,
            Some(format!("stopped by the user ({why})")),
        ),
        (_, Some(why)) => (Status::Failed, Some(format!("the worker failed: {why}"))),
        (Some(end), None) => (end.status, end.error.clone()),
        (None, None) => (
            if followed.stopped {
                Status::Aborted
            } else {
                Status::Interrupted
            },
            Some(match &followed.gave_up {
                Some(why) => why.clone(),
                None => format!(
                    "{} before the task did, on runner '{}'",
                    ended_how(&followed),
                    job.remote.runner
                ),
            }),
        ),
    };
    let notes: Vec<String> = [fetch_problem.map(|p| format!("fetching its results: {p}"))]
        .into_iter()
        .flatten()
        .chain(moved.clone().and_then(Result::err))
        .collect();
    if !notes.is_empty() {
        let joined = notes.join("; ");
        error = Some(match error {
            Some(e) => format!("{e}; {joined}"),
            None => joined,
        });
    }
    let head = ws.repo.branch_tip(&record.branch).ok();
    let mut violations: Vec<Violation> = fetched
        .record
        .as_ref()
        .map(|w| w.safety.violations.clone())
        .unwrap_or_default();
    let mut files = Vec::new();
    if let Some(head) = head {
        files = git::snapshot::changed_files(&ws.repo, record.base, head)?;
        // This machine checks the change against its own rules too: what the worker says is
        // not all there is to it.
        for found in safety::check::check_range(&ws.repo, record.base, head, &settings.rules)? {
            if !violations
                .iter()
                .any(|v| v.kind == found.kind && v.path == found.path)
            {
                violations.push(found);
            }
        }
    }
    if let Some(described) = describe_violations(&violations) {
        status = Status::ProtectedPath;
        error = Some(described);
    }
    let saved = ws.store.rewrite(&name, |_| {
        let mut done = record;
        if let Some(worker) = fetched.record {
            done.session_id = worker.session_id.or(done.session_id);
            done.model = worker.model.or(done.model);
            done.cost_usd = worker.cost_usd;
            done.turns = worker.turns;
            done.duration_ms = worker.duration_ms;
            done.response = worker.response;
            done.tools_used = worker.tools_used;
            done.permission_denials = worker.permission_denials;
            done.safety.blocked = worker.safety.blocked;
            done.safety.warnings = worker.safety.warnings;
            done.safety.answered = worker.safety.answered;
            done.safety.allowed = worker.safety.allowed;
            done.stopped_commands = worker.stopped_commands;
        } else {
            take_ledger(&mut done, &followed.ledger, followed.elapsed);
        }
        done.status = status;
        done.error = error;
        done.safety.violations = violations;
        done.files_changed = files;
        done.head = head;
        done.pending = None;
        done.supervisor = None;
        done
    })?;
    clean_up(ws, &name, job, moved.is_none_or(|m| m.is_ok()));
    Ok(saved)
}

/// A session whose worker pushed no record: what the logs showed is all there is.
fn take_ledger(record: &mut TaskRecord, ledger: &Ledger, elapsed: Duration) {
    record.cost_usd = ledger.live_cost_usd();
    record.turns = ledger.live_turns();
    record.duration_ms += elapsed.as_millis() as u64;
    record.tools_used = ledger.tools_used.clone();
    record.response = ledger.response.clone();
    record.session_id = ledger.session_id.clone().or(record.session_id.take());
}

/// Removes the job's refs from the remote and the job from Ray once its results are here; the
/// fetched branch ref stays when it holds work the task's branch does not.
fn clean_up(ws: &Workspace, name: &TaskName, job: &Submitted, moved: bool) {
    let refs = all_refs(&job.job);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let _ = git::remote::delete_remote_refs(&ws.repo.common_dir, &job.remote.remote, &refs);
    let _ = git::merge::delete_ref(&ws.repo.common_dir, &local_ref(name, "out"));
    if moved {
        let _ = git::merge::delete_ref(&ws.repo.common_dir, &local_ref(name, "branch"));
    }
    let _ = job.client.delete(&job.job);
}

/// Settles remote tasks whose following cms process died (killed, its machine rebooted): the
/// job is stopped, what its worker last pushed comes home, and the task ends `interrupted`.
/// Returns a line for each, for the user.
pub fn settle_orphans(ws: &Workspace) -> Vec<String> {
    let Ok((records, _)) = ws.store.list() else {
        return Vec::new();
    };
    let me = crate::session::current_supervisor();
    let mut lines = Vec::new();
    for record in records {
        let orphaned = record.status.is_live()
            && record.remote.is_some()
            && record
                .supervisor
                .is_some_and(|s| !crate::session::supervisor_alive(&s));
        if !orphaned {
            continue;
        }
        // Claimed under the task's lock, so two cms commands never settle it both.
        let dead = record.supervisor.map(|s| s.pid).unwrap_or_default();
        let claimed = ws.store.update(&record.name, |r| {
            if r.status.is_live() && r.supervisor.is_some_and(|s| s.pid == dead) {
                r.supervisor = Some(me);
            }
        });
        let Ok(record) = claimed.map_err(drop).and_then(|r| {
            (r.supervisor.map(|s| s.pid) == Some(me.pid))
                .then_some(r)
                .ok_or(())
        }) else {
            continue;
        };
        let name = record.name.clone();
        lines.push(match settle_one(ws, record, dead) {
            Ok(done) => format!(
                "task '{name}' ended {}: the cms process following its job (pid {dead}) ended \
                 before it; what the worker last pushed was brought home",
                done.status
            ),
            Err(err) => format!("task '{name}' could not be settled: {err}"),
        });
    }
    lines
}

fn settle_one(ws: &Workspace, record: TaskRecord, dead: u32) -> Result<TaskRecord, TaskError> {
    let remote = record.remote.clone().expect("checked by the caller");
    let fail = |err| runner_error(&remote.runner, err);
    let give_up = |ws: &Workspace, why: String| {
        ws.store.update(&record.name, |r| {
            r.status = Status::Interrupted;
            r.error = Some(why);
            r.supervisor = None;
            r.pending = None;
        })
    };
    let Some(id) = remote.job.clone() else {
        // Never submitted: nothing runs anywhere.
        return Ok(give_up(
            ws,
            format!(
                "the cms process starting this task (pid {dead}) ended before its job was submitted"
            ),
        )?);
    };
    let client = ray::RayClient::new(&remote.address).map_err(fail)?;
    let _ = client.stop(&id);
    // The worker gets the stop as SIGTERM and pushes what it has before Ray's own deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        match client.status(&id) {
            Ok(status) if status.state.is_terminal() => break Some(status),
            Ok(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            _ => break None,
        }
    };
    let settings = Settings::for_session(ws, &record, record.base)?;
    // The branch moves only at an import, so it is still where the session started.
    let start = ws.repo.branch_tip(&record.branch).unwrap_or(record.base);
    let job = Submitted {
        client,
        job: id,
        remote,
        start,
    };
    let followed = Followed {
        end: None,
        worker_error: None,
        job: status,
        stopped: false,
        gave_up: Some(format!(
            "the cms process following this task's job (pid {dead}) ended before the task did"
        )),
        ledger: Ledger::resume(record.cost_usd, record.turns, record.tools_used.clone()),
        elapsed: Duration::ZERO,
    };
    finish(ws, record, &settings, &job, followed)
}
