//! `cms attach`: an interactive claude session in a task's worktree, at the user's terminal,
//! under the same guard hook, sandbox, limits and checks as a supervised session.

use std::io::IsTerminal;

use clap::Args;
use tokio::sync::mpsc;

use super::CommandContext;
use super::task::{report_outcome, timeouts_from_env};
use crate::error::{CommandError, ErrorKind};
use crate::session::StopReason;
use crate::store::TaskName;
use crate::task::{self, TaskError};

/// Attach to a task: talk to its claude session yourself, in its worktree
///
/// Runs `claude --resume` interactively at this terminal for a task that `cms continue`
/// could continue, with the task's protected paths, sandbox and allowed tools. The time
/// limit stops the session (Ctrl-C first, then a kill); cost and turns are read from the
/// transcript claude writes and stop it the same way once a limit is crossed. When claude
/// exits, the work is committed on the task's branch and checked like any session's.
///
/// Needs a terminal (stdin and stdout); scripts use `cms continue`. Exit codes: 0 completed,
/// 1 refused (running, merged or discarded, no session, worktree gone, a limit used up),
/// 2 not at a terminal, 3 ended with any other status, 130 aborted.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The task to attach to
    #[arg(value_parser = super::parse_task_name, add = super::completes_tasks())]
    pub task: TaskName,
}

pub fn cmd_attach(ctx: &CommandContext, args: AttachArgs) -> Result<u8, CommandError> {
    // Before anything is opened: an interactive claude without a terminal would hang or fail.
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(TaskError::NotATerminal(args.task).into());
    }
    let ws = ctx.workspace()?;
    let timeouts = timeouts_from_env()?;
    let started = task::resume_attached(&ws, &args.task)?;
    let ui = &ctx.ui;
    if let Some(warning) = &started.sandbox_warning {
        ui.warn(warning);
    }
    let s = &ui.err;
    ui.status(&format!(
        "{} {} on {} in {}",
        s.bold.apply_to("attach"),
        s.name.apply_to(&started.record.name),
        started.record.branch,
        s.dim.apply_to(started.record.worktree.display())
    ));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            task::abandon(&ws, &started);
            return Err(CommandError::from_error(ErrorKind::Internal, &err));
        }
    };
    let record = runtime.block_on(async {
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        // In place before claude starts: the terminal's Ctrl-C and Ctrl-\ reach cms too (it
        // shares claude's process group) and must not end it; SIGTERM and SIGHUP (`cms
        // abort`, a closed terminal) stop the session.
        let handlers = signal_handlers();
        let signals = tokio::spawn(forward_signals(handlers, stop_tx));
        let result = task::run_attached(&ws, started, timeouts, stop_rx).await;
        signals.abort();
        result
    })?;
    Ok(report_outcome(ctx, &ws, &record))
}

type Handlers = [tokio::signal::unix::Signal; 4];

/// Handlers for SIGINT, SIGQUIT, SIGTERM and SIGHUP, in place from the moment this returns.
fn signal_handlers() -> Option<Handlers> {
    use tokio::signal::unix::{SignalKind, signal};
    Some([
        signal(SignalKind::interrupt()).ok()?,
        signal(SignalKind::quit()).ok()?,
        signal(SignalKind::terminate()).ok()?,
        signal(SignalKind::hangup()).ok()?,
    ])
}

/// Ignores SIGINT and SIGQUIT (claude's to handle) and turns SIGTERM and SIGHUP into stop
/// requests: the first interrupts claude, a second kills the session.
async fn forward_signals(handlers: Option<Handlers>, stop: mpsc::UnboundedSender<StopReason>) {
    let Some([mut int, mut quit, mut term, mut hup]) = handlers else {
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => continue,
            _ = quit.recv() => continue,
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        if stop.send(StopReason::User).is_err() {
            return;
        }
    }
}
