//! `cms abort`: stop running tasks from anywhere, as Ctrl-C in their own terminal would.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::session::{Timeouts, signal_supervisor};
use crate::store::{Status, TaskName, TaskRecord};
use crate::task::TaskError;
use crate::workspace::Workspace;

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
    #[arg(required = true, value_parser = super::parse_task_name, add = super::completes_tasks())]
    pub tasks: Vec<TaskName>,
}

pub fn cmd_abort(ctx: &CommandContext, args: AbortArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let mut records = Vec::new();
    for name in &args.tasks {
        let record = ws.task(name)?;
        if !record.status.is_live() {
            return Err(TaskError::NotRunning {
                name: record.name,
                status: record.status,
            }
            .into());
        }
        if !records.iter().any(|r: &TaskRecord| r.name == record.name) {
            records.push(record);
        }
    }
    let grace = Timeouts::default();
    // The first signal interrupts; the supervisor kills the session itself after its grace.
    for record in &records {
        if let Some(supervisor) = &record.supervisor {
            signal_supervisor(supervisor, libc::SIGTERM);
        }
    }
    let patience = grace.interrupt_grace + grace.exit_grace + Duration::from_secs(20);
    let mut ended = wait_until_ended(&ws, &records, patience);
    let stuck: Vec<&TaskRecord> = ended.iter().filter(|r| r.status.is_live()).collect();
    if !stuck.is_empty() {
        // A second signal makes a supervisor kill its session at once.
        for record in &stuck {
            if let Some(supervisor) = &record.supervisor {
                signal_supervisor(supervisor, libc::SIGTERM);
            }
        }
        ended = wait_until_ended(&ws, &records, Duration::from_secs(30));
    }
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&Value::Array(ended.iter().map(report::task_json).collect()));
    } else {
        for record in &ended {
            ui.println(&format!(
                "{} {}: {}",
                ui.out.name.apply_to(&record.name),
                record.status,
                match record.status {
                    Status::Running | Status::Waiting => {
                        "still running; its supervisor did not stop".to_owned()
                    }
                    _ => record.error.clone().unwrap_or_else(|| "stopped".to_owned()),
                }
            ));
        }
    }
    Ok(if ended.iter().all(|r| !r.status.is_live()) {
        exit_code::OK
    } else {
        exit_code::ERROR
    })
}

/// Polls the tasks' records until none is running or `patience` runs out; the records as they
/// are then. Supervisors that died meanwhile are reconciled to `interrupted` by the reload.
fn wait_until_ended(ws: &Workspace, records: &[TaskRecord], patience: Duration) -> Vec<TaskRecord> {
    let deadline = Instant::now() + patience;
    loop {
        let now: Vec<TaskRecord> = records
            .iter()
            .map(|r| ws.task(&r.name).unwrap_or_else(|_| r.clone()))
            .collect();
        if now.iter().all(|r| !r.status.is_live()) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
