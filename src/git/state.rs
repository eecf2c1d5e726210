//! Fingerprints of what a task must leave alone: the user's checkouts (HEAD, each file that
//! differs from it, and every git-ignored file), the repository's refs, and the git metadata
//! that can run code or redirect git (config, hooks, attributes, the worktree's `.git` link).
//! Taken before and after a session, two fingerprints differ exactly where something changed.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Oid};

use super::GitError;
use super::cmd::run;
use super::task_git::TaskGit;

/// Path (as the fingerprint names it) to a digest of its content, type and status.
pub type Fingerprint = BTreeMap<String, String>;

/// A checkout's HEAD, its dirty files and its git-ignored files. Files that match HEAD are
/// left out, so the cost is that of one `git status`, not of hashing the tree. Dirty files are
/// hashed; ignored files (build outputs, `node_modules`, `.env`) can be huge and many, so they
/// are fingerprinted by their inode metadata instead: any write changes the ctime, which no
/// unprivileged process can set back.
pub fn checkout_state(checkout: &Path) -> Result<Fingerprint, GitError> {
    state_of(
        super::cmd::git(checkout),
        checkout,
        "--ignore-submodules=none",
    )
}

/// [`checkout_state`] of a task's worktree, through its checked admin dir (and of its
/// submodules only their commits: see [`super::task_git::SUBMODULES`]).
pub fn task_state(task: &TaskGit) -> Result<Fingerprint, GitError> {
    state_of(task.git(), task.worktree(), super::task_git::SUBMODULES)
}

fn state_of(
    mut status: std::process::Command,
    checkout: &Path,
    submodules: &str,
) -> Result<Fingerprint, GitError> {
    let mut state = Fingerprint::new();
    status.args([
        "status",
        // v2 with --branch also says HEAD's commit and branch: one git process, not three.
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        submodules,
        // With --untracked-files=all, "traditional" lists each file inside ignored folders.
        "--ignored=traditional",
    ]);
    let out = run(status)?;
    let text = String::from_utf8_lossy(&out);
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    while let Some(entry) = fields.next() {
        let (kind, rest) = entry.split_once(' ').unwrap_or((entry, ""));
        let (code, path) = match kind {
            "#" => {
                if let Some(oid) = rest.strip_prefix("branch.oid ") {
                    let oid = if oid == "(initial)" { "" } else { oid };
                    state.insert("HEAD".to_owned(), oid.to_owned());
                } else if let Some(branch) = rest.strip_prefix("branch.head ") {
                    let name = if branch == "(detached)" {
                        String::new()
                    } else {
                        format!("refs/heads/{branch}")
                    };
                    state.insert("HEAD ref".to_owned(), name);
                }
                continue;
            }
            // `1 XY sub mH mI mW hH hI path`: the path is the 8th field on, spaces and all.
            "1" => split_status(rest, 7),
            // Renames are off, but a copy or rename entry carries its source in the next field.
            "2" => {
                fields.next();
                split_status(rest, 8)
            }
            // `u XY sub m1 m2 m3 mW h1 h2 h3 path`
            "u" => split_status(rest, 9),
            "?" => ("??".to_owned(), rest.to_owned()),
            "!" => ("!!".to_owned(), rest.to_owned()),
            _ => continue,
        };
        let full = checkout.join(&path);
        let digest = if code == "!!" {
            stat_digest(&full)
        } else {
            file_digest(&full)
        };
        state.insert(path, format!("{code} {digest}"));
    }
    Ok(state)
}

/// The status code (the first field) and the path (after `skip` more fields) of a changed
/// entry of `git status --porcelain=v2`, whose path may hold spaces.
fn split_status(rest: &str, skip: usize) -> (String, String) {
    let mut parts = rest.splitn(skip + 1, ' ');
    let code = parts.next().unwrap_or_default().to_owned();
    let path = parts.nth(skip - 1).unwrap_or_default().to_owned();
    (code, path)
}

/// Every ref of the repository and the object it points at (`git for-each-ref`, so packed and
/// loose refs alike; symbolic refs show their target's object).
pub fn refs_state(common_dir: &Path) -> Result<Fingerprint, GitError> {
    let mut cmd = super::cmd::git(common_dir);
    cmd.args(["for-each-ref", "--format=%(refname)%00%(objectname)"]);
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| line.split_once('\0'))
        .map(|(name, oid)| (name.to_owned(), oid.to_owned()))
        .collect())
}

/// Whether git tracks `path` (relative to the worktree's top) in a task's index.
pub fn is_tracked(task: &TaskGit, path: &str) -> bool {
    let mut cmd = task.git();
    cmd.args(["ls-files", "--error-unmatch", "--"]).arg(path);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// The ref a task's HEAD names (`refs/heads/...`), or `None` when it is detached or
/// unreadable.
pub fn head_ref(task: &TaskGit) -> Option<String> {
    let mut cmd = task.git();
    cmd.args(["symbolic-ref", "-q", "HEAD"]);
    let out = run(cmd).ok()?;
    let name = String::from_utf8_lossy(&out).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// The git metadata of a repository that a task could use to run code in the user's
/// repository or redirect it: the shared config, hooks and attributes, the submodules' own
/// git dirs' config, hooks and attributes, and the task worktree's own config and `.git` link.
pub fn metadata_state(common_dir: &Path, worktree: &Path) -> Fingerprint {
    let mut state = Fingerprint::new();
    add_tree(&mut state, common_dir, Path::new("hooks"));
    add_submodule_metadata(&mut state, common_dir, Path::new("modules"));
    let mut add = |name: String, path: &Path| {
        state.insert(name, file_digest(path));
    };
    for name in ["config", "info/attributes", "info/exclude"] {
        add(name.to_owned(), &common_dir.join(name));
    }
    let link = worktree.join(".git");
    add(".git (worktree link)".to_owned(), &link);
    // The worktree's private git dir, where `config.worktree` and per-worktree hooks live.
    if let Ok(text) = std::fs::read_to_string(&link)
        && let Some(gitdir) = text.trim().strip_prefix("gitdir: ")
    {
        let gitdir = Path::new(gitdir);
        // `locked` holds the reason cms locked it with, which is how `discard --force` knows
        // the worktree is the one cms made.
        for name in ["config.worktree", "commondir", "gitdir", "locked"] {
            let label = format!("worktrees/{}/{name}", worktree_label(gitdir));
            add(label, &gitdir.join(name));
        }
    }
    state
}

/// The main worktree's state files, which live in the common dir beside what cms denies a
/// sandboxed task and do not exist between operations, so its sandbox cannot deny them: they
/// decide what git does next in the user's checkout (a merge's second parent, a rebase's todo
/// list and its `exec` lines, how deep the history reads).
pub fn main_worktree_state(common_dir: &Path) -> Fingerprint {
    let mut state = Fingerprint::new();
    for name in [
        "MERGE_HEAD",
        "MERGE_MSG",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
        "BISECT_START",
        "shallow",
    ] {
        let path = common_dir.join(name);
        if path.symlink_metadata().is_ok() {
            state.insert(name.to_owned(), file_digest(&path));
        }
    }
    for dir in ["rebase-merge", "rebase-apply", "sequencer"] {
        add_tree(&mut state, common_dir, Path::new(dir));
    }
    state
}

/// The config, hooks and `info/` of every submodule git dir under `root/dir` (nested
/// submodules live in `modules/<name>/modules/`): running `git` in a submodule of the user's
/// checkout reads them, so they can run code there too.
fn add_submodule_metadata(state: &mut Fingerprint, root: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let relative = dir.join(entry.file_name());
        let path = root.join(&relative);
        if !path.is_dir() || path.is_symlink() {
            continue;
        }
        if path.join("HEAD").is_file() {
            for name in ["config", "info/attributes", "info/exclude"] {
                let file = relative.join(name);
                state.insert(file.display().to_string(), file_digest(&root.join(&file)));
            }
            add_tree(state, root, &relative.join("hooks"));
            add_submodule_metadata(state, root, &relative.join("modules"));
        } else {
            // A submodule named with slashes is a folder of folders.
            add_submodule_metadata(state, root, &relative);
        }
    }
}

fn worktree_label(gitdir: &Path) -> String {
    gitdir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Adds every file under `root/dir`, recursively, to `state`.
fn add_tree(state: &mut Fingerprint, root: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let relative = dir.join(entry.file_name());
        let path = root.join(&relative);
        if path.is_dir() && !path.is_symlink() {
            add_tree(state, root, &relative);
        } else {
            state.insert(relative.display().to_string(), file_digest(&path));
        }
    }
}

/// What a path holds: `missing`, a symlink's target, a folder, or a file's blob id and
/// whether it is executable (a mode change alone is a change).
fn file_digest(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = path.symlink_metadata() else {
        return "missing".to_owned();
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        return format!("symlink {}", target.display());
    }
    if meta.is_dir() {
        return "folder".to_owned();
    }
    let executable = meta.permissions().mode() & 0o111 != 0;
    let id = std::fs::read(path)
        .ok()
        .and_then(|bytes| Oid::hash_object(ObjectType::Blob, &bytes).ok())
        .map_or_else(|| "unreadable".to_owned(), |oid| oid.to_string());
    format!("{} {id}", if executable { "x" } else { "-" })
}

/// A digest of what `lstat` says of a path: type and mode, size, inode, and the modification
/// and change times to the nanosecond.
fn stat_digest(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match path.symlink_metadata() {
        Ok(meta) => format!(
            "stat {:o} {} {} {}.{} {}.{}",
            meta.mode(),
            meta.len(),
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        ),
        Err(_) => "missing".to_owned(),
    }
}

/// The entries that differ between two fingerprints, in path order.
pub fn differences<'a>(before: &'a Fingerprint, after: &'a Fingerprint) -> Vec<&'a str> {
    let mut paths: Vec<&str> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .chain(
            after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .map(String::as_str),
        )
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::{checkout_state, differences};
    use crate::git::test_support::git_ok as git;

    #[test]
    fn a_checkout_fingerprint_names_head_its_branch_and_every_dirty_or_ignored_file() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        git(repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join(".gitignore"), "build/\n").unwrap();
        std::fs::write(repo.join("a file.txt"), "a\n").unwrap();
        git(repo, &["add", "."]);
        git(repo, &["commit", "-q", "-m", "init"]);
        let before = checkout_state(repo).unwrap();
        assert_eq!(before["HEAD ref"], "refs/heads/main");
        assert_eq!(before["HEAD"].len(), 40);
        assert_eq!(before.len(), 2, "{before:?}");
        std::fs::write(repo.join("a file.txt"), "changed\n").unwrap();
        std::fs::write(repo.join("new file.txt"), "new\n").unwrap();
        std::fs::create_dir_all(repo.join("build/out")).unwrap();
        std::fs::write(repo.join("build/out/app"), "bin\n").unwrap();
        let after = checkout_state(repo).unwrap();
        assert!(after["a file.txt"].starts_with(".M "), "{after:?}");
        assert!(after["new file.txt"].starts_with("?? "), "{after:?}");
        assert!(after["build/out/app"].starts_with("!! stat "), "{after:?}");
        assert_eq!(
            differences(&before, &after),
            ["a file.txt", "build/out/app", "new file.txt"]
        );
        git(repo, &["checkout", "-q", "--detach"]);
        let detached = checkout_state(repo).unwrap();
        assert_eq!(detached["HEAD ref"], "");
        assert_eq!(detached["HEAD"], before["HEAD"]);
    }
}
