//! Waiting for tasks to settle (end, or stop on a permission prompt), shared by `cms wait`
//! and the MCP server's `task_wait`.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::TaskError;
use crate::store::TaskRecord;
use crate::vocab::Status;
use crate::workspace::Workspace;

/// How often the records are read again.
const POLL: Duration = Duration::from_millis(100);

/// Whether a task will not move on its own: it has ended, or it waits for someone to answer
/// its permission prompt (the waiter's turn).
pub fn settled(record: &TaskRecord) -> bool {
    record.status == Status::Waiting || !record.status.is_live()
}

/// Polls `records` until every one has settled (with `any`, until one has) or `deadline`
/// passes; `tick` sees the records after each reload, and stops the wait early by returning
/// `Break` (when nobody waits for the answer any more). Returns the records as they are then,
/// and whether they settled.
pub fn wait_until_settled(
    ws: &Workspace,
    mut records: Vec<TaskRecord>,
    any: bool,
    deadline: Option<Instant>,
    mut tick: impl FnMut(&[TaskRecord]) -> ControlFlow<()>,
) -> (Vec<TaskRecord>, bool) {
    loop {
        let finished = records.iter().filter(|r| settled(r)).count();
        if (any && finished > 0) || finished == records.len() {
            return (records, true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return (records, false);
        }
        std::thread::sleep(POLL);
        // Reloading reconciles: a task whose supervisor died reads as interrupted.
        for record in records.iter_mut() {
            if let Ok(now) = ws.task(&record.name) {
                *record = now;
            }
        }
        if tick(&records).is_break() {
            return (records, false);
        }
    }
}

/// The error of a wait whose deadline came first, naming the tasks still going.
pub fn timed_out(records: &[TaskRecord]) -> TaskError {
    TaskError::WaitTimedOut {
        names: records
            .iter()
            .filter(|r| !settled(r))
            .map(|r| r.name.to_string())
            .collect(),
    }
}
