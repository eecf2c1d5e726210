//! The git of a task's linked worktree, with its admin dir checked before cms runs anything in it.
//!
//! A task's agent can write its worktree (the `.git` link in it) and its own admin dir
//! (`<common>/worktrees/<admin>`), so git's own discovery (`.git` file, then `commondir`) would
//! let it point cms's git at a repository of its choosing, whose config runs programs
//! (`core.fsmonitor`, `core.hooksPath`) outside the sandbox. So cms never discovers a task's
//! repository: [`TaskGit::open`] finds the admin dir by reading `<common>/worktrees/` itself,
//! checks with `lstat` that it is a real folder whose `gitdir` and `commondir` say what git wrote
//! and that the `.git` link points at it, and every command then names the admin dir, the common
//! dir and the worktree (`GIT_DIR`, `GIT_COMMON_DIR`, `GIT_WORK_TREE`) with fsmonitor and hooks
//! off.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::GitError;
use super::cmd::{git, run};
use super::repo::canonical;

/// What a command run in a task's worktree must never run from any config: the agent may have
/// written a config git reads there (a per-worktree `config.worktree`, a submodule's). git runs
/// itself inside a submodule (through its `.git` file, which the agent can point at a git dir
/// of its making whose config names filters) to look for changes in its files, to summarize
/// it, or to recurse into it; so it is only asked which commit a submodule is at (`dirty`).
const NO_PROGRAMS: &[&str] = &[
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "submodule.recurse=false",
    "-c",
    "status.submoduleSummary=false",
    "-c",
    "diff.ignoreSubmodules=dirty",
];

/// The `--ignore-submodules` of a status run in a task's worktree (see [`NO_PROGRAMS`]): what
/// cms commits of a submodule is its commit, which `dirty` still compares.
pub const SUBMODULES: &str = "--ignore-submodules=dirty";

/// A task's linked worktree whose admin dir was found to be the one git made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGit {
    common_dir: PathBuf,
    admin_dir: PathBuf,
    worktree: PathBuf,
    /// The admin dir's device and inode when it was checked, so a replacement is seen.
    identity: (u64, u64),
}

impl TaskGit {
    /// Checks the admin dir of the linked worktree at `worktree` of the repository whose
    /// common dir is `common_dir`; fails with [`GitError::AdminDirTampered`] saying what is
    /// wrong. Reads a few small files and runs no git.
    pub fn open(common_dir: &Path, worktree: &Path) -> Result<TaskGit, GitError> {
        let common_dir = canonical(common_dir);
        let worktree = canonical(worktree);
        let tampered = |what: String| GitError::AdminDirTampered {
            worktree: worktree.clone(),
            what,
        };
        let admins = common_dir.join("worktrees");
        if !is_real_dir(&admins) {
            return Err(tampered(format!(
                "{} is not a folder of its own (a symlink, or missing)",
                admins.display()
            )));
        }
        let link = worktree.join(".git");
        let named = read_link_file(&link).ok_or_else(|| {
            tampered(format!(
                "{} is not the file git wrote (missing, a symlink, or without a gitdir line)",
                link.display()
            ))
        })?;
        // The admin dir is the one real folder under worktrees/ whose `gitdir` names this
        // worktree's `.git`: found from the common dir, which the agent cannot replace, not
        // from the link it can write.
        let link_id = canonical(&link);
        let mut claims: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(&admins).into_iter().flatten().flatten() {
            let path = entry.path();
            if !is_real_dir(&path) {
                continue;
            }
            let Some(gitdir) = read_path_file(&path.join("gitdir"), &path) else {
                continue;
            };
            if canonical(&gitdir) == link_id {
                claims.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        claims.sort();
        let name = match &claims[..] {
            [one] => one.clone(),
            [] => {
                let shown = named.display();
                return Err(tampered(match named.symlink_metadata() {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        format!("its admin dir {shown} is a symlink")
                    }
                    Ok(_) => format!("its admin dir {shown} no longer says it is this worktree's"),
                    Err(_) => format!("its admin dir {shown} is gone"),
                }));
            }
            many => {
                return Err(tampered(format!(
                    "{} admin dirs under {} say they are this worktree's: {}",
                    many.len(),
                    admins.display(),
                    many.join(", ")
                )));
            }
        };
        let admin_dir = admins.join(&name);
        let points_here = named
            .file_name()
            .is_some_and(|n| n.to_string_lossy() == name)
            && named.parent().map(canonical).as_deref() == Some(admins.as_path());
        if !points_here {
            return Err(tampered(format!(
                "{} points at {}, not at its admin dir {}",
                link.display(),
                named.display(),
                admin_dir.display()
            )));
        }
        let common = read_path_file(&admin_dir.join("commondir"), &admin_dir);
        if common.as_deref().map(canonical).as_ref() != Some(&common_dir) {
            return Err(tampered(format!(
                "{} does not name the repository's common dir",
                admin_dir.join("commondir").display()
            )));
        }
        let identity = identity(&admin_dir)
            .ok_or_else(|| tampered(format!("its admin dir {} is gone", admin_dir.display())))?;
        Ok(TaskGit {
            common_dir,
            admin_dir,
            worktree,
            identity,
        })
    }

    /// [`TaskGit::open`] again, and the admin dir must be the very folder it was: a look-alike
    /// put in its place (the original renamed away) passes every other check.
    pub fn reopen(&self) -> Result<TaskGit, GitError> {
        let now = TaskGit::open(&self.common_dir, &self.worktree)?;
        if now.admin_dir != self.admin_dir || now.identity != self.identity {
            return Err(GitError::AdminDirTampered {
                worktree: self.worktree.clone(),
                what: format!(
                    "its admin dir {} was replaced by another folder",
                    self.admin_dir.display()
                ),
            });
        }
        Ok(now)
    }

    /// A `git` command in the worktree that names its admin dir, common dir and work tree
    /// itself and runs neither fsmonitor nor hooks.
    pub fn git(&self) -> Command {
        let mut cmd = git(&self.worktree);
        cmd.env("GIT_DIR", &self.admin_dir)
            .env("GIT_COMMON_DIR", &self.common_dir)
            .env("GIT_WORK_TREE", &self.worktree)
            .args(NO_PROGRAMS);
        cmd
    }

    /// `git add --all` of `paths` (every path when `None`) into `index` (the admin dir's when
    /// `None`), without git ever running inside a nested repository or reading its config. For
    /// a gitlink of the index whose folder is there, `git add` runs `git status` inside that
    /// folder (whose `.git` the agent can point at a git dir of its making, whose config names
    /// filters or an fsmonitor), whatever `diff.ignoreSubmodules` says; for a new nested
    /// repository it reads that config, includes and all. So every nested repository is left
    /// out of git's add and staged as a gitlink at the commit cms reads from its HEAD itself
    /// ([`nested_commit`]); when it cannot, a tracked one stays as the index has it and a new
    /// one is not staged.
    pub fn add_all(&self, index: Option<&Path>, paths: Option<&[Vec<u8>]>) -> Result<(), GitError> {
        let command = || {
            let mut cmd = self.git();
            if let Some(index) = index {
                cmd.env("GIT_INDEX_FILE", index);
            }
            cmd
        };
        let mut nested: Vec<Vec<u8>> = Vec::new();
        // Gitlinks of the index: `<mode> <oid> <stage>\t<path>`.
        let mut tracked = command();
        tracked.args(["ls-files", "--stage", "-z"]);
        for entry in run(tracked)?.split(|b| *b == 0) {
            if let Some(tab) = entry.iter().position(|b| *b == b'\t')
                && entry.starts_with(b"160000 ")
                && is_real_dir(&self.worktree.join(os(&entry[tab + 1..])))
            {
                nested.push(entry[tab + 1..].to_vec());
            }
        }
        // New ones: git lists an untracked nested repository as a folder (`sub/`), having
        // read only its `HEAD` to know it for one.
        let mut untracked = command();
        untracked.args(["ls-files", "--others", "--exclude-standard", "-z"]);
        for entry in run(untracked)?.split(|b| *b == 0) {
            if let Some(path) = entry.strip_suffix(b"/") {
                nested.push(path.to_vec());
            }
        }
        let is_nested = |p: &[u8]| {
            let p = p.strip_suffix(b"/").unwrap_or(p);
            nested.iter().any(|n| n == p)
        };
        // Pathspecs from a file, each literal, so a listed path is never read as magic.
        let mut specs: Vec<Vec<u8>> = match paths {
            Some(paths) => paths
                .iter()
                .filter(|p| !is_nested(p))
                .map(|p| [b":(literal)".as_slice(), p].concat())
                .collect(),
            None => vec![b":(literal).".to_vec()],
        };
        if !specs.is_empty() {
            specs.extend(
                nested
                    .iter()
                    .map(|n| [b":(exclude,literal)".as_slice(), n].concat()),
            );
            let mut file = tempfile::NamedTempFile::new()?;
            std::io::Write::write_all(&mut file, &specs.join(&0u8))?;
            let mut add = command();
            add.env_remove("GIT_LITERAL_PATHSPECS")
                .args(["add", "--all", "--pathspec-file-nul"])
                .arg(format!("--pathspec-from-file={}", file.path().display()));
            run(add)?;
        }
        let known: Vec<String> = nested
            .iter()
            .filter_map(|path| {
                let commit = nested_commit(&self.worktree.join(os(path)))?;
                Some(format!("160000,{commit},{}", String::from_utf8_lossy(path)))
            })
            .collect();
        if !known.is_empty() {
            let mut update = command();
            update.args(["update-index", "--add"]);
            for info in &known {
                update.args(["--cacheinfo", info]);
            }
            run(update)?;
        }
        Ok(())
    }

    pub fn worktree(&self) -> &Path {
        &self.worktree
    }

    /// `<common>/worktrees/<admin>`.
    pub fn admin_dir(&self) -> &Path {
        &self.admin_dir
    }
}

/// The commit a nested repository's HEAD names, read from its files with no git and no config:
/// its `.git` (a folder, or a file naming one), `HEAD`, then the loose ref or `packed-refs`
/// (of its common dir too, for a linked worktree). Every file must be a regular file (not a
/// symlink, a FIFO or a device); `None` when anything is otherwise.
pub fn nested_commit(folder: &Path) -> Option<git2::Oid> {
    let dot_git = folder.join(".git");
    let git_dir = if is_real_dir(&dot_git) {
        dot_git
    } else {
        read_link_file(&dot_git)?
    };
    let common = read_path_file(&git_dir.join("commondir"), &git_dir);
    let head = read_small(&git_dir.join("HEAD"))?;
    let head = head.lines().next()?.trim_end();
    let Some(name) = head.strip_prefix("ref: ") else {
        return git2::Oid::from_str(head).ok();
    };
    if !name.starts_with("refs/") || name.split('/').any(|part| part == "..") {
        return None;
    }
    let dirs = std::iter::once(git_dir).chain(common);
    for dir in dirs {
        if let Some(text) = read_small(&dir.join(name)) {
            return git2::Oid::from_str(text.trim_end()).ok();
        }
        let packed = read_small(&dir.join("packed-refs")).unwrap_or_default();
        for line in packed.lines() {
            if let Some((oid, refname)) = line.split_once(' ')
                && refname == name
            {
                return git2::Oid::from_str(oid).ok();
            }
        }
    }
    None
}

/// A regular file's text, if it is one (`lstat`: no symlink, FIFO or device is read).
fn read_small(file: &Path) -> Option<String> {
    if !file.symlink_metadata().ok()?.is_file() {
        return None;
    }
    std::fs::read_to_string(file).ok()
}

fn os(path: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(path)
}

/// Whether `path` is a folder and not a symlink to one.
fn is_real_dir(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.is_dir())
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = path.symlink_metadata().ok().filter(|m| m.is_dir())?;
    Some((meta.dev(), meta.ino()))
}

/// The path in a worktree's `.git` file (`gitdir: <path>`), if it is a regular file.
fn read_link_file(link: &Path) -> Option<PathBuf> {
    if !link.symlink_metadata().ok()?.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(link).ok()?;
    let named = text.lines().next()?.strip_prefix("gitdir: ")?.trim_end();
    let base = link.parent()?;
    (!named.is_empty()).then(|| base.join(named))
}

/// The path a one-line file of git's holds (`gitdir`, `commondir`), relative ones taken from
/// `base`, if the file is a regular file.
fn read_path_file(file: &Path, base: &Path) -> Option<PathBuf> {
    if !file.symlink_metadata().ok()?.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().next()?.trim_end();
    (!line.is_empty()).then(|| base.join(line))
}

#[cfg(test)]
mod tests {
    use super::{GitError, TaskGit, canonical, nested_commit};
    use crate::git::test_support::git_ok;
    use std::path::{Path, PathBuf};

    /// A repository with a linked worktree `wt` (admin dir `worktrees/wt`).
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git_ok(&repo, &["init", "-q", "-b", "main"]);
        git_ok(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
        let wt = dir.path().join("wt");
        git_ok(
            &repo,
            &["worktree", "add", "-q", "-b", "t", wt.to_str().unwrap()],
        );
        (dir, canonical(&repo.join(".git")), canonical(&wt))
    }

    fn what(result: Result<TaskGit, GitError>) -> String {
        match result {
            Err(GitError::AdminDirTampered { what, .. }) => what,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_worktree_git_made_opens_and_its_commands_name_its_dirs() {
        let (_dir, common, wt) = setup();
        let task = TaskGit::open(&common, &wt).unwrap();
        assert_eq!(task.admin_dir(), common.join("worktrees/wt"));
        let out = task
            .git()
            .args(["rev-parse", "--git-dir"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            common.join("worktrees/wt").display().to_string()
        );
        assert_eq!(task.reopen().unwrap(), task);
    }

    #[test]
    fn a_renamed_replaced_or_symlinked_admin_dir_is_refused() {
        let (dir, common, wt) = setup();
        let admin = common.join("worktrees/wt");
        let task = TaskGit::open(&common, &wt).unwrap();
        // Renamed away, a look-alike in its place that says the same.
        std::fs::rename(&admin, common.join("worktrees/wt.orig")).unwrap();
        std::fs::create_dir(&admin).unwrap();
        for name in ["gitdir", "commondir", "HEAD"] {
            std::fs::copy(
                common.join("worktrees/wt.orig").join(name),
                admin.join(name),
            )
            .unwrap();
        }
        assert!(what(TaskGit::open(&common, &wt)).contains("2 admin dirs"));
        // Only the look-alike left: everything it says is right, but it is not the folder.
        std::fs::remove_dir_all(common.join("worktrees/wt.orig")).unwrap();
        assert!(TaskGit::open(&common, &wt).is_ok());
        assert!(what(task.reopen()).contains("replaced"));
        // A symlink to a fake admin dir.
        let fake = dir.path().join("fake");
        std::fs::rename(&admin, &fake).unwrap();
        std::os::unix::fs::symlink(&fake, &admin).unwrap();
        assert!(what(TaskGit::open(&common, &wt)).contains("is a symlink"));
    }

    #[test]
    fn a_changed_commondir_or_git_link_is_refused() {
        let (dir, common, wt) = setup();
        let admin = common.join("worktrees/wt");
        let fake = dir.path().join("fake-common");
        std::fs::create_dir(&fake).unwrap();
        std::fs::write(admin.join("commondir"), format!("{}\n", fake.display())).unwrap();
        assert!(what(TaskGit::open(&common, &wt)).contains("commondir"));
        std::fs::write(admin.join("commondir"), "../..\n").unwrap();
        TaskGit::open(&common, &wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", fake.display())).unwrap();
        assert!(what(TaskGit::open(&common, &wt)).contains("points at"));
        std::fs::remove_file(wt.join(".git")).unwrap();
        std::os::unix::fs::symlink(admin.join("gitdir"), wt.join(".git")).unwrap();
        assert!(what(TaskGit::open(&common, &wt)).contains("not the file git wrote"));
    }

    /// A nested repository `sub` in `wt` with a commit, whose config names a clean filter and
    /// an fsmonitor that would leave `marker`, its file then touched so git would rehash it.
    fn plant_nested(wt: &Path, marker: &Path) -> git2::Oid {
        let sub = wt.join("sub");
        std::fs::create_dir(&sub).unwrap();
        git_ok(&sub, &["init", "-q"]);
        std::fs::write(sub.join(".gitattributes"), "x filter=evil\n").unwrap();
        std::fs::write(sub.join("x"), "hi\n").unwrap();
        git_ok(&sub, &["add", "."]);
        git_ok(&sub, &["commit", "-q", "-m", "s"]);
        arm(&sub, marker);
        let head = std::process::Command::new("git")
            .arg("-C")
            .arg(&sub)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        git2::Oid::from_str(String::from_utf8_lossy(&head.stdout).trim()).unwrap()
    }

    fn arm(sub: &Path, marker: &Path) {
        let run = format!("sh -c 'touch {}; cat'", marker.display());
        git_ok(sub, &["config", "filter.evil.clean", &run]);
        git_ok(sub, &["config", "core.fsmonitor", &run]);
    }

    #[test]
    fn staging_a_worktree_never_runs_git_inside_a_nested_repository() {
        let (dir, common, wt) = setup();
        let marker = dir.path().join("marker");
        let first = plant_nested(&wt, &marker);
        assert_eq!(nested_commit(&wt.join("sub")), Some(first));
        let task = TaskGit::open(&common, &wt).unwrap();
        // New, its config including a FIFO: git's own add would read it and wait forever.
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let config = wt.join("sub/.git/config");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!("{text}[include]\n\tpath = {}\n", fifo.display()),
        )
        .unwrap();
        task.add_all(None, None).unwrap();
        std::fs::write(&config, text).unwrap();
        git_ok(
            &wt,
            &["-c", "core.fsmonitor=false", "commit", "-q", "-m", "sub"],
        );
        let staged = task
            .git()
            .args(["ls-files", "--stage", "sub"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&staged.stdout).starts_with(&format!("160000 {first}")));
        // Tracked, its file's stat changed and a new commit made: plain `git add --all` would
        // run `git status` inside it, and so the filter.
        let sub = wt.join("sub");
        std::fs::write(sub.join("y"), "y\n").unwrap();
        git_ok(&sub, &["config", "--unset-all", "filter.evil.clean"]);
        git_ok(&sub, &["config", "--unset-all", "core.fsmonitor"]);
        git_ok(&sub, &["add", "y"]);
        git_ok(&sub, &["commit", "-q", "-m", "y"]);
        arm(&sub, &marker);
        std::fs::write(sub.join("x"), "hi\n").unwrap();
        let second = nested_commit(&sub).unwrap();
        assert_ne!(second, first);
        assert!(!marker.exists(), "the setup itself ran the filter");
        std::fs::write(wt.join("top"), "t\n").unwrap();
        task.add_all(None, None).unwrap();
        let index = task
            .git()
            .args(["ls-files", "--stage"])
            .output()
            .unwrap()
            .stdout;
        let index = String::from_utf8_lossy(&index);
        assert!(
            index.contains(&format!("160000 {second} 0\tsub")),
            "{index}"
        );
        assert!(index.contains("\ttop"), "{index}");
        let listed = [b"sub".to_vec(), b"top".to_vec()];
        task.add_all(None, Some(&listed)).unwrap();
        assert!(!marker.exists(), "git ran inside the nested repository");
    }
}
