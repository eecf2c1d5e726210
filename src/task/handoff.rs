//! Handing a started task to a background supervisor (`cms supervise`, hidden), which runs it
//! with no terminal, its output in the store: `cms task -d`, `cms continue -d`, the fan-out,
//! the MCP server and `cms top` all start tasks this way.
//!
//! The hand-off never leaves a task without a live supervisor on record, nor a supervisor on
//! record that a stop request could kill before it can handle one: the handing process starts
//! the task (so every refusal is still its own, with nothing half-made), spawns the
//! background supervisor in a session of its own and writes it what it needs on its stdin,
//! then waits. The background supervisor first catches the stop signals (a stop that arrives
//! before its real handlers exist is remembered), then, under the task's lock, takes the
//! task over from the process named in the hand-off, if that is still the task's supervisor.
//! The handing process returns once it sees the take-over; if it does not come, it stops the
//! background one and takes the start back.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::TaskError;
use super::run::{abandon, take_back};
use super::settings::Settings;
use super::started::Started;
use crate::store::{TaskName, TaskRecord};
use crate::vocab::Supervisor;
use crate::workspace::Workspace;

/// What the handing process writes the background supervisor on its stdin.
#[derive(Serialize, Deserialize)]
struct Handoff {
    message: String,
    claude: PathBuf,
    resumed_from: Option<TaskRecord>,
    /// Whether claude's permission prompts come to cms (answered by `cms allow`/`cms deny`).
    ask: bool,
    /// The process that started the task, from which the task is taken over.
    from: Supervisor,
}

/// A stop signal (SIGINT, SIGTERM, SIGHUP) is remembered once [`remember_stop_signals`] ran:
/// in a background supervisor, one that came before the session's own handlers; in a fan-out,
/// the user's Ctrl-C.
pub use crate::platform::signals::{remember_stop_signals, stop_requested as stop_requested_early};

/// How long the handing process waits for the background supervisor to take the task over.
const TAKE_OVER_WAIT: Duration = Duration::from_secs(30);

/// Hands `started` to a new background supervisor; returns once it has taken the task over.
/// On failure the start is taken back.
pub fn hand_off(ws: &Workspace, started: Started, ask: bool) -> Result<(), TaskError> {
    let name = started.record.name.clone();
    let fail = |err: TaskError| {
        // Nothing runs the task: take back what the start made, as a failed start does.
        abandon(ws, &started);
        err
    };
    let exe = std::env::current_exe().map_err(|err| fail(TaskError::OwnPath(err)))?;
    let log_path = ws.store.supervisor_log_path(&name);
    let log = log_path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::File::create(&log_path))
        .and_then(|log| Ok((log.try_clone()?, log)))
        .map_err(|source| {
            fail(TaskError::SupervisorLog {
                path: log_path.clone(),
                source,
            })
        })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("supervise")
        .arg(name.as_str())
        .current_dir(&ws.repo.checkout)
        .stdin(std::process::Stdio::piped())
        .stdout(log.0)
        .stderr(log.1);
    // No terminal: closing the user's shell must not stop the task.
    crate::platform::spawn::in_new_session(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|err| fail(TaskError::SpawnSupervisor(err)))?;
    let handoff = Handoff {
        message: started.message.clone(),
        claude: started.claude.clone(),
        resumed_from: started.resumed_from.clone(),
        ask,
        from: started
            .record
            .supervisor
            .unwrap_or_else(crate::session::current_supervisor),
    };
    let sent = child.stdin.take().is_some_and(|mut stdin| {
        stdin
            .write_all(
                serde_json::to_string(&handoff)
                    .unwrap_or_default()
                    .as_bytes(),
            )
            .is_ok()
    });
    let child_pid = child.id();
    let deadline = Instant::now() + TAKE_OVER_WAIT;
    let taken_over = sent
        && loop {
            let record = ws.store.load(&name).ok();
            if record.and_then(|r| r.supervisor).map(|s| s.pid) == Some(child_pid) {
                break true;
            }
            // Exited without taking over: its log says why.
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
    if !taken_over {
        let _ = child.kill();
        let _ = child.wait();
        // The task may have been taken over just now: only a task still ours is taken back.
        let still_ours = ws
            .store
            .load(&name)
            .ok()
            .and_then(|r| r.supervisor)
            .map(|s| s.pid)
            == Some(std::process::id());
        if still_ours {
            abandon(ws, &started);
        }
        return Err(TaskError::NotTakenOver { log: log_path });
    }
    // A long-lived parent (`cms mcp`, `cms top`) must reap the supervisor when it ends: as a
    // zombie it would still look alive to the reconcile. A `cms task -d` exits before that
    // matters.
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// The background supervisor's side: reads the hand-off (`text`, its stdin) and takes task
/// `name` over from the process that started it. Returns the task to run and whether it asks.
/// Call [`remember_stop_signals`] first of all, before reading the hand-off.
pub fn take_over(
    ws: &Workspace,
    name: &TaskName,
    text: &str,
) -> Result<(Started, bool), TaskError> {
    let handoff: Handoff = serde_json::from_str(text).map_err(TaskError::BadHandoff)?;
    let me = crate::session::current_supervisor();
    let record = ws.store.with_task_lock(name, || {
        let mut record = ws.store.load(name)?;
        let from = record.supervisor.map(|s| (s.pid, s.start_time));
        if !record.status.is_live() || from != Some((handoff.from.pid, handoff.from.start_time)) {
            return Err(TaskError::NotHandedOver(name.clone()));
        }
        // The session keeps the token it was started with (its temp dir is named after it).
        record.supervisor = Some(Supervisor {
            token: handoff.from.token,
            ..me
        });
        ws.store.save(&mut record)?;
        Ok(record)
    })??;
    // Read again in this process, which runs every step after the start.
    let settings = match Settings::for_session(ws, &record, record.base) {
        Ok(settings) => settings,
        Err(err) => {
            // As a session that cannot begin: the start is taken back.
            take_back(ws, &record, &handoff.resumed_from);
            return Err(err);
        }
    };
    let started = Started {
        record,
        claude: handoff.claude,
        sandbox_warning: None,
        message: handoff.message,
        resumed_from: handoff.resumed_from,
        settings,
    };
    Ok((started, handoff.ask))
}
