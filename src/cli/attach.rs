//! `cms attach`: an interactive claude session in a task's worktree, at the user's terminal,
//! under the same guard hook, sandbox, limits and checks as a supervised session.

use std::io::IsTerminal;

use clap::Args;

use super::CommandContext;
use super::run::{announce, report_outcome, timeouts_from_env};
use crate::error::CommandError;
use crate::store::TaskName;
use crate::task::{self, Foreground, TaskError};

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
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: TaskName,
}

pub fn cmd_attach(ctx: &CommandContext, args: AttachArgs) -> Result<u8, CommandError> {
    let result = attach(ctx, args);
    // `cms top` redraws the screen these lines go to: they are written where it asked too.
    if let Err(err) = &result
        && let Some(path) =
            std::env::var_os(crate::tui::ATTACH_ERRORS_ENV).filter(|p| !p.is_empty())
    {
        let lines = err.lines(&crate::report::Styles::plain());
        let _ = std::fs::write(path, lines.join("\n") + "\n");
    }
    result
}

fn attach(ctx: &CommandContext, args: AttachArgs) -> Result<u8, CommandError> {
    // Before anything is opened: an interactive claude without a terminal would hang or fail.
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(TaskError::NotATerminal(args.task).into());
    }
    let ws = ctx.workspace()?;
    let timeouts = timeouts_from_env()?;
    let started = task::resume_attached(&ws, &args.task)?;
    if let Some(warning) = &started.sandbox_warning {
        ctx.ui.warn(warning);
    }
    announce(&ctx.ui, "attach", &started);
    let notify = started.settings.config.notify.clone();
    let record = task::run_foreground(
        &ws,
        started,
        Foreground::Attached(timeouts),
        &mut task::Quiet,
    )?;
    Ok(report_outcome(ctx, notify.as_deref(), &record))
}
