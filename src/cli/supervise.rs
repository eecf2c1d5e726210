//! `cms supervise` (hidden): the background supervisor a detached task is handed to
//! (`task::hand_off`), which runs it with no terminal, its output in the store.

use std::io::Read;

use clap::Args;

use super::CommandContext;
use super::run::{supervise, timeouts_from_env};
use crate::error::CommandError;
use crate::store::TaskName;
use crate::task;

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The task handed over
    #[arg(value_parser = super::parse_task_name)]
    pub task: TaskName,
}

/// The background supervisor: takes over the task it was handed and runs it to its end.
pub fn cmd_supervise(ctx: &CommandContext, args: SuperviseArgs) -> Result<u8, CommandError> {
    // First of all: a stop request from now on is remembered, not fatal.
    task::remember_stop_signals();
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let ws = ctx.workspace()?;
    let (started, ask) = task::take_over(&ws, &args.task, &text)?;
    let timeouts = timeouts_from_env()?;
    supervise(ctx, &ws, started, timeouts, "detached", ask)
}
