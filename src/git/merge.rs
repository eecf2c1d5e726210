//! Merging a task branch into a target branch without ever leaving a half-merge.
//!
//! The result commit is computed in memory (libgit2 merges trees, nothing touches a working
//! tree), so a conflict is found before anything changes. The target branch then moves by
//! compare-and-swap (`git update-ref <new> <old>`), and if it is checked out somewhere that
//! checkout follows with a two-tree `git read-tree -m -u`: the same rule `git checkout` uses,
//! which carries the user's unrelated uncommitted edits across and refuses, before writing
//! anything, when the merge would overwrite one of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{MergeOptions, Oid, Signature};

use super::GitError;
use super::cmd::{git, run, run_text};
use super::repo::Repo;
use super::task_git::TaskGit;
use super::worktree;

/// How the task's commits land on the target branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeMode {
    /// Fast-forward when possible, a merge commit otherwise.
    #[default]
    Auto,
    /// Always a merge commit.
    NoFastForward,
    /// One new commit with the task's whole change.
    Squash,
    /// The task's commits replayed on top of the target.
    Rebase,
}

/// What a merge will do, computed before anything changes.
#[derive(Debug, Clone)]
pub struct MergePlan {
    pub target_branch: String,
    pub old_tip: Oid,
    pub new_tip: Oid,
    pub kind: MergeKind,
    /// The checkout that has the target branch checked out and will follow it.
    pub checkout: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    UpToDate,
    FastForward,
    MergeCommit,
    Squash,
    Rebase,
}

impl MergeKind {
    pub fn parse(text: &str) -> Option<MergeKind> {
        [
            MergeKind::UpToDate,
            MergeKind::FastForward,
            MergeKind::MergeCommit,
            MergeKind::Squash,
            MergeKind::Rebase,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MergeKind::UpToDate => "up_to_date",
            MergeKind::FastForward => "fast_forward",
            MergeKind::MergeCommit => "merge_commit",
            MergeKind::Squash => "squash",
            MergeKind::Rebase => "rebase",
        }
    }
}

/// Messages for the commits a merge may create.
pub struct MergeMessages {
    pub merge: String,
    pub squash: String,
}

/// Computes the merge of `task_tip` into `target_branch`, writing only objects (no refs, no
/// files). Fails with [`GitError::MergeConflict`] listing the files on a conflict.
pub fn plan(
    repo: &Repo,
    target_branch: &str,
    task_tip: Oid,
    mode: MergeMode,
    messages: &MergeMessages,
) -> Result<MergePlan, GitError> {
    let raw = repo.raw();
    let old_tip = repo.branch_tip(target_branch)?;
    let checkout = worktree::checkout_of_branch(&repo.common_dir, target_branch)?;
    let plan = |new_tip, kind| MergePlan {
        target_branch: target_branch.to_owned(),
        old_tip,
        new_tip,
        kind,
        checkout: checkout.clone(),
    };
    if repo.is_ancestor(task_tip, old_tip)? {
        return Ok(plan(old_tip, MergeKind::UpToDate));
    }
    let can_fast_forward = repo.is_ancestor(old_tip, task_tip)?;
    let sig = signature(raw)?;
    let new_tip = match mode {
        MergeMode::Auto if can_fast_forward => return Ok(plan(task_tip, MergeKind::FastForward)),
        MergeMode::Rebase if can_fast_forward => return Ok(plan(task_tip, MergeKind::Rebase)),
        MergeMode::Auto | MergeMode::NoFastForward => {
            let tree = merged_tree(raw, old_tip, task_tip)?;
            commit(raw, &sig, &messages.merge, tree, &[old_tip, task_tip])?
        }
        MergeMode::Squash => {
            let tree = merged_tree(raw, old_tip, task_tip)?;
            commit(raw, &sig, &messages.squash, tree, &[old_tip])?
        }
        MergeMode::Rebase => rebase(repo, &sig, old_tip, task_tip)?,
    };
    let kind = match mode {
        MergeMode::Squash => MergeKind::Squash,
        MergeMode::Rebase => MergeKind::Rebase,
        _ => MergeKind::MergeCommit,
    };
    Ok(plan(new_tip, kind))
}

/// Moves the target branch to the planned commit, updating its checkout if it has one.
/// Nothing changes if the checkout's uncommitted work would be overwritten. `step` is called
/// between the two changes (the checkout, then the branch), where a crash leaves a state
/// [`state`] recognizes and [`finish`] or [`undo`] settles.
pub fn apply(
    repo: &Repo,
    plan: &MergePlan,
    reflog: &str,
    step: impl Fn(&str),
) -> Result<(), GitError> {
    if plan.kind == MergeKind::UpToDate {
        return Ok(());
    }
    // Planned against a tip that has moved since (another merge, the user): the checkout's
    // files are the new tip's, and moving them "from the old tip" would undo that move.
    if repo.branch_tip(&plan.target_branch)? != plan.old_tip {
        return Err(GitError::BranchMoved {
            branch: plan.target_branch.clone(),
        });
    }
    if let Some(checkout) = &plan.checkout {
        check_checkout_clean_where_changed(repo, checkout, plan)?;
        read_tree(checkout, plan.old_tip, plan.new_tip, true)?;
        // The checkout first: a branch that moved under files that did not would show the
        // user the merge undone in `git status`.
        read_tree(checkout, plan.old_tip, plan.new_tip, false)?;
        step("merge:checkout-updated");
    }
    if let Err(err) = move_branch(repo, plan, reflog) {
        // The user moved the branch meanwhile: what this merge wrote goes back.
        let _ = undo_checkout(repo, plan);
        return Err(err);
    }
    step("merge:branch-moved");
    Ok(())
}

/// Where an interrupted [`apply`] left the target branch and its checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyState {
    /// Nothing changed yet.
    Before,
    /// The checkout has the merge's files but the branch has not moved.
    CheckoutOnly,
    /// The branch moved (and so had its checkout).
    Done,
    /// The branch is at neither tip: someone moved it since.
    Elsewhere,
}

/// How far [`apply`] got for `plan`.
pub fn state(repo: &Repo, plan: &MergePlan) -> Result<ApplyState, GitError> {
    let tip = repo.branch_tip(&plan.target_branch)?;
    if tip == plan.new_tip {
        return Ok(ApplyState::Done);
    }
    if tip != plan.old_tip {
        return Ok(ApplyState::Elsewhere);
    }
    match &plan.checkout {
        Some(checkout) if index_matches(repo, checkout, plan, plan.new_tip)? => {
            Ok(ApplyState::CheckoutOnly)
        }
        _ => Ok(ApplyState::Before),
    }
}

/// Completes an [`apply`] that updated the checkout but did not move the branch.
pub fn finish(repo: &Repo, plan: &MergePlan, reflog: &str) -> Result<(), GitError> {
    move_branch(repo, plan, reflog)
}

/// Takes back what an [`apply`] whose branch never moved (it moved elsewhere) wrote in the
/// checkout, and only that: a file the merge changed goes back to the old tip's version when
/// its index entry and its file are still exactly what the merge wrote and the checkout's
/// HEAD (wherever it is now) does not hold that version too. A file the user or another merge
/// changed since, or that the new HEAD carries, is left as it is.
pub fn undo_checkout(repo: &Repo, plan: &MergePlan) -> Result<(), GitError> {
    let Some(checkout) = &plan.checkout else {
        return Ok(());
    };
    let paths = changed_paths(repo, plan)?;
    if paths.is_empty() {
        return Ok(());
    }
    let listed = |args: &[&str]| -> Result<String, GitError> {
        let mut cmd = git(checkout);
        cmd.env("GIT_LITERAL_PATHSPECS", "1")
            .args(args)
            .arg("--")
            .args(&paths);
        Ok(String::from_utf8_lossy(&run(cmd)?).into_owned())
    };
    let index = entries(&listed(&["ls-files", "--stage", "-z"])?, 1);
    let new = entries(
        &listed(&["ls-tree", "-r", "-z", &plan.new_tip.to_string()])?,
        2,
    );
    let head = entries(&listed(&["ls-tree", "-r", "-z", "HEAD"])?, 2);
    let edited: BTreeSet<String> = listed(&["diff-files", "--name-only", "-z"])?
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let ours: Vec<&String> = paths
        .iter()
        .filter(|p| index.get(*p) == new.get(*p) && head.get(*p) != new.get(*p))
        .filter(|p| !edited.contains(*p))
        // Gone in the merge and in the index: a file there now is someone else's.
        .filter(|p| index.contains_key(*p) || std::fs::symlink_metadata(checkout.join(p)).is_err())
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    let mut cmd = git(checkout);
    // No overlay: a file the merge added and the old tip lacks is removed.
    cmd.env("GIT_LITERAL_PATHSPECS", "1")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "restore",
            "--staged",
            "--worktree",
        ])
        .arg(format!("--source={}", plan.old_tip))
        .arg("--")
        .args(ours);
    run(cmd).map(drop)
}

/// `path -> (mode, object)` from `ls-files --stage -z` (`oid_field` 1) or `ls-tree -r -z`
/// (`oid_field` 2) output.
fn entries(text: &str, oid_field: usize) -> std::collections::BTreeMap<String, (String, String)> {
    text.split('\0')
        .filter_map(|entry| {
            let (meta, path) = entry.split_once('\t')?;
            let fields: Vec<&str> = meta.split(' ').collect();
            let mode = (*fields.first()?).to_owned();
            let oid = (*fields.get(oid_field)?).to_owned();
            Some((path.to_owned(), (mode, oid)))
        })
        .collect()
}

fn move_branch(repo: &Repo, plan: &MergePlan, reflog: &str) -> Result<(), GitError> {
    let refname = format!("refs/heads/{}", plan.target_branch);
    let mut cmd = git(&repo.common_dir);
    cmd.args(["update-ref", "-m", reflog, &refname])
        .arg(plan.new_tip.to_string())
        .arg(plan.old_tip.to_string());
    run(cmd).map(drop).map_err(|_| GitError::BranchMoved {
        branch: plan.target_branch.clone(),
    })
}

/// Whether the checkout's index has `tip`'s version of every file the merge changes (the
/// user's unrelated staged changes do not count).
fn index_matches(
    repo: &Repo,
    checkout: &Path,
    plan: &MergePlan,
    tip: Oid,
) -> Result<bool, GitError> {
    let paths = changed_paths(repo, plan)?;
    if paths.is_empty() {
        return Ok(true);
    }
    let mut cmd = git(checkout);
    // Paths are literal: a file named `*` must not match every file.
    cmd.env("GIT_LITERAL_PATHSPECS", "1")
        .args(["diff-index", "--cached", "--quiet", "--no-renames"])
        .arg(tip.to_string())
        .arg("--")
        .args(&paths);
    Ok(cmd.status()?.success())
}

fn changed_paths(repo: &Repo, plan: &MergePlan) -> Result<BTreeSet<String>, GitError> {
    Ok(
        super::snapshot::changed_files(repo, plan.old_tip, plan.new_tip)?
            .into_iter()
            .flat_map(|c| [Some(c.path), c.old_path].into_iter().flatten())
            .collect(),
    )
}

/// In a task's `worktree` (clean, on its branch at `from`): moves the branch to `onto` and
/// applies what `from` changed since their merge base as uncommitted work, conflicts marked in
/// the files as git marks them. Returns the conflicted paths. On a failure other than a
/// conflict, the worktree is put back at `from`.
pub fn squash_onto(task: &TaskGit, onto: Oid, from: Oid) -> Result<Vec<String>, GitError> {
    let mut reset = task.git();
    reset
        .args(["reset", "--quiet", "--keep"])
        .arg(onto.to_string());
    run(reset)?;
    let mut merge = task.git();
    // No hooks (the task's git runs none) and no commit: the agent resolves, cms commits at
    // the session's end.
    merge
        .args(["merge", "--quiet", "--squash"])
        .arg(from.to_string());
    let merged = run(merge);
    let mut unmerged = task.git();
    unmerged.args(["diff", "--name-only", "--diff-filter=U", "-z"]);
    let conflicts: Vec<String> = String::from_utf8_lossy(&run(unmerged)?)
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    match merged {
        Err(err) if conflicts.is_empty() => {
            let _ = undo_squash_onto(task, from);
            Err(err)
        }
        _ => Ok(conflicts),
    }
}

/// Puts a task's worktree and branch back at `from` after a [`squash_onto`] whose session never
/// ran (nothing but cms's own squash is in the worktree then).
pub fn undo_squash_onto(task: &TaskGit, from: Oid) -> Result<(), GitError> {
    let mut cmd = task.git();
    cmd.args(["reset", "--quiet", "--hard"])
        .arg(from.to_string());
    run(cmd).map(drop)
}

/// Points `refname` at `oid`, creating it if needed.
pub fn set_ref(common_dir: &Path, refname: &str, oid: Oid, reflog: &str) -> Result<(), GitError> {
    let mut cmd = git(common_dir);
    cmd.args(["update-ref", "-m", reflog, refname])
        .arg(oid.to_string());
    run(cmd).map(drop)
}

/// Deletes `refname` if it exists.
pub fn delete_ref(common_dir: &Path, refname: &str) -> Result<(), GitError> {
    let mut cmd = git(common_dir);
    cmd.args(["update-ref", "-d", refname]);
    run(cmd).map(drop)
}

/// Refuses, listing the files, when a file the merge changes has uncommitted edits in the
/// checkout (staged, unstaged, or an untracked file in the way).
fn check_checkout_clean_where_changed(
    repo: &Repo,
    checkout: &Path,
    plan: &MergePlan,
) -> Result<(), GitError> {
    let changed = changed_paths(repo, plan)?;
    let status = run_text(
        checkout,
        [
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        ],
    )?;
    let dirty: BTreeSet<String> = status
        .split('\0')
        .filter(|e| e.len() > 3)
        .map(|e| e[3..].to_owned())
        .collect();
    let files: Vec<String> = changed
        .iter()
        .filter(|path| dirty.contains(*path) || dirty.iter().any(|d| is_dir_entry_over(d, path)))
        .cloned()
        .collect();
    if files.is_empty() {
        Ok(())
    } else {
        Err(GitError::WouldOverwrite {
            checkout: checkout.to_owned(),
            files,
        })
    }
}

/// Whether a dirty entry and a changed path collide as folder and file (`a` vs `a/b`).
fn is_dir_entry_over(dirty: &str, changed: &str) -> bool {
    let d = dirty.trim_end_matches('/');
    changed.starts_with(&format!("{d}/")) || d.starts_with(&format!("{changed}/"))
}

/// Two-tree `read-tree -m -u`: moves index and files from `old` to `new`, keeping unrelated
/// local changes. With `dry_run` it only checks that it would succeed.
fn read_tree(checkout: &Path, old: Oid, new: Oid, dry_run: bool) -> Result<(), GitError> {
    let mut cmd = git(checkout);
    cmd.args(["read-tree", "-m", "-u"]);
    if dry_run {
        cmd.arg("-n");
    }
    cmd.arg(old.to_string()).arg(new.to_string());
    run(cmd).map(drop).map_err(|err| match err {
        GitError::Command { stderr, .. } => GitError::WouldOverwrite {
            checkout: checkout.to_owned(),
            files: paths_in_read_tree_error(&stderr),
        },
        other => other,
    })
}

fn paths_in_read_tree_error(stderr: &str) -> Vec<String> {
    let files: Vec<String> = stderr
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    if files.is_empty() {
        vec![stderr.to_owned()]
    } else {
        files
    }
}

fn merged_tree(raw: &git2::Repository, ours: Oid, theirs: Oid) -> Result<Oid, GitError> {
    let ours = raw
        .find_commit(ours)
        .map_err(GitError::libgit2("read the target tip"))?;
    let theirs = raw
        .find_commit(theirs)
        .map_err(GitError::libgit2("read the task tip"))?;
    let mut opts = MergeOptions::new();
    opts.find_renames(true);
    let mut index = raw
        .merge_commits(&ours, &theirs, Some(&opts))
        .map_err(GitError::libgit2("merge the task's commits"))?;
    tree_from_index(raw, &mut index)
}

fn tree_from_index(raw: &git2::Repository, index: &mut git2::Index) -> Result<Oid, GitError> {
    if index.has_conflicts() {
        let mut files = BTreeSet::new();
        for conflict in index
            .conflicts()
            .map_err(GitError::libgit2("list merge conflicts"))?
            .flatten()
        {
            for entry in [conflict.our, conflict.their, conflict.ancestor]
                .into_iter()
                .flatten()
            {
                files.insert(String::from_utf8_lossy(&entry.path).into_owned());
            }
        }
        return Err(GitError::MergeConflict {
            files: files.into_iter().collect(),
        });
    }
    index
        .write_tree_to(raw)
        .map_err(GitError::libgit2("write the merged tree"))
}

/// Replays the commits of `task_tip` not in `onto` on top of it, oldest first.
fn rebase(repo: &Repo, sig: &Signature<'_>, onto: Oid, task_tip: Oid) -> Result<Oid, GitError> {
    let raw = repo.raw();
    let mut walk = raw
        .revwalk()
        .map_err(GitError::libgit2("walk the task's commits"))?;
    walk.push(task_tip)
        .and_then(|_| walk.hide(onto))
        .and_then(|_| walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE))
        .map_err(GitError::libgit2("walk the task's commits"))?;
    let mut tip = onto;
    for oid in walk {
        let oid = oid.map_err(GitError::libgit2("walk the task's commits"))?;
        let commit = raw
            .find_commit(oid)
            .map_err(GitError::libgit2("read a task commit"))?;
        if commit.parent_count() > 1 {
            continue;
        }
        let onto_commit = raw
            .find_commit(tip)
            .map_err(GitError::libgit2("read the rebase tip"))?;
        let mut index = raw
            .cherrypick_commit(&commit, &onto_commit, 0, None)
            .map_err(GitError::libgit2("replay a task commit"))?;
        let tree = tree_from_index(raw, &mut index)?;
        let tree_obj = raw
            .find_tree(tree)
            .map_err(GitError::libgit2("read a replayed tree"))?;
        tip = raw
            .commit(
                None,
                &commit.author(),
                sig,
                commit.message().unwrap_or_default(),
                &tree_obj,
                &[&onto_commit],
            )
            .map_err(GitError::libgit2("write a replayed commit"))?;
    }
    Ok(tip)
}

fn commit(
    raw: &git2::Repository,
    sig: &Signature<'_>,
    message: &str,
    tree: Oid,
    parents: &[Oid],
) -> Result<Oid, GitError> {
    let tree = raw
        .find_tree(tree)
        .map_err(GitError::libgit2("read the merged tree"))?;
    let parents = parents
        .iter()
        .map(|p| raw.find_commit(*p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(GitError::libgit2("read a parent commit"))?;
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    raw.commit(None, sig, sig, message, &tree, &parent_refs)
        .map_err(GitError::libgit2("write the merge commit"))
}

/// The user's identity, or a stand-in when git has none configured.
fn signature(raw: &git2::Repository) -> Result<Signature<'static>, GitError> {
    match raw.signature() {
        Ok(sig) => Ok(sig.to_owned()),
        Err(_) => {
            Signature::now("cms", "cms@localhost").map_err(GitError::libgit2("make a signature"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_dir_entry_over, paths_in_read_tree_error};

    #[test]
    fn read_tree_errors_name_their_files() {
        let stderr = "error: Entry 'src/a.rs' not uptodate. Cannot merge.";
        assert_eq!(paths_in_read_tree_error(stderr), ["src/a.rs"]);
    }

    #[test]
    fn folder_and_file_collisions_are_detected() {
        assert!(is_dir_entry_over("new/", "new/file.txt"));
        assert!(is_dir_entry_over("a/b.txt", "a"));
        assert!(!is_dir_entry_over("ab", "a/x"));
    }
}
