//! Running a task's session: claude's arguments and environment, the write guard's settings,
//! the sandbox's temp dir, and what a failed start says.

use std::time::Instant;

use tokio::sync::mpsc;

use super::error::TaskError;
use super::finish::finish;
use super::open::task_git;
use super::start::undo_start;
use super::started::Started;
use super::watched::Watched;
use crate::git::{self};
use crate::safety::sandbox::{self};
use crate::safety::{self, LimitState};
use crate::session::{
    self, Ledger, Spawn, StopReason, Timeouts, TurnOutcome, Watch, protocol::Event,
};
use crate::store::TaskRecord;
use crate::workspace::Workspace;

/// How the supervisor should behave.
pub struct RunOptions {
    pub timeouts: Timeouts,
    /// Answer claude's permission prompts live (`--ask`); without it a denied tool ends the
    /// task `needs_input`.
    pub ask: Option<super::AskOptions>,
}

/// Runs the task's session to its end and records the outcome. `on_event` sees every event
/// (for progress output); `stop` carries the user's stop requests.
pub async fn run(
    ws: &Workspace,
    started: Started,
    run_opts: RunOptions,
    stop: mpsc::UnboundedReceiver<StopReason>,
    mut on_event: impl FnMut(&Event, &Ledger),
) -> Result<TaskRecord, TaskError> {
    let Started {
        mut record,
        claude,
        message,
        resumed_from,
        settings,
        ..
    } = started;
    // Whatever fails before the session began takes back what this start made.
    let abandon = |ws: &Workspace, record: &TaskRecord| take_back(ws, record, &resumed_from);
    let (config, trust) = (&settings.config, &settings.trust);
    // Unsandboxed, it can write the pool's waiting worktrees: none warmed before it ends is
    // handed out (see `pool`).
    let _unsandboxed = (!record.safety.sandboxed)
        .then(|| super::pool::Unsandboxed::begin(ws, &record, config.pool_size > 0));
    // Ports of its own for as long as this session runs (released when `ports` is dropped).
    let ports = super::prepare::reserve_ports(config.worktree.ports);
    let port_env: Vec<(&'static str, String)> =
        ports.iter().flat_map(|block| block.env()).collect();
    if resumed_from.is_none() && !config.worktree.setup.is_empty() {
        let clock = Instant::now();
        let mut env = vec![
            ("CMS_TASK", record.name.to_string()),
            ("CMS_TASK_DIR", record.worktree.display().to_string()),
            ("CMS_TASK_BRANCH", record.branch.clone()),
        ];
        env.extend(port_env.iter().cloned());
        let setup = super::prepare::run_setup(&config.worktree.setup, &record.worktree, &env);
        if config.worktree.setup_counts {
            record.duration_ms += clock.elapsed().as_millis() as u64;
        }
        if let Err(err) = setup {
            return setup_failed(ws, record, &err);
        }
        if config.worktree.setup_counts {
            let duration = record.duration_ms;
            ws.store
                .update(&record.name, |r| r.duration_ms = duration)?;
        }
    }
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
    args.extend(session_args(&record, resumed_from.is_some()));
    let limits = record
        .safety
        .limits
        .map(|l| LimitState::recorded(l, record.duration_ms));
    let mut ledger = Ledger::resume(record.cost_usd, record.turns, record.tools_used.clone());
    if let Some(limits) = &limits {
        args.extend(limits.claude_args(&ledger));
    }
    if run_opts.ask.is_some() {
        // claude then sends each permission prompt to cms instead of refusing the call.
        args.extend(["--permission-prompt-tool".to_owned(), "stdio".to_owned()]);
    }
    // The task's own temp dir, gone with this value when the task ends however it ends.
    let (_temp, env) = match session_env(ws, &record) {
        Ok(made) => made,
        Err(err) => {
            abandon(ws, &record);
            return Err(err);
        }
    };
    let (mut sandbox_deny, boundary) =
        match session_sandbox(ws, &record, config, trust).map(|sandbox| {
            let project = super::project::claude_args(ws, &record, trust);
            (sandbox, project)
        }) {
            Ok((sandbox, project)) => {
                args.extend(["--settings".to_owned(), sandbox.settings]);
                args.extend(project);
                (sandbox.deny, sandbox.boundary)
            }
            Err(err) => {
                abandon(ws, &record);
                return Err(err);
            }
        };
    let spec = Spawn {
        bin: &claude,
        args,
        cwd: &record.worktree,
        token: record.supervisor.map_or(0, |s| s.token),
        env: env.into_iter().chain(port_env).collect(),
        boundary,
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
            StopReason::Limit(crate::vocab::LimitKind::Duration),
        ));
    }
    let asking = run_opts.ask.map(|opts| {
        let (permissions, asking) = super::ask::start(&ws.store, &record, opts, &settings.rules);
        watch.permissions = Some(permissions);
        asking
    });
    let name = record.name.clone();
    let store = ws.store.clone();
    // The live turn and cost go into the record as they change (at most once a second for
    // cost alone), so `cms list` and `cms show` follow a running task from anywhere.
    let mut shown = (record.turns, record.cost_usd, Instant::now());
    // What the session must leave alone, as it was before the session: taken while claude
    // starts, before it has its message and so before it can act.
    let mut watched: Option<Result<Watched, TaskError>> = None;
    let outcome = session::run_turn(
        spec,
        &message,
        || {
            let captured = Watched::capture(ws, &record, sandbox_deny.take(), &settings.rules);
            let ok = captured.is_ok();
            watched = Some(captured);
            ok
        },
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
            let (turns, cost) = (ledger.live_turns(), ledger.live_cost_usd());
            let due = turns != shown.0
                || (cost != shown.1 && shown.2.elapsed() >= std::time::Duration::from_secs(1));
            if due {
                shown = (turns, cost, Instant::now());
                let _ = store.update(&name, |r| {
                    r.turns = turns;
                    r.cost_usd = cost;
                });
            }
            on_event(event, ledger);
        },
    )
    .await;
    collect_blocked(ws, &record);
    let mut record = record;
    if let Some(asking) = asking {
        let asked = asking.finish();
        // Tools allowed `--always` stay allowed for the task's follow-ups.
        for tool in asked.granted {
            if !record.safety.allowed.contains(&tool) {
                record.safety.allowed.push(tool);
            }
        }
        record.safety.answered.extend(asked.answered);
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            abandon(ws, &record);
            return Err(err.into());
        }
    };
    let watched = match watched {
        Some(Ok(watched)) => watched,
        Some(Err(err)) => {
            abandon(ws, &record);
            return Err(err);
        }
        None => unreachable!("claude started, so the state before the session was taken"),
    };
    if !outcome.started {
        abandon(ws, &record);
        return Err(failed_start_error(&outcome, &claude));
    }
    finish(
        ws,
        record,
        &message,
        &ledger,
        &outcome,
        &watched,
        clock.elapsed(),
    )
}

/// claude's arguments shared by every kind of session: the preset's permission flags with the
/// tools the task was allowed, the conversation to resume, the model.
pub(super) fn session_args(record: &TaskRecord, resume: bool) -> Vec<String> {
    let mut allowed = record.safety.allowed.clone();
    if let Some(rule) = sandbox::bash_rule(record.safety.sandboxed, record.preset)
        && !allowed.iter().any(|t| t == rule)
    {
        allowed.push(rule.to_owned());
    }
    let mut args = record.preset.claude_args(&allowed);
    if resume && let Some(session) = &record.session_id {
        // The same conversation, in the same worktree: claude scopes sessions to the cwd.
        args.extend(["--resume".to_owned(), session.clone()]);
    }
    if let Some(model) = &record.model {
        args.extend(["--model".to_owned(), model.clone()]);
    }
    args
}

/// Variables for claude and its tools, on top of cms's own environment.
pub(super) type SessionEnv = Vec<(&'static str, String)>;

/// The session's temp dir (removed when the value is dropped) and the environment claude and
/// its tools get: the task's identity, that temp dir, and the agent's git settings.
pub(super) fn session_env(
    ws: &Workspace,
    record: &TaskRecord,
) -> Result<(tempfile::TempDir, SessionEnv), TaskError> {
    let temp = task_temp_dir(record)?;
    safety::boundary::prepare_guard_dir(temp.path()).map_err(|source| TaskError::TempDir {
        dir: temp.path().to_owned(),
        source,
    })?;
    let agent_env = agent_git_env(ws, record, temp.path())?;
    let env = [
        ("CMS_TASK", record.name.to_string()),
        ("CMS_TASK_BRANCH", record.branch.clone()),
        ("CMS_TASK_DIR", record.worktree.display().to_string()),
        ("CMS_REPO", ws.repo.common_dir.display().to_string()),
        // claude keeps its own files here and gives sandboxed Bash a `$TMPDIR` inside it,
        // the only place outside the worktree that Bash may write.
        ("TMPDIR", temp.path().display().to_string()),
    ]
    .into_iter()
    .chain(agent_env)
    .collect();
    Ok((temp, env))
}

/// What a session is confined by, worked out once for both layers: the `--settings` value
/// claude gets (cms's PreToolUse write guard and the Bash sandbox), what that sandbox denies
/// (`None` when the task is unsandboxed) for the checks after it, and the outer boundary's
/// command (empty without one).
pub(super) struct SessionSandbox {
    pub settings: String,
    pub deny: Option<Vec<std::path::PathBuf>>,
    pub boundary: Vec<std::ffi::OsString>,
}

/// Builds the task's [`SessionSandbox`]: the admin dir cms verified, the denied git paths (a
/// walk of the refs) and the user's writable folders are taken once and given to both the Bash
/// sandbox and the outer boundary.
pub(super) fn session_sandbox(
    ws: &Workspace,
    record: &TaskRecord,
    config: &crate::config::Config,
    trust: &crate::trust::Trust,
) -> Result<SessionSandbox, TaskError> {
    // The admin dir as cms verified it, never as the worktree's `.git` link says.
    let task = task_git(ws, record)?;
    let private_dir = task.admin_dir().to_owned();
    // Unsandboxed tasks too: other tasks' sandboxes would otherwise make theirs come and go.
    sandbox::prepare_private_dir(&private_dir);
    let mut settings = hook_settings(ws, record)?;
    let deny = sandbox::git_deny_write(&ws.repo.common_dir, Some(&private_dir), &record.branch);
    let mut bash_deny = deny.clone();
    // What the write guard blocked is the supervisor's to collect, not the agent's to forge.
    bash_deny.push(session_temp_dir(record).join(safety::boundary::GUARD_DIR));
    settings["sandbox"] = sandbox::settings(
        record.safety.sandboxed,
        record.preset,
        &bash_deny,
        Some(&private_dir),
    );
    let mut boundary = Vec::new();
    if record.safety.sandboxed {
        let writable = ws.sandbox_writable(config)?;
        sandbox::widen(&mut settings["sandbox"], &writable, &config.hosts);
        if safety::boundary::enabled() {
            boundary = session_boundary(ws, record, &private_dir, &deny, writable);
        }
    }
    let settings = super::project::with_project_settings(ws, record, trust, settings);
    Ok(SessionSandbox {
        settings: settings.to_string(),
        deny: record.safety.sandboxed.then_some(deny),
        boundary,
    })
}

/// The outer boundary claude runs inside (see [`safety::boundary`]), for a sandboxed task:
/// what Bash's sandbox may write (`deny` taken out of the common dir, the user's `writable`
/// folders) is all that any process of the session may write.
fn session_boundary(
    ws: &Workspace,
    record: &TaskRecord,
    private_dir: &std::path::Path,
    deny: &[std::path::PathBuf],
    extra_writable: Vec<std::path::PathBuf>,
) -> Vec<std::ffi::OsString> {
    // Claude Code's Bash sandbox makes a mount point for every admin dir's missing
    // `config.worktree`; inside the boundary the other admin dirs are read-only, so every Bash
    // call would fail. An empty one means nothing to git (see `prepare_private_dir`).
    let admin_dirs = ws.repo.common_dir.join("worktrees");
    for dir in deny
        .iter()
        .filter(|p| p.parent() == Some(admin_dirs.as_path()))
    {
        sandbox::prepare_private_dir(dir);
    }
    let mut writable = safety::boundary::writable(
        &record.worktree,
        &session_temp_dir(record),
        &ws.repo.common_dir,
        deny,
    );
    // Its own admin dir bound again, after the common dir: a mount point can be neither
    // renamed nor replaced (`EBUSY`), so no hook or MCP server can swap it for a look-alike,
    // as the Bash sandbox's `allowWrite` keeps Bash from doing.
    let after_common = writable
        .paths
        .iter()
        .position(|p| p == &ws.repo.common_dir)
        .map_or(writable.paths.len(), |i| i + 1);
    writable.paths.insert(after_common, private_dir.to_owned());
    // `[safety] writable`, as the Bash sandbox gets it: Bash runs inside this boundary too.
    writable
        .paths
        .extend(extra_writable.into_iter().filter(|p| p.is_dir()));
    safety::boundary::command(&writable)
}

/// Moves what the write guard blocked during the session into the task's record, where the
/// finish reads it. The guard cannot write the record itself: the boundary keeps the store
/// read-only.
pub(super) fn collect_blocked(ws: &Workspace, record: &TaskRecord) {
    let file = safety::boundary::blocked_file(&session_temp_dir(record));
    let blocked = safety::boundary::read_blocked(&file);
    if !blocked.is_empty() {
        let _ = ws
            .store
            .update(&record.name, |r| r.safety.blocked.extend(blocked));
        // A follow-up's session gets a new temp dir, but collect each line once regardless.
        let _ = std::fs::remove_file(&file);
    }
}

/// The session's temp dir (made by [`session_env`]): named after the task and its token.
fn session_temp_dir(record: &TaskRecord) -> std::path::PathBuf {
    sandbox::temp_dir_for(
        record.name.as_str(),
        record.supervisor.map_or(0, |s| s.token),
    )
}

/// Ends a new task whose `[worktree] setup` failed: `failed`, with the command's output in the
/// error, its worktree kept to look into.
fn setup_failed(
    ws: &Workspace,
    record: TaskRecord,
    err: &TaskError,
) -> Result<TaskRecord, TaskError> {
    let mut error = err.to_string();
    if let TaskError::SetupFailed { output, .. } = err
        && let Some(last) = output.lines().rev().find(|l| !l.trim().is_empty())
    {
        error.push_str(&format!(": {}", last.trim()));
    }
    let name = record.name.clone();
    Ok(ws.store.rewrite(&name, |_| {
        let mut failed = record;
        failed.status = crate::vocab::Status::Failed;
        failed.error = Some(error);
        failed.supervisor = None;
        failed
    })?)
}

/// Takes back what a start made when its session never ran: a new task is removed whole (its
/// worktree, branch and record), a follow-up's record is put back as it was.
pub(super) fn take_back(ws: &Workspace, record: &TaskRecord, resumed_from: &Option<TaskRecord>) {
    match resumed_from {
        None => undo_start(ws, record),
        Some(previous) => {
            // A `--rebase` that moved the worktree is undone with it: nothing but cms's own
            // squash is there, since the session never ran.
            if let Some(rebase) = record.rebase.as_ref().filter(|_| previous.rebase.is_none()) {
                if let Ok(task) = task_git(ws, record) {
                    let _ = git::merge::undo_squash_onto(&task, rebase.from);
                }
                let _ = git::merge::delete_ref(&ws.repo.common_dir, &record.name.rebased_ref());
            }
            let previous = previous.clone();
            let _ = ws.store.rewrite(&record.name, |_| previous);
        }
    }
}

/// Takes back a started task that will not run (its hand-off to a supervisor failed).
pub fn abandon(ws: &Workspace, started: &Started) {
    take_back(ws, &started.record, &started.resumed_from);
}

/// A fresh temp dir for one session of the task.
fn task_temp_dir(record: &TaskRecord) -> Result<tempfile::TempDir, TaskError> {
    let path = safety::sandbox::temp_dir_for(
        record.name.as_str(),
        record.supervisor.map_or(0, |s| s.token),
    );
    let name = path.file_name().expect("a temp dir has a name").to_owned();
    tempfile::Builder::new()
        .prefix(&name)
        .rand_bytes(0)
        .tempdir_in(path.parent().expect("a temp dir has a parent"))
        .map_err(|source| TaskError::TempDir {
            dir: std::env::temp_dir(),
            source,
        })
}

/// What the agent's own git commands need under the sandbox: an excludes file that hides the
/// sandbox's placeholder dotfiles (which `git add -A` would refuse), given through
/// `GIT_CONFIG_*` so nothing in the repository changes.
fn agent_git_env(
    ws: &Workspace,
    record: &TaskRecord,
    temp: &std::path::Path,
) -> Result<Vec<(&'static str, String)>, TaskError> {
    if !record.safety.sandboxed {
        return Ok(Vec::new());
    }
    let excludes = temp.join("git-excludes");
    let user = git::worktree::user_excludes(&task_git(ws, record)?);
    let mut text = sandbox::agent_excludes(user.as_deref());
    // The links into the main checkout are not the agent's to commit either.
    for link in &record.links {
        text.push_str(&format!("/{link}\n"));
    }
    std::fs::write(&excludes, text).map_err(|source| TaskError::TempDir {
        dir: temp.to_owned(),
        source,
    })?;
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
fn hook_settings(ws: &Workspace, record: &TaskRecord) -> Result<serde_json::Value, TaskError> {
    let exe = std::env::current_exe().map_err(TaskError::OwnPath)?;
    let words = [
        exe.display().to_string(),
        "guard".to_owned(),
        "pre-tool-use".to_owned(),
        "--repo".to_owned(),
        ws.repo.common_dir.display().to_string(),
        "--task".to_owned(),
        record.name.as_str().to_owned(),
        // The hook judges by these, not by the record: the record lives in the repository's
        // git dir, which the agent's own git commands can write.
        "--worktree".to_owned(),
        record.worktree.display().to_string(),
        "--blocked-to".to_owned(),
        safety::boundary::blocked_file(&session_temp_dir(record))
            .display()
            .to_string(),
    ]
    .into_iter()
    .chain(
        record
            .safety
            .protected
            .iter()
            .flat_map(|glob| ["--protect".to_owned(), glob.clone()]),
    )
    .collect::<Vec<_>>();
    let command = sh_command(words.iter().map(String::as_str));
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

/// `words` as one line for `sh`, which runs claude's hook commands.
fn sh_command<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let quoter = shlex::Quoter::new().allow_nul(true);
    quoter.join(words).expect("NUL is allowed")
}

fn failed_start_error(outcome: &TurnOutcome, claude: &std::path::Path) -> TaskError {
    if outcome.stopped.is_some() {
        return TaskError::InterruptedBeforeStart;
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
    TaskError::FailedStart {
        message,
        claude: claude.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_command_words_reach_the_command_unchanged() {
        for word in [
            "plain",
            "with space",
            "it's",
            "$HOME `id` \"q\"",
            "a'b'c",
            "!x ~y #z {a,b}",
            "",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(sh_command(["printf", "%s", word]))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word);
        }
    }
}
