//! The checks on a task's change: the diff against its base, and the git metadata and user
//! checkouts it must leave alone.

use std::path::{Path, PathBuf};

use super::paths::{Rules, check_relative, normalize};
use crate::git::objects::LooseObjectBackup;
use crate::git::snapshot::{MODE_SUBMODULE, MODE_SYMLINK};
use crate::git::state::{self, Fingerprint};
use crate::git::{self, GitError, Oid, Repo, TreeChange};
use crate::vocab::{Violation, ViolationKind};

mod refs;

/// Adds to `all` the violations of `more` it does not have yet: one per kind and path, since
/// the same path seen from two checks (say, the recorded result and a re-check) is one
/// problem.
pub fn add_new(all: &mut Vec<Violation>, more: Vec<Violation>) {
    for violation in more {
        if !all
            .iter()
            .any(|v| v.kind == violation.kind && v.path == violation.path)
        {
            all.push(violation);
        }
    }
}

/// The violations in the change from tree-ish `from` to tree-ish `to`.
pub fn check_range(
    repo: &Repo,
    from: Oid,
    to: Oid,
    rules: &Rules,
) -> Result<Vec<Violation>, GitError> {
    let changes = git::snapshot::tree_changes(repo, from, to)?;
    Ok(check_changes(&changes, rules))
}

/// The violations in a list of tree changes: every path on either side of each change, the
/// targets of new symlinks, and submodule pointers over protected paths.
pub fn check_changes(changes: &[TreeChange], rules: &Rules) -> Vec<Violation> {
    let mut violations = Vec::new();
    for change in changes {
        let what = describe_change(change);
        let sides = [
            (change.old_path.as_deref(), change.old_mode),
            (change.new_path.as_deref(), change.new_mode),
        ];
        let mut seen: Vec<&str> = Vec::new();
        for (path, mode) in sides {
            let Some(path) = path else { continue };
            if seen.contains(&path) {
                continue;
            }
            seen.push(path);
            if mode == MODE_SUBMODULE {
                if let Some(glob) = rules.protecting_under(path) {
                    violations.push(Violation {
                        kind: ViolationKind::Submodule,
                        path: path.to_owned(),
                        detail: format!(
                            "submodule {path} {what}; its files are protected by '{glob}'"
                        ),
                    });
                }
                continue;
            }
            if let Some(mut violation) = check_relative(path, rules) {
                violation.detail = format!("{what}: {}", violation.detail);
                violations.push(violation);
            }
        }
        if let (Some(path), Some(target)) = (&change.new_path, &change.link_target)
            && change.new_mode == MODE_SYMLINK
            && let Some(problem) = symlink_problem(path, target, rules)
        {
            violations.push(Violation {
                kind: ViolationKind::Symlink,
                path: path.clone(),
                detail: format!("symlink {path} -> {target} {problem}"),
            });
        }
    }
    violations
}

fn describe_change(change: &TreeChange) -> String {
    match change.status {
        "renamed" | "copied" => format!(
            "{} from {}",
            change.status,
            change.old_path.as_deref().unwrap_or_default()
        ),
        "modified" if change.old_mode != change.new_mode => format!(
            "mode changed {:o} -> {:o}",
            change.old_mode, change.new_mode
        ),
        status => status.to_owned(),
    }
}

/// Why a symlink at `path` pointing at `target` is not allowed, if it is not.
fn symlink_problem(path: &str, target: &str, rules: &Rules) -> Option<String> {
    if target.starts_with('/') {
        return Some("points outside the repository".into());
    }
    let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let Some(resolved) = normalize(&format!("{parent}/{target}")) else {
        return Some("points outside the repository".into());
    };
    if resolved.is_empty() {
        return Some("points at the repository's root".into());
    }
    check_relative(&resolved, rules).map(|v| format!("points at {}", v.detail))
}

/// The state of another task's worktree, read through its checked admin dir (`None` when it
/// cannot be read or its admin dir is not git's own: cms runs no git there).
fn task_state(common_dir: &std::path::Path, worktree: &std::path::Path) -> Option<Fingerprint> {
    let task = git::TaskGit::open(common_dir, worktree).ok()?;
    state::task_state(&task).ok()
}

/// Another task that was not running when the session started: its worktree, branch and
/// record are nobody's business but the user's until it runs again.
#[derive(Debug, Clone)]
pub struct QuietTask {
    pub name: String,
    pub worktree: PathBuf,
    /// Its branch's full ref name (`refs/heads/cms/<name>`).
    pub branch_ref: String,
}

/// Everything a session must leave as it found it, besides its own worktree and branch.
#[derive(Debug, Clone)]
pub struct Surroundings {
    pub common_dir: PathBuf,
    /// The task's own worktree, whose git link and private config are still watched.
    pub worktree: PathBuf,
    /// The task's own branch's full ref name: the one ref its session may move.
    pub branch_ref: String,
    /// The user's checkouts: the main one and the one cms was started from.
    pub checkouts: Vec<PathBuf>,
    pub quiet_tasks: Vec<QuietTask>,
    /// Where to keep hard links to the loose objects while the session runs (a folder the
    /// sandbox keeps read-only), or `None` to keep none.
    pub object_backup: Option<PathBuf>,
    /// The paths the task's Bash sandbox kept read-only, exactly as claude was given them
    /// (`sandbox::git_deny_write`), or `None` when its Bash ran unsandboxed. A sandboxed task
    /// is blamed only for what it could write; an unsandboxed one is warned about the rest.
    pub sandbox_deny: Option<Vec<PathBuf>>,
}

/// What another task is when the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskNow {
    /// Not running, not merged or discarded, record unchanged: nothing may have touched it.
    Quiet,
    /// Running, merged, discarded or followed up since: its own session, cms or the user
    /// changes it.
    Busy,
    /// No such task.
    Unknown,
}

/// What changed around a session, found by [`Baseline::changes`] and
/// [`Baseline::ref_changes`].
#[derive(Debug, Default)]
pub struct Changes {
    /// What the task did, or could alone have done: its violations.
    pub violations: Vec<Violation>,
    /// What changed where the task may or may not have been the one: everything outside its
    /// own surfaces when it ran unsandboxed, new refs where its sandbox lets it create them.
    /// Reported, never held against the task's merge.
    pub warnings: Vec<Violation>,
}

/// What must not change while a task runs: the user's checkouts (ignored files included), the
/// repository's refs and objects, the git metadata, and the other tasks that were not running.
#[derive(Debug)]
pub struct Baseline {
    around: Surroundings,
    objects: Option<LooseObjectBackup>,
    checkouts: Vec<(PathBuf, Fingerprint)>,
    metadata: Fingerprint,
    /// The main worktree's state files in the common dir (`MERGE_HEAD`, `rebase-merge/`, ...).
    main_state: Fingerprint,
    refs: Fingerprint,
    /// For each ref a sandboxed task could rewrite (no loose file to deny: packed, so a loose
    /// file would shadow it) whose reflog it could not: the reflog's inode and length, so a
    /// move git made from outside the sandbox shows as an entry appended since.
    reflogs: std::collections::BTreeMap<String, (u64, u64)>,
    quiet: Vec<Option<Fingerprint>>,
}

impl Baseline {
    /// Fingerprints everything in `around` before the session starts.
    pub fn capture(around: Surroundings) -> Result<Baseline, GitError> {
        let mut checkouts: Vec<(PathBuf, Fingerprint)> = Vec::new();
        for checkout in &around.checkouts {
            if checkouts.iter().any(|(p, _)| p == checkout) {
                continue;
            }
            checkouts.push((checkout.clone(), state::checkout_state(checkout)?));
        }
        // A quiet task's worktree may be gone (a crash, a manual removal); its branch is
        // still watched through the refs.
        let quiet = around
            .quiet_tasks
            .iter()
            .map(|task| {
                task.worktree
                    .is_dir()
                    .then(|| task_state(&around.common_dir, &task.worktree))
                    .flatten()
            })
            .collect();
        // Without the backup (a full disk, say) the session still runs: a deleted object is
        // then still seen, as a checkout or task that no longer reads.
        let objects = around
            .object_backup
            .as_deref()
            .and_then(|dir| LooseObjectBackup::take(&around.common_dir, dir).ok());
        let refs = state::refs_state(&around.common_dir)?;
        let mut baseline = Baseline {
            objects,
            metadata: state::metadata_state(&around.common_dir, &around.worktree),
            main_state: state::main_worktree_state(&around.common_dir),
            refs,
            reflogs: Default::default(),
            checkouts,
            quiet,
            around,
        };
        if baseline.around.sandbox_deny.is_some() {
            let reflogs = baseline
                .refs
                .keys()
                .filter(|name| baseline.could_write(&baseline.around.common_dir.join(name)))
                .filter_map(|name| {
                    let log = baseline.around.common_dir.join("logs").join(name);
                    if baseline.could_write(&log) {
                        return None;
                    }
                    let meta = log.symlink_metadata().ok().filter(|m| m.is_file())?;
                    use std::os::unix::fs::MetadataExt;
                    Some((name.clone(), (meta.ino(), meta.len())))
                })
                .collect();
            baseline.reflogs = reflogs;
        }
        Ok(baseline)
    }

    /// Whether the task's session could have written `path`: anywhere when it ran
    /// unsandboxed; sandboxed, only its own worktree and what its sandbox left writable of the
    /// git common dir (its temp dir holds nothing cms watches). The user's checkouts, other
    /// tasks' worktrees and everything the sandbox denied are out of its reach.
    pub fn could_write(&self, path: &Path) -> bool {
        let Some(deny) = &self.around.sandbox_deny else {
            return true;
        };
        if path.starts_with(&self.around.worktree) {
            return true;
        }
        path.starts_with(&self.around.common_dir) && !deny.iter().any(|d| path.starts_with(d))
    }

    /// Whether the task's Bash ran in the sandbox.
    pub fn sandboxed(&self) -> bool {
        self.around.sandbox_deny.is_some()
    }

    /// Files a change found outside the task's own surfaces, at `at`: a violation when the
    /// task could have made it (an unsandboxed task could have made any, but so could the
    /// user or cms, so it is a warning), nothing when its sandbox made it impossible.
    pub fn elsewhere(&self, changes: &mut Changes, at: &Path, violation: Violation) {
        if !self.sandboxed() {
            changes.warnings.push(unsandboxed(violation));
        } else if self.could_write(at) {
            changes.violations.push(violation);
        }
    }

    /// Puts back the loose objects the session deleted, as violations naming them (warnings
    /// when the task ran unsandboxed: the user's own git could have deleted them too). Run
    /// before [`Baseline::changes`], so that a checkout or task whose commits were deleted
    /// reads as it did. Putting an object back never loses anything, so it is done whoever
    /// deleted it.
    pub fn restore_objects(&self, changes: &mut Changes) {
        let Some(backup) = &self.objects else {
            return;
        };
        for id in backup.restore() {
            let objects = self.around.common_dir.join("objects");
            self.elsewhere(
                changes,
                &objects.join(&id[..2]),
                Violation {
                    kind: ViolationKind::GitObject,
                    path: id.clone(),
                    detail: format!(
                        "git object {id} was deleted while the task ran (the loose-object \
                         folders stay writable to its sandbox for its own commits); cms put it \
                         back from its own copy"
                    ),
                },
            );
        }
    }

    /// Everything that changed since the capture but the refs ([`Baseline::ref_changes`]).
    /// `task_now` says what another task is now:
    /// changes to a task the user has since started, merged or discarded are not the
    /// session's doing.
    pub fn changes(&self, changes: &mut Changes, task_now: &dyn Fn(&str) -> TaskNow) {
        let still_quiet = |name: &str| task_now(name) == TaskNow::Quiet;
        let common = &self.around.common_dir;
        let metadata = state::metadata_state(common, &self.around.worktree);
        for path in state::differences(&self.metadata, &metadata) {
            let own = path.starts_with(".git (worktree link)") || path.starts_with("worktrees/");
            let violation = Violation {
                kind: ViolationKind::GitMetadata,
                path: path.to_owned(),
                detail: format!(
                    "git metadata {path} changed while the task ran; it can run code or \
                     redirect git in your repository"
                ),
            };
            // The task's `.git` link and its admin dir are its own: whoever changed them, cms
            // will not run git through them as they are.
            if own {
                changes.violations.push(violation);
            } else {
                self.elsewhere(changes, &common.join(path), violation);
            }
        }
        // Made and removed by the user's own merges and rebases, and writable to a sandboxed
        // task too: who made a change cannot be told, so it is said, not held against it.
        let main_state = state::main_worktree_state(common);
        for path in state::differences(&self.main_state, &main_state) {
            let warning = Violation {
                kind: ViolationKind::GitMetadata,
                path: path.to_owned(),
                detail: format!(
                    "{path} in the git dir changed while the task ran; it decides what git does \
                     next in your main checkout (a merge's parents, a rebase's steps), and the \
                     task's sandbox could write it as well as you"
                ),
            };
            if self.sandboxed() {
                changes.warnings.push(warning);
            } else {
                self.elsewhere(changes, &common.join(path), warning);
            }
        }
        let own = self.around.branch_ref.as_str();
        // A worktree whose admin dir is not git's own is not asked anything: the session's
        // finish reports it (`git_admin`).
        let task = git::TaskGit::open(&self.around.common_dir, &self.around.worktree);
        match task.as_ref().map(state::head_ref) {
            Err(_) => {}
            Ok(Some(head)) if head == own => {}
            Ok(head) => changes.violations.push(Violation {
                kind: ViolationKind::TaskHead,
                path: head.clone().unwrap_or_else(|| "HEAD".to_owned()),
                detail: match head {
                    Some(other) => format!(
                        "the task's worktree left its branch {own} for {other}; cms only \
                         merges and commits {own}"
                    ),
                    None => format!(
                        "the task's worktree left its branch {own} (HEAD is detached); cms \
                         only merges and commits {own}"
                    ),
                },
            }),
        }
        for (checkout, before) in &self.checkouts {
            let after = match state::checkout_state(checkout) {
                Ok(after) => after,
                Err(err) => {
                    changes.warnings.push(Violation {
                        kind: ViolationKind::MainCheckout,
                        path: checkout.display().to_string(),
                        detail: format!(
                            "cms could not read {} after the task: {err}",
                            checkout.display()
                        ),
                    });
                    continue;
                }
            };
            for path in state::differences(before, &after) {
                let shown = checkout.join(path);
                // The task's own files, if its worktree lies inside the checkout, are judged
                // by its diff.
                if shown.starts_with(&self.around.worktree) {
                    continue;
                }
                // HEAD's file is the checkout's own (denied to a sandbox); the branch it
                // names moving is judged with the refs.
                let at = if path == "HEAD" || path == "HEAD ref" {
                    common.join("HEAD")
                } else {
                    shown.clone()
                };
                self.elsewhere(
                    changes,
                    &at,
                    Violation {
                        kind: ViolationKind::MainCheckout,
                        path: shown.display().to_string(),
                        detail: format!(
                            "{} changed in your checkout {} while the task ran",
                            path,
                            checkout.display()
                        ),
                    },
                );
            }
        }
        for (task, before) in self.around.quiet_tasks.iter().zip(&self.quiet) {
            let Some(before) = before else { continue };
            if !still_quiet(&task.name) {
                continue;
            }
            let after = task_state(&self.around.common_dir, &task.worktree).unwrap_or_default();
            for path in state::differences(before, &after) {
                let shown = task.worktree.join(path);
                self.elsewhere(
                    changes,
                    &shown,
                    Violation {
                        kind: ViolationKind::OtherTask,
                        path: shown.display().to_string(),
                        detail: format!(
                            "{path} changed in task '{}''s worktree, which was not running",
                            task.name
                        ),
                    },
                );
            }
        }
    }
}

/// A change made while an unsandboxed task ran: the task, the user or cms could have made it.
fn unsandboxed(mut warning: Violation) -> Violation {
    warning.detail = format!("changed while an unsandboxed task ran: {}", warning.detail);
    warning
}

fn abbrev(oid: &str) -> &str {
    &oid[..oid.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::{
        Baseline, Changes, MODE_SUBMODULE, MODE_SYMLINK, Rules, Surroundings, TreeChange,
        Violation, ViolationKind, check_changes,
    };
    use std::path::PathBuf;

    fn change(status: &'static str, old: Option<&str>, new: Option<&str>) -> TreeChange {
        TreeChange {
            status,
            old_path: old.map(str::to_owned),
            new_path: new.map(str::to_owned),
            old_mode: if old.is_some() { 0o100644 } else { 0 },
            new_mode: if new.is_some() { 0o100644 } else { 0 },
            link_target: None,
        }
    }

    fn kinds(changes: &[TreeChange]) -> Vec<String> {
        let rules = Rules::new(&["infra/**"]).unwrap();
        check_changes(changes, &rules)
            .into_iter()
            .map(|v| format!("{} {}", v.kind, v.path))
            .collect()
    }

    #[test]
    fn a_sandboxed_task_could_write_its_worktree_and_the_undenied_git_dir_only() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let status = std::process::Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .arg(&repo)
            .status()
            .unwrap();
        assert!(status.success());
        let common = repo.join(".git");
        let worktree = dir.path().join("task");
        let around = |deny: Option<Vec<PathBuf>>| Surroundings {
            common_dir: common.clone(),
            worktree: worktree.clone(),
            branch_ref: "refs/heads/cms/task".to_owned(),
            checkouts: vec![repo.clone()],
            quiet_tasks: Vec::new(),
            object_backup: None,
            sandbox_deny: deny,
        };
        let deny = vec![common.join("cms"), common.join("refs/tags")];
        let sandboxed = Baseline::capture(around(Some(deny))).unwrap();
        assert!(sandboxed.could_write(&worktree.join("src/lib.rs")));
        assert!(sandboxed.could_write(&common.join("refs/heads/new")));
        assert!(!sandboxed.could_write(&common.join("refs/tags/v1")));
        assert!(!sandboxed.could_write(&common.join("cms/tasks/other.json")));
        assert!(!sandboxed.could_write(&repo.join(".env")));
        let unsandboxed = Baseline::capture(around(None)).unwrap();
        assert!(unsandboxed.could_write(&repo.join(".env")));
        // Unsandboxed, a change outside the task is a warning that says so.
        let mut changes = Changes::default();
        let change = Violation {
            kind: ViolationKind::MainCheckout,
            path: ".env".into(),
            detail: ".env changed".into(),
        };
        unsandboxed.elsewhere(&mut changes, &repo.join(".env"), change.clone());
        sandboxed.elsewhere(&mut changes, &repo.join(".env"), change);
        assert!(changes.violations.is_empty());
        assert_eq!(changes.warnings.len(), 1);
        assert_eq!(
            changes.warnings[0].detail,
            "changed while an unsandboxed task ran: .env changed"
        );
    }

    #[test]
    fn both_sides_of_a_rename_are_checked() {
        assert_eq!(
            kinds(&[change("renamed", Some("infra/a.tf"), Some("docs/a.tf"))]),
            ["protected_path infra/a.tf"]
        );
        assert_eq!(
            kinds(&[change("renamed", Some("docs/a.tf"), Some("infra/a.tf"))]),
            ["protected_path infra/a.tf"]
        );
        assert!(kinds(&[change("renamed", Some("a"), Some("b"))]).is_empty());
    }

    #[test]
    fn symlinks_to_protected_or_outside_paths_are_violations() {
        let link = |target: &str| TreeChange {
            new_mode: MODE_SYMLINK,
            link_target: Some(target.to_owned()),
            ..change("added", None, Some("docs/link"))
        };
        assert_eq!(kinds(&[link("../infra/x.tf")]), ["symlink docs/link"]);
        assert_eq!(kinds(&[link("../infra")]), ["symlink docs/link"]);
        assert_eq!(kinds(&[link("../../etc/passwd")]), ["symlink docs/link"]);
        assert_eq!(kinds(&[link("/etc/passwd")]), ["symlink docs/link"]);
        assert_eq!(kinds(&[link("../.git/config")]), ["symlink docs/link"]);
        assert!(kinds(&[link("../src/lib.rs")]).is_empty());
        assert!(kinds(&[link("readme.md")]).is_empty());
    }

    #[test]
    fn mode_changes_and_submodules_over_protected_paths_are_violations() {
        let chmod = TreeChange {
            new_mode: 0o100755,
            ..change("modified", Some("infra/run.sh"), Some("infra/run.sh"))
        };
        let found = check_changes(&[chmod], &Rules::new(&["infra/**"]).unwrap());
        assert!(
            found[0].detail.starts_with("mode changed 100644 -> 100755"),
            "{found:?}"
        );
        let submodule = TreeChange {
            old_mode: MODE_SUBMODULE,
            new_mode: MODE_SUBMODULE,
            ..change("modified", Some("infra"), Some("infra"))
        };
        assert_eq!(kinds(&[submodule]), ["submodule infra"]);
    }
}
