//! The warm pool: worktrees checked out ahead of time at the base branch's commit, so a new
//! task takes one (a rename and a checkout of what changed since) instead of checking out the
//! whole repository while the user waits.
//!
//! A pooled worktree is a detached checkout under `<worktrees>/.pool/`, locked with the
//! reason [`POOL_REASON`]; there is no other state, so what `git worktree list` shows is the
//! pool. Task names cannot start with `.`, so no task's worktree is ever there.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::git::{self, Oid};
use crate::workspace::Workspace;

use super::*;

/// The lock reason of a pooled worktree.
pub const POOL_REASON: &str = "cms pool";

/// One waiting worktree.
#[derive(Debug, Clone)]
pub struct Pooled {
    pub path: PathBuf,
    /// The commit it is checked out at.
    pub commit: Option<String>,
}

/// The pool's worktrees, oldest first.
pub fn pooled(ws: &Workspace) -> Result<Vec<Pooled>, TaskError> {
    let mut pool: Vec<Pooled> = git::worktree::list(&ws.repo.common_dir)?
        .into_iter()
        .filter(|e| e.lock_reason.as_deref() == Some(POOL_REASON) && e.path.is_dir())
        .map(|e| Pooled {
            commit: e.head,
            path: e.path,
        })
        .collect();
    pool.sort_by_key(|p| p.path.metadata().and_then(|m| m.modified()).ok());
    Ok(pool)
}

fn pool_dir(ws: &Workspace, config: &Config) -> Result<PathBuf, TaskError> {
    Ok(ws.worktrees_dir(config)?.join(".pool"))
}

/// Fills the pool up to `size` worktrees at `at` (under the refs lock). Returns how many
/// were added.
pub fn warm(ws: &Workspace, config: &Config, size: usize, at: Oid) -> Result<usize, TaskError> {
    let dir = pool_dir(ws, config)?;
    std::fs::create_dir_all(&dir).map_err(|source| TaskError::WorktreesFolder {
        path: dir.clone(),
        source,
    })?;
    ws.store.with_refs_lock(|| {
        let have = pooled(ws)?.len();
        let mut added = 0;
        for _ in have..size {
            let path = tempfile::Builder::new()
                .prefix("w-")
                .tempdir_in(&dir)
                .map_err(|source| TaskError::WorktreesFolder {
                    path: dir.clone(),
                    source,
                })?
                .keep();
            // git wants to make the folder itself.
            let _ = std::fs::remove_dir(&path);
            git::worktree::add_detached(&ws.repo.common_dir, &path, at, POOL_REASON)?;
            added += 1;
        }
        Ok(added)
    })?
}

/// Removes every pooled worktree. Returns how many.
pub fn drain(ws: &Workspace) -> Result<usize, TaskError> {
    ws.store.with_refs_lock(|| {
        let pool = pooled(ws)?;
        for pooled in &pool {
            git::worktree::remove(&ws.repo.common_dir, &pooled.path)?;
        }
        Ok(pool.len())
    })?
}

/// Takes a pooled worktree for a new task, if there is one: it moves to `worktree`, gets
/// `branch` at `base` and the task's lock `reason`. Must be called under the refs lock.
/// Returns whether one was taken; on `false` the caller makes the worktree as usual.
pub fn take(
    ws: &Workspace,
    worktree: &Path,
    branch: &str,
    base: Oid,
    reason: &str,
) -> Result<bool, TaskError> {
    // Pooled worktrees live beside the task's, under `.pool/`: a start with no pool there
    // costs one folder read rather than a `git worktree list`.
    let waiting = worktree
        .parent()
        .and_then(|dir| std::fs::read_dir(dir.join(".pool")).ok())
        .is_some_and(|mut entries| entries.next().is_some());
    if !waiting {
        return Ok(false);
    }
    let Some(pooled) = pooled(ws)?.into_iter().next() else {
        return Ok(false);
    };
    let common = &ws.repo.common_dir;
    git::worktree::relocate(common, &pooled.path, worktree, reason)?;
    let current = pooled
        .commit
        .as_deref()
        .and_then(|c| git::Oid::from_str(c).ok());
    if let Err(err) = git::worktree::switch_to_new_branch(worktree, branch, current, base) {
        // Not a task's yet: give it back to nobody rather than leave a half-made task.
        let _ = git::worktree::remove(common, worktree);
        return Err(err.into());
    }
    Ok(true)
}

/// Starts `cms pool warm` in the background (no terminal, output discarded) so the pool is
/// refilled after a task took from it, without the user waiting.
pub fn refill_in_background(ws: &Workspace) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["pool", "warm"])
        .current_dir(&ws.repo.checkout)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe and only affects the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    if let Ok(mut child) = cmd.spawn() {
        // Reaped by a thread, so it never lingers as a zombie of a long-lived supervisor.
        std::thread::spawn(move || child.wait());
    }
}
