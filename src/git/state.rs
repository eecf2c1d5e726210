//! Fingerprints of what a task must leave alone: the user's checkouts (HEAD, and each file
//! that differs from it) and the repository's git metadata that can run code or redirect
//! git (config, hooks, attributes, the worktree's `.git` link). Taken before and after a
//! session, two fingerprints differ exactly where something changed.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Oid};

use super::GitError;
use super::cmd::run;

/// Path (as the fingerprint names it) to a digest of its content, type and status.
pub type Fingerprint = BTreeMap<String, String>;

/// A checkout's HEAD and its dirty files. Files that match HEAD are left out, so the cost is
/// that of `git status`, not of hashing the tree.
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
    ]);
    let out = run(status)?;
    for entry in out.split(|b| *b == 0).filter(|e| e.len() > 3) {
        let code = String::from_utf8_lossy(&entry[..2]).into_owned();
        let path = String::from_utf8_lossy(&entry[3..]).into_owned();
        let digest = file_digest(&checkout.join(&path));
        state.insert(path, format!("{code} {digest}"));
    }
    Ok(state)
}

/// The git metadata of a repository that a task could use to run code in the user's
/// repository or redirect it: the shared config, hooks and attributes, and the task
/// worktree's own config and `.git` link.
pub fn metadata_state(common_dir: &Path, worktree: &Path) -> Fingerprint {
    let mut state = Fingerprint::new();
    add_tree(&mut state, common_dir, Path::new("hooks"));
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
        for name in ["config.worktree", "commondir", "gitdir"] {
            let label = format!("worktrees/{}/{name}", worktree_label(gitdir));
            add(label, &gitdir.join(name));
        }
    }
    state
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
