//! `cms abort`: stop running tasks from anywhere, as Ctrl-C in their own terminal would.

use clap::Args;
use serde_json::Value;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::TaskName;
use crate::task;

/// Abort running tasks: interrupt each session, then kill it if it does not stop
///
/// Each task's supervisor (the `cms task` or `cms continue` running it) is asked to stop, as
/// Ctrl-C would: claude ends its turn, every process of the session is killed, and the work
/// so far is committed on the task's branch; the task ends `aborted`. If a session does not
/// stop within its grace period it is killed. Refuses, changing nothing, if any task named is
/// not running.
#[derive(Debug, Args)]
pub struct AbortArgs {
    /// The tasks to stop
    #[arg(required = true, value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub tasks: Vec<TaskName>,
}

pub fn cmd_abort(ctx: &CommandContext, args: AbortArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let records = task::running_tasks(&ws, &args.tasks)?;
    let ended = task::abort(&ws, &records);
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&Value::Array(ended.iter().map(report::task_json).collect()));
    } else {
        for record in &ended {
            ui.println(&report::abort_line(&ui.out, record));
        }
    }
    Ok(if ended.iter().all(|r| !r.status.is_live()) {
        exit_code::OK
    } else {
        exit_code::ERROR
    })
}
