//! The checks on a task's change: the diff against its base, and the git metadata and user
//! checkouts it must leave alone.

use std::path::{Path, PathBuf};

use super::kind;
use super::paths::{Rules, check_relative, normalize};
use crate::git::snapshot::{MODE_SUBMODULE, MODE_SYMLINK};
use crate::git::state::{self, Fingerprint};
use crate::git::{self, GitError, Oid, Repo, TreeChange};
use crate::store::Violation;

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
                        kind: kind::SUBMODULE.into(),
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
                kind: kind::SYMLINK.into(),
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

/// What must not change while a task runs: the user's checkouts and the git metadata.
#[derive(Debug, Clone)]
pub struct Baseline {
    checkouts: Vec<(PathBuf, Fingerprint)>,
    metadata: Fingerprint,
    common_dir: PathBuf,
    worktree: PathBuf,
}

impl Baseline {
    /// Fingerprints `checkouts` (the user's: the main one and the one cms was started from)
    /// and the git metadata shared with the task's `worktree`.
    pub fn capture(
        common_dir: &Path,
        worktree: &Path,
        checkouts: &[PathBuf],
    ) -> Result<Baseline, GitError> {
        let mut fingerprints = Vec::new();
        for checkout in checkouts {
            if fingerprints.iter().any(|(p, _)| p == checkout) {
                continue;
            }
            fingerprints.push((checkout.clone(), state::checkout_state(checkout)?));
        }
        Ok(Baseline {
            checkouts: fingerprints,
            metadata: state::metadata_state(common_dir, worktree),
            common_dir: common_dir.to_owned(),
            worktree: worktree.to_owned(),
        })
    }

    /// Everything that changed since the capture, as violations.
    pub fn changes(&self) -> Vec<Violation> {
        let mut violations = Vec::new();
        let metadata = state::metadata_state(&self.common_dir, &self.worktree);
        for path in state::differences(&self.metadata, &metadata) {
            violations.push(Violation {
                kind: kind::GIT_METADATA.into(),
                path: path.to_owned(),
                detail: format!(
                    "git metadata {path} changed while the task ran; it can run code or \
                     redirect git in your repository"
                ),
            });
        }
        for (checkout, before) in &self.checkouts {
            let after = match state::checkout_state(checkout) {
                Ok(after) => after,
                Err(err) => {
                    violations.push(Violation {
                        kind: kind::MAIN_CHECKOUT.into(),
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
                violations.push(Violation {
                    kind: kind::MAIN_CHECKOUT.into(),
                    path: shown.display().to_string(),
                    detail: format!(
                        "{} changed in your checkout {} while the task ran (by the task, or by \
                         you)",
                        path,
                        checkout.display()
                    ),
                });
            }
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
