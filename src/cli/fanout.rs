//! What `cms task --attempts N` and `cms task --each FILE` print while `task::run_many` runs
//! their tasks, and the exit code they end with.

use serde_json::Value;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::{PendingPermission, TaskName, TaskRecord};
use crate::task::{self, Observer, TaskOptions};
use crate::ui::Ui;
use crate::vocab::Status;
use crate::workspace::Workspace;

/// Runs the fan-out, then prints every task (or, detached, their names) and returns the exit
/// code: the first task that could not start is the error, after the others are reported.
pub(super) fn run_many(
    ctx: &CommandContext,
    ws: &Workspace,
    specs: Vec<TaskOptions>,
    jobs: usize,
    detach: bool,
    ask: bool,
) -> Result<u8, CommandError> {
    // Once for all of them: they share the repository's settings.
    if let Ok(head) = ws.repo.head() {
        super::trust::warn_untrusted(ctx, ws, head.oid());
    }
    let fan_out = task::run_many(ws, specs, jobs, detach, ask, &mut Lines(&ctx.ui));
    report_all(ctx, &fan_out.tasks, detach);
    if !detach && !ctx.ui.json {
        let next = next_commands(&fan_out.tasks);
        if !next.is_empty() {
            ctx.ui.println("");
            ctx.ui
                .println(&ctx.ui.out.dim.apply_to("next:").to_string());
            for line in next {
                ctx.ui.println(&format!("  {line}"));
            }
        }
    }
    if let Some(err) = fan_out.failure {
        return Err(err.into());
    }
    Ok(if detach {
        exit_code::OK
    } else if fan_out.stopped {
        exit_code::INTERRUPTED
    } else if fan_out.tasks.iter().all(|r| r.status == Status::Completed) {
        exit_code::OK
    } else {
        exit_code::TASK_NOT_COMPLETED
    })
}

/// A line on stderr for each task started and each prompt a task waits on.
struct Lines<'a>(&'a Ui);

impl Observer for Lines<'_> {
    fn started(&mut self, name: &TaskName, sandbox_warning: Option<&str>) {
        if let Some(warning) = sandbox_warning {
            self.0.warn(warning);
        }
        self.0.status(&format!("started {name}"));
    }

    fn ended(&mut self, record: &TaskRecord) {
        self.0.status(&format!(
            "{} {} {} {} file(s)",
            record.name,
            record.status,
            report::format_cost(record.cost_usd),
            record.files_changed.len()
        ));
    }

    fn asks(&mut self, record: &TaskRecord, _pending: &PendingPermission) {
        // The fan-out waits on every task, so the user must hear of one that waits on them.
        if let Some(what) = report::pending_line(record) {
            let name = &record.name;
            self.0.status(&format!(
                "{name} asks for {what}: `cms allow {name}` or `cms deny {name}`"
            ));
        }
    }
}

/// What to do with the tasks of a fan-out once they ended: attempts of one prompt are
/// compared, one kept and the rest dropped; independent tasks that completed are merged.
fn next_commands(records: &[TaskRecord]) -> Vec<String> {
    let completed: Vec<&str> = records
        .iter()
        .filter(|r| r.status == Status::Completed && !r.files_changed.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    if completed.is_empty() {
        return Vec::new();
    }
    if records.iter().any(|r| r.attempt.is_some()) {
        let mut lines: Vec<String> = completed
            .iter()
            .map(|name| format!("cms diff {name}"))
            .collect();
        if let [first, second, ..] = completed.as_slice() {
            lines.push(format!(
                "cms diff {first} {second}    two of them side by side"
            ));
        }
        lines.push("cms merge <TASK>         the attempt to keep".to_owned());
        lines.push("cms discard <TASK>...    the others".to_owned());
        return lines;
    }
    vec![format!("cms merge {}", completed.join(" "))]
}

fn report_all(ctx: &CommandContext, records: &[TaskRecord], detach: bool) {
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&Value::Array(
            records.iter().map(report::task_json).collect(),
        ));
        return;
    }
    for record in records {
        if detach {
            ui.println(record.name.as_str());
        } else {
            ui.println(&format!(
                "{} {} {} {} file(s)",
                ui.out.name.apply_to(&record.name),
                record.status,
                report::format_cost(record.cost_usd),
                record.files_changed.len()
            ));
        }
    }
}
