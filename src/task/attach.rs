//! An interactive session at the user's terminal (`cms attach`): `claude --resume` in the
//! task's worktree with the same guard hook, sandbox, environment and checks as a supervised
//! session, the limits enforced from the transcript claude writes, and the same finish.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::platform::terminal::SavedTerminal;
use crate::safety::LimitState;
use crate::session::interactive::{TranscriptFollower, project_dir};
use crate::session::{self, Ledger, Spawn, StopReason, Timeouts};
use crate::store::TaskRecord;
use crate::vocab::{LimitKind, Status};
use crate::workspace::Workspace;

use super::error::TaskError;
use super::finish::{Ending, finish_as};
use super::run::{collect_blocked, take_back};
use super::session::{session_args, session_env, session_sandbox};
use super::started::Started;
use super::watched::Watched;

/// How often the transcript is read for the live cost and turns: often enough that a limit
/// stops the session within a reply or so, cheap enough to go unnoticed.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Runs the task's session at the terminal until claude exits (or a limit or a stop request
/// ends it), then commits, checks and records it as [`run`] does. `stop` carries the user's
/// stop requests (SIGTERM, `cms abort`); the terminal's Ctrl-C is claude's own.
pub async fn run_attached(
    ws: &Workspace,
    started: Started,
    timeouts: Timeouts,
    mut stop: mpsc::UnboundedReceiver<StopReason>,
) -> Result<TaskRecord, TaskError> {
    let Started {
        record,
        claude,
        message,
        resumed_from,
        settings: task_settings,
        ..
    } = started;
    let abandon = |record: &TaskRecord| take_back(ws, record, &resumed_from);
    let mut args = session_args(&record, true);
    let prepared = session_env(ws, &record).and_then(|(temp, mut env)| {
        let config = &task_settings.config;
        // Ports of its own, as a headless session gets, for as long as this one runs.
        let ports = super::prepare::reserve_ports(config.worktree.ports);
        env.extend(ports.iter().flat_map(|block| block.env()));
        let sandbox = session_sandbox(ws, &record, config, &task_settings.trust)?;
        let project = super::project::claude_args(ws, &record, &task_settings.trust);
        let watched = Watched::capture(ws, &record, sandbox.deny, &task_settings.rules)?;
        // As a headless session's (see `run`): the pool hands out nothing it could reach.
        let unsandboxed = (!record.safety.sandboxed)
            .then(|| super::pool::Unsandboxed::begin(ws, &record, config.pool_size > 0));
        Ok((
            temp,
            ports,
            env,
            sandbox.settings,
            sandbox.boundary,
            project,
            watched,
            unsandboxed,
        ))
    });
    // The temp dir and the ports live until the session is over.
    let (_temp, _ports, env, settings, boundary, project, watched, _unsandboxed) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            abandon(&record);
            return Err(err);
        }
    };
    args.extend(["--settings".to_owned(), settings]);
    args.extend(project);
    let limits = record
        .safety
        .limits
        .map(|l| LimitState::recorded(l, record.duration_ms));
    let mut ledger = Ledger::resume(record.cost_usd, record.turns, record.tools_used.clone());
    ledger.session_id = record.session_id.clone();
    // A session in which claude says nothing keeps the task's last response.
    ledger.response = record.response.clone();
    let mut follower =
        TranscriptFollower::new(project_dir(&record.worktree, record.session_id.as_deref()));
    // The terminal's settings as they were before claude took it over.
    let terminal = SavedTerminal::save();
    let spec = Spawn {
        bin: &claude,
        args,
        cwd: &record.worktree,
        token: record.supervisor.map_or(0, |s| s.token),
        env,
        boundary,
    };
    let clock = Instant::now();
    let mut child = match session::spawn_interactive(spec) {
        Ok(child) => child,
        Err(err) => {
            abandon(&record);
            return Err(err.into());
        }
    };

    let start = tokio::time::Instant::now();
    let mut limit_at = limits.map(|l| start + l.time_left());
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut stopped: Option<StopReason> = None;
    let mut stop_open = true;
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    let mut shown = (record.turns, record.cost_usd, record.session_id.clone());
    let status = loop {
        let mut requested = None;
        tokio::select! {
            status = child.child.wait() => break status,
            _ = tick.tick() => {
                if follower.poll(&mut ledger) {
                    shown = show_live(ws, &record, &ledger, shown);
                }
                if stopped.is_none() {
                    requested = limits
                        .and_then(|l| l.crossed(&ledger))
                        .map(StopReason::Limit);
                }
            }
            request = stop.recv(), if stop_open => match request {
                Some(reason) => requested = Some(reason),
                None => stop_open = false,
            },
            () = sleep_until(limit_at), if limit_at.is_some() => {
                limit_at = None;
                requested = Some(StopReason::Limit(LimitKind::Duration));
            }
            () = sleep_until(kill_at), if kill_at.is_some() => {
                kill_at = None;
                child.kill_tree();
            }
        }
        let Some(reason) = requested else {
            continue;
        };
        if stopped.is_none() {
            // As a Ctrl-C would: claude ends the turn and kills its tool commands. It then
            // waits at its prompt, so the session is killed once the grace is over.
            stopped = Some(reason);
            child.interrupt();
            kill_at = Some(tokio::time::Instant::now() + timeouts.interrupt_grace);
        } else {
            child.kill_tree();
        }
    };
    let elapsed = clock.elapsed();
    child.sweep();
    collect_blocked(ws, &record);
    // A killed claude cannot put the terminal back as it found it. cms is in the terminal's
    // foreground process group (claude shared it), so this raises no SIGTTOU.
    terminal.restore();
    let status = status.map_err(session::SessionError::Wait)?;
    follower.poll(&mut ledger);
    ledger.settle_estimate();

    let code = status.code();
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    // claude that ends with an error before writing a line of its session (a session it
    // cannot resume, a bad flag) did nothing: the task is put back as it was.
    if stopped.is_none() && !follower.saw_activity && code != Some(0) {
        abandon(&record);
        let how = match (code, signal) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended".to_owned(),
        };
        return Err(TaskError::FailedStart {
            message: format!("claude {how} before its session began (its own message is above)"),
            claude: claude.clone(),
        });
    }
    let ending = match stopped {
        Some(StopReason::User) => Ending {
            status: Status::Aborted,
            error: Some("stopped by the user".to_owned()),
            stopped,
        },
        // The finish describes the limit with the figures it was crossed at.
        Some(StopReason::Limit(kind)) => Ending {
            status: kind.status(),
            error: None,
            stopped,
        },
        None => match (code, signal) {
            (Some(0), _) => Ending {
                status: Status::Completed,
                error: None,
                stopped,
            },
            (Some(code), _) => Ending {
                status: Status::Failed,
                error: Some(format!("claude exited with code {code}")),
                stopped,
            },
            (None, signal) => Ending {
                status: Status::Failed,
                error: Some(format!(
                    "claude was killed by signal {}",
                    signal.unwrap_or_default()
                )),
                stopped,
            },
        },
    };
    finish_as(ws, record, &message, &ledger, ending, &watched, elapsed)
}

/// Writes the live turns, cost and session into the record when they changed, so `list` and
/// `show` follow the session from anywhere. Returns what is now shown.
fn show_live(
    ws: &Workspace,
    record: &TaskRecord,
    ledger: &Ledger,
    shown: (u32, f64, Option<String>),
) -> (u32, f64, Option<String>) {
    let now = (
        ledger.live_turns(),
        ledger.live_cost_usd(),
        ledger.session_id.clone(),
    );
    if now != shown {
        let _ = ws.store.update(&record.name, |r| {
            r.turns = now.0;
            r.cost_usd = now.1;
            r.session_id = now.2.clone().or(r.session_id.take());
        });
    }
    now
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
