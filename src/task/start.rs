//! Starting a task: its name, worktree, branch and record, all made or none.

use super::error::TaskError;
use super::settings::Settings;
use super::started::{Started, TaskOptions};
use crate::git;
use crate::safety::sandbox::{self, SandboxMode};
use crate::session::{self};
use crate::store::{NewTask, TaskName, TaskRecord};
use crate::vocab::Limits;
use crate::workspace::Workspace;

/// Creates the task's branch, worktree and record. Fails without leaving any of them behind.
pub fn start(ws: &Workspace, opts: &TaskOptions) -> Result<Started, TaskError> {
    let prompt = opts.prompt.trim();
    if prompt.is_empty() {
        return Err(TaskError::EmptyPrompt);
    }
    let head = ws.repo.head()?;
    let (base, base_branch) = match &opts.base {
        Some(rev) => ws.repo.resolve(rev)?,
        None => (head.oid(), head.branch().map(str::to_owned)),
    };
    let settings = Settings::for_start(ws, base, &opts.protect)?;
    let config = &settings.config;
    let preset = match opts.preset {
        Some(preset) => preset,
        None => config.preset,
    };
    let limits = Limits {
        max_cost_usd: opts.max_cost_usd.unwrap_or(config.limits.max_cost_usd),
        max_turns: opts.max_turns.unwrap_or(config.limits.max_turns),
        max_duration: opts.max_duration.unwrap_or(config.limits.max_duration),
    };
    // Before anything is made: a missing claude, or a runner that cannot be reached, must
    // not leave a worktree behind.
    let remote = super::remote::plan(ws, config, opts.runner.as_deref())?;
    let (claude, sandboxed, sandbox_warning) = match &remote {
        // The worker finds its claude and always runs Bash sandboxed (`sandbox = required`).
        Some((_, runner)) => (std::path::PathBuf::from(&runner.claude), true, None),
        None => {
            let claude = session::find_claude(&config.claude_bin)?;
            let (sandboxed, warning) = sandbox_plan(opts.sandbox.unwrap_or(config.sandbox))?;
            (claude, sandboxed, warning)
        }
    };
    let remote = remote.map(|(run, _)| run);
    let worktrees = ws.worktrees_dir(config)?;

    ws.store.with_refs_lock(|| {
        let config = &settings.config;
        let name = pick_name(ws, opts, prompt, &worktrees)?;
        let worktree = worktrees.join(name.as_str());
        let branch = name.branch();
        std::fs::create_dir_all(&worktrees).map_err(|source| TaskError::WorktreesFolder {
            path: worktrees.clone(),
            source,
        })?;
        let reason = lock_reason(name.as_str());
        // A worktree from the warm pool costs a rename and the files changed since it was
        // warmed; without one, a full checkout.
        let pooled = super::pool::take(ws, &worktree, &branch, base, &reason)?;
        if !pooled {
            git::worktree::add(&ws.repo.common_dir, &worktree, &branch, base, &reason)?;
        }
        // Ready to run: the ignored files it needs, before anything else sees it.
        let furnished = super::prepare::copy_included(ws, config, &worktree)
            .and_then(|_| super::prepare::link_shared(ws, config, &worktree));
        let links = match furnished {
            Ok(links) => links,
            Err(err) => {
                let _ = git::worktree::remove(&ws.repo.common_dir, &worktree);
                let _ = git::worktree::delete_branch(&ws.repo.common_dir, &branch);
                return Err(err);
            }
        };
        let mut record = TaskRecord::starting(NewTask {
            name: name.clone(),
            prompt: prompt.to_owned(),
            branch,
            worktree: git::canonical(&worktree),
            base,
            base_branch,
            model: opts.model.clone().or(config.model.clone()),
            preset,
            limits,
            protected: settings.rules.globs().to_vec(),
            sandboxed,
            supervisor: session::current_supervisor(),
        });
        record.attempt = opts.attempt.clone();
        record.remote = remote;
        record.links = links;
        if let Err(err) = ws.store.create(&mut record) {
            undo_start(ws, &record);
            return Err(err.into());
        }
        if config.pool_size > 0 {
            // Refilled after this task took one, while its session starts.
            super::pool::refill_in_background(ws);
        }
        Ok(Started {
            message: prompt.to_owned(),
            record,
            claude,
            sandbox_warning,
            resumed_from: None,
            settings,
        })
    })?
}

/// The user's name if free, else a unique slug of the prompt.
fn pick_name(
    ws: &Workspace,
    opts: &TaskOptions,
    prompt: &str,
    worktrees: &std::path::Path,
) -> Result<TaskName, TaskError> {
    let taken = |name: &TaskName| {
        ws.store.exists(name)
            || ws.repo.branch_exists(&name.branch())
            || worktrees.join(name.as_str()).exists()
    };
    if let Some(name) = &opts.name {
        // A merged or discarded task's name can be used again (its record is archived below).
        let closed = |name| ws.store.load(name).is_ok_and(|r| r.status.is_closed());
        if ws.store.exists(name) && !closed(name) {
            return Err(TaskError::NameTaken(name.clone()));
        }
        if ws.repo.branch_exists(&name.branch()) {
            // A task merged with --keep leaves its branch; that is the user's to delete.
            let kept = ws.store.exists(name) && closed(name);
            return Err(TaskError::BranchTaken {
                branch: name.branch(),
                kept_by_closed_task: kept,
            });
        }
        let path = worktrees.join(name.as_str());
        if path.exists() {
            return Err(TaskError::WorktreePathTaken(path));
        }
        if ws.store.exists(name) {
            ws.store.archive(name)?;
        }
        return Ok(name.clone());
    }
    let slug = TaskName::slug(prompt)
        .unwrap_or_else(|| TaskName::parse("task").expect("'task' is a valid name"));
    Ok(TaskName::unique(&slug, taken))
}

/// The reason cms locks a task's worktree with, which also tells it apart from a worktree
/// someone else put at the same path.
pub(super) fn lock_reason(name: &str) -> String {
    format!("cms task {name}")
}

/// Whether the task's Bash will be sandboxed, and the warning to give when `auto` finds no
/// sandbox. `required` without one is refused here, before anything is made.
pub(super) fn sandbox_plan(mode: SandboxMode) -> Result<(bool, Option<String>), TaskError> {
    if mode == SandboxMode::Off {
        return Ok((false, None));
    }
    match sandbox::availability() {
        Ok(()) => Ok((true, None)),
        Err(why) if mode == SandboxMode::Required => Err(TaskError::SandboxRequired(why)),
        Err(why) => Ok((
            false,
            Some(format!(
                "the task's Bash runs unsandboxed ({why}); {}, or set [safety] sandbox = \"off\"",
                sandbox::INSTALL_HINT
            )),
        )),
    }
}

/// Removes what a failed start made. Best effort: the original error is what the user needs.
pub(super) fn undo_start(ws: &Workspace, record: &TaskRecord) {
    let _ = git::worktree::remove(&ws.repo.common_dir, &record.worktree);
    let _ = git::worktree::delete_branch(&ws.repo.common_dir, &record.branch);
    let _ = ws.store.remove(&record.name);
}

#[cfg(test)]
mod tests {
    use super::{SandboxMode, lock_reason, sandbox, sandbox_plan};

    #[test]
    fn sandbox_off_is_never_sandboxed_and_never_warns() {
        assert_eq!(sandbox_plan(SandboxMode::Off).unwrap(), (false, None));
    }

    #[test]
    fn auto_sandboxes_where_available_and_otherwise_warns_instead_of_failing() {
        let (sandboxed, warning) = sandbox_plan(SandboxMode::Auto).unwrap();
        assert_eq!(sandboxed, sandbox::availability().is_ok());
        assert_eq!(warning.is_some(), !sandboxed);
    }

    #[test]
    fn the_lock_reason_names_the_task() {
        assert_eq!(lock_reason("fix-auth"), "cms task fix-auth");
    }
}
