//! Ending a session: the commit, the checks on the change (and, through [`super::watched`],
//! around it), the status, and the final record written from the supervisor's own copy.

use std::time::Duration;

use crate::git;
use crate::safety::{self, LimitState};
use crate::session::{Ledger, StopReason, TurnOutcome};
use crate::store::TaskRecord;
use crate::vocab::{Status, ViolationKind};
use crate::workspace::Workspace;

use super::error::TaskError;
use super::watched::{Watched, check_surroundings};

/// Commits the worktree, checks what the session changed, and saves the task's final state.
pub(super) fn finish(
    ws: &Workspace,
    record: TaskRecord,
    message: &str,
    ledger: &Ledger,
    outcome: &TurnOutcome,
    watched: &Watched,
    elapsed: Duration,
) -> Result<TaskRecord, TaskError> {
    let (mut status, mut error) = status_of(outcome);
    let mut stopped = outcome.stopped;
    let mut record = record;
    record.stopped_commands = outcome.stopped_commands.clone();
    // A turn that ended well is no success while work it started was cut short.
    if !record.stopped_commands.is_empty() && status == Status::Completed {
        status = Status::NeedsInput;
        let why = match (stopped.take(), record.safety.limits) {
            (Some(StopReason::Limit(kind)), Some(settings)) => {
                let state = LimitState::recorded(settings, record.duration_ms);
                safety::limits::describe(kind, &state, ledger, elapsed)
            }
            _ => "the session ended".to_owned(),
        };
        error = Some(cut_short(&record.stopped_commands, &why));
    }
    let ending = Ending {
        status,
        error,
        stopped,
    };
    finish_as(ws, record, message, ledger, ending, watched, elapsed)
}

/// The error of a task whose background commands were stopped: why, and which.
fn cut_short(commands: &[crate::vocab::StoppedCommand], why: &str) -> String {
    let which: Vec<String> = commands.iter().map(|c| c.label()).collect();
    let (count, them) = match commands.len() {
        1 => ("1 background command was".to_owned(), "it"),
        n => (format!("{n} background commands were"), "them"),
    };
    format!(
        "{count} still running when the agent's session had to end ({why}), so cms stopped {them} \
         before its end was reported: {}",
        which.join("; ")
    )
}

/// How a session ended, as the finish starts from: the status its process's ending gives
/// (the checks may still make it `protected_path`), and whether cms stopped it.
pub(super) struct Ending {
    pub status: Status,
    pub error: Option<String>,
    pub stopped: Option<StopReason>,
}

/// [`finish`] for a session whose ending was already judged (an interactive one, which has no
/// `result`).
pub(super) fn finish_as(
    ws: &Workspace,
    record: TaskRecord,
    message: &str,
    ledger: &Ledger,
    ending: Ending,
    watched: &Watched,
    elapsed: Duration,
) -> Result<TaskRecord, TaskError> {
    let elapsed_ms = elapsed.as_millis() as u64;
    let Ending {
        mut status,
        mut error,
        stopped,
    } = ending;
    if let (Some(StopReason::Limit(kind)), Some(settings)) = (stopped, record.safety.limits) {
        let state = LimitState::recorded(settings, record.duration_ms);
        error = Some(safety::limits::describe(kind, &state, ledger, elapsed));
    }
    let session = ledger.session_id.clone().unwrap_or_default();
    // The admin dir must be the very folder it was: otherwise cms's git would run what the
    // session put in its place, so nothing more runs in the worktree.
    let (task, admin_violation) = match admin_after(ws, &record, watched) {
        Ok(task) => (Some(task), None),
        Err(violation) => (None, Some(violation)),
    };
    // A worktree that left its branch would have cms's commit land on the stray branch: its
    // work stays uncommitted where it is, and the check below reports why.
    let own_ref = format!("refs/heads/{}", record.branch);
    let on_branch = task
        .as_ref()
        .filter(|task| git::state::head_ref(task).as_deref() == Some(own_ref.as_str()));
    let commit = match on_branch {
        Some(task) => {
            crate::workspace::commit_task_work(task, &record, &session, message).map(drop)
        }
        None => Ok(()),
    };
    let head = match commit {
        Ok(()) => ws.repo.branch_tip(&record.branch).ok(),
        Err(err) => {
            status = Status::Failed;
            error = Some(format!("cms could not commit the task's changes: {err}"));
            None
        }
    };
    let base = record.base;
    let files = match head {
        Some(head) => git::snapshot::changed_files(&ws.repo, base, head)?,
        None => Vec::new(),
    };
    // Everything the session did is committed, so base..head is the whole change.
    let mut violations: Vec<crate::vocab::Violation> = admin_violation.into_iter().collect();
    // After the admin dir's check, which reports the task's own entry made a symlink.
    for link in git::worktree::unlink_planted_links(&ws.repo.common_dir) {
        violations.push(crate::vocab::Violation {
            kind: ViolationKind::GitAdmin,
            path: link.display().to_string(),
            detail: format!(
                "a symlink {} was planted among git's worktree admin dirs; `git worktree prune` \
                 would have emptied the folder it points at, so cms removed it",
                link.display()
            ),
        });
    }
    if let Some(head) = head {
        violations.extend(safety::check::check_range(
            &ws.repo,
            base,
            head,
            &watched.rules,
        )?);
    }
    let around = check_surroundings(ws, &record, watched)?;
    violations.extend(around.violations);
    let warnings = around.warnings;
    let mut record = record;
    // After a `--rebase`, the conflicts must be resolved before the task can be merged.
    if let (Some(rebase), Some(head)) = (record.rebase.as_mut(), head) {
        rebase.unresolved = rebase
            .conflicts
            .iter()
            .filter(|path| {
                ws.repo
                    .file_at_commit(head, path)
                    .is_some_and(|text| has_conflict_markers(&text))
            })
            .cloned()
            .collect();
        if rebase.unresolved.is_empty() {
            record.rebase = None;
        } else if status == Status::Completed {
            status = Status::NeedsInput;
            error = Some(format!(
                "conflict markers remain in {}",
                rebase.unresolved.join(", ")
            ));
        }
    }
    if let Some(described) = describe_violations(&violations) {
        status = Status::ProtectedPath;
        error = Some(described);
    }
    let name = record.name.clone();
    let saved = ws.store.rewrite(&name, |on_disk| {
        // What the session may have written into the record is not trusted: the final record
        // is the one this supervisor started with, plus what the hook and the session's
        // events legitimately added.
        let (blocked, session_id, model) = match on_disk {
            Some(d) => (d.safety.blocked, d.session_id, d.model),
            None => (Vec::new(), None, None),
        };
        let mut final_record = record;
        let r = &mut final_record;
        r.safety.blocked = blocked;
        // Denials made by cms's own hook are recorded as blocked writes, and prompts answered
        // while the task ran as answers, not as tools the task needs the user to allow.
        let blocked: Vec<&str> = r
            .safety
            .blocked
            .iter()
            .filter_map(|b| b.tool_use_id.as_deref())
            .chain(
                r.safety
                    .answered
                    .iter()
                    .filter_map(|a| a.tool_use_id.as_deref()),
            )
            .collect();
        let denials: Vec<_> = ledger
            .permission_denials
            .iter()
            .filter(|d| {
                !d.tool_use_id
                    .as_deref()
                    .is_some_and(|id| blocked.contains(&id))
            })
            .cloned()
            .collect();
        let unresolved = r.rebase.as_ref().is_some_and(|b| !b.unresolved.is_empty());
        let cut = !r.stopped_commands.is_empty();
        let status = if status == Status::NeedsInput && denials.is_empty() && !unresolved && !cut {
            Status::Completed
        } else {
            status
        };
        r.status = status;
        r.error = error;
        r.safety.violations = violations;
        r.safety.warnings = warnings;
        r.session_id = ledger.session_id.clone().or(session_id);
        r.model = r.model.take().or(model).or(ledger.model.clone());
        r.cost_usd = ledger.cost_usd;
        r.turns = ledger.turns;
        r.duration_ms += elapsed_ms;
        r.response = ledger.response.clone();
        r.tools_used = ledger.tools_used.clone();
        r.permission_denials = denials;
        r.files_changed = files;
        r.head = head;
        r.supervisor = None;
        final_record
    })?;
    Ok(saved)
}

/// The task's git after its session, or the `git_admin` violation saying how its admin dir was
/// tampered with.
fn admin_after(
    ws: &Workspace,
    record: &TaskRecord,
    watched: &Watched,
) -> Result<git::TaskGit, crate::vocab::Violation> {
    let now = match &watched.task {
        Ok(before) => before.reopen(),
        Err(_) => git::TaskGit::open(&ws.repo.common_dir, &record.worktree),
    };
    now.map_err(|err| {
        let what = match err {
            git::GitError::AdminDirTampered { what, .. } => what,
            other => other.to_string(),
        };
        let path = match &watched.task {
            Ok(before) => before.admin_dir().to_owned(),
            Err(_) => record.worktree.join(".git"),
        };
        crate::vocab::Violation {
            kind: ViolationKind::GitAdmin,
            path: path.display().to_string(),
            detail: format!(
                "the task's git admin dir was tampered with while it ran ({what}); cms ran no git \
                 in its worktree and committed nothing"
            ),
        }
    })
}

/// The error a task with violations records: the first one, and how many there are.
pub(super) fn describe_violations(violations: &[crate::vocab::Violation]) -> Option<String> {
    let first = &violations.first()?.detail;
    let what = if violations.iter().all(|v| v.kind.is_path()) {
        "protected-path violation"
    } else {
        "safety violation"
    };
    Some(match violations.len() {
        1 => format!("{what}: {first}"),
        n => format!("{n} {what}s; the first: {first}"),
    })
}

/// The status a finished process gives its task, and the error to record with it.
fn status_of(outcome: &TurnOutcome) -> (Status, Option<String>) {
    match outcome.stopped {
        Some(StopReason::User) => {
            return (Status::Aborted, Some("stopped by the user".to_owned()));
        }
        // The finish describes the limit with the figures it was crossed at.
        // Between turns a limit stopped only background commands: the finish says which.
        Some(StopReason::Limit(kind)) if !outcome.stopped_between_turns => {
            return (kind.status(), None);
        }
        Some(StopReason::Limit(_)) => {}
        None => {}
    }
    let Some(result) = &outcome.result else {
        let mut error = format!(
            "claude {} without finishing its turn",
            outcome.how_it_ended()
        );
        if let Some(line) = outcome.stderr_summary() {
            error.push_str(&format!(": {line}"));
        }
        return (Status::Failed, Some(error));
    };
    if let Some(kind) = LimitState::reported_by_claude(&result.subtype) {
        let why = result.errors.first().cloned().unwrap_or_default();
        return (
            kind.status(),
            Some(format!("claude stopped at its limit: {why}")),
        );
    }
    if result.is_error {
        let mut error = result
            .message()
            .unwrap_or_else(|| format!("claude reported an error ({})", result.subtype));
        if let Some(status) = result.api_error_status
            && !error.contains(&status.to_string())
        {
            error = format!("API error {status}: {error}");
        }
        return (Status::Failed, Some(error));
    }
    if let Some(code) = outcome.exit_code.filter(|c| *c != 0) {
        return (
            Status::Failed,
            Some(format!("claude exited with code {code} after its result")),
        );
    }
    if !result.permission_denials.is_empty() {
        // The denials themselves are the explanation; they are recorded beside the status.
        return (Status::NeedsInput, None);
    }
    (Status::Completed, None)
}

/// Whether a file still holds git's conflict markers (an opening and a closing one).
fn has_conflict_markers(text: &str) -> bool {
    let mut lines = text.lines();
    lines.any(|l| l.starts_with("<<<<<<< ")) && lines.any(|l| l.starts_with(">>>>>>> "))
}

#[cfg(test)]
mod tests {
    use super::{Status, StopReason, TurnOutcome, has_conflict_markers, status_of};
    use crate::session::protocol::{Event, ResultEvent};

    /// The `result` line of a recorded real session (of Claude Code 2.1.197).
    fn recorded_result(sample: &str) -> ResultEvent {
        recorded_result_of("samples", sample)
    }

    /// `folder`: `samples`, or the folder of a later release's samples.
    fn recorded_result_of(folder: &str, sample: &str) -> ResultEvent {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-protocol")
            .join(folder)
            .join(sample);
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .rev()
            .find_map(|line| match Event::parse(line) {
                Event::Result(result) => Some(result),
                _ => None,
            })
            .unwrap()
    }

    fn ended(sample: &str, exit_code: i32) -> TurnOutcome {
        TurnOutcome {
            started: true,
            result: Some(recorded_result(sample)),
            exit_code: Some(exit_code),
            ..TurnOutcome::default()
        }
    }

    #[test]
    fn a_clean_result_completes_and_denied_tools_need_input() {
        assert_eq!(
            status_of(&ended("tools_bypass.jsonl", 0)).0,
            Status::Completed
        );
        let (status, error) = status_of(&ended("permission_denied.jsonl", 0));
        assert_eq!(status, Status::NeedsInput);
        assert_eq!(error, None);
    }

    #[test]
    fn claude_2_1_332s_endings_get_the_same_statuses() {
        let ended = |sample: &str, exit_code: i32| TurnOutcome {
            started: true,
            result: Some(recorded_result_of("2.1.332", sample)),
            exit_code: Some(exit_code),
            ..TurnOutcome::default()
        };
        assert_eq!(
            status_of(&ended("tools_bypass.jsonl", 0)).0,
            Status::Completed
        );
        assert_eq!(
            status_of(&ended("permission_denied.jsonl", 0)).0,
            Status::NeedsInput
        );
        let (status, error) = status_of(&ended("api_error_500.jsonl", 1));
        assert_eq!(status, Status::Failed);
        assert!(error.unwrap().contains("500"));
        assert_eq!(
            status_of(&ended("max_turns.jsonl", 1)).0,
            Status::TurnsExceeded
        );
    }

    #[test]
    fn api_errors_fail_with_the_apis_status_although_their_subtype_says_success() {
        let outcome = ended("api_error_500.jsonl", 1);
        assert_eq!(outcome.result.as_ref().unwrap().subtype, "success");
        let (status, error) = status_of(&outcome);
        assert_eq!(status, Status::Failed);
        assert!(error.unwrap().contains("500"));
    }

    #[test]
    fn claudes_own_limits_map_to_the_same_statuses_as_cmss() {
        assert_eq!(
            status_of(&ended("max_turns.jsonl", 1)).0,
            Status::TurnsExceeded
        );
        assert_eq!(
            status_of(&ended("max_budget.jsonl", 1)).0,
            Status::CostExceeded
        );
    }

    #[test]
    fn a_user_stop_is_aborted_and_a_limit_stop_is_that_limits_status() {
        let mut outcome = ended("interrupt.jsonl", 1);
        outcome.stopped = Some(StopReason::User);
        assert_eq!(status_of(&outcome).0, Status::Aborted);
        outcome.stopped = Some(StopReason::Limit(crate::vocab::LimitKind::Duration));
        assert_eq!(status_of(&outcome).0, Status::DurationExceeded);
    }

    #[test]
    fn no_result_or_a_failing_exit_after_one_is_a_failure_that_says_how_claude_ended() {
        let crashed = TurnOutcome {
            started: true,
            signal: Some(9),
            stderr_tail: vec!["Segmentation fault".to_owned()],
            ..TurnOutcome::default()
        };
        let (status, error) = status_of(&crashed);
        assert_eq!(status, Status::Failed);
        let error = error.unwrap();
        assert!(error.contains("killed by signal 9"), "{error}");
        assert!(error.contains("Segmentation fault"), "{error}");
        let (status, error) = status_of(&ended("tools_bypass.jsonl", 3));
        assert_eq!(status, Status::Failed);
        assert!(error.unwrap().contains("code 3"));
    }

    #[test]
    fn conflict_markers_are_an_opening_then_a_closing_line() {
        assert!(has_conflict_markers(
            "a\n<<<<<<< HEAD\nx\n=======\ny\n>>>>>>> abc\n"
        ));
        assert!(!has_conflict_markers(">>>>>>> late\n<<<<<<< early\n"));
        assert!(!has_conflict_markers("Title\n=======\ntext\n"));
    }
}
