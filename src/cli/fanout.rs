//! Many tasks from one command: `cms task --attempts N` (independent attempts of one prompt)
//! and `cms task --each FILE` (one task per line), at most `--jobs` running at once. Each task
//! runs under its own background supervisor, exactly as with `--detach`, so one failing or
//! stopped task never takes the others with it.

use std::time::Duration;

use serde_json::Value;

use super::CommandContext;
use super::supervise::{hand_off, remember_stop_signals, stop_requested_early};
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::session::signal_supervisor;
use crate::store::{Status, TaskName, TaskRecord};
use crate::task::{self, TaskOptions};
use crate::workspace::Workspace;

/// The tasks for `--attempts`: `<base>-1` … `<base>-N`, where `base` is the given name, or
/// the prompt's slug made unique so that none of the N names is taken.
pub(super) fn attempts(
    ws: &Workspace,
    opts: &TaskOptions,
    count: u32,
) -> Result<Vec<TaskOptions>, CommandError> {
    let numbered = |base: &TaskName, i: u32| {
        TaskName::parse(&format!("{base}-{i}")).map_err(|err| {
            CommandError::new(crate::error::ErrorKind::Usage, err.to_string())
                .with_hint("pick a shorter --name for the attempts")
        })
    };
    let taken = |name: &TaskName| ws.store.exists(name) || ws.repo.branch_exists(&name.branch());
    let base = match &opts.name {
        Some(name) => name.clone(),
        None => {
            let slug = TaskName::slug(&opts.prompt)
                .unwrap_or_else(|| TaskName::parse("task").expect("'task' is a valid name"));
            TaskName::unique(&slug, |base| {
                (1..=count).any(|i| numbered(base, i).map_or(true, |n| taken(&n)))
            })
        }
    };
    (1..=count)
        .map(|i| {
            Ok(TaskOptions {
                name: Some(numbered(&base, i)?),
                attempt: Some(crate::store::Attempt {
                    group: base.to_string(),
                    number: i,
                    of: count,
                }),
                ..opts.clone()
            })
        })
        .collect()
}

/// The tasks for `--each`: one per line that is not empty or a `#` comment.
pub(super) fn each(text: &str, opts: &TaskOptions) -> Result<Vec<TaskOptions>, CommandError> {
    let specs: Vec<TaskOptions> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| TaskOptions {
            prompt: line.to_owned(),
            name: None,
            ..opts.clone()
        })
        .collect();
    if specs.is_empty() {
        return Err(
            CommandError::new(crate::error::ErrorKind::Usage, "--each found no prompt")
                .with_hint("give one prompt per line; empty lines and # comments are skipped"),
        );
    }
    Ok(specs)
}

/// Starts the tasks, at most `jobs` running at once, and (unless `detach`) waits for all of
/// them. Ctrl-C stops the ones running and starts no more. The first task that cannot start
/// stops the launching; the tasks already started run to their end.
pub(super) fn run_many(
    ctx: &CommandContext,
    ws: &Workspace,
    specs: Vec<TaskOptions>,
    jobs: usize,
    detach: bool,
    ask: bool,
) -> Result<u8, CommandError> {
    remember_stop_signals();
    // Once for all of them: they share the repository's settings.
    if let Ok(head) = ws.repo.head() {
        super::trust::warn_untrusted(ctx, ws, head.oid());
    }
    let jobs = if detach { usize::MAX } else { jobs.max(1) };
    let mut pending = specs.into_iter();
    let mut running: Vec<TaskName> = Vec::new();
    let mut all: Vec<TaskName> = Vec::new();
    let mut failure: Option<CommandError> = None;
    let mut stopped = false;
    let mut announced: Vec<String> = Vec::new();
    loop {
        if stop_requested_early() && !stopped {
            stopped = true;
            for name in &running {
                if let Ok(record) = ws.task(name)
                    && let Some(supervisor) = record.supervisor
                {
                    signal_supervisor(&supervisor, libc::SIGTERM);
                }
            }
        }
        while failure.is_none() && !stopped && running.len() < jobs {
            let Some(spec) = pending.next() else { break };
            match task::start(ws, &spec)
                .map_err(CommandError::from)
                .and_then(|started| {
                    if let Some(warning) = &started.sandbox_warning {
                        ctx.ui.warn(warning);
                    }
                    let name = started.record.name.clone();
                    hand_off(ws, started, ask).map(|()| name)
                }) {
                Ok(name) => {
                    ctx.ui.status(&format!("started {name}"));
                    running.push(name.clone());
                    all.push(name);
                }
                Err(err) => failure = Some(err),
            }
        }
        if detach {
            break;
        }
        running.retain(|name| {
            let Ok(record) = ws.task(name) else {
                return false;
            };
            // Each prompt once: the fan-out waits on every task, so the user must hear of one
            // that waits on them.
            if let Some(pending) = &record.pending
                && !announced.contains(&pending.request_id)
                && let Some(what) = report::pending_line(&record)
            {
                announced.push(pending.request_id.clone());
                ctx.ui.status(&format!(
                    "{name} asks for {what}: `cms allow {name}` or `cms deny {name}`"
                ));
            }
            record.status.is_live()
        });
        let nothing_to_start = failure.is_some() || stopped || pending.len() == 0;
        if running.is_empty() && nothing_to_start {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let records: Vec<TaskRecord> = all.iter().filter_map(|n| ws.task(n).ok()).collect();
    report_all(ctx, &records, detach);
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(if detach {
        exit_code::OK
    } else if stopped {
        exit_code::INTERRUPTED
    } else if records.iter().all(|r| r.status == Status::Completed) {
        exit_code::OK
    } else {
        exit_code::TASK_NOT_COMPLETED
    })
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
