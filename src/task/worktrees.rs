//! What each linked worktree of the repository is to cms: a task's, an orphan cms made, one
//! waiting in the warm pool, or the user's. `gc` acts on this and nothing else decides it.

use std::path::PathBuf;

use super::start::lock_reason;
use crate::git::{self, worktree::WorktreeEntry};
use crate::store::TaskName;

/// What a linked worktree of the repository is to cms.
#[derive(Debug, Clone)]
pub enum WorktreeKind {
    /// The worktree a task's record names.
    Task(TaskName),
    /// A worktree cms made for a task (its lock reason says so) that has no record.
    Orphan(TaskName),
    /// A worktree waiting in the warm pool (`cms pool` manages it).
    Pool,
    /// Anything else: the user's own, never touched.
    User,
}

/// A linked worktree, what it is to cms, and whether its folder is gone.
#[derive(Debug, Clone)]
pub struct ClassifiedWorktree {
    pub entry: WorktreeEntry,
    pub kind: WorktreeKind,
    pub missing: bool,
}

/// Tells the repository's linked worktrees apart: a task's (a record names its path; `tasks`
/// are each record's worktree and name), an orphan cms made (locked `cms task <name>` but no
/// record names it), or the user's. The main checkout and bare entries are left out.
pub fn classify_worktrees(
    entries: Vec<WorktreeEntry>,
    tasks: &[(PathBuf, TaskName)],
) -> Vec<ClassifiedWorktree> {
    entries
        .into_iter()
        .skip(1)
        .filter(|entry| !entry.bare)
        .map(|entry| {
            let path = git::canonical(&entry.path);
            let by_path = tasks.iter().find(|(worktree, _)| *worktree == path);
            let cms_name = entry
                .lock_reason
                .as_deref()
                .and_then(|reason| reason.strip_prefix(lock_reason("").as_str()))
                .and_then(|name| TaskName::parse(name).ok());
            let kind = match (by_path, cms_name) {
                (Some((_, name)), _) => WorktreeKind::Task(name.clone()),
                (None, Some(name)) => WorktreeKind::Orphan(name),
                (None, None) if entry.lock_reason.as_deref() == Some(super::pool::POOL_REASON) => {
                    WorktreeKind::Pool
                }
                (None, None) => WorktreeKind::User,
            };
            ClassifiedWorktree {
                missing: !entry.path.exists(),
                entry,
                kind,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{TaskName, WorktreeEntry, WorktreeKind, classify_worktrees};
    use std::path::PathBuf;

    fn entry(path: &str, lock_reason: Option<&str>) -> WorktreeEntry {
        WorktreeEntry {
            path: PathBuf::from(path),
            locked: lock_reason.is_some(),
            lock_reason: lock_reason.map(str::to_owned),
            ..WorktreeEntry::default()
        }
    }

    #[test]
    fn worktrees_are_told_apart_by_record_path_then_lock_reason() {
        let tasks = [(
            PathBuf::from("/nowhere/w/mine"),
            TaskName::parse("mine").unwrap(),
        )];
        let bare = WorktreeEntry {
            bare: true,
            ..entry("/nowhere/bare", None)
        };
        let entries = vec![
            entry("/nowhere/main", None),
            entry("/nowhere/w/mine", Some("cms task mine")),
            entry("/nowhere/w/lost", Some("cms task lost")),
            entry("/nowhere/theirs", Some("on a USB stick")),
            entry("/nowhere/plain", None),
            bare,
        ];
        let kinds: Vec<String> = classify_worktrees(entries, &tasks)
            .into_iter()
            .map(|w| match w.kind {
                WorktreeKind::Task(name) => format!("task {name}"),
                WorktreeKind::Orphan(name) => format!("orphan {name}"),
                WorktreeKind::User => format!("user {}", w.entry.path.display()),
                WorktreeKind::Pool => format!("pool {}", w.entry.path.display()),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "task mine",
                "orphan lost",
                "user /nowhere/theirs",
                "user /nowhere/plain"
            ]
        );
    }
}
