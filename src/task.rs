//! A task's life from start to end: making its worktree and record, supervising its claude
//! session, and committing and recording what it did.
//!
//! A start either completes or leaves nothing behind: every step that made something (the
//! worktree and branch, the record, the transcript) is undone if a later step of the start
//! fails, including claude failing before it ever began a session.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::Limits;
use crate::error::{CommandError, ErrorKind};
use crate::git::{self, GitError, Oid};
use crate::safety::{self, LimitKind, LimitState, Rules};
use crate::session::{
    self, Ledger, Preset, Spawn, StopReason, Timeouts, TurnOutcome, Watch, protocol::Event,
};
use crate::store::{Safety, Status, TaskName, TaskRecord, now_rfc3339};
use crate::workspace::Workspace;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    pub prompt: String,
    pub name: Option<TaskName>,
    pub base: Option<String>,
    pub model: Option<String>,
    pub preset: Option<Preset>,
    pub max_cost_usd: Option<f64>,
    pub max_turns: Option<u32>,
    pub max_duration: Option<Duration>,
    /// Globs protected on top of the configured ones.
    pub protect: Vec<String>,
}

/// A task whose worktree and record exist, ready for its session.
pub struct Started {
    pub record: TaskRecord,
    pub claude: PathBuf,
}

/// Creates the task's branch, worktree and record. Fails without leaving any of them behind.
pub fn start(ws: &Workspace, opts: &TaskOptions) -> Result<Started, CommandError> {
    let prompt = opts.prompt.trim();
    if prompt.is_empty() {
        return Err(CommandError::new(ErrorKind::Usage, "the prompt is empty")
            .with_hint("say what the task should do: cms task \"fix the login bug\""));
    }
    let head = ws.repo.head()?;
    let (base, base_branch) = match &opts.base {
        Some(rev) => ws.repo.resolve(rev)?,
        None => (head.oid(), head.branch().map(str::to_owned)),
    };
    let config = ws.config(Some(base))?;
    let preset = match opts.preset {
        Some(preset) => preset,
        None => Preset::parse(&config.preset).expect("config validates presets"),
    };
    let limits = Limits {
        max_cost_usd: opts.max_cost_usd.unwrap_or(config.limits.max_cost_usd),
        max_turns: opts.max_turns.unwrap_or(config.limits.max_turns),
        max_duration: opts.max_duration.unwrap_or(config.limits.max_duration),
    };
    // Rules drop repeated globs, so the configured and the flag's can simply be joined.
    let mut globs = config.protected.clone();
    globs.extend(opts.protect.iter().cloned());
    let rules = protection_rules(&globs)?;
    // Before anything is made: a missing claude must not leave a worktree behind.
    let claude = session::find_claude(&config.claude_bin)?;
    let worktrees = ws.worktrees_dir(&config);

    ws.store.with_refs_lock(|| {
        let name = pick_name(ws, opts, prompt, &worktrees)?;
        let worktree = worktrees.join(name.as_str());
        let branch = name.branch();
        std::fs::create_dir_all(&worktrees).map_err(|err| {
            CommandError::from_error(ErrorKind::User, &err).with_hint(format!(
                "cms keeps worktrees in {}; set worktrees.root or CMS_WORKTREES_ROOT to move them",
                worktrees.display()
            ))
        })?;
        let reason = format!("cms task {name}");
        git::worktree::add(&ws.repo.common_dir, &worktree, &branch, base, &reason)?;
        let now = now_rfc3339();
        let mut record = TaskRecord {
            version: crate::store::RECORD_VERSION,
            name: name.to_string(),
            status: Status::Running,
            prompt: prompt.to_owned(),
            branch,
            worktree: git::canonical(&worktree),
            base: base.to_string(),
            base_branch,
            session_id: None,
            model: opts.model.clone().or(config.model.clone()),
            preset: preset.to_string(),
            cost_usd: 0.0,
            turns: 0,
            duration_ms: 0,
            response: None,
            tools_used: Vec::new(),
            files_changed: Vec::new(),
            permission_denials: Vec::new(),
            safety: Safety {
                limits: Some(LimitState::new(limits, Duration::ZERO).settings()),
                protected: rules.globs().to_vec(),
                ..Safety::default()
            },
            error: None,
            head: None,
            merge: None,
            supervisor: Some(session::current_supervisor()),
            created_at: now.clone(),
            updated_at: now,
        };
        if let Err(err) = ws.store.create(&mut record) {
            undo_start(ws, &record);
            return Err(err.into());
        }
        Ok(Started { record, claude })
    })?
}

/// The user's name if free, else a unique slug of the prompt.
fn pick_name(
    ws: &Workspace,
    opts: &TaskOptions,
    prompt: &str,
    worktrees: &std::path::Path,
) -> Result<TaskName, CommandError> {
    let taken = |name: &TaskName| {
        ws.store.exists(name)
            || ws.repo.branch_exists(&name.branch())
            || worktrees.join(name.as_str()).exists()
    };
    if let Some(name) = &opts.name {
        if ws.store.exists(name) {
            return Err(CommandError::user(format!("task '{name}' already exists"))
                .with_hint("pick another --name, or `cms discard` the old task first"));
        }
        if ws.repo.branch_exists(&name.branch()) {
            return Err(
                CommandError::user(format!("branch '{}' already exists", name.branch()))
                    .with_hint("pick another --name; cms never reuses a branch it did not make"),
            );
        }
        let path = worktrees.join(name.as_str());
        if path.exists() {
            return Err(CommandError::user(format!(
                "the worktree path {} already exists",
                path.display()
            ))
            .with_hint("pick another --name, or remove that folder if nothing in it matters"));
        }
        return Ok(name.clone());
    }
    let slug = TaskName::slug(prompt)
        .unwrap_or_else(|| TaskName::parse("task").expect("'task' is a valid name"));
    Ok(TaskName::unique(&slug, taken))
}

/// Removes what a failed start made. Best effort: the original error is what the user needs.
fn undo_start(ws: &Workspace, record: &TaskRecord) {
    let _ = git::worktree::remove(&ws.repo.common_dir, &record.worktree);
    let _ = git::worktree::delete_branch(&ws.repo.common_dir, &record.branch);
    let _ = ws.store.remove(&record.name);
}

/// How the supervisor should behave.
pub struct RunOptions {
    pub timeouts: Timeouts,
}

/// Runs the task's session to its end and records the outcome. `on_event` sees every event
/// (for progress output); `stop` carries the user's stop requests.
pub async fn run(
    ws: &Workspace,
    started: Started,
    run_opts: RunOptions,
    stop: mpsc::UnboundedReceiver<StopReason>,
    mut on_event: impl FnMut(&Event, &Ledger),
) -> Result<TaskRecord, CommandError> {
    let Started { record, claude } = started;
    let preset = Preset::parse(&record.preset).expect("records hold valid presets");
    let mut args: Vec<String> = [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(preset.claude_args());
    if let Some(model) = &record.model {
        args.extend(["--model".to_owned(), model.clone()]);
    }
    let limits = record
        .safety
        .limits
        .map(|l| LimitState::from_settings(&l, record.duration_ms));
    let mut ledger = Ledger::resume(record.cost_usd, record.turns, record.tools_used.clone());
    if let Some(limits) = &limits {
        args.extend(limits.claude_args(&ledger));
    }
    args.extend(["--settings".to_owned(), hook_settings(ws, &record)?]);
    // What the session must leave alone, as it was before the session.
    let baseline = match safety::check::Baseline::capture(
        &ws.repo.common_dir,
        &record.worktree,
        &user_checkouts(ws, &record),
    ) {
        Ok(baseline) => baseline,
        Err(err) => {
            undo_start(ws, &record);
            return Err(err.into());
        }
    };
    let spec = Spawn {
        bin: &claude,
        args,
        cwd: &record.worktree,
        token: record.supervisor.map_or(0, |s| s.token),
        env: vec![
            ("CMS_TASK", record.name.clone()),
            ("CMS_TASK_BRANCH", record.branch.clone()),
            ("CMS_REPO", ws.repo.common_dir.display().to_string()),
        ],
    };
    let transcript = ws.store.open_log(&record.name)?;
    let stderr_log = ws.store.open_stderr_log(&record.name)?;
    let clock = Instant::now();
    let mut watch = Watch::new(stop);
    if let Some(limits) = limits {
        watch.check =
            Box::new(move |ledger: &Ledger| limits.crossed(ledger).map(StopReason::Limit));
        watch.deadline = Some((
            tokio::time::Instant::now() + limits.time_left(),
            StopReason::Limit(LimitKind::Duration),
        ));
    }
    let name = record.name.clone();
    let store = ws.store.clone();
    let outcome = session::run_turn(
        spec,
        &record.prompt,
        &mut ledger,
        session::Logs {
            stdout: transcript,
            stderr: stderr_log,
        },
        watch,
        run_opts.timeouts,
        |event, ledger| {
            // Record the session as soon as it is known, so `cms show` can point at it while
            // the task runs.
            if let Event::System(session::protocol::SystemEvent::Init(init)) = event {
                let _ = store.update(&name, |r| {
                    r.session_id = Some(init.session_id.clone());
                    r.model = r.model.clone().or(init.model.clone());
                });
            }
            on_event(event, ledger);
        },
    )
    .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            undo_start(ws, &record);
            return Err(err.into());
        }
    };
    if !outcome.started {
        undo_start(ws, &record);
        return Err(failed_start_error(&outcome, &claude));
    }
    finish(ws, record, &ledger, &outcome, &baseline, clock.elapsed())
}

/// The `--settings` that give claude cms's PreToolUse hook: every file-editing tool call is
/// checked against the task's protected paths and worktree before it runs, in every preset.
fn hook_settings(ws: &Workspace, record: &TaskRecord) -> Result<String, CommandError> {
    let exe = std::env::current_exe().map_err(|err| {
        CommandError::from_error(ErrorKind::Internal, &err)
            .with_hint("cms must know its own path to give claude its PreToolUse hook")
    })?;
    let command = [
        shell_quote(&exe.display().to_string()),
        "hook".to_owned(),
        "pre-tool-use".to_owned(),
        "--repo".to_owned(),
        shell_quote(&ws.repo.common_dir.display().to_string()),
        "--task".to_owned(),
        shell_quote(&record.name),
    ]
    .join(" ");
    let settings = serde_json::json!({
        "hooks": {
            "PreToolUse": [{
                "matcher": safety::hook::WRITE_TOOLS_MATCHER,
                "hooks": [{"type": "command", "command": command}],
            }],
        },
    });
    Ok(settings.to_string())
}

/// Quotes a word for `sh`, which runs claude's hook commands.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
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

fn failed_start_error(outcome: &TurnOutcome, claude: &std::path::Path) -> CommandError {
    if outcome.stopped.is_some() {
        return CommandError::new(
            ErrorKind::Interrupted,
            "interrupted before claude started a session; nothing was kept",
        );
    }
    let how = outcome.how_it_ended();
    let why = outcome
        .result
        .as_ref()
        .and_then(|r| r.message())
        .or_else(|| outcome.stderr_summary().map(str::to_owned));
    let mut message = format!("claude {how} before starting a session");
    if let Some(why) = why {
        message.push_str(&format!(": {why}"));
    } else if outcome.malformed_lines > 0 {
        message.push_str(&format!(
            " (it printed {} line(s) that are not stream-json)",
            outcome.malformed_lines
        ));
    }
    CommandError::user(message).with_hint(format!(
        "check that `{} --version` works and that it is Claude Code; nothing was kept",
        claude.display()
    ))
}

/// Commits the worktree, checks what the session changed, and saves the task's final state.
fn finish(
    ws: &Workspace,
    record: TaskRecord,
    ledger: &Ledger,
    outcome: &TurnOutcome,
    baseline: &safety::check::Baseline,
    elapsed: Duration,
) -> Result<TaskRecord, CommandError> {
    let elapsed_ms = elapsed.as_millis() as u64;
    let (mut status, mut error) = status_of(outcome);
    if let (Some(StopReason::Limit(kind)), Some(settings)) = (outcome.stopped, record.safety.limits)
    {
        let state = LimitState::from_settings(&settings, record.duration_ms);
        error = Some(safety::limits::describe(kind, &state, ledger, elapsed));
    }
    let session = ledger.session_id.clone().unwrap_or_default();
    let commit = git::snapshot::commit_all(
        &record.worktree,
        &record.prompt,
        &[("Cms-Task", &record.name), ("Cms-Session", &session)],
    );
    let head = match commit {
        Ok(_) => ws.repo.branch_tip(&record.branch).ok(),
        Err(err) => {
            status = Status::Failed;
            error = Some(format!("cms could not commit the task's changes: {err}"));
            None
        }
    };
    let base = Oid::from_str(&record.base).map_err(|_| GitError::UnknownRevision {
        rev: record.base.clone(),
    })?;
    let files = match head {
        Some(head) => git::snapshot::changed_files(&ws.repo, base, head)?,
        None => Vec::new(),
    };
    // Everything the session did is committed, so base..head is the whole change.
    let rules = protection_rules(&record.safety.protected)?;
    let mut violations = match head {
        Some(head) => safety::check::check_range(&ws.repo, base, head, &rules)?,
        None => Vec::new(),
    };
    violations.extend(baseline.changes());
    if !violations.is_empty() {
        status = Status::ProtectedPath;
        let first = &violations[0].detail;
        error = Some(match violations.len() {
            1 => format!("protected-path violation: {first}"),
            n => format!("{n} protected-path violations; the first: {first}"),
        });
    }
    let saved = ws.store.update(&record.name, |r| {
        // Denials made by cms's own hook are recorded as blocked writes, not as tools the
        // task needs the user to allow.
        let blocked: Vec<&str> = r
            .safety
            .blocked
            .iter()
            .filter_map(|b| b.tool_use_id.as_deref())
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
        let status = if status == Status::NeedsInput && denials.is_empty() {
            Status::Completed
        } else {
            status
        };
        r.status = status;
        r.error = error;
        r.safety.violations = violations;
        r.session_id = ledger.session_id.clone().or(r.session_id.take());
        r.model = r.model.take().or(ledger.model.clone());
        r.cost_usd = ledger.cost_usd;
        r.turns = ledger.turns;
        r.duration_ms += elapsed_ms;
        r.response = ledger.response.clone();
        r.tools_used = ledger.tools_used.clone();
        r.permission_denials = denials;
        r.files_changed = files;
        r.head = head.map(|h| h.to_string());
        r.supervisor = None;
    })?;
    Ok(saved)
}

/// The status a finished process gives its task, and the error to record with it.
fn status_of(outcome: &TurnOutcome) -> (Status, Option<String>) {
    match outcome.stopped {
        Some(StopReason::User) => {
            return (Status::Aborted, Some("stopped by the user".to_owned()));
        }
        // The finish describes the limit with the figures it was crossed at.
        Some(StopReason::Limit(kind)) => return (kind.status(), None),
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

/// The two ends of a task's change: the point it forked from its base, and its current state
/// (the worktree's uncommitted work included while the worktree exists).
pub fn change_range(ws: &Workspace, record: &TaskRecord) -> Result<(Oid, Oid), CommandError> {
    let base = Oid::from_str(&record.base).map_err(|_| GitError::UnknownRevision {
        rev: record.base.clone(),
    })?;
    let tip = ws.repo.branch_tip(&record.branch).ok();
    let from = match tip {
        Some(tip) => ws.repo.merge_base(base, tip).unwrap_or(base),
        None => base,
    };
    if record.worktree.is_dir() {
        return Ok((from, git::snapshot::snapshot_tree(&record.worktree)?));
    }
    let to = tip
        .or_else(|| record.head.as_deref().and_then(|h| Oid::from_str(h).ok()))
        .filter(|oid| ws.repo.tree_of(*oid).is_ok());
    match to {
        Some(to) => Ok((from, to)),
        None => Err(CommandError::user(format!(
            "task '{}' has no branch or worktree left to compare",
            record.name
        ))
        .with_hint("it was discarded, so its changes are gone")),
    }
}

/// Compiles protected-path globs (the always-protected ones are added).
pub fn protection_rules(globs: &[String]) -> Result<Rules, CommandError> {
    Rules::new(globs).map_err(|reason| {
        CommandError::user(format!("invalid protected path glob: {reason}"))
            .with_hint("fix [safety] protected in .cms.toml or your user configuration")
    })
}

/// Every protected-path violation of a task as it stands now: its change (uncommitted work
/// in its worktree included) checked against its own rules and the repository's current
/// ones, plus what was recorded when its sessions ended (changes outside its change, such as
/// the user's checkout or git metadata, can only be seen then).
pub fn current_violations(
    ws: &Workspace,
    record: &TaskRecord,
) -> Result<Vec<crate::store::Violation>, CommandError> {
    let base = Oid::from_str(&record.base).ok();
    let config = ws.config(base)?;
    let mut globs = record.safety.protected.clone();
    globs.extend(config.protected);
    let rules = protection_rules(&globs)?;
    let (from, to) = change_range(ws, record)?;
    let mut violations = record.safety.violations.clone();
    safety::check::add_new(
        &mut violations,
        safety::check::check_range(&ws.repo, from, to, &rules)?,
    );
    Ok(violations)
}

/// Refuses when a task is still running under a live supervisor.
pub fn ensure_not_running(record: &TaskRecord, action: &str) -> Result<(), CommandError> {
    if record.status == Status::Running {
        return Err(CommandError::user(format!(
            "task '{}' is still running; cannot {action} it",
            record.name
        ))
        .with_hint("wait for it to end (Ctrl-C in its terminal stops it)"));
    }
    Ok(())
}

/// Removes a task's worktree and branch, but only if they are the ones cms made for it.
pub fn remove_task_checkout(ws: &Workspace, record: &TaskRecord) -> Result<(), CommandError> {
    let ours = format!("refs/heads/{}", record.branch);
    let entries = git::worktree::list(&ws.repo.common_dir)?;
    let registered = entries
        .iter()
        .find(|e| git::canonical(&e.path) == record.worktree);
    match registered {
        Some(entry) if entry.branch.as_deref() == Some(ours.as_str()) => {
            git::worktree::remove(&ws.repo.common_dir, &record.worktree)?;
        }
        Some(_) => {
            return Err(CommandError::user(format!(
                "{} is a worktree cms did not make for task '{}'",
                record.worktree.display(),
                record.name
            ))
            .with_hint("cms leaves it alone; remove it yourself with `git worktree remove`"));
        }
        None => git::worktree::prune(&ws.repo.common_dir)?,
    }
    if ws.repo.branch_exists(&record.branch) {
        git::worktree::delete_branch(&ws.repo.common_dir, &record.branch)?;
    }
    Ok(())
}
