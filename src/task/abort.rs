//! Aborting running tasks from any process, as Ctrl-C in their own terminal would: shared by
//! `cms abort` and the MCP server's `task_abort`.

use std::time::{Duration, Instant};

use super::TaskError;
use crate::platform::Signal;
use crate::session::{Timeouts, signal_supervisor};
use crate::store::{TaskName, TaskRecord};
use crate::workspace::Workspace;

/// The live tasks named, each once; refuses (changing nothing) if one is not running.
pub fn running_tasks(ws: &Workspace, names: &[TaskName]) -> Result<Vec<TaskRecord>, TaskError> {
    let mut records: Vec<TaskRecord> = Vec::new();
    for name in names {
        let record = ws.task(name)?;
        if !record.status.is_live() {
            return Err(TaskError::NotRunning {
                name: record.name,
                status: record.status,
            });
        }
        if !records.iter().any(|r| r.name == record.name) {
            records.push(record);
        }
    }
    Ok(records)
}

/// Asks each task's supervisor to stop, kills the sessions that do not stop within their
/// grace periods, and returns the records as they are then (a task still live means its
/// supervisor did not stop).
pub fn abort(ws: &Workspace, records: &[TaskRecord]) -> Vec<TaskRecord> {
    let grace = Timeouts::default();
    // The first signal interrupts; the supervisor kills the session itself after its grace.
    for record in records {
        if let Some(supervisor) = &record.supervisor {
            signal_supervisor(supervisor, Signal::Term);
        }
    }
    let patience = grace.interrupt_grace + grace.exit_grace + Duration::from_secs(20);
    let ended = wait_until_ended(ws, records, patience);
    let stuck: Vec<&TaskRecord> = ended.iter().filter(|r| r.status.is_live()).collect();
    if stuck.is_empty() {
        return ended;
    }
    // A second signal makes a supervisor kill its session at once.
    for record in &stuck {
        if let Some(supervisor) = &record.supervisor {
            signal_supervisor(supervisor, Signal::Term);
        }
    }
    wait_until_ended(ws, records, Duration::from_secs(30))
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
