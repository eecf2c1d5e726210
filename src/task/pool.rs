//! The warm pool: worktrees checked out ahead of time at the base branch's commit, so a new
//! task takes one (a rename and a checkout of what changed since) instead of checking out the
//! whole repository while the user waits.
//!
//! A pooled worktree is a detached checkout under `<worktrees>/.pool/`, locked with the
//! reason [`POOL_REASON`]; what `git worktree list` shows is the pool. Task names cannot start
//! with `.`, so no task's worktree is ever there.
//!
//! The pool hands out exactly its base: an unsandboxed session (`--sandbox off`) runs as the
//! user and can write into waiting worktrees, so the pool keeps an epoch (`<store>/pool/epoch`)
//! that every unsandboxed session bumps when it starts and again when it ends, with a marker
//! (`<store>/pool/unsandboxed/<task>-<token>`) while it runs. A worktree is warmed into a folder
//! named after the epoch it was warmed in (`w-<epoch>-<random>`), and is handed out only when
//! that is still the epoch and no unsandboxed session runs: one that such a session could have
//! reached is never handed out and is removed by the next `cms pool warm`. A sandboxed
//! session cannot write a pooled worktree's files, but may write its admin dir under the
//! common dir (see [`admin_fingerprint`]), so that must still be as `warm` left it. Checking
//! costs a few file reads and stats, whatever the repository's size.

use std::path::{Path, PathBuf};

use super::error::TaskError;
use crate::config::Config;
use crate::git::{self, Oid};
use crate::workspace::Workspace;

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

/// Fills the pool up to `size` worktrees at `at` (under the refs lock), after removing the
/// waiting worktrees an unsandboxed session could have written. Adds none while such a session
/// runs. Returns how many were added.
pub fn warm(ws: &Workspace, config: &Config, size: usize, at: Oid) -> Result<usize, TaskError> {
    let dir = pool_dir(ws, config)?;
    std::fs::create_dir_all(&dir).map_err(|source| TaskError::WorktreesFolder {
        path: dir.clone(),
        source,
    })?;
    ws.store.with_refs_lock(|| {
        // Read before anything is made: a session that starts meanwhile bumps it, and what
        // this warms is then never handed out.
        let epoch = clean_epoch(ws);
        let mut have = 0;
        for pooled in pooled(ws)? {
            if epoch.is_some() && usable(ws, &pooled.path, epoch) {
                have += 1;
            } else {
                git::worktree::remove(&ws.repo.common_dir, &pooled.path)?;
                forget(ws, &pooled.path);
            }
        }
        let Some(epoch) = epoch else {
            return Ok(0);
        };
        let mut added = 0;
        for _ in have..size {
            let path = tempfile::Builder::new()
                .prefix(&format!("w-{epoch}-"))
                .tempdir_in(&dir)
                .map_err(|source| TaskError::WorktreesFolder {
                    path: dir.clone(),
                    source,
                })?
                .keep();
            // git wants to make the folder itself.
            let _ = std::fs::remove_dir(&path);
            git::worktree::add_detached(&ws.repo.common_dir, &path, at, POOL_REASON)?;
            remember(ws, &path);
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
            forget(ws, &pooled.path);
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
    // Only a worktree no unsandboxed session could have reached; the others wait for the
    // background refill to remove them, rather than the user waiting for it here.
    let Some(epoch) = clean_epoch(ws) else {
        return Ok(false);
    };
    let Some(pooled) = pooled(ws)?
        .into_iter()
        .find(|p| usable(ws, &p.path, Some(epoch)))
    else {
        return Ok(false);
    };
    let common = &ws.repo.common_dir;
    forget(ws, &pooled.path);
    git::worktree::relocate(common, &pooled.path, worktree, reason)?;
    let current = pooled
        .commit
        .as_deref()
        .and_then(|c| git::Oid::from_str(c).ok());
    let switched = git::TaskGit::open(common, worktree)
        .and_then(|task| git::worktree::switch_to_new_branch(&task, branch, current, base));
    if let Err(err) = switched {
        // Not a task's yet: give it back to nobody rather than leave a half-made task.
        let _ = git::worktree::remove(common, worktree);
        return Err(err.into());
    }
    Ok(true)
}

/// Where the pool keeps its epoch, its lock and the markers of unsandboxed sessions.
fn epoch_dir(ws: &Workspace) -> PathBuf {
    ws.store.root().join("pool")
}

fn read_epoch(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("epoch"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// The epoch a pooled worktree was warmed in, from its folder's name (`w-<epoch>-<random>`);
/// `None` for one from before epochs, which is never handed out.
fn epoch_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("w-")?.split_once('-')?.0.parse().ok()
}

/// Whether a pooled worktree may be handed out: warmed in `epoch`, and its admin dir exactly
/// as cms left it when it warmed it.
fn usable(ws: &Workspace, path: &Path, epoch: Option<u64>) -> bool {
    epoch.is_some()
        && epoch_of(path) == epoch
        && fingerprint_file(ws, path).is_some_and(|file| {
            let kept = std::fs::read_to_string(file).ok();
            kept.is_some() && kept == admin_fingerprint(path)
        })
}

/// Where the fingerprint of a pooled worktree's admin dir is kept: in the store, which no
/// sandboxed session can write.
fn fingerprint_file(ws: &Workspace, path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(epoch_dir(ws).join("warmed").join(name))
}

fn remember(ws: &Workspace, path: &Path) {
    // Made before the fingerprint, so a sandboxed session's start, which makes it where it is
    // missing (see `run::session_boundary`), leaves the admin dir as warmed.
    if let Ok(task) = git::TaskGit::open(&ws.repo.common_dir, path) {
        crate::safety::sandbox::prepare_private_dir(task.admin_dir());
    }
    let (Some(file), Some(print)) = (fingerprint_file(ws, path), admin_fingerprint(path)) else {
        return;
    };
    if let Some(dir) = file.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::store::write_atomic(&file, print.as_bytes());
    }
}

fn forget(ws: &Workspace, path: &Path) {
    if let Some(file) = fingerprint_file(ws, path) {
        let _ = std::fs::remove_file(file);
    }
}

/// Every entry of a worktree's admin dir (`<common>/worktrees/<name>`, found through the
/// worktree's `.git` file, which lies outside every sandbox) with its inode, size and change
/// time. A sandboxed session may write the admin dir of a worktree warmed after its sandbox
/// was set up (the common dir is writable but for the entries that existed then): a staged
/// file there, or another HEAD, would become the next task's work. The change time cannot be
/// set back, so any write shows; a dozen small entries make it cheap at any repository size.
fn admin_fingerprint(worktree: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let link = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let admin = PathBuf::from(link.strip_prefix("gitdir:")?.trim());
    let mut lines = Vec::new();
    let mut stack = vec![admin.clone()];
    while let Some(at) = stack.pop() {
        let meta = std::fs::symlink_metadata(&at).ok()?;
        let rel = at.strip_prefix(&admin).ok()?.display().to_string();
        lines.push(format!(
            "{rel}\t{:o} {} {} {}.{}",
            meta.mode(),
            meta.ino(),
            meta.len(),
            meta.ctime(),
            meta.ctime_nsec()
        ));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&at).ok()? {
                stack.push(entry.ok()?.path());
            }
        }
        if lines.len() > 1000 {
            return None;
        }
    }
    lines.sort();
    Some(lines.join("\n"))
}

/// Moves the epoch on, under the pool's own lock (two bumps at once must both count).
fn bump_epoch(dir: &Path) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
    else {
        return;
    };
    let mut lock = fd_lock::RwLock::new(file);
    let Ok(_guard) = lock.write() else {
        return;
    };
    let next = read_epoch(dir) + 1;
    let _ = crate::store::write_atomic(&dir.join("epoch"), next.to_string().as_bytes());
}

/// The current epoch when no unsandboxed session runs, else `None`. A marker whose supervisor
/// is gone (killed, so it never said it ended) ends its session here.
fn clean_epoch(ws: &Workspace) -> Option<u64> {
    let dir = epoch_dir(ws);
    let mut running = false;
    for entry in std::fs::read_dir(dir.join("unsandboxed"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let supervisor = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|text| serde_json::from_str::<crate::vocab::Supervisor>(&text).ok());
        match supervisor {
            Some(s) if crate::session::supervisor_alive(&s) => running = true,
            // Unreadable: being written, or damaged; either way not known to have ended.
            None if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.')) => {}
            _ => {
                bump_epoch(&dir);
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    (!running).then(|| read_epoch(&dir))
}

/// An unsandboxed session of a task, from its start to its end (when this is dropped): while
/// it lives no pooled worktree is handed out, and those warmed before its end never are.
pub struct Unsandboxed {
    dir: PathBuf,
    marker: PathBuf,
    /// The checkout to run `cms pool warm` in once the session has ended.
    refill: Option<PathBuf>,
}

impl Unsandboxed {
    /// Marks the session of `record` as running unsandboxed. `refill` refills the pool in the
    /// background once it has ended.
    pub fn begin(ws: &Workspace, record: &crate::store::TaskRecord, refill: bool) -> Unsandboxed {
        let dir = epoch_dir(ws);
        let token = record.supervisor.map_or(0, |s| s.token);
        let marker = dir
            .join("unsandboxed")
            .join(format!("{}-{token:016x}", record.name));
        let me = crate::session::current_supervisor();
        let text = serde_json::to_vec(&me).expect("a supervisor always serializes");
        if std::fs::create_dir_all(dir.join("unsandboxed")).is_ok() {
            let _ = crate::store::write_atomic(&marker, &text);
        }
        bump_epoch(&dir);
        Unsandboxed {
            dir,
            marker,
            refill: refill.then(|| ws.repo.checkout.clone()),
        }
    }
}

impl Drop for Unsandboxed {
    fn drop(&mut self) {
        bump_epoch(&self.dir);
        let _ = std::fs::remove_file(&self.marker);
        if let Some(checkout) = &self.refill {
            refill_in(checkout);
        }
    }
}

/// Starts `cms pool warm` in the background (no terminal, output discarded) so the pool is
/// refilled after a task took from it, without the user waiting.
pub fn refill_in_background(ws: &Workspace) {
    refill_in(&ws.repo.checkout);
}

fn refill_in(checkout: &Path) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["pool", "warm"])
        .current_dir(checkout)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    crate::platform::spawn::in_new_session(&mut cmd);
    if let Ok(mut child) = cmd.spawn() {
        // Reaped by a thread, so it never lingers as a zombie of a long-lived supervisor.
        std::thread::spawn(move || child.wait());
    }
}
