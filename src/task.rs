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
use crate::git::{self, Oid};
use crate::safety::sandbox::{self, SandboxMode};
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
    /// Over `[safety] sandbox`.
    pub sandbox: Option<SandboxMode>,
}

/// A task whose worktree and record exist, ready for its session.
pub struct Started {
    pub record: TaskRecord,
    pub claude: PathBuf,
    /// Why the task's Bash runs unsandboxed under `sandbox = "auto"`, for a warning.
    pub sandbox_warning: Option<String>,
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
        None => config.preset,
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
    let (sandboxed, sandbox_warning) = sandbox_plan(opts.sandbox.unwrap_or(config.sandbox))?;
    let worktrees = ws.worktrees_dir(&config)?;

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
        let reason = lock_reason(name.as_str());
        git::worktree::add(&ws.repo.common_dir, &worktree, &branch, base, &reason)?;
        let now = now_rfc3339();
        let mut record = TaskRecord {
            version: crate::store::RECORD_VERSION,
            name: name.clone(),
            status: Status::Running,
            prompt: prompt.to_owned(),
            branch,
            worktree: git::canonical(&worktree),
            base,
            base_branch,
            session_id: None,
            model: opts.model.clone().or(config.model.clone()),
            preset,
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
                sandboxed,
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
        Ok(Started {
            record,
            claude,
            sandbox_warning,
        })
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
        // A merged or discarded task's name can be used again (its record is archived below).
        let closed = |name| ws.store.load(name).is_ok_and(|r| r.status.is_closed());
        if ws.store.exists(name) && !closed(name) {
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
        if ws.store.exists(name) {
            ws.store.archive(name)?;
        }
        return Ok(name.clone());
    }
    let slug = TaskName::slug(prompt)
        .unwrap_or_else(|| TaskName::parse("task").expect("'task' is a valid name"));
    Ok(TaskName::unique(&slug, taken))
}

/// The reason cms locks a task's worktree with, which also tells it apart from a worktree
/// someone else put at the same path.
fn lock_reason(name: &str) -> String {
    format!("cms task {name}")
}

/// Whether the task's Bash will be sandboxed, and the warning to give when `auto` finds no
/// sandbox. `required` without one is refused here, before anything is made.
fn sandbox_plan(mode: SandboxMode) -> Result<(bool, Option<String>), CommandError> {
    if mode == SandboxMode::Off {
        return Ok((false, None));
    }
    match sandbox::availability() {
        Ok(()) => Ok((true, None)),
        Err(why) if mode == SandboxMode::Required => Err(CommandError::user(format!(
            "the Bash sandbox is required but unavailable: {why}"
        ))
        .with_hint(format!(
            "{}, or set [safety] sandbox = \"auto\" to run unsandboxed where it is missing",
            sandbox::INSTALL_HINT
        ))),
        Err(why) => Ok((
            false,
            Some(format!(
                "the task's Bash runs unsandboxed ({why}); {}, or set [safety] sandbox = \"off\"",
                sandbox::INSTALL_HINT
            )),
        )),
    }
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
    let Started { record, claude, .. } = started;
    let preset = record.preset;
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
    // The task's own temp dir, gone with this value when the task ends however it ends.
    let (temp, agent_env) = match task_temp_dir(&record)
        .and_then(|temp| agent_git_env(&record, temp.path()).map(|env| (temp, env)))
    {
        Ok(made) => made,
        Err(err) => {
            undo_start(ws, &record);
            return Err(err);
        }
    };
    let private_dir = git::worktree::private_dir(&record.worktree).ok();
    // Unsandboxed tasks too: other tasks' sandboxes would otherwise make theirs come and go.
    if let Some(dir) = &private_dir {
        sandbox::prepare_private_dir(dir);
    }
    let mut settings = hook_settings(ws, &record)?;
    settings["sandbox"] = sandbox::settings(
        record.safety.sandboxed,
        preset,
        &sandbox::git_deny_write(&ws.repo.common_dir, private_dir.as_deref(), &record.branch),
    );
    args.extend(["--settings".to_owned(), settings.to_string()]);
    // What the session must leave alone, as it was before the session.
    let surroundings = match surroundings(ws, &record) {
        Ok(surroundings) => surroundings,
        Err(err) => {
            undo_start(ws, &record);
            return Err(err);
        }
    };
    let baseline = match safety::check::Baseline::capture(surroundings.around) {
        Ok(baseline) => baseline,
        Err(err) => {
            undo_start(ws, &record);
            return Err(err.into());
        }
    };
    let watched = Watched {
        baseline,
        quiet_records: surroundings.quiet_records,
    };
    let spec = Spawn {
        bin: &claude,
        args,
        cwd: &record.worktree,
        token: record.supervisor.map_or(0, |s| s.token),
        env: [
            ("CMS_TASK", record.name.to_string()),
            ("CMS_TASK_BRANCH", record.branch.clone()),
            ("CMS_REPO", ws.repo.common_dir.display().to_string()),
            // claude keeps its own files here and gives sandboxed Bash a `$TMPDIR` inside it,
            // the only place outside the worktree that Bash may write.
            ("TMPDIR", temp.path().display().to_string()),
        ]
        .into_iter()
        .chain(agent_env)
        .collect(),
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
    finish(ws, record, &ledger, &outcome, &watched, clock.elapsed())
}

/// What a session must leave alone, fingerprinted before it starts.
struct Watched {
    baseline: safety::check::Baseline,
    /// The records of the other tasks that were not running, as they were.
    quiet_records: Vec<TaskRecord>,
}

struct Captured {
    around: safety::check::Surroundings,
    quiet_records: Vec<TaskRecord>,
}

/// The task's surroundings: the user's checkouts, and every other task that is not running
/// (running ones change their own worktree and branch; merged and discarded ones are gone).
fn surroundings(ws: &Workspace, record: &TaskRecord) -> Result<Captured, CommandError> {
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
    Ok(Captured {
        around: safety::check::Surroundings {
            common_dir: ws.repo.common_dir.clone(),
            worktree: record.worktree.clone(),
            branch_ref: format!("refs/heads/{}", record.branch),
            checkouts: user_checkouts(ws, record),
            quiet_tasks,
        },
        quiet_records,
    })
}

fn is_quiet(record: &TaskRecord) -> bool {
    record.status != Status::Running && !record.status.is_closed()
}

/// A fresh temp dir for one session of the task.
fn task_temp_dir(record: &TaskRecord) -> Result<tempfile::TempDir, CommandError> {
    tempfile::Builder::new()
        .prefix(&format!("cms-{}-", record.name))
        .tempdir()
        .map_err(|err| {
            CommandError::from_error(ErrorKind::User, &err).with_hint(format!(
                "cms makes each task a temp dir in {}; set TMPDIR to a writable folder",
                std::env::temp_dir().display()
            ))
        })
}

/// What the agent's own git commands need under the sandbox: an excludes file that hides the
/// sandbox's placeholder dotfiles (which `git add -A` would refuse), given through
/// `GIT_CONFIG_*` so nothing in the repository changes.
fn agent_git_env(
    record: &TaskRecord,
    temp: &std::path::Path,
) -> Result<Vec<(&'static str, String)>, CommandError> {
    if !record.safety.sandboxed {
        return Ok(Vec::new());
    }
    let excludes = temp.join("git-excludes");
    let text = sandbox::agent_excludes(git::worktree::user_excludes(&record.worktree).as_deref());
    std::fs::write(&excludes, text)
        .map_err(|err| CommandError::from_error(ErrorKind::User, &err))?;
    // Appended after any GIT_CONFIG_* entries the user's environment already has.
    let index: usize = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Spawn takes static names; these two are made once per session.
    let key: &'static str = Box::leak(format!("GIT_CONFIG_KEY_{index}").into_boxed_str());
    let value: &'static str = Box::leak(format!("GIT_CONFIG_VALUE_{index}").into_boxed_str());
    Ok(vec![
        ("GIT_CONFIG_COUNT", (index + 1).to_string()),
        (key, "core.excludesFile".to_owned()),
        (value, excludes.display().to_string()),
    ])
}

/// The `--settings` that give claude cms's PreToolUse hook: every file-editing tool call is
/// checked against the task's protected paths and worktree before it runs, in every preset.
fn hook_settings(ws: &Workspace, record: &TaskRecord) -> Result<serde_json::Value, CommandError> {
    let exe = std::env::current_exe().map_err(|err| {
        CommandError::from_error(ErrorKind::Internal, &err)
            .with_hint("cms must know its own path to give claude its PreToolUse hook")
    })?;
    let command = [
        shell_quote(&exe.display().to_string()),
        "guard".to_owned(),
        "pre-tool-use".to_owned(),
        "--repo".to_owned(),
        shell_quote(&ws.repo.common_dir.display().to_string()),
        "--task".to_owned(),
        shell_quote(record.name.as_str()),
        // The hook judges by these, not by the record: the record lives in the repository's
        // git dir, which the agent's own git commands can write.
        "--worktree".to_owned(),
        shell_quote(&record.worktree.display().to_string()),
    ]
    .into_iter()
    .chain(
        record
            .safety
            .protected
            .iter()
            .flat_map(|glob| ["--protect".to_owned(), shell_quote(glob)]),
    )
    .collect::<Vec<_>>()
    .join(" ");
    let settings = serde_json::json!({
        "hooks": {
            "PreToolUse": [{
                "matcher": safety::guard::WRITE_TOOLS_MATCHER,
                "hooks": [{"type": "command", "command": command}],
            }],
        },
    });
    Ok(settings)
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
    watched: &Watched,
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
    // A worktree that left its branch would have cms's commit land on the stray branch: its
    // work stays uncommitted where it is, and the check below reports why.
    let own_ref = format!("refs/heads/{}", record.branch);
    let on_branch = git::state::head_ref(&record.worktree).as_deref() == Some(own_ref.as_str());
    let commit = if on_branch {
        git::snapshot::commit_all(
            &record.worktree,
            &record.prompt,
            &[
                ("Cms-Task", record.name.as_str()),
                ("Cms-Session", &session),
            ],
        )
        .map(|_| ())
    } else {
        Ok(())
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
    let rules = protection_rules(&record.safety.protected)?;
    let mut violations = match head {
        Some(head) => safety::check::check_range(&ws.repo, base, head, &rules)?,
        None => Vec::new(),
    };
    violations.extend(check_surroundings(ws, &record, watched)?);
    if !violations.is_empty() {
        status = Status::ProtectedPath;
        let first = &violations[0].detail;
        error = Some(match violations.len() {
            1 => format!("protected-path violation: {first}"),
            n => format!("{n} protected-path violations; the first: {first}"),
        });
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

/// The violations of everything around the task's change: its own record, the user's
/// checkouts, the refs, git metadata and the other tasks. Another task's branch that moved is
/// put back, its record too, and that task is marked so merging it refuses what was planted.
fn check_surroundings(
    ws: &Workspace,
    record: &TaskRecord,
    watched: &Watched,
) -> Result<Vec<crate::store::Violation>, CommandError> {
    let mut violations = record_tampering(ws, record);
    // Other tasks' records, as the session left them: a changed record is put back first, so
    // a forged status cannot hide what else the session did to that task.
    let mut now: Vec<(String, safety::check::TaskNow)> = Vec::new();
    for before in &watched.quiet_records {
        let after = ws.store.load(&before.name);
        let state = match &after {
            Ok(after) if after == before => safety::check::TaskNow::Quiet,
            // The user merged or discarded it meanwhile.
            Ok(after) if after.status.is_closed() => safety::check::TaskNow::Busy,
            // Edited, damaged or deleted: put back as it was.
            _ => {
                let restored = before.clone();
                let _ = ws.store.rewrite(&before.name, |_| restored);
                violations.push(crate::store::Violation {
                    kind: safety::kind::TASK_RECORD.into(),
                    path: ws.store.record_path(&before.name).display().to_string(),
                    detail: format!(
                        "task '{}''s record changed while this task ran; cms put it back",
                        before.name
                    ),
                });
                safety::check::TaskNow::Quiet
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
    let changes = watched.baseline.changes(&task_now);
    violations.extend(changes.violations);
    if !changes.restore.is_empty() {
        ws.store.with_refs_lock(|| {
            for restore in &changes.restore {
                if let Err(err) = git::state::restore_ref(
                    &ws.repo.common_dir,
                    &restore.name,
                    &restore.old,
                    restore.current.as_deref(),
                ) {
                    violations.push(crate::store::Violation {
                        kind: safety::kind::OTHER_TASK.into(),
                        path: restore.name.clone(),
                        detail: format!("cms could not put {} back: {err}", restore.name),
                    });
                }
            }
        })?;
    }
    for (task, violation) in changes.tainted {
        let Ok(task) = TaskName::parse(&task) else {
            continue;
        };
        let _ = ws.store.update(&task, |r| {
            safety::check::add_new(&mut r.safety.violations, vec![violation]);
            if r.status != Status::Running {
                r.status = Status::ProtectedPath;
                r.error = Some(format!(
                    "task '{}''s session changed this task; merging it would bring in what that \
                     session planted",
                    record.name
                ));
            }
        });
    }
    Ok(violations)
}

/// How the task's record on disk differs from the one its supervisor holds, in what only cms
/// may set: the record lives in the repository's git dir, which the agent's git commands can
/// write, and a record with looser limits or fewer protected paths must not be believed.
fn record_tampering(ws: &Workspace, record: &TaskRecord) -> Vec<crate::store::Violation> {
    let path = ws.store.record_path(&record.name);
    let on_disk = match ws.store.load(&record.name) {
        Ok(on_disk) => on_disk,
        Err(err) => {
            return vec![crate::store::Violation {
                kind: safety::kind::TASK_RECORD.into(),
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
    vec![crate::store::Violation {
        kind: safety::kind::TASK_RECORD.into(),
        path: path.display().to_string(),
        detail: format!(
            "the task's record was changed while it ran ({}); cms kept the settings the task \
             started with",
            fields.join(", ")
        ),
    }]
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
    let base = record.base;
    let tip = ws.repo.branch_tip(&record.branch).ok();
    let from = match tip {
        Some(tip) => ws.repo.merge_base(base, tip).unwrap_or(base),
        None => base,
    };
    if record.worktree.is_dir() {
        return Ok((from, git::snapshot::snapshot_tree(&record.worktree)?));
    }
    let to = tip
        .or(record.head)
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
    let config = ws.config(Some(record.base))?;
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

/// Refuses when the task's worktree left the task's branch (its session ran `git checkout -b`
/// or `--detach`): the work there is no longer what the task's branch holds.
pub fn ensure_on_branch(record: &TaskRecord) -> Result<(), CommandError> {
    if !record.worktree.is_dir() {
        return Ok(());
    }
    let own = format!("refs/heads/{}", record.branch);
    let head = git::state::head_ref(&record.worktree);
    if head.as_deref() == Some(own.as_str()) {
        return Ok(());
    }
    let now = match &head {
        Some(other) => format!("for {}", other.strip_prefix("refs/heads/").unwrap_or(other)),
        None => "for a detached HEAD".to_owned(),
    };
    Err(CommandError::user(format!(
        "task '{}''s worktree left its branch {} {now}",
        record.name, record.branch
    ))
    .with_hint(format!(
        "cms merges only {0}; `cms discard {1} --force` removes the worktree and keeps the other branch",
        record.branch, record.name
    )))
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
///
/// A worktree at the task's path that left the task's branch (its session ran `git checkout
/// -b` or `--detach`) is still the one cms made, but removing it is only done when
/// `even_off_branch` (an explicit `discard --force`); the branch it moved to is never
/// deleted, and is returned so the user can be told where it is.
pub fn remove_task_checkout(
    ws: &Workspace,
    record: &TaskRecord,
    even_off_branch: bool,
) -> Result<Option<String>, CommandError> {
    let ours = format!("refs/heads/{}", record.branch);
    let entries = git::worktree::list(&ws.repo.common_dir)?;
    let registered = entries
        .iter()
        .find(|e| git::canonical(&e.path) == record.worktree);
    let mut stray = None;
    match registered {
        Some(entry) if entry.branch.as_deref() == Some(ours.as_str()) => {
            git::worktree::remove(&ws.repo.common_dir, &record.worktree)?;
        }
        // Still locked with the reason cms gave it: the worktree cms made, whose HEAD moved.
        Some(entry)
            if even_off_branch
                && !entry.bare
                && entry.lock_reason.as_deref()
                    == Some(lock_reason(record.name.as_str()).as_str()) =>
        {
            stray = entry
                .branch
                .as_deref()
                .map(|b| b.strip_prefix("refs/heads/").unwrap_or(b).to_owned());
            git::worktree::remove(&ws.repo.common_dir, &record.worktree)?;
        }
        Some(entry)
            if entry.lock_reason.as_deref() != Some(lock_reason(record.name.as_str()).as_str()) =>
        {
            return Err(CommandError::user(format!(
                "{} is a worktree cms did not make for task '{}'",
                record.worktree.display(),
                record.name
            ))
            .with_hint("cms leaves it alone; remove it yourself with `git worktree remove`"));
        }
        Some(entry) => {
            let on = match entry.branch.as_deref() {
                Some(branch) => format!(
                    "is on {}",
                    branch.strip_prefix("refs/heads/").unwrap_or(branch)
                ),
                None => "has a detached HEAD".to_owned(),
            };
            return Err(CommandError::user(format!(
                "task '{}''s worktree {} {on}, not on {}",
                record.name,
                record.worktree.display(),
                record.branch
            ))
            .with_hint(format!(
                "`cms discard {} --force` removes the worktree and keeps that branch",
                record.name
            )));
        }
        None => git::worktree::prune(&ws.repo.common_dir)?,
    }
    if ws.repo.branch_exists(&record.branch) {
        git::worktree::delete_branch(&ws.repo.common_dir, &record.branch)?;
    }
    Ok(stray)
}
