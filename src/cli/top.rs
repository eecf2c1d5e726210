//! `cms top`: the live dashboard of this repository's tasks (drawn by `crate::tui`).

use std::io::IsTerminal;

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, ErrorKind, exit_code};

/// Watch and steer this repository's tasks in a live full-screen dashboard
///
/// Lists the tasks (waiting ones first, then running ones) with their status, turns and cost
/// against their limits, time and files changed, and shows the selected task's prompt, pending
/// permission request, diff stat and live log. Keys answer a waiting task (a allow, A allow
/// always, d deny, with a reason typed in place), continue it (c), abort it (x), merge (m) or
/// discard (D) it after asking, show its diff (v), attach to it (t), start a new detached task
/// after asking (n), filter by status (f) and quit (q or Ctrl-C); each does what the matching
/// cms command does. Works beside any other cms process, detached tasks included.
///
/// Needs a terminal; scripts use `cms list` and `cms show`. Exit codes: 0 on quit, 1 outside
/// a repository or when the terminal fails, 2 when not at a terminal, 130 after SIGTERM or
/// SIGHUP (the terminal is restored first).
#[derive(Debug, Args)]
pub struct TopArgs {}

pub fn cmd_top(ctx: &CommandContext, _args: TopArgs) -> Result<u8, CommandError> {
    if ctx.ui.json || !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(
            CommandError::new(ErrorKind::Usage, "cms top needs a terminal").with_hint(
                "in a script, `cms list` and `cms show <TASK>` (with --json) print the same",
            ),
        );
    }
    let ws = ctx.workspace()?;
    let exe = std::env::current_exe()
        .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
    let ended = crate::tui::run(&ws, &exe, &ctx.cwd)
        .map_err(|err| CommandError::from_error(ErrorKind::User, &err))?;
    Ok(match ended {
        crate::tui::Ended::Quit => exit_code::OK,
        crate::tui::Ended::Terminated => exit_code::INTERRUPTED,
    })
}
