//! Creating, listing and removing linked worktrees and their branches, through the `git` CLI.
//!
//! libgit2 can add worktrees but does not run checkout filters (LFS, eol) the way git does, and
//! git's own `worktree add/remove` keep `.git/worktrees/` consistent; so every change here is a
//! `git` command. Task worktrees are added `--lock`ed so that a `git worktree prune` run while
//! the task's folder is briefly unavailable cannot forget them.

use std::path::{Path, PathBuf};

use git2::Oid;

use super::GitError;
use super::cmd::{git, run, run_text};
use super::task_git::TaskGit;

/// One entry of `git worktree list --porcelain`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorktreeEntry {
    pub path: PathBuf,
    pub head: Option<String>,
    /// Full ref name, e.g. `refs/heads/main`.
    pub branch: Option<String>,
    pub bare: bool,
    pub detached: bool,
    pub locked: bool,
    /// Why it is locked, as given to `--reason` (cms gives `cms task <name>`).
    pub lock_reason: Option<String>,
    pub prunable: bool,
}

/// Adds a worktree at `path` on a new branch made from `base`.
pub fn add(
    admin_dir: &Path,
    path: &Path,
    branch: &str,
    base: Oid,
    reason: &str,
) -> Result<(), GitError> {
    let mut cmd = git(admin_dir);
    cmd.args([
        "worktree", "add", "--quiet", "--lock", "--reason", reason, "-b", branch,
    ])
    .arg(path)
    .arg(base.to_string());
    run(cmd).map(drop)
}

/// Removes a worktree cms made, even with changes in it: callers decide before calling.
pub fn remove(admin_dir: &Path, path: &Path) -> Result<(), GitError> {
    // A locked worktree needs `--force` twice; unlocking first keeps the intent readable.
    let mut unlock = git(admin_dir);
    unlock.args(["worktree", "unlock"]).arg(path);
    let _ = run(unlock);
    if path.exists() {
        let mut cmd = git(admin_dir);
        cmd.args(["worktree", "remove", "--force"]).arg(path);
        run(cmd)?;
    }
    // A folder deleted behind git's back leaves administrative files; prune only those.
    prune(admin_dir)
}

pub fn prune(admin_dir: &Path) -> Result<(), GitError> {
    // git prunes an entry by emptying the folder it reaches, through a symlink too.
    unlink_planted_links(admin_dir);
    run_text(admin_dir, ["worktree", "prune"]).map(drop)
}

/// Unlinks the symlinks among the entries of `<common>/worktrees/` and returns them: git never
/// makes one, and `git worktree prune` would empty the folder one points at once that folder's
/// `gitdir` names a missing path. A sandboxed session can add entries there (it may not rename
/// or replace its own, nor touch the others).
pub fn unlink_planted_links(common_dir: &Path) -> Vec<PathBuf> {
    let admins = common_dir.join("worktrees");
    if !admins.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let mut unlinked = Vec::new();
    for entry in std::fs::read_dir(&admins).into_iter().flatten().flatten() {
        let path = entry.path();
        let is_link = path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        if is_link && std::fs::remove_file(&path).is_ok() {
            unlinked.push(path);
        }
    }
    unlinked
}

pub fn delete_branch(admin_dir: &Path, branch: &str) -> Result<(), GitError> {
    run_text(admin_dir, ["branch", "--quiet", "-D", branch]).map(drop)
}

/// Every worktree of the repository, the main one first.
pub fn list(admin_dir: &Path) -> Result<Vec<WorktreeEntry>, GitError> {
    let mut cmd = git(admin_dir);
    cmd.args(["worktree", "list", "--porcelain", "-z"]);
    let out = run(cmd)?;
    Ok(parse_porcelain(&String::from_utf8_lossy(&out)))
}

/// Parses `git worktree list --porcelain -z`: NUL-terminated attribute lines, entries separated by
/// an empty attribute.
pub fn parse_porcelain(text: &str) -> Vec<WorktreeEntry> {
    let mut entries = Vec::new();
    let mut current: Option<WorktreeEntry> = None;
    for field in text.split('\0') {
        if field.is_empty() {
            entries.extend(current.take());
            continue;
        }
        let (key, value) = field.split_once(' ').unwrap_or((field, ""));
        if key == "worktree" {
            entries.extend(current.take());
            current = Some(WorktreeEntry {
                path: PathBuf::from(value),
                ..WorktreeEntry::default()
            });
            continue;
        }
        let Some(entry) = current.as_mut() else {
            continue;
        };
        match key {
            "HEAD" => entry.head = Some(value.to_owned()),
            "branch" => entry.branch = Some(value.to_owned()),
            "bare" => entry.bare = true,
            "detached" => entry.detached = true,
            "locked" => {
                entry.locked = true;
                entry.lock_reason = Some(value.to_owned()).filter(|r| !r.is_empty());
            }
            "prunable" => entry.prunable = true,
            _ => {}
        }
    }
    entries.extend(current);
    entries
}

/// The checkout that has `branch` checked out, if any, so a merge into it can update its files.
pub fn checkout_of_branch(admin_dir: &Path, branch: &str) -> Result<Option<PathBuf>, GitError> {
    let full = format!("refs/heads/{branch}");
    Ok(list(admin_dir)?
        .into_iter()
        .find(|e| e.branch.as_deref() == Some(full.as_str()) && !e.bare)
        .map(|e| e.path))
}

/// Removes a task's worktree whose admin dir was tampered with, running no git: the worktree
/// folder, and every entry of `<common>/worktrees/` that is its (a real folder whose `gitdir`
/// names the worktree's `.git`, or whose `HEAD` is on `branch`) or that its `.git` names and is
/// a symlink. A symlink is unlinked, never followed: `git worktree remove` and `prune` would
/// empty the folder it points at.
pub fn remove_tampered(common_dir: &Path, worktree: &Path, branch: &str) -> std::io::Result<()> {
    let admins = super::repo::canonical(common_dir).join("worktrees");
    let link = worktree.join(".git");
    let link_id = super::repo::canonical(&link);
    let named = std::fs::read_to_string(&link).ok().and_then(|text| {
        let path = text
            .lines()
            .next()?
            .strip_prefix("gitdir: ")?
            .trim_end()
            .to_owned();
        Some(worktree.join(path))
    });
    let on_branch = format!("ref: refs/heads/{branch}");
    let mut doomed: Vec<PathBuf> = Vec::new();
    // A `worktrees` that is not a real folder is not looked into: removing through it would
    // remove where it points.
    let real_admins = admins.symlink_metadata().is_ok_and(|m| m.is_dir());
    let entries = std::fs::read_dir(&admins)
        .into_iter()
        .filter(|_| real_admins);
    for entry in entries.flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        let named_here = named.as_deref().is_some_and(|n| {
            n.file_name() == path.file_name()
                && n.parent().map(super::repo::canonical).as_deref() == Some(admins.as_path())
        });
        let ours = if meta.file_type().is_symlink() {
            named_here
        } else if meta.is_dir() {
            let says = |name: &str| std::fs::read_to_string(path.join(name)).unwrap_or_default();
            let gitdir = says("gitdir");
            let gitdir = gitdir.trim_end();
            (!gitdir.is_empty() && super::repo::canonical(&path.join(gitdir)) == link_id)
                || says("HEAD").trim_end() == on_branch
        } else {
            false
        };
        if ours {
            doomed.push(path);
        }
    }
    for path in doomed {
        remove_entry(&path)?;
    }
    remove_entry(worktree)
}

/// Removes a file, a symlink (not what it points at) or a folder and everything in it.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// The user's global excludes as git in a task's worktree reads them: `core.excludesFile`,
/// else `$XDG_CONFIG_HOME/git/ignore` (`~/.config/git/ignore`); `None` when there are none.
pub fn user_excludes(task: &TaskGit) -> Option<String> {
    let mut cmd = task.git();
    cmd.args(["config", "--path", "--get", "core.excludesFile"]);
    let configured = run(cmd)
        .ok()
        .map(|out| String::from_utf8_lossy(&out).trim_end().to_owned())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let path = configured.or_else(|| {
        let env = |key| std::env::var_os(key).filter(|v| !v.is_empty());
        let config = env("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".config")))?;
        Some(config.join("git/ignore"))
    })?;
    std::fs::read_to_string(path).ok()
}

/// The checkout's ignored files and folders (a folder wholly ignored is one entry ending in
/// `/`), or with `under`, every ignored file below that folder.
pub fn ignored_entries(checkout: &Path, under: Option<&str>) -> Result<Vec<String>, GitError> {
    let mut cmd = git(checkout);
    cmd.env("GIT_LITERAL_PATHSPECS", "1").args([
        "ls-files",
        "--others",
        "--ignored",
        "--exclude-standard",
        "-z",
    ]);
    match under {
        Some(dir) => {
            cmd.arg("--").arg(dir);
        }
        None => {
            cmd.arg("--directory");
        }
    }
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out)
        .split('\0')
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Adds a worktree at `path` with a detached HEAD at `commit`, locked with `reason`.
pub fn add_detached(
    admin_dir: &Path,
    path: &Path,
    commit: Oid,
    reason: &str,
) -> Result<(), GitError> {
    let mut cmd = git(admin_dir);
    cmd.args([
        "worktree", "add", "--quiet", "--detach", "--lock", "--reason", reason,
    ])
    .arg(path)
    .arg(commit.to_string());
    run(cmd).map(drop)
}

/// Moves a (locked) worktree to `to`, where it stays locked with `reason`.
pub fn relocate(admin_dir: &Path, from: &Path, to: &Path, reason: &str) -> Result<(), GitError> {
    let mut unlock = git(admin_dir);
    unlock.args(["worktree", "unlock"]).arg(from);
    run(unlock)?;
    let mut mv = git(admin_dir);
    mv.args(["worktree", "move"]).arg(from).arg(to);
    run(mv)?;
    let mut lock = git(admin_dir);
    lock.args(["worktree", "lock", "--reason", reason]).arg(to);
    run(lock).map(drop)
}

/// In a worktree with a clean checkout at `current`: makes `branch` at `commit` and checks it
/// out, which rewrites only the files that differ between the two commits.
pub fn switch_to_new_branch(
    task: &TaskGit,
    branch: &str,
    current: Option<Oid>,
    commit: Oid,
) -> Result<(), GitError> {
    let mut cmd = task.git();
    cmd.args(["switch", "--quiet", "-c", branch]);
    // Without a start point git only names the branch and moves HEAD; with one, even the
    // commit HEAD is already at, it compares the whole checkout (a fifth of a second at
    // 100,000 files).
    if current != Some(commit) {
        cmd.arg(commit.to_string());
    }
    run(cmd).map(drop)
}

/// Moves `branch`, checked out in `task`'s worktree at `from`, to its descendant `to` (a remote
/// task's work coming home): git rewrites the files that differ and refuses where that would
/// overwrite the worktree's own changes; the branch then moves only if it is still at `from`,
/// else the checkout goes back.
pub fn fast_forward(task: &TaskGit, branch: &str, from: Oid, to: Oid) -> Result<(), GitError> {
    let mut read = task.git();
    read.args(["read-tree", "-m", "-u"])
        .arg(from.to_string())
        .arg(to.to_string());
    run(read)?;
    let mut update = task.git();
    update
        .args(["update-ref", "-m", "cms: the task's work from its runner"])
        .arg(format!("refs/heads/{branch}"))
        .arg(to.to_string())
        .arg(from.to_string());
    if let Err(err) = run(update) {
        let mut back = task.git();
        back.args(["read-tree", "-m", "-u"])
            .arg(to.to_string())
            .arg(from.to_string());
        let _ = run(back);
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_porcelain;
    use std::path::PathBuf;

    #[test]
    fn porcelain_parsing_reads_every_kind_of_entry() {
        let text = "worktree /r\0HEAD abc\0branch refs/heads/main\0\0\
                    worktree /w/t\0HEAD def\0branch refs/heads/cms/t\0locked cms task t\0\0\
                    worktree /w/d\0HEAD 123\0detached\0prunable gitdir file points to non-existent location\0\0";
        let entries = parse_porcelain(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].branch.as_deref(), Some("refs/heads/main"));
        assert!(entries[1].locked);
        assert_eq!(entries[1].path, PathBuf::from("/w/t"));
        assert!(entries[2].detached && entries[2].prunable);
    }
}
