//! Detached tasks: `cms task -d`/`cms continue -d` hand a started task to a background
//! supervisor (`cms supervise`, hidden), which runs it with no terminal, its output in the
//! store.
//!
//! The hand-off never leaves a task without a live supervisor on record, nor a supervisor on
//! record that a stop request could kill before it can handle one: the foreground cms starts
//! the task (so every refusal is still its own, with nothing half-made), spawns the
//! background supervisor in a session of its own and writes it what it needs on its stdin,
//! then waits. The background supervisor first catches the stop signals (a stop that arrives
//! before its real handlers exist is remembered), then, under the task's lock, takes the
//! task over from the foreground cms named in the hand-off, if that is still the task's
//! supervisor. The foreground cms returns once it sees the take-over; if it does not come, it
//! stops the background one and takes the start back.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::CommandContext;
use super::task::{supervise, timeouts_from_env};
use crate::error::{CommandError, ErrorKind, exit_code};
use crate::report;
use crate::store::{Supervisor, TaskName, TaskRecord};
use crate::task::{self, Started};
use crate::workspace::Workspace;

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The task handed over
    #[arg(value_parser = super::parse_task_name)]
    pub task: TaskName,
}

/// What the foreground cms hands the background supervisor on its stdin.
#[derive(Serialize, Deserialize)]
struct Handoff {
    message: String,
    claude: PathBuf,
    resumed_from: Option<TaskRecord>,
    /// Whether claude's permission prompts come to cms (answered by `cms allow`/`cms deny`).
    ask: bool,
    /// The foreground cms that started the task, from which the task is taken over.
    from: Supervisor,
}

/// Set by a stop signal (SIGINT, SIGTERM, SIGHUP) once [`remember_stop_signals`] ran: in a
/// background supervisor, one that came before the session's own handlers; in a fan-out, the
/// user's Ctrl-C.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn remember_stop(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// From now on a stop signal is remembered (see [`stop_requested_early`]), not fatal.
pub(super) fn remember_stop_signals() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, remember_stop as *const () as libc::sighandler_t);
        }
    }
}

/// Whether a stop signal came since [`remember_stop_signals`] (for a supervisor: before the
/// session's own signal handlers were in place).
pub(super) fn stop_requested_early() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// How long the foreground cms waits for the background supervisor to take the task over.
const TAKE_OVER_WAIT: Duration = Duration::from_secs(30);

/// Hands `started` to a new background supervisor and reports the task as started.
pub(super) fn launch(
    ctx: &CommandContext,
    ws: &Workspace,
    started: Started,
    ask: bool,
) -> Result<u8, CommandError> {
    let name = started.record.name.clone();
    if let Some(warning) = &started.sandbox_warning {
        ctx.ui.warn(warning);
    }
    super::trust::warn_untrusted(ctx, ws, started.record.base);
    hand_off(ws, started, ask)?;
    let record = ws.task(&name)?;
    if ctx.ui.json {
        ctx.ui.print_json(&report::task_json(&record));
    } else {
        ctx.ui.println(name.as_str());
        ctx.ui.status(&format!(
            "running in the background; `cms wait {name}` waits for it, `cms show {name}` \
             shows it, `cms abort {name}` stops it"
        ));
    }
    Ok(exit_code::OK)
}

/// Hands `started` to a new background supervisor; returns once it has taken the task over.
/// On failure the start is taken back.
pub(super) fn hand_off(ws: &Workspace, started: Started, ask: bool) -> Result<(), CommandError> {
    let name = started.record.name.clone();
    let fail = |err: CommandError| {
        // Nothing runs the task: take back what the start made, as a failed start does.
        task::abandon(ws, &started);
        err
    };
    let exe = std::env::current_exe()
        .map_err(|err| fail(CommandError::from_error(ErrorKind::Internal, &err)))?;
    let log_path = ws.store.supervisor_log_path(&name);
    let log = log_path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::File::create(&log_path))
        .map_err(|err| fail(CommandError::from_error(ErrorKind::User, &err)))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("supervise")
        .arg(name.as_str())
        .current_dir(&ws.repo.checkout)
        .stdin(std::process::Stdio::piped())
        .stdout(log.try_clone().map_err(|err| fail(err.into()))?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and only affects the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            // No terminal: closing the user's shell must not stop the task.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|err| fail(CommandError::from_error(ErrorKind::Internal, &err)))?;
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
            task::abandon(ws, &started);
        }
        return Err(CommandError::internal(
            "cms could not hand the task to a background supervisor",
        )
        .with_hint(format!("its output is in {}", log_path.display())));
    }
    // A long-lived parent (`cms mcp`) must reap the supervisor when it ends: as a zombie it
    // would still look alive to the reconcile. A `cms task -d` exits before that matters.
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// The background supervisor: takes over the task it was handed and runs it to its end.
pub fn cmd_supervise(ctx: &CommandContext, args: SuperviseArgs) -> Result<u8, CommandError> {
    // First of all: a stop request from now on is remembered, not fatal.
    remember_stop_signals();
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let handoff: Handoff = serde_json::from_str(&text).map_err(|err| {
        CommandError::from_error(ErrorKind::Internal, &err)
            .with_hint("`cms supervise` is started by `cms task --detach`, not by hand")
    })?;
    let ws = ctx.workspace()?;
    let me = crate::session::current_supervisor();
    let record = ws.store.with_task_lock(&args.task, || {
        let mut record = ws.store.load(&args.task)?;
        let from = record.supervisor.map(|s| (s.pid, s.start_time));
        if !record.status.is_live() || from != Some((handoff.from.pid, handoff.from.start_time)) {
            return Err(CommandError::user(format!(
                "task '{}' was not handed to this supervisor",
                args.task
            )));
        }
        // The session keeps the token it was started with (its temp dir is named after it).
        record.supervisor = Some(Supervisor {
            token: handoff.from.token,
            ..me
        });
        ws.store.save(&mut record)?;
        Ok(record)
    })??;
    let timeouts = timeouts_from_env()?;
    let started = Started {
        record,
        claude: handoff.claude,
        sandbox_warning: None,
        message: handoff.message,
        resumed_from: handoff.resumed_from,
    };
    supervise(ctx, &ws, started, timeouts, "detached", handoff.ask)
}
