//! Many tasks from one command: independent attempts of one prompt (`--attempts N`) and one
//! task per line (`--each FILE`), at most `jobs` running at once. Each task runs under its own
//! background supervisor, exactly as a detached one, so one failing or stopped task never
//! takes the others with it.

use std::time::Duration;

use super::error::TaskError;
use super::foreground::Observer;
use super::handoff::{hand_off, remember_stop_signals, stop_requested_early};
use super::start::start;
use super::started::TaskOptions;
use crate::platform::Signal;
use crate::session::signal_supervisor;
use crate::store::{Attempt, TaskName, TaskRecord};
use crate::workspace::Workspace;

/// The tasks for `--attempts`: `<base>-1` … `<base>-N`, where `base` is the given name, or
/// the prompt's slug made unique so that none of the N names is taken.
pub fn attempts(
    ws: &Workspace,
    opts: &TaskOptions,
    count: u32,
) -> Result<Vec<TaskOptions>, TaskError> {
    let numbered = |base: &TaskName, i: u32| {
        TaskName::parse(&format!("{base}-{i}")).map_err(TaskError::AttemptName)
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
                attempt: Some(Attempt {
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
pub fn each(text: &str, opts: &TaskOptions) -> Result<Vec<TaskOptions>, TaskError> {
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
        return Err(TaskError::NoPrompts);
    }
    Ok(specs)
}

/// How a fan-out ended.
pub struct FanOut {
    /// The tasks it started, as they are now (ended, unless detached).
    pub tasks: Vec<TaskRecord>,
    /// A stop signal stopped the running tasks and the launching.
    pub stopped: bool,
    /// Why a task could not start; the launching stopped there, the tasks already started ran
    /// to their end.
    pub failure: Option<TaskError>,
}

/// Starts the tasks, at most `jobs` running at once, and (unless `detach`) waits for all of
/// them. A stop signal (Ctrl-C) stops the ones running and starts no more.
pub fn run_many(
    ws: &Workspace,
    specs: Vec<TaskOptions>,
    jobs: usize,
    detach: bool,
    ask: bool,
    observer: &mut dyn Observer,
) -> FanOut {
    remember_stop_signals();
    let jobs = if detach { usize::MAX } else { jobs.max(1) };
    let mut pending = specs.into_iter();
    let mut running: Vec<TaskName> = Vec::new();
    let mut all: Vec<TaskName> = Vec::new();
    let mut failure: Option<TaskError> = None;
    let mut stopped = false;
    let mut announced: Vec<String> = Vec::new();
    loop {
        if stop_requested_early() && !stopped {
            stopped = true;
            for name in &running {
                if let Ok(record) = ws.task(name)
                    && let Some(supervisor) = record.supervisor
                {
                    signal_supervisor(&supervisor, Signal::Term);
                }
            }
        }
        while failure.is_none() && !stopped && running.len() < jobs {
            let Some(spec) = pending.next() else { break };
            match start(ws, &spec).and_then(|started| {
                let name = started.record.name.clone();
                let warning = started.sandbox_warning.clone();
                hand_off(ws, started, ask).map(|()| (name, warning))
            }) {
                Ok((name, warning)) => {
                    observer.started(&name, warning.as_deref());
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
            {
                announced.push(pending.request_id.clone());
                observer.asks(&record, pending);
            }
            let live = record.status.is_live();
            if !live {
                observer.ended(&record);
            }
            live
        });
        let nothing_to_start = failure.is_some() || stopped || pending.len() == 0;
        if running.is_empty() && nothing_to_start {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    FanOut {
        tasks: all.iter().filter_map(|n| ws.task(n).ok()).collect(),
        stopped,
        failure,
    }
}
