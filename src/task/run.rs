//! Running a task's headless session to its end: the session and its turns, what a failed
//! start says, and taking back a start that will not run. What the session is given is
//! `session.rs`'s.

use std::time::Instant;

use tokio::sync::mpsc;

use super::ask::OnPrompt;
use super::error::TaskError;
use super::finish::finish;
use super::open::task_git;
use super::session::{session_args, session_env, session_sandbox, session_temp_dir};
use super::start::undo_start;
use super::started::Started;
use super::watched::Watched;
use crate::git;
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
/// (for progress output), `on_prompt` every prompt the task waits on (with `ask`); `stop`
/// carries the user's stop requests.
pub async fn run(
    ws: &Workspace,
    started: Started,
    run_opts: RunOptions,
    stop: mpsc::UnboundedReceiver<StopReason>,
    mut on_event: impl FnMut(&Event, &Ledger),
    on_prompt: OnPrompt,
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
        let (permissions, asking) =
            super::ask::start(&ws.store, &record, opts, on_prompt, &settings.rules);
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
