//! cms's git hooks: the pre-commit and pre-push scripts that run `cms check`, and installing
//! them beside, never over, the hooks a repository already has.
//!
//! A hook that is not cms's is moved aside to `<hook>.cms-chained` (the same file: content and
//! mode kept) and cms's script runs it first with the same arguments and stdin; uninstalling
//! moves it back. A file is cms's when it has the [`MARKER`] line, never by its name alone.
//! Every install or uninstall first decides what to do for both hooks, so a refusal changes
//! nothing, and undoes its own steps if one fails halfway.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Appended to a hook's name for the original hook cms's hook runs first.
pub const CHAINED_SUFFIX: &str = ".cms-chained";

/// The line that makes a hook cms's; the scripts carry it as their second line.
pub const MARKER: &str =
    "# Managed by cms: `cms hooks uninstall` removes this hook and puts back the one it chains.";

/// Replaced by the shell-quoted path of the cms that installs the script.
const CMS_PLACEHOLDER: &str = "@CMS@";

/// The hooks cms installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PreCommit,
    PrePush,
}

impl Hook {
    pub const ALL: [Hook; 2] = [Hook::PreCommit, Hook::PrePush];

    pub fn name(self) -> &'static str {
        match self {
            Hook::PreCommit => "pre-commit",
            Hook::PrePush => "pre-push",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Hook::PreCommit => include_str!("pre-commit.sh"),
            Hook::PrePush => include_str!("pre-push.sh"),
        }
    }

    /// The script for this hook, running the cms at `cms` unless `CMS_HOOK_BIN` says otherwise.
    pub fn script(self, cms: &Path) -> String {
        self.template()
            .replace(CMS_PLACEHOLDER, &sh_word(&cms.to_string_lossy()))
    }

    fn path(self, dir: &Path) -> PathBuf {
        dir.join(self.name())
    }

    fn chained_path(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}{CHAINED_SUFFIX}", self.name()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    #[error(
        "cannot move the existing {hook} hook aside: {} already exists",
        chained.display()
    )]
    ChainedNameTaken {
        hook: &'static str,
        chained: PathBuf,
    },

    #[error(
        "{} is there but no cms {hook} hook runs it (left from an earlier install?)",
        chained.display()
    )]
    OrphanedChained {
        hook: &'static str,
        path: PathBuf,
        chained: PathBuf,
    },

    #[error("failed to {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HooksError {
    let path = path.to_owned();
    move |source| HooksError::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallAction {
    /// Written where there was no cms hook.
    Installed,
    /// A cms hook was there with another script (another cms, or an older one) and was rewritten.
    Updated,
    /// The same script was already there.
    Unchanged,
}

impl InstallAction {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallAction::Installed => "installed",
            InstallAction::Updated => "updated",
            InstallAction::Unchanged => "unchanged",
        }
    }
}

/// What `install` did for one hook.
#[derive(Debug, Clone)]
pub struct Installed {
    pub hook: Hook,
    pub path: PathBuf,
    pub action: InstallAction,
    /// The original hook cms's hook runs first, if there is one.
    pub chained: Option<PathBuf>,
    /// Whether this install moved that original aside (rather than an earlier one).
    pub moved_aside: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UninstallAction {
    /// cms's hook was removed (and the chained original, if any, put back).
    Removed,
    /// No cms hook was there, but the original it chained was, and was put back.
    Restored,
    /// Neither a cms hook nor a chained original (a hook of the user's may be there).
    NotInstalled,
    /// cms's hooks are (or were) installed here, but this one is no longer cms's (no marker
    /// line): replaced since, so it was not touched.
    LeftAlone,
}

impl UninstallAction {
    pub fn as_str(self) -> &'static str {
        match self {
            UninstallAction::Removed => "removed",
            UninstallAction::Restored => "restored",
            UninstallAction::NotInstalled => "not_installed",
            UninstallAction::LeftAlone => "left_alone",
        }
    }
}

/// What `uninstall` did for one hook.
#[derive(Debug, Clone)]
pub struct Uninstalled {
    pub hook: Hook,
    pub path: PathBuf,
    pub action: UninstallAction,
    /// The chained original that was moved back to `path`.
    pub restored_from: Option<PathBuf>,
    /// For `LeftAlone`: a chained original that stays where it is.
    pub chained_left: Option<PathBuf>,
}

/// What is at a hook's path.
enum Current {
    Missing,
    Ours(Vec<u8>),
    Foreign,
}

fn current(path: &Path) -> Result<Current, HooksError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Current::Missing),
        Err(err) => return Err(io_err("inspect", path)(err)),
    };
    // A symlink is the user's arrangement even if it points at a cms script: never rewrite it.
    if !meta.is_file() {
        return Ok(Current::Foreign);
    }
    let content = fs::read(path).map_err(io_err("read", path))?;
    let ours = String::from_utf8_lossy(&content)
        .lines()
        .any(|line| line.trim_end() == MARKER);
    Ok(if ours {
        Current::Ours(content)
    } else {
        Current::Foreign
    })
}

fn exists(path: &Path) -> Result<bool, HooksError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_err("inspect", path)(err)),
    }
}

/// A step already taken, and how to take it back.
enum Undo {
    Delete(PathBuf),
    Move { from: PathBuf, to: PathBuf },
    Rewrite { path: PathBuf, content: Vec<u8> },
}

/// Steps taken so far; dropped without `commit`, it takes them back, newest first.
struct Journal(Vec<Undo>);

impl Journal {
    fn commit(mut self) {
        self.0.clear();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Best effort: the error that got us here is the one worth reporting.
        for step in self.0.drain(..).rev() {
            let _ = match step {
                Undo::Delete(path) => fs::remove_file(&path),
                Undo::Move { from, to } => move_no_clobber(&from, &to),
                Undo::Rewrite { path, content } => write_hook(&path, &content, true),
            };
        }
    }
}

/// Installs cms's pre-commit and pre-push hooks into `dir` (created if missing), running the
/// cms at `cms`. Existing hooks that are not cms's are chained, never overwritten.
pub fn install(dir: &Path, cms: &Path) -> Result<Vec<Installed>, HooksError> {
    enum Plan {
        Write,
        Chain,
        Update(Vec<u8>),
        Keep,
    }
    let mut plans = Vec::new();
    for hook in Hook::ALL {
        let (path, chained) = (hook.path(dir), hook.chained_path(dir));
        let script = hook.script(cms);
        let chained_exists = exists(&chained)?;
        let plan = match current(&path)? {
            Current::Ours(content) if content == script.as_bytes() => Plan::Keep,
            Current::Ours(content) => Plan::Update(content),
            Current::Foreign if chained_exists => {
                return Err(HooksError::ChainedNameTaken {
                    hook: hook.name(),
                    chained,
                });
            }
            Current::Foreign => Plan::Chain,
            // cms's hook would start running a file nobody asked it to run.
            Current::Missing if chained_exists => {
                return Err(HooksError::OrphanedChained {
                    hook: hook.name(),
                    path,
                    chained,
                });
            }
            Current::Missing => Plan::Write,
        };
        plans.push((hook, path, chained, script, chained_exists, plan));
    }

    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let mut journal = Journal(Vec::new());
    let mut done = Vec::new();
    for (hook, path, chained, script, chained_exists, plan) in plans {
        let (action, moved_aside) = match plan {
            Plan::Keep => (InstallAction::Unchanged, false),
            Plan::Update(old) => {
                write_hook(&path, script.as_bytes(), true).map_err(io_err("write", &path))?;
                journal.0.push(Undo::Rewrite {
                    path: path.clone(),
                    content: old,
                });
                (InstallAction::Updated, false)
            }
            Plan::Chain => {
                move_no_clobber(&path, &chained).map_err(|err| {
                    if err.kind() == std::io::ErrorKind::AlreadyExists {
                        HooksError::ChainedNameTaken {
                            hook: hook.name(),
                            chained: chained.clone(),
                        }
                    } else {
                        io_err("move aside", &path)(err)
                    }
                })?;
                journal.0.push(Undo::Move {
                    from: chained.clone(),
                    to: path.clone(),
                });
                write_hook(&path, script.as_bytes(), false).map_err(io_err("write", &path))?;
                journal.0.push(Undo::Delete(path.clone()));
                (InstallAction::Installed, true)
            }
            Plan::Write => {
                write_hook(&path, script.as_bytes(), false).map_err(io_err("write", &path))?;
                journal.0.push(Undo::Delete(path.clone()));
                (InstallAction::Installed, false)
            }
        };
        done.push(Installed {
            hook,
            path,
            action,
            chained: (moved_aside || chained_exists).then_some(chained),
            moved_aside,
        });
    }
    journal.commit();
    Ok(done)
}

/// Removes cms's hooks from `dir` and puts back the originals they chained. Hooks that are no
/// longer cms's are left alone (reported as `LeftAlone`).
pub fn uninstall(dir: &Path) -> Result<Vec<Uninstalled>, HooksError> {
    let mut plans = Vec::new();
    for hook in Hook::ALL {
        let (path, chained) = (hook.path(dir), hook.chained_path(dir));
        let chained_exists = exists(&chained)?;
        plans.push((hook, current(&path)?, path, chained, chained_exists));
    }
    // Without any trace of cms here, a hook that is not cms's is simply the user's: warning
    // that it was "replaced" would be wrong (a second uninstall would warn about the originals
    // the first one put back).
    let cms_was_here = plans
        .iter()
        .any(|(_, current, _, _, chained)| *chained || matches!(current, Current::Ours(_)));

    let mut journal = Journal(Vec::new());
    let mut done = Vec::new();
    for (hook, current, path, chained, chained_exists) in plans {
        let mut entry = Uninstalled {
            hook,
            path: path.clone(),
            action: UninstallAction::NotInstalled,
            restored_from: None,
            chained_left: None,
        };
        match current {
            Current::Foreign if !cms_was_here => {}
            Current::Foreign => {
                entry.action = UninstallAction::LeftAlone;
                entry.chained_left = chained_exists.then(|| chained.clone());
            }
            Current::Missing if !chained_exists => {}
            Current::Missing => entry.action = UninstallAction::Restored,
            Current::Ours(content) => {
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
                journal.0.push(Undo::Rewrite {
                    path: path.clone(),
                    content,
                });
                entry.action = UninstallAction::Removed;
            }
        }
        let restore = matches!(
            entry.action,
            UninstallAction::Removed | UninstallAction::Restored
        );
        if restore && chained_exists {
            move_no_clobber(&chained, &path).map_err(io_err("put back", &chained))?;
            journal.0.push(Undo::Move {
                from: path.clone(),
                to: chained.clone(),
            });
            entry.restored_from = Some(chained);
        }
        done.push(entry);
    }
    journal.commit();
    Ok(done)
}

/// Renames `from` to `to` unless `to` exists, atomically: a hard link fails rather than
/// replacing, so two installs racing cannot move one's hook over the other's chained original.
/// The file itself moves, so its content and mode are exactly kept.
fn move_no_clobber(from: &Path, to: &Path) -> std::io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(err),
        // Some filesystems have no hard links; checking first is the best left there.
        Err(_) if fs::symlink_metadata(to).is_ok() => {
            Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
        }
        Err(_) => fs::rename(from, to),
    }
}

/// Writes an executable hook through a temporary file, so git never runs half a script.
fn write_hook(path: &Path, content: &[u8], replace: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .expect("hook paths are inside the hooks directory");
    let mut temp = tempfile::Builder::new()
        .prefix(".cms-hook-")
        .tempfile_in(dir)?;
    temp.write_all(content)?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o755))?;
    temp.as_file().sync_data()?;
    let persisted = if replace {
        temp.persist(path)
    } else {
        temp.persist_noclobber(path)
    };
    persisted.map(drop).map_err(|err| err.error)
}

/// `text` as one word for POSIX sh.
fn sh_word(text: &str) -> String {
    // shlex refuses a NUL byte unless told otherwise; a path holds none.
    shlex::Quoter::new()
        .allow_nul(true)
        .quote(text)
        .expect("shlex refuses only NUL, which is allowed here")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::{CMS_PLACEHOLDER, Hook, MARKER, sh_word};
    use std::path::Path;

    #[test]
    fn every_script_carries_the_marker_and_the_cms_path() {
        for hook in Hook::ALL {
            let script = hook.script(Path::new("/opt/it's here/cms"));
            assert!(script.starts_with("#!/bin/sh\n"), "{}", hook.name());
            assert_eq!(script.lines().nth(1), Some(MARKER), "{}", hook.name());
            assert!(!script.contains(CMS_PLACEHOLDER), "{}", hook.name());
            let installed = script
                .lines()
                .find_map(|line| line.strip_prefix("installed="))
                .unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {installed}")])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "/opt/it's here/cms",
                "{}",
                hook.name()
            );
        }
    }

    #[test]
    fn scripts_are_valid_posix_sh() {
        for hook in Hook::ALL {
            let script = hook.script(Path::new("/usr/bin/cms"));
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .unwrap();
            assert!(status.success(), "{} does not parse", hook.name());
        }
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {}", sh_word("a 'b' $c"))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a 'b' $c");
    }
}
