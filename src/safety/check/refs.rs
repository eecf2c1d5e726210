//! The refs' part of the checks around a session: which ref changes a task could have made,
//! told apart from the user's and cms's own by where its sandbox let it write and by the
//! reflogs it could not.

use super::{Baseline, Changes, TaskNow, abbrev, unsandboxed};
use crate::git::state::{self, Fingerprint};
use crate::vocab::{Violation, ViolationKind};

impl Baseline {
    /// Compares the refs. The task's own branch may move. Sandboxed, the task could only
    /// create loose refs where its sandbox left the folder writable (the folders leading to
    /// its branch), which also shadows a ref that was only packed: a new ref there is a
    /// warning (the user's `git branch` makes the same), a packed ref moved there without
    /// git's reflog showing the move is a violation, and every other change is not its doing.
    /// Unsandboxed, every change is a warning. cms puts no ref back: the ref may be someone
    /// else's work.
    /// The refs' part of the changes, apart from [`Baseline::changes`] so that the caller can
    /// hold the lock under which tasks create their branches for this part alone.
    pub fn ref_changes(&self, changes: &mut Changes, task_now: &dyn Fn(&str) -> TaskNow) {
        let after = match state::refs_state(&self.around.common_dir) {
            Ok(after) => after,
            Err(err) => {
                changes.warnings.push(Violation {
                    kind: ViolationKind::GitRef,
                    path: "refs".to_owned(),
                    detail: format!("cms could not list the refs after the task: {err}"),
                });
                return;
            }
        };
        if self.sandboxed() {
            self.unlogged_reverts(changes, &after);
        }
        let own = self.around.branch_ref.as_str();
        for name in state::differences(&self.refs, &after) {
            if name == own {
                continue;
            }
            let before = self.refs.get(name);
            let now = after.get(name);
            let task = self
                .around
                .quiet_tasks
                .iter()
                .find(|t| t.branch_ref == name);
            let other_task = name
                .strip_prefix("refs/heads/cms/")
                .filter(|_| task.is_none());
            match task {
                Some(task) if task_now(&task.name) != TaskNow::Quiet => continue,
                // A task that was running, or started since, moves its own branch.
                None if other_task.is_some_and(|t| task_now(t) != TaskNow::Unknown) => continue,
                _ => {}
            }
            let short = name.strip_prefix("refs/heads/").unwrap_or(name);
            let subject = match task {
                Some(task) => format!("branch {short} of task '{}'", task.name),
                None => short.to_owned(),
            };
            let what = match (before, now) {
                (Some(b), Some(n)) => format!("moved from {} to {}", abbrev(b), abbrev(n)),
                (Some(b), None) => format!("(at {}) was deleted", abbrev(b)),
                (None, Some(n)) => format!("was created at {}", abbrev(n)),
                (None, None) => continue,
            };
            let kind = if task.is_some() {
                ViolationKind::OtherTask
            } else {
                ViolationKind::GitRef
            };
            let entry = |detail: String| Violation {
                kind,
                path: name.to_owned(),
                detail,
            };
            if !self.sandboxed() {
                changes.warnings.push(unsandboxed(entry(format!(
                    "{subject} {what}; cms left it as it is"
                ))));
                continue;
            }
            let loose = self.around.common_dir.join(name);
            // A ref that had a loose file was denied to the sandbox file by file, and a packed
            // one cannot be deleted without rewriting `packed-refs`, which is denied too.
            if !self.could_write(&loose) || now.is_none() {
                continue;
            }
            if now.is_some_and(|n| self.reflog_shows(name, n)) {
                continue;
            }
            let folder = name.rsplit_once('/').map_or(name, |(dir, _)| dir);
            if before.is_none() {
                changes.warnings.push(entry(format!(
                    "{subject} {what} while the task ran; the sandbox lets the task create \
                     refs in {folder}/, and so can you: cms left it as it is"
                )));
            } else {
                changes.violations.push(entry(format!(
                    "{subject} {what} while the task ran; it was packed, so the task's \
                     sandbox could shadow it with a loose ref in {folder}/, and git's reflog \
                     does not show the move; cms left it as it is"
                )));
            }
        }
    }

    /// Whether `name`'s reflog, which the sandbox kept read-only, gained an entry since the
    /// capture that moved it to `oid`: then git moved it there, from outside the sandbox.
    fn reflog_shows(&self, name: &str, oid: &str) -> bool {
        self.reflog_since(name)
            .is_some_and(|new| new.iter().any(|n| n == oid))
    }

    /// The values `name`'s reflog says git moved it to since the capture, oldest first, if the
    /// reflog is still the file that was denied (git appends in place) and grew.
    fn reflog_since(&self, name: &str) -> Option<Vec<String>> {
        use std::io::{Read, Seek};
        use std::os::unix::fs::MetadataExt;
        let &(ino, len) = self.reflogs.get(name)?;
        let path = self.around.common_dir.join("logs").join(name);
        let mut file = std::fs::File::open(&path).ok()?;
        if !file
            .metadata()
            .is_ok_and(|m| m.ino() == ino && m.len() > len)
        {
            return None;
        }
        let mut text = String::new();
        file.seek(std::io::SeekFrom::Start(len)).ok()?;
        file.read_to_string(&mut text).ok()?;
        Some(
            text.lines()
                .filter_map(|line| line.split(' ').nth(1).map(str::to_owned))
                .collect(),
        )
    }

    /// Packed refs git moved while the task ran (their reflog grew) that no longer read what
    /// git last moved them to: git writes a moved packed ref as a loose file, in a folder the
    /// sandbox leaves writable, and deleting that file brings the packed value back.
    fn unlogged_reverts(&self, changes: &mut Changes, after: &Fingerprint) {
        for name in self.reflogs.keys() {
            if name == &self.around.branch_ref || self.refs.get(name) != after.get(name) {
                continue;
            }
            let Some(last) = self.reflog_since(name).and_then(|mut n| n.pop()) else {
                continue;
            };
            let Some(now) = after.get(name).filter(|now| **now != last) else {
                continue;
            };
            let short = name.strip_prefix("refs/heads/").unwrap_or(name);
            changes.violations.push(Violation {
                kind: ViolationKind::GitRef,
                path: name.clone(),
                detail: format!(
                    "{short} reads {} again though git moved it to {} while the task ran; it \
                     was packed, so the loose ref git wrote was in a folder the task's sandbox \
                     could write; cms left it as it is (the move is in its reflog)",
                    abbrev(now),
                    abbrev(&last)
                ),
            });
        }
    }
}
