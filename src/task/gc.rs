//! `cms gc`: reconciling the task records with git's list of worktrees, and removing what cms
//! made that nothing needs any more.
//!
//! What goes, and when:
//! - the worktree and branch of a merged or discarded task, and a worktree cms made for a task
//!   that has no record (an orphan, recognized by its lock reason `cms task <name>`), at once,
//!   but only when the work in them is in their target branch (`--force` drops it anyway);
//! - the record, transcripts and lock of a merged or discarded task, and archived records,
//!   once older than `--older-than` (30 days by default: they are the history `list --all`
//!   shows);
//! - git's entries of worktrees whose folder was deleted by hand (`git worktree prune`, after
//!   unlocking those cms locked), the loose-object copies of sessions that are over, the
//!   skills and commands exported for tasks that are not running, and the lock files of tasks
//!   that no longer exist.
//!
//! Open tasks (completed, failed, interrupted, ...) are the user's to merge or discard: gc
//! reports their size and never removes them, `--force` or not; running and waiting ones are
//! not even measured against anything. The one function that tells worktrees apart is
//! [`classify_worktrees`].

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::git;
use crate::store::{TaskName, TaskRecord};
use crate::vocab::Status;
use crate::workspace::Workspace;

use super::error::TaskError;
use super::open::{
    delete_task_branch, is_tampered, plan_checkout_removal, remove_planned_worktree, unmerged_files,
};
use super::worktrees::{ClassifiedWorktree, WorktreeKind, classify_worktrees};

mod store;

/// Why gc leaves a worktree whose git admin dir is not git's own: removing it through git would
/// follow what the session planted.
const TAMPERED: &str = "its git admin dir was tampered with, so cms runs no git in its worktree; \
                        `cms discard` its task, or remove it by hand";

/// How long the records of merged and discarded tasks are kept by default.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// What the user asked `cms gc` for.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Report what would be removed, removing nothing.
    pub dry_run: bool,
    /// Records of closed tasks (and archived ones) older than this go.
    pub older_than: Duration,
    /// Remove the worktrees and branches of closed and orphaned tasks even with unmerged work.
    pub force: bool,
}

/// One thing gc removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    /// `worktree`, `branch`, `worktree_entry`, `record`, `log`, `archived_record`, `lock`,
    /// `object_backup` or `plugin_export`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Disk space it used.
    pub bytes: u64,
}

/// Something gc considered and left, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub task: String,
    pub reason: String,
}

/// A task's worktree and the disk space it uses.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub task: String,
    /// The record's status; `None` for an orphaned worktree.
    pub status: Option<Status>,
    pub worktree: Option<PathBuf>,
    pub bytes: u64,
}

/// What `cms gc` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub tasks: Vec<Usage>,
    pub removed: Vec<Removal>,
    pub kept: Vec<Kept>,
    /// The space the removals free.
    pub freed_bytes: u64,
}

/// Reconciles and cleans up; see the module's documentation for what goes.
pub fn gc(ws: &Workspace, opts: GcOptions) -> Result<GcReport, TaskError> {
    // Under the refs lock: no task is started (or archived) while gc decides and removes.
    ws.store.with_refs_lock(|| {
        let mut run = Gc {
            ws,
            opts,
            report: GcReport {
                dry_run: opts.dry_run,
                ..GcReport::default()
            },
            prune: false,
        };
        run.collect()?;
        Ok(run.report)
    })?
}

struct Gc<'a> {
    ws: &'a Workspace,
    opts: GcOptions,
    report: GcReport,
    /// Whether `git worktree prune` should run at the end.
    prune: bool,
}

impl Gc<'_> {
    fn collect(&mut self) -> Result<(), TaskError> {
        let ws = self.ws;
        let (records, _unreadable) = ws.tasks()?;
        let tasks: Vec<(PathBuf, TaskName)> = records
            .iter()
            .map(|r| (r.worktree.clone(), r.name.clone()))
            .collect();
        let worktrees = classify_worktrees(git::worktree::list(&ws.repo.common_dir)?, &tasks);
        for record in &records {
            self.task(record, &worktrees)?;
        }
        for worktree in &worktrees {
            match &worktree.kind {
                WorktreeKind::Orphan(name) => self.orphan(name, worktree, &records)?,
                WorktreeKind::User if worktree.entry.prunable => {
                    self.remove(Removal {
                        kind: "worktree_entry",
                        task: None,
                        path: Some(worktree.entry.path.clone()),
                        branch: None,
                        bytes: 0,
                    });
                    self.prune = true;
                }
                WorktreeKind::Task(_) | WorktreeKind::User | WorktreeKind::Pool => {}
            }
        }
        if self.prune && !self.opts.dry_run {
            git::worktree::prune(&ws.repo.common_dir)?;
        }
        self.archived()?;
        self.object_backups(&records);
        self.plugin_exports(&records);
        self.leftovers();
        Ok(())
    }

    fn remove(&mut self, removal: Removal) {
        self.report.freed_bytes += removal.bytes;
        self.report.removed.push(removal);
    }

    fn keep(&mut self, task: &str, reason: String) {
        self.report.kept.push(Kept {
            task: task.to_owned(),
            reason,
        });
    }

    fn task(
        &mut self,
        record: &TaskRecord,
        worktrees: &[ClassifiedWorktree],
    ) -> Result<(), TaskError> {
        let ws = self.ws;
        let registered = worktrees
            .iter()
            .find(|w| matches!(&w.kind, WorktreeKind::Task(name) if *name == record.name));
        let bytes = if record.worktree.is_dir() {
            disk_usage(&record.worktree)
        } else {
            0
        };
        self.report.tasks.push(Usage {
            task: record.name.to_string(),
            status: Some(record.status),
            worktree: record.worktree.is_dir().then(|| record.worktree.clone()),
            bytes,
        });
        if record.status.is_live() {
            return Ok(());
        }
        // A worktree folder deleted by hand: git keeps its entry while cms's lock is on it.
        if let Some(worktree) = registered.filter(|w| w.missing) {
            self.forget_missing(record.name.as_str(), worktree)?;
        }
        if !record.status.is_closed() {
            // An open task is the user's to merge or discard; say what is left of it.
            if !record.worktree.is_dir() {
                let name = record.name.as_str();
                let reason = if ws.repo.branch_exists(&record.branch) {
                    format!(
                        "its worktree is gone; its work is on branch {}, which `cms merge {name}` \
                         takes",
                        record.branch
                    )
                } else {
                    format!("its worktree and branch are gone; `cms discard {name}` closes it")
                };
                self.keep(name, reason);
            }
            return Ok(());
        }
        let has_checkout =
            registered.is_some_and(|w| !w.missing) || ws.repo.branch_exists(&record.branch);
        if has_checkout && !self.remove_closed_checkout(record, bytes)? {
            return Ok(());
        }
        if self.is_old(&record.updated_at) {
            self.remove_history(record);
        }
        Ok(())
    }

    /// Unlocks and prunes the entry of a cms worktree whose folder is gone: with the folder
    /// went anything uncommitted, so forgetting the entry loses nothing, and git refuses to
    /// delete a branch an entry still has checked out.
    fn forget_missing(
        &mut self,
        task: &str,
        worktree: &ClassifiedWorktree,
    ) -> Result<(), TaskError> {
        if !self.opts.dry_run {
            git::worktree::remove(&self.ws.repo.common_dir, &worktree.entry.path)?;
        }
        self.remove(Removal {
            kind: "worktree_entry",
            task: Some(task.to_owned()),
            path: Some(worktree.entry.path.clone()),
            branch: None,
            bytes: 0,
        });
        Ok(())
    }

    /// Removes a closed task's worktree and branch unless they hold work its target lacks (and
    /// no `--force`); returns whether they are gone.
    fn remove_closed_checkout(
        &mut self,
        record: &TaskRecord,
        bytes: u64,
    ) -> Result<bool, TaskError> {
        let ws = self.ws;
        let name = record.name.as_str();
        if is_tampered(ws, record) {
            self.keep(name, TAMPERED.to_owned());
            return Ok(false);
        }
        if !self.opts.force {
            let unmerged = unmerged_files(ws, record)?;
            if unmerged > 0 {
                self.keep(
                    name,
                    format!(
                        "its worktree or branch holds changes to {unmerged} file(s) that are not \
                         merged; --force removes them"
                    ),
                );
                return Ok(false);
            }
        }
        let plan = match plan_checkout_removal(ws, record, self.opts.force) {
            Ok(plan) => plan,
            Err(err) => {
                self.keep(name, err.to_string());
                return Ok(false);
            }
        };
        let had_worktree = record.worktree.is_dir();
        let had_branch = ws.repo.branch_exists(&record.branch);
        if !self.opts.dry_run {
            remove_planned_worktree(ws, &plan)?;
            delete_task_branch(ws, record)?;
        }
        if had_worktree {
            self.remove(Removal {
                kind: "worktree",
                task: Some(name.to_owned()),
                path: Some(record.worktree.clone()),
                branch: None,
                bytes,
            });
        }
        if had_branch {
            self.remove(Removal {
                kind: "branch",
                task: Some(name.to_owned()),
                path: None,
                branch: Some(record.branch.clone()),
                bytes: 0,
            });
        }
        Ok(true)
    }

    /// Removes a closed task's record, transcripts and lock.
    fn remove_history(&mut self, record: &TaskRecord) {
        let store = &self.ws.store;
        let name = &record.name;
        let files = [
            ("record", store.record_path(name)),
            ("log", store.log_path(name)),
            ("log", store.stderr_path(name)),
            ("log", store.supervisor_log_path(name)),
            ("lock", store.task_lock_path(name)),
        ];
        for (kind, path) in files {
            if path.exists() {
                self.remove(Removal {
                    kind,
                    task: Some(name.to_string()),
                    bytes: disk_usage(&path),
                    path: Some(path),
                    branch: None,
                });
            }
        }
        if !self.opts.dry_run
            && let Err(err) = store.remove(name)
        {
            self.keep(name.as_str(), err.to_string());
        }
    }

    /// A worktree cms made for a task that has no record: removed with its `cms/<name>` branch
    /// when a branch of the user's already holds its work, or with `--force`.
    fn orphan(
        &mut self,
        name: &TaskName,
        worktree: &ClassifiedWorktree,
        records: &[TaskRecord],
    ) -> Result<(), TaskError> {
        let ws = self.ws;
        let path = &worktree.entry.path;
        let bytes = if worktree.missing {
            0
        } else {
            disk_usage(path)
        };
        self.report.tasks.push(Usage {
            task: name.to_string(),
            status: None,
            worktree: (!worktree.missing).then(|| path.clone()),
            bytes,
        });
        if ws.store.exists(name) {
            // Its record is there but unreadable: not an orphan, and not gc's to judge.
            self.keep(
                name.as_str(),
                "its record is unreadable; fix or delete it, then run gc again".to_owned(),
            );
            return Ok(());
        }
        // Its own branch, unless a task with a record has that branch now.
        let branch = worktree
            .entry
            .branch
            .as_deref()
            .and_then(|b| b.strip_prefix("refs/heads/"))
            .filter(|b| *b == name.branch() && !records.iter().any(|r| r.branch == *b))
            .map(str::to_owned);
        if worktree.missing {
            self.forget_missing(name.as_str(), worktree)?;
        }
        let task = (!worktree.missing).then(|| git::TaskGit::open(&ws.repo.common_dir, path));
        if let Some(Err(_)) = task {
            self.keep(name.as_str(), TAMPERED.to_owned());
            return Ok(());
        }
        if !self.opts.force && !orphan_work_is_merged(ws, worktree, task.as_ref())? {
            let reason = match (&branch, worktree.missing) {
                (Some(branch), true) => format!(
                    "its branch {branch} has no record and holds work that is in no branch of \
                     yours; --force deletes it"
                ),
                _ => format!(
                    "the worktree {} that cms made for it has no record, and its work is in no \
                     branch of yours; --force removes it",
                    path.display()
                ),
            };
            if branch.is_some() || !worktree.missing {
                self.keep(name.as_str(), reason);
            }
            return Ok(());
        }
        if !self.opts.dry_run {
            if !worktree.missing {
                git::worktree::remove(&ws.repo.common_dir, path)?;
            }
            if let Some(branch) = &branch {
                git::worktree::delete_branch(&ws.repo.common_dir, branch)?;
            }
        }
        if !worktree.missing {
            self.remove(Removal {
                kind: "worktree",
                task: Some(name.to_string()),
                path: Some(path.clone()),
                branch: None,
                bytes,
            });
        }
        if let Some(branch) = branch {
            self.remove(Removal {
                kind: "branch",
                task: Some(name.to_string()),
                path: None,
                branch: Some(branch),
                bytes: 0,
            });
        }
        Ok(())
    }

    /// Whether an RFC 3339 time is at least `--older-than` ago; an unreadable one is not.
    fn is_old(&self, time: &str) -> bool {
        humantime::parse_rfc3339_weak(time)
            .ok()
            .and_then(|then| SystemTime::now().duration_since(then).ok())
            .is_some_and(|age| age >= self.opts.older_than)
    }
}

/// Whether some branch that is not a task's holds all the work of an orphaned worktree: its
/// commits and, if its folder is there, its uncommitted changes.
fn orphan_work_is_merged(
    ws: &Workspace,
    worktree: &ClassifiedWorktree,
    task: Option<&Result<git::TaskGit, git::GitError>>,
) -> Result<bool, TaskError> {
    let Some(tip) = worktree
        .entry
        .head
        .as_deref()
        .and_then(|h| git::Oid::from_str(h).ok())
    else {
        return Ok(false);
    };
    let to = match task {
        Some(Ok(task)) => git::snapshot::snapshot_tree(&ws.repo, task, &[])?,
        _ => tip,
    };
    for branch in ws.repo.local_branches()? {
        if branch.starts_with("cms/") {
            continue;
        }
        let Ok(target) = ws.repo.branch_tip(&branch) else {
            continue;
        };
        let Ok(from) = ws.repo.merge_base(tip, target) else {
            continue;
        };
        if git::snapshot::change_is_in(&ws.repo, from, to, target)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The disk space a folder uses, its subfolders included (symlinks not followed).
fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = allocated(&meta);
    if !meta.is_dir() {
        return own;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    own + entries
        .flatten()
        .map(|entry| disk_usage(&entry.path()))
        .sum::<u64>()
}

/// The space a file takes on disk: its allocated blocks where the platform says.
fn allocated(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::blocks(meta) * 512
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}
