//! What gc removes from the store: archived records, the loose-object copies and plugin
//! exports of sessions that are over, and the transcripts and locks no task owns.

use super::{Gc, Removal, disk_usage};
use crate::git;
use crate::store::{TaskName, TaskRecord};
use crate::task::TaskError;

impl Gc<'_> {
    /// Archived records (with their transcripts) older than `--older-than`.
    pub(super) fn archived(&mut self) -> Result<(), TaskError> {
        let (archived, _unreadable) = self.ws.store.archived_with_files()?;
        for old in archived {
            if !self.is_old(&old.record.updated_at) {
                continue;
            }
            for path in old.files {
                let bytes = disk_usage(&path);
                if !self.opts.dry_run
                    && let Err(err) = std::fs::remove_file(&path)
                {
                    self.keep(old.record.name.as_str(), err.to_string());
                    continue;
                }
                self.remove(Removal {
                    kind: "archived_record",
                    task: Some(old.record.name.to_string()),
                    path: Some(path),
                    branch: None,
                    bytes,
                });
            }
        }
        Ok(())
    }

    /// Loose-object copies of sessions no live task runs: what they hold that the repository
    /// lost is linked back first.
    pub(super) fn object_backups(&mut self, records: &[TaskRecord]) {
        for (path, task, token) in self.ws.store.object_backups() {
            let live = records.iter().any(|r| {
                r.status.is_live()
                    && r.name.as_str() == task
                    && r.supervisor.is_some_and(|s| s.token == token)
            });
            if live {
                continue;
            }
            let bytes = disk_usage(&path);
            if !self.opts.dry_run {
                git::objects::restore_leftover(&self.ws.repo.common_dir, &path);
            }
            self.remove(Removal {
                kind: "object_backup",
                task: Some(task),
                path: Some(path),
                branch: None,
                bytes,
            });
        }
    }

    /// The skills and commands exported for tasks that are not running: each session writes
    /// its own afresh, so only a live one needs it.
    pub(super) fn plugin_exports(&mut self, records: &[TaskRecord]) {
        for (path, task) in self.ws.store.plugin_exports() {
            if records
                .iter()
                .any(|r| r.status.is_live() && r.name.as_str() == task)
            {
                continue;
            }
            let bytes = disk_usage(&path);
            if !self.opts.dry_run {
                let _ = std::fs::remove_dir_all(&path);
            }
            self.remove(Removal {
                kind: "plugin_export",
                task: Some(task),
                path: Some(path),
                branch: None,
                bytes,
            });
        }
    }

    /// Transcripts and locks of tasks that have no record (nor a `cms/<name>` branch): left by
    /// a task whose record was lost, or by an orphaned worktree removed above (those of
    /// orphans kept stay with them).
    pub(super) fn leftovers(&mut self) {
        let store = &self.ws.store;
        let marked: Vec<TaskName> = store.discarding().into_iter().map(|m| m.name).collect();
        for (name, path) in store.task_files() {
            let listed = self
                .report
                .removed
                .iter()
                .any(|r| r.path.as_ref() == Some(&path));
            let kept = self.report.kept.iter().any(|k| k.task == name.as_str());
            // A `cms/<name>` branch left without a record keeps its transcripts: they are
            // what tells the user what is on it.
            let has_branch = self.ws.repo.branch_exists(&name.branch());
            if listed || kept || has_branch || store.exists(&name) || marked.contains(&name) {
                continue;
            }
            let bytes = disk_usage(&path);
            if !self.opts.dry_run {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => {
                        self.keep(name.as_str(), err.to_string());
                        continue;
                    }
                }
            }
            let is_lock = path.extension().is_some_and(|e| e == "lock");
            self.remove(Removal {
                kind: if is_lock { "lock" } else { "log" },
                task: Some(name.to_string()),
                path: Some(path),
                branch: None,
                bytes,
            });
        }
    }
}
