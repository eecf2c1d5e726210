//! What a task changed: committing its worktree, snapshotting uncommitted work, file statistics.
//!
//! A snapshot is the worktree's whole state (tracked changes and untracked files, ignored files
//! left out) written as a tree object through a throwaway index, so measuring a running task's
//! changes never touches the index the agent is using.

use std::path::Path;

use git2::{Delta, DiffFindOptions, DiffOptions, Oid, Patch};
use serde::{Deserialize, Serialize};

use super::GitError;
use super::cmd::{git, run, run_text};
use super::repo::Repo;
use super::task_git::TaskGit;

/// One file a task changed, as reported in JSON and summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    /// `added`, `modified`, `deleted`, `renamed`, `copied` or `type_changed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub additions: usize,
    pub deletions: usize,
    #[serde(default)]
    pub binary: bool,
}

/// Settings that make cms's own commits independent of the user's commit-time setup: no
/// hooks (they may be interactive or push), no signing (it may need a passphrase with no TTY).
const INTERNAL_COMMIT_CONFIG: &[&str] = &[
    "-c",
    "commit.gpgSign=false",
    "-c",
    "core.hooksPath=/dev/null",
];

/// Stages everything in `worktree` (ignored files and the `leave_out` paths excluded) and
/// commits it with `message` and trailers. Returns the new commit, or `None` when there was
/// nothing to commit.
pub fn commit_all(
    task: &TaskGit,
    message: &str,
    trailers: &[(&str, &str)],
    leave_out: &[String],
) -> Result<Option<Oid>, GitError> {
    task.add_all(None, None)?;
    if !leave_out.is_empty() {
        let mut unstage = task.git();
        unstage
            .env("GIT_LITERAL_PATHSPECS", "1")
            .args(["rm", "--cached", "-r", "-q", "--ignore-unmatch", "--"])
            .args(leave_out);
        run(unstage)?;
    }
    let mut quiet = task.git();
    quiet.args(["diff", "--cached", "--quiet"]);
    if quiet.status()?.success() {
        return Ok(None);
    }
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, message.as_bytes())?;
    let mut cmd = task.git();
    cmd.args(INTERNAL_COMMIT_CONFIG);
    if !identity_known(task.git()) {
        cmd.args(["-c", "user.name=cms", "-c", "user.email=cms@localhost"]);
    }
    cmd.args(["commit", "--quiet", "--no-verify", "--cleanup=strip", "-F"])
        .arg(file.path());
    for (key, value) in trailers {
        cmd.arg("--trailer").arg(format!("{key}: {value}"));
    }
    run(cmd)?;
    let mut head = task.git();
    head.args(["rev-parse", "HEAD"]);
    let head = String::from_utf8_lossy(&run(head)?).trim().to_owned();
    Oid::from_str(&head)
        .map(Some)
        .map_err(GitError::libgit2("read the new commit id"))
}

/// Whether git can make commits here without being told who the author is.
pub fn has_identity(dir: &Path) -> bool {
    identity_known(git(dir))
}

/// [`has_identity`] for a command rooted where the commit will be made.
fn identity_known(mut cmd: std::process::Command) -> bool {
    cmd.args(["var", "GIT_COMMITTER_IDENT"]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// Writes the worktree's current state as a tree, without touching its index: tracked changes
/// and untracked files, ignored files and the `leave_out` paths (a task's links) left out.
pub fn snapshot_tree(repo: &Repo, task: &TaskGit, leave_out: &[String]) -> Result<Oid, GitError> {
    // One read-only status says what differs. Most worktrees cms looks at are clean (a
    // session's end commits its work), and then the state is HEAD's tree; otherwise only what
    // it listed is staged, so the worktree is walked once, not twice.
    let changed = match worktree_state(task, leave_out)? {
        WorktreeState::Clean(head) => return repo.tree_of(head),
        WorktreeState::Changed(paths) => Some(paths),
        WorktreeState::Unknown => None,
    };
    // The index git would use is the admin dir's, which was checked to be the real one.
    let index_path = task.admin_dir().join("index");
    let temp = tempfile::Builder::new()
        .prefix("cms-snapshot-index")
        .tempfile()?;
    // Starting from the real index lets `git add` reuse its stat cache instead of hashing
    // every file again, and holds what is staged there already.
    if index_path.exists() {
        std::fs::copy(&index_path, temp.path())?;
    } else {
        // An empty file is not a valid index; git wants none at all.
        std::fs::remove_file(temp.path())?;
    }
    let with_index = |args: &[&str]| {
        let mut cmd = task.git();
        cmd.env("GIT_INDEX_FILE", temp.path())
            .env("GIT_LITERAL_PATHSPECS", "1")
            .args(args);
        run(cmd)
    };
    let staged = task.add_all(Some(temp.path()), changed.as_deref());
    // A listed path git would not take (a conflict deleted on one side, say) gets the whole
    // worktree staged instead: slower, never wrong.
    if staged.is_err() {
        task.add_all(Some(temp.path()), None)?;
    }
    if !leave_out.is_empty() {
        let mut args = vec!["rm", "--cached", "-r", "-q", "--ignore-unmatch", "--"];
        args.extend(leave_out.iter().map(String::as_str));
        with_index(&args)?;
    }
    let out = with_index(&["write-tree"])?;
    let text = String::from_utf8_lossy(&out);
    Oid::from_str(text.trim()).map_err(GitError::libgit2("read the snapshot tree id"))
}

/// What a worktree's status says about it, for [`snapshot_tree`].
enum WorktreeState {
    /// Nothing differs from this HEAD commit (untracked `leave_out` paths aside).
    Clean(Oid),
    /// The paths whose worktree side differs from the index: changed, deleted, untracked
    /// (folders whole), conflicted. What differs between HEAD and the index only is in the
    /// index already.
    Changed(Vec<Vec<u8>>),
    /// No commit yet, or output not understood: stage everything.
    Unknown,
}

fn worktree_state(task: &TaskGit, leave_out: &[String]) -> Result<WorktreeState, GitError> {
    let mut cmd = task.git();
    // Read-only: a status that refreshed the index would take index.lock, which a running
    // agent's own `git add` could then find taken. The user's status.showUntrackedFiles and
    // diff.ignoreSubmodules must not hide work either; of a submodule, cms commits only its
    // commit, and looking into its files would run git inside it (see `TaskGit`).
    cmd.env("GIT_OPTIONAL_LOCKS", "0").args([
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=normal",
        super::task_git::SUBMODULES,
    ]);
    let out = run(cmd)?;
    let mut head = None;
    let mut differs = false;
    let mut paths: Vec<Vec<u8>> = Vec::new();
    let mut entries = out.split(|b| *b == 0).filter(|e| !e.is_empty());
    while let Some(entry) = entries.next() {
        if let Some(oid) = entry.strip_prefix(b"# branch.oid ") {
            head = std::str::from_utf8(oid)
                .ok()
                .and_then(|oid| Oid::from_str(oid).ok());
            continue;
        }
        if entry.starts_with(b"# ") {
            continue;
        }
        // The fields before the path: `1` has 8, `2` 9 (and its old path follows as an entry
        // of its own), `u` 10, `?` 1.
        let (fields, worktree_side) = match entry.first() {
            Some(b'1') => (8, entry.get(3)),
            Some(b'2') => {
                entries.next();
                (9, entry.get(3))
            }
            Some(b'u') => (10, Some(&b'U')),
            Some(b'?') => (1, Some(&b'?')),
            _ => return Ok(WorktreeState::Unknown),
        };
        let Some(path) = entry.splitn(fields + 1, |b| *b == b' ').nth(fields) else {
            return Ok(WorktreeState::Unknown);
        };
        if entry[0] == b'?' && leave_out.iter().any(|l| l.as_bytes() == path) {
            continue;
        }
        differs = true;
        if worktree_side != Some(&b'.') {
            paths.push(path.to_vec());
        }
    }
    Ok(match head {
        None => WorktreeState::Unknown,
        Some(head) if !differs => WorktreeState::Clean(head),
        Some(_) => WorktreeState::Changed(paths),
    })
}

/// The diff between two trees (or commits, or the empty tree), renames detected.
fn diff_trees(repo: &Repo, from: Oid, to: Oid) -> Result<git2::Diff<'_>, GitError> {
    let raw = repo.raw();
    let from_tree = raw
        .find_tree(repo.tree_of(from)?)
        .map_err(GitError::libgit2("read the base tree"))?;
    let to_tree = raw
        .find_tree(repo.tree_of(to)?)
        .map_err(GitError::libgit2("read the task tree"))?;
    let mut opts = DiffOptions::new();
    opts.include_typechange(true);
    let mut diff = raw
        .diff_tree_to_tree(Some(&from_tree), Some(&to_tree), Some(&mut opts))
        .map_err(GitError::libgit2("diff the task against its base"))?;
    diff.find_similar(Some(DiffFindOptions::new().renames(true)))
        .map_err(GitError::libgit2("detect renames"))?;
    Ok(diff)
}

/// One entry of a tree diff as the safety checks see it: both paths, both modes, and where a
/// symlink on the new side points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeChange {
    /// `added`, `modified`, `deleted`, `renamed`, `copied` or `type_changed`.
    pub status: &'static str,
    pub old_path: Option<String>,
    pub new_path: Option<String>,
    /// Git file modes (`0o100644`, `0o100755`, `0o120000` symlink, `0o160000` submodule);
    /// 0 where the side does not exist.
    pub old_mode: u32,
    pub new_mode: u32,
    /// The target of a symlink on the new side.
    pub link_target: Option<String>,
}

pub const MODE_SYMLINK: u32 = 0o120000;
pub const MODE_SUBMODULE: u32 = 0o160000;

/// Every entry that differs between two trees (or commits), renames detected.
///
/// git's own `diff-tree` rather than libgit2's tree diff: git skips the subtrees both sides
/// share, so the cost follows the change, where libgit2 took 70 ms on a 100,000-file tree
/// whatever the change.
pub fn tree_changes(repo: &Repo, from: Oid, to: Oid) -> Result<Vec<TreeChange>, GitError> {
    let (from, to) = (repo.tree_of(from)?, repo.tree_of(to)?);
    let mut cmd = git(&repo.common_dir);
    cmd.args(["diff-tree", "-r", "-z", "--raw", "-M", "--no-abbrev"])
        .arg(from.to_string())
        .arg(to.to_string());
    let out = run(cmd)?;
    let mut fields = out.split(|b| *b == 0);
    let mut changes = Vec::new();
    while let Some(head) = fields.next() {
        if head.is_empty() {
            continue;
        }
        let bad = || GitError::Command {
            args: "diff-tree -r -z --raw -M".to_owned(),
            stderr: format!("unexpected output '{}'", String::from_utf8_lossy(head)),
        };
        // `:<old mode> <new mode> <old id> <new id> <status>`, then one path, or two for a
        // rename or a copy.
        let head = std::str::from_utf8(head).map_err(|_| bad())?;
        let words: Vec<&str> = head.trim_start_matches(':').split(' ').collect();
        let [old_mode, new_mode, _, new_id, status] = words[..] else {
            return Err(bad());
        };
        let mode = |m: &str| u32::from_str_radix(m, 8).map_err(|_| bad());
        let (old_mode, new_mode) = (mode(old_mode)?, mode(new_mode)?);
        let mut path = || {
            fields
                .next()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .ok_or_else(bad)
        };
        let first = path()?;
        let (status, old_path, new_path) = match status.as_bytes().first() {
            Some(b'A') => ("added", None, Some(first)),
            Some(b'D') => ("deleted", Some(first), None),
            Some(b'T') => ("type_changed", Some(first.clone()), Some(first)),
            Some(b'R') => ("renamed", Some(first), Some(path()?)),
            Some(b'C') => ("copied", Some(first), Some(path()?)),
            _ => ("modified", Some(first.clone()), Some(first)),
        };
        let link_target = if new_mode == MODE_SYMLINK {
            let id = Oid::from_str(new_id).map_err(|_| bad())?;
            let blob = repo
                .raw()
                .find_blob(id)
                .map_err(GitError::libgit2("read a symlink's target"))?;
            Some(String::from_utf8_lossy(blob.content()).into_owned())
        } else {
            None
        };
        changes.push(TreeChange {
            status,
            old_path,
            new_path,
            old_mode,
            new_mode,
            link_target,
        });
    }
    Ok(changes)
}

fn delta_status(delta: Delta) -> &'static str {
    match delta {
        Delta::Added => "added",
        Delta::Deleted => "deleted",
        Delta::Renamed => "renamed",
        Delta::Copied => "copied",
        Delta::Typechange => "type_changed",
        _ => "modified",
    }
}

/// The tree a commit made now would record: the index of `checkout`, or the index file
/// `index` (git names a temporary one in `GIT_INDEX_FILE` for `git commit -a` and
/// `git commit <paths>`, and that is what a pre-commit hook must check).
pub fn index_tree(checkout: &Path, index: Option<&Path>) -> Result<Oid, GitError> {
    let mut cmd = git(checkout);
    if let Some(index) = index {
        cmd.env("GIT_INDEX_FILE", index);
    }
    cmd.arg("write-tree");
    let out = run(cmd)?;
    Oid::from_str(String::from_utf8_lossy(&out).trim())
        .map_err(GitError::libgit2("read the index's tree id"))
}

/// The files that differ between two trees (or commits), with renames detected.
pub fn changed_files(repo: &Repo, from: Oid, to: Oid) -> Result<Vec<FileChange>, GitError> {
    let diff = diff_trees(repo, from, to)?;
    let mut changes = Vec::with_capacity(diff.deltas().len());
    for (idx, delta) in diff.deltas().enumerate() {
        let path_of = |f: git2::DiffFile<'_>| {
            f.path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let new_path = path_of(delta.new_file());
        let old_path = path_of(delta.old_file());
        let status = delta_status(delta.status());
        let (additions, deletions, binary) =
            match Patch::from_diff(&diff, idx).map_err(GitError::libgit2("count changed lines"))? {
                Some(patch) if !delta.flags().is_binary() => {
                    let (_, adds, dels) = patch
                        .line_stats()
                        .map_err(GitError::libgit2("count changed lines"))?;
                    (adds, dels, false)
                }
                _ => (0, 0, true),
            };
        let path = if delta.status() == Delta::Deleted {
            old_path.clone()
        } else {
            new_path
        };
        changes.push(FileChange {
            old_path: matches!(delta.status(), Delta::Renamed | Delta::Copied).then_some(old_path),
            path,
            status: status.to_owned(),
            additions,
            deletions,
            binary,
        });
    }
    Ok(changes)
}

/// Whether `target` already holds the change `from`..`to` (commits or trees): merging it there
/// would change nothing. True after the change was fast-forwarded, merged, squashed, rebased or
/// cherry-picked into `target`, false again once `target` reverted any of it, so a caller that
/// deletes work only when this holds never deletes what the target lacks.
pub fn change_is_in(repo: &Repo, from: Oid, to: Oid, target: Oid) -> Result<bool, GitError> {
    let raw = repo.raw();
    let tree = |oid: Oid, what: &'static str| {
        repo.tree_of(oid)
            .and_then(|id| raw.find_tree(id).map_err(GitError::libgit2(what)))
    };
    let ancestor = tree(from, "read the change's base tree")?;
    let ours = tree(target, "read the target's tree")?;
    let theirs = tree(to, "read the change's tree")?;
    let mut index = raw
        .merge_trees(&ancestor, &ours, &theirs, None)
        .map_err(GitError::libgit2(
            "merge the change into the target in memory",
        ))?;
    if index.has_conflicts() {
        return Ok(false);
    }
    let merged = index
        .write_tree_to(raw)
        .map_err(GitError::libgit2("write the merged tree"))?;
    Ok(merged == ours.id())
}

/// How `git diff` should render a task's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    Patch,
    Stat,
    NameOnly,
}

/// Runs `git diff <from> <to>` with the caller's stdout, so git's own pager and colors apply.
pub fn show_diff(
    dir: &Path,
    from: Oid,
    to: Oid,
    format: DiffFormat,
    color: Option<bool>,
) -> Result<(), GitError> {
    let mut cmd = git(dir);
    cmd.stdout(std::process::Stdio::inherit());
    cmd.stderr(std::process::Stdio::piped());
    cmd.args(["diff", "--find-renames"]);
    match color {
        Some(true) => cmd.arg("--color=always"),
        Some(false) => cmd.arg("--color=never"),
        None => &mut cmd,
    };
    match format {
        DiffFormat::Patch => &mut cmd,
        DiffFormat::Stat => cmd.arg("--stat"),
        DiffFormat::NameOnly => cmd.arg("--name-only"),
    };
    cmd.arg(from.to_string()).arg(to.to_string());
    super::cmd::check_version()?;
    let output = cmd.output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(super::cmd::command_error(&cmd, &output))
    }
}

/// The unified diff between two trees as text (for `--json`).
pub fn diff_text(dir: &Path, from: Oid, to: Oid) -> Result<String, GitError> {
    run_text(
        dir,
        [
            "diff",
            "--no-color",
            "--find-renames",
            &from.to_string(),
            &to.to_string(),
        ],
    )
}
