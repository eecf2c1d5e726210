//! Following up on a task (`cms continue`): the same claude session in the same worktree, with
//! its ledger and limits carried over, after checking that it may go on at all.

use std::time::Duration;

use super::error::TaskError;
use super::open::{ensure_not_running, ensure_on_branch, task_git};
use super::settings::Settings;
use super::start::sandbox_plan;
use super::started::Started;
use crate::git::{self, Oid};
use crate::safety::sandbox::SandboxMode;
use crate::session;
use crate::store::{Rebase, TaskName, TaskRecord, now_rfc3339};
use crate::vocab::{Limits, Preset, Status};
use crate::workspace::Workspace;

/// What the user asked a follow-up to do.
#[derive(Debug, Clone)]
pub struct ContinueOptions {
    pub name: TaskName,
    pub message: String,
    /// Tools to allow on top of the preset (and of what earlier follow-ups allowed).
    pub allow: Vec<String>,
    pub preset: Option<Preset>,
    /// New limits, replacing the task's (they are totals over all its sessions).
    pub max_cost_usd: Option<f64>,
    pub max_turns: Option<u32>,
    pub max_duration: Option<Duration>,
    pub sandbox: Option<SandboxMode>,
    /// Move the task onto its base branch's tip first, leaving conflicts to the agent.
    pub rebase: bool,
}

/// Makes a finished task ready for another session: checks that it can go on, then records
/// it as running under this process. On any refusal nothing changes.
pub fn resume(ws: &Workspace, opts: &ContinueOptions) -> Result<Started, TaskError> {
    let message = opts.message.trim();
    if message.is_empty() && !opts.rebase {
        return Err(TaskError::EmptyMessage);
    }
    let record = ws.task(&opts.name)?;
    check_can_continue(ws, &record, "continue")?;
    let onto = match opts.rebase {
        true => Some(rebase_target(ws, &record)?),
        false => None,
    };
    // Read at the base the session will start from, which a `--rebase` moves.
    let base = onto.as_ref().map_or(record.base, |(_, tip)| *tip);
    let settings = Settings::for_session(ws, &record, base)?;
    let config = &settings.config;
    // A task that ran on a runner goes on there (checked reachable before anything changes).
    let remote = match &record.remote {
        Some(run) => super::remote::plan(ws, config, Some(&run.runner))?,
        None => None,
    };
    let (claude, sandboxed, sandbox_warning) = match &remote {
        Some((_, runner)) => (std::path::PathBuf::from(&runner.claude), true, None),
        None => {
            let claude = session::find_claude(&config.claude_bin)?;
            let (sandboxed, warning) = sandbox_plan(opts.sandbox.unwrap_or(config.sandbox))?;
            (claude, sandboxed, warning)
        }
    };
    let limits = raised_limits(&record, opts);
    check_limits_left(&record, &limits)?;

    let (record, previous) = take_over(ws, &record, "continue", |current| {
        current.preset = opts.preset.unwrap_or(current.preset);
        current.safety.limits = Some(limits);
        current.safety.sandboxed = sandboxed;
        if let Some((run, _)) = &remote {
            current.remote = Some(run.clone());
        }
        for tool in &opts.allow {
            if !current.safety.allowed.contains(tool) {
                current.safety.allowed.push(tool.clone());
            }
        }
    })?;
    let (record, message) = match onto {
        Some((branch, tip)) => match rebase(ws, record, branch.as_str(), tip, message) {
            Ok(rebased) => rebased,
            Err(err) => {
                // The follow-up never began: the task is as it was.
                let _ = ws.store.rewrite(&previous.name, |_| previous.clone());
                return Err(err);
            }
        },
        None => (record, message.to_owned()),
    };
    Ok(Started {
        record,
        claude,
        sandbox_warning,
        message,
        resumed_from: Some(previous),
        settings,
    })
}

/// The branch a `--rebase` moves the task onto, and its tip; refused when the task already
/// starts from that tip or has uncommitted work.
fn rebase_target(ws: &Workspace, record: &TaskRecord) -> Result<(String, Oid), TaskError> {
    let branch = record
        .base_branch
        .clone()
        .ok_or_else(|| TaskError::NoMergeTarget(record.name.clone()))?;
    let tip = ws.repo.branch_tip(&branch)?;
    let from = ws
        .repo
        .branch_tip(&record.branch)
        .map_err(|_| TaskError::BranchGone(record.name.clone()))?;
    if ws.repo.is_ancestor(tip, from)? {
        return Err(TaskError::AlreadyOnTop {
            name: record.name.clone(),
            onto: branch,
        });
    }
    if git::snapshot::snapshot_tree(&ws.repo, &task_git(ws, record)?, &record.links)?
        != ws.repo.tree_of(from)?
    {
        return Err(TaskError::UncommittedWork {
            name: record.name.clone(),
            worktree: record.worktree.clone(),
        });
    }
    Ok((branch, tip))
}

/// Moves the running task's work onto `tip` of `onto` (see [`git::merge::squash_onto`]),
/// keeping its previous tip under [`TaskName::rebased_ref`], and says in the message what the agent
/// must resolve.
fn rebase(
    ws: &Workspace,
    mut record: TaskRecord,
    onto: &str,
    tip: Oid,
    message: &str,
) -> Result<(TaskRecord, String), TaskError> {
    let from = ws.repo.branch_tip(&record.branch)?;
    git::merge::set_ref(
        &ws.repo.common_dir,
        &record.name.rebased_ref(),
        from,
        "cms: the task's tip before its rebase",
    )?;
    let task = task_git(ws, &record)?;
    let conflicts = git::merge::squash_onto(&task, tip, from)?;
    // The task's change now starts from the tip it was moved onto.
    record.base = tip;
    record.rebase = Some(Rebase {
        onto: onto.to_owned(),
        from,
        conflicts: conflicts.clone(),
        unresolved: Vec::new(),
    });
    let saved = ws.store.update(&record.name, |r| {
        r.base = tip;
        r.rebase = record.rebase.clone();
    });
    if let Err(err) = saved {
        let _ = git::merge::undo_squash_onto(&task, from);
        return Err(err.into());
    }
    let short = &tip.to_string()[..12];
    let mut text = format!(
        "cms moved this task's work onto the current tip of {onto} ({short}): the branch now \
         starts there, and your whole change is applied on top of it as uncommitted work.\n"
    );
    if conflicts.is_empty() {
        text.push_str(
            "It applied without conflicts; check that the change still fits the new base.\n",
        );
    } else {
        text.push_str(&format!(
            "These files have merge conflicts, marked with <<<<<<<, ======= and >>>>>>>: {}. \
             Resolve every conflict so that both your change and the changes made on {onto} \
             are kept, and remove all the markers.\n",
            conflicts.join(", ")
        ));
        // claude's Read may answer from what it remembers of a file from before the rebase
        // (seen with 2.1.197: "file unchanged since your last Read"), so the conflicts are
        // shown here as they are on disk.
        text.push_str(&conflict_excerpts(&record.worktree, &conflicts));
    }
    text.push_str(
        "Do not commit, reset, rebase or switch branches with git: cms commits your work when \
         you finish.\n",
    );
    if !message.is_empty() {
        text.push('\n');
        text.push_str(message);
    }
    Ok((record, text))
}

/// Makes a finished task ready for an interactive session at the terminal (`cms attach`):
/// the same checks as a follow-up's, with the task's own limits, preset and allowed tools.
pub fn resume_attached(ws: &Workspace, name: &TaskName) -> Result<Started, TaskError> {
    let record = ws.task(name)?;
    if let Some(run) = &record.remote {
        return Err(TaskError::AttachRemote {
            name: record.name.clone(),
            runner: run.runner.clone(),
        });
    }
    check_can_continue(ws, &record, "attach")?;
    let settings = Settings::for_session(ws, &record, record.base)?;
    let claude = session::find_claude(&settings.config.claude_bin)?;
    let (sandboxed, sandbox_warning) = sandbox_plan(settings.config.sandbox)?;
    let limits = limits_of(&record);
    check_limits_left(&record, &limits)?;
    let (record, previous) = take_over(ws, &record, "attach", |current| {
        current.safety.limits = Some(limits);
        current.safety.sandboxed = sandboxed;
    })?;
    Ok(Started {
        record,
        claude,
        sandbox_warning,
        message: ATTACH_MESSAGE.to_owned(),
        resumed_from: Some(previous),
        settings,
    })
}

/// The commit message of an interactive session's work.
pub const ATTACH_MESSAGE: &str = "cms attach: interactive session";

/// Records the task `running` under this process, with `adjust` applied, under the task's
/// lock and after checking again that it may go on (another cms may have taken it over since
/// it was read). Returns the new record and the one it replaced, which a failed start puts
/// back.
fn take_over(
    ws: &Workspace,
    record: &TaskRecord,
    action: &str,
    adjust: impl FnOnce(&mut TaskRecord),
) -> Result<(TaskRecord, TaskRecord), TaskError> {
    ws.store.with_task_lock(&record.name, || {
        let mut current = ws.store.load(&record.name)?;
        if current != *record {
            check_can_continue(ws, &current, action)?;
        }
        let previous = current.clone();
        current.status = Status::Running;
        current.error = None;
        current.permission_denials.clear();
        current.stopped_commands.clear();
        adjust(&mut current);
        current.supervisor = Some(session::current_supervisor());
        current.updated_at = now_rfc3339();
        ws.store.save(&mut current)?;
        Ok::<_, TaskError>((current, previous))
    })?
}

/// Refuses what cannot be followed up (`action` says how, for the message): a running,
/// merged or discarded task, one that never had a session, one whose worktree is gone or left
/// its branch.
fn check_can_continue(ws: &Workspace, record: &TaskRecord, action: &str) -> Result<(), TaskError> {
    ensure_not_running(record, action)?;
    if record.status.is_closed() {
        return Err(TaskError::Closed {
            name: record.name.clone(),
            status: record.status,
        });
    }
    if record.session_id.is_none() {
        return Err(TaskError::NoSession(record.name.clone()));
    }
    if !record.worktree.is_dir() {
        return Err(TaskError::NoWorktree {
            name: record.name.clone(),
            path: record.worktree.clone(),
        });
    }
    ensure_on_branch(ws, record)
}

/// The task's recorded limits.
fn limits_of(record: &TaskRecord) -> Limits {
    // A record from before limits were recorded gets the defaults, as a new task would.
    record.safety.limits.unwrap_or_default()
}

/// The task's limits with the ones given on the command line in their place.
fn raised_limits(record: &TaskRecord, opts: &ContinueOptions) -> Limits {
    let mut limits = limits_of(record);
    if let Some(cost) = opts.max_cost_usd {
        limits.max_cost_usd = cost;
    }
    if let Some(turns) = opts.max_turns {
        limits.max_turns = turns;
    }
    if let Some(duration) = opts.max_duration {
        limits.max_duration = duration;
    }
    limits
}

/// A task that has used up a limit gets no new process until the limit is raised: claude
/// would be started only to be stopped at once, or worse, paid for a turn past the limit.
fn check_limits_left(record: &TaskRecord, limits: &Limits) -> Result<(), TaskError> {
    let used_up = |limit: &'static str, used: String, allowed: String, flag: &'static str| {
        Err(TaskError::LimitUsedUp {
            name: record.name.clone(),
            limit,
            used,
            allowed,
            flag,
        })
    };
    if record.cost_usd >= limits.max_cost_usd {
        return used_up(
            "cost",
            crate::report::format_cost(record.cost_usd),
            format!("${}", limits.max_cost_usd),
            "--max-cost",
        );
    }
    if record.turns >= limits.max_turns {
        return used_up(
            "turn",
            record.turns.to_string(),
            limits.max_turns.to_string(),
            "--max-turns",
        );
    }
    if u128::from(record.duration_ms) >= limits.max_duration.as_millis() {
        return used_up(
            "time",
            humantime::format_duration(Duration::from_secs(record.duration_ms / 1000)).to_string(),
            humantime::format_duration(Duration::from_secs(limits.max_duration.as_secs()))
                .to_string(),
            "--max-duration",
        );
    }
    Ok(())
}

/// How many lines of conflicts the follow-up message quotes at most.
const CONFLICT_EXCERPT_LINES: usize = 400;

/// The conflicted regions of each file (with two lines of context), as they are on disk.
fn conflict_excerpts(worktree: &std::path::Path, files: &[String]) -> String {
    let mut out = String::new();
    let mut budget = CONFLICT_EXCERPT_LINES;
    for file in files {
        let Ok(text) = std::fs::read_to_string(worktree.join(file)) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut shown = vec![false; lines.len()];
        let mut inside = false;
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("<<<<<<< ") {
                inside = true;
                for s in shown.iter_mut().take(i + 1).skip(i.saturating_sub(2)) {
                    *s = true;
                }
            }
            if inside {
                shown[i] = true;
            }
            if line.starts_with(">>>>>>> ") {
                inside = false;
                for s in shown.iter_mut().skip(i).take(3) {
                    *s = true;
                }
            }
        }
        out.push_str(&format!(
            "\n{file} (conflicted parts, line numbers as in the file):\n"
        ));
        let mut last = None;
        for (i, line) in lines.iter().enumerate().filter(|(i, _)| shown[*i]) {
            if budget == 0 {
                out.push_str("[more conflicts not shown: read the files]\n");
                return out;
            }
            if last.is_some_and(|l: usize| l + 1 != i) {
                out.push_str("...\n");
            }
            out.push_str(&format!("{:>5}  {line}\n", i + 1));
            last = Some(i);
            budget -= 1;
        }
    }
    out
}
