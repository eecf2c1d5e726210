//! `cms wait`: block until tasks end or need an answer, for scripts that start tasks elsewhere.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::{TaskName, TaskRecord};
use crate::task;
use crate::vocab::Status;

/// Wait for tasks to end
///
/// Returns when every task named has ended or is `waiting` for a permission answer (with
/// --any, when the first has), then prints them (with --json, a JSON array of tasks). Exits 0
/// when every task waited for completed, 3 when one ended in another status or waits (answer
/// it with `cms allow` or `cms deny`, then wait again), 1 when --timeout ran out first.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The tasks to wait for
    #[arg(required = true, value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub tasks: Vec<TaskName>,

    /// Return as soon as one of them has ended
    #[arg(long)]
    pub any: bool,

    /// Give up after this long, e.g. 30s, 10m
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub timeout: Option<Duration>,
}

pub fn cmd_wait(ctx: &CommandContext, args: WaitArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    // Every name must be a task before waiting starts.
    let mut records: Vec<TaskRecord> = Vec::new();
    for name in &args.tasks {
        records.push(ws.task(name)?);
    }
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let (records, settled) = task::wait_until_settled(&ws, records, args.any, deadline, |_| {
        std::ops::ControlFlow::Continue(())
    });
    if !settled {
        return Err(task::timed_out(&records).into());
    }
    let ended: Vec<&TaskRecord> = records.iter().filter(|r| task::settled(r)).collect();
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&Value::Array(
            records.iter().map(report::task_json).collect(),
        ));
    } else {
        for record in &records {
            let asks = report::pending_line(record)
                .map(|what| {
                    format!(
                        " for {what}: `cms allow {0}` or `cms deny {0}`",
                        record.name
                    )
                })
                .unwrap_or_default();
            ui.println(&format!(
                "{} {}{asks}",
                ui.out.name.apply_to(&record.name),
                record.status
            ));
        }
    }
    Ok(if ended.iter().all(|r| r.status == Status::Completed) {
        exit_code::OK
    } else {
        exit_code::TASK_NOT_COMPLETED
    })
}
