//! Fingerprints of what a task must leave alone: the user's checkouts (HEAD, each file that
//! differs from it, and every git-ignored file), the repository's refs, and the git metadata
//! that can run code or redirect git (config, hooks, attributes, the worktree's `.git` link).
//! Taken before and after a session, two fingerprints differ exactly where something changed.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Oid};

use super::GitError;
use super::cmd::run;

/// Path (as the fingerprint names it) to a digest of its content, type and status.
pub type Fingerprint = BTreeMap<String, String>;

/// A checkout's HEAD, its dirty files and its git-ignored files. Files that match HEAD are
/// left out, so the cost is that of one `git status`, not of hashing the tree. Dirty files are
/// hashed; ignored files (build outputs, `node_modules`, `.env`) can be huge and many, so they
/// are fingerprinted by their inode metadata instead: any write changes the ctime, which no
/// unprivileged process can set back.
pub fn checkout_state(checkout: &Path) -> Result<Fingerprint, GitError> {
    let mut state = Fingerprint::new();
    let mut head = super::cmd::git(checkout);
    head.args(["rev-parse", "--verify", "-q", "HEAD"]);
    let head = run(head).unwrap_or_default();
    state.insert(
        "HEAD".to_owned(),
        String::from_utf8_lossy(&head).trim().to_owned(),
    );
    let mut symbolic = super::cmd::git(checkout);
    symbolic.args(["symbolic-ref", "-q", "HEAD"]);
    let branch = run(symbolic).unwrap_or_default();
    state.insert(
        "HEAD ref".to_owned(),
        String::from_utf8_lossy(&branch).trim().to_owned(),
    );
    let mut status = super::cmd::git(checkout);
    status.args([
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--ignore-submodules=none",
        // With --untracked-files=all, "traditional" lists each file inside ignored folders.
        "--ignored=traditional",
    ]);
    let out = run(status)?;
    for entry in out.split(|b| *b == 0).filter(|e| e.len() > 3) {
        let code = String::from_utf8_lossy(&entry[..2]).into_owned();
        let path = String::from_utf8_lossy(&entry[3..]).into_owned();
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

/// The ref a checkout's HEAD names (`refs/heads/...`), or `None` when it is detached or
/// unreadable.
pub fn head_ref(checkout: &Path) -> Option<String> {
    let mut cmd = super::cmd::git(checkout);
    cmd.args(["symbolic-ref", "-q", "HEAD"]);
    let out = run(cmd).ok()?;
    let name = String::from_utf8_lossy(&out).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// Puts `name` back at `old`, but only if it still is at `current` (`None`: still deleted), so
/// a ref someone moved again in the meantime is left alone.
pub fn restore_ref(
    common_dir: &Path,
    name: &str,
    old: &str,
    current: Option<&str>,
) -> Result<(), GitError> {
    let mut cmd = super::cmd::git(common_dir);
    // The all-zero id (of the repository's hash length) makes update-ref require absence.
    let zero = "0".repeat(old.len());
    cmd.args([
        "update-ref",
        "-m",
        "cms: put back a ref a task's session moved",
        name,
        old,
        current.unwrap_or(&zero),
    ]);
    run(cmd).map(|_| ())
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
