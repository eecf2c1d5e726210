//! Making a new task's worktree ready to run before its agent starts: the user's ignored files
//! it needs (`.worktreeinclude`, `[worktree] copy`), a block of ports of its own, and the
//! project's setup commands.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::TaskError;
use super::include::Included;
use crate::config::Config;
use crate::git;
use crate::workspace::Workspace;

/// Copies into `worktree` the main checkout's ignored files that `.worktreeinclude` or
/// `[worktree] copy` name (a wholly ignored folder whole). Nothing in the worktree is
/// overwritten. Copies share their blocks with the original where the filesystem can
/// (`copy_file_range`, which reflinks on btrfs and XFS). Returns what was copied.
pub fn copy_included(
    ws: &Workspace,
    config: &Config,
    worktree: &Path,
) -> Result<Vec<String>, TaskError> {
    let Some(main) = ws.main_checkout() else {
        return Ok(Vec::new());
    };
    // An untrusted `.worktreeinclude` could hand every task the user's ignored secrets.
    let include = match config.worktree.include_file {
        true => {
            std::fs::read_to_string(main.join(crate::trust::WORKTREE_INCLUDE)).unwrap_or_default()
        }
        false => String::new(),
    };
    let included =
        Included::new(&include, &config.worktree.copy).map_err(TaskError::InvalidGlob)?;
    if included.is_empty() {
        return Ok(Vec::new());
    }
    let mut copied = Vec::new();
    let mut pending = git::worktree::ignored_entries(&main, None)?;
    while let Some(entry) = pending.pop() {
        let path = entry.trim_end_matches('/');
        if included.includes(path) {
            let from = main.join(path);
            let to = worktree.join(path);
            if to.symlink_metadata().is_err() {
                copy_tree(&from, &to).map_err(|source| TaskError::CopyIncluded {
                    path: path.to_owned(),
                    source,
                })?;
                copied.push(path.to_owned());
            }
        } else if entry.ends_with('/') && included.reaches_into(path) {
            // A glob names something inside this ignored folder: look inside it.
            pending.extend(
                git::worktree::ignored_entries(&main, Some(&entry))?
                    .into_iter()
                    .filter(|inner| inner != &entry),
            );
        }
    }
    copied.sort();
    Ok(copied)
}

/// Copies a file, symlink or folder, keeping modes.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = from.symlink_metadata()?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if meta.is_dir() {
        std::fs::create_dir(to)?;
        std::fs::set_permissions(to, meta.permissions())?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop)
    }
}

/// Links into `worktree` the main checkout's paths `[worktree] link` names (node_modules, a
/// cache), as absolute symlinks, where the main checkout has them and the worktree does not.
/// Returns the links made, which cms never commits.
pub fn link_shared(
    ws: &Workspace,
    config: &Config,
    worktree: &Path,
) -> Result<Vec<String>, TaskError> {
    let Some(main) = ws.main_checkout() else {
        return Ok(Vec::new());
    };
    let mut linked = Vec::new();
    for path in &config.worktree.link {
        let target = main.join(path);
        let link = worktree.join(path);
        if target.symlink_metadata().is_err() || link.symlink_metadata().is_ok() {
            continue;
        }
        let made = link
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::os::unix::fs::symlink(&target, &link));
        made.map_err(|source| TaskError::CopyIncluded {
            path: path.clone(),
            source,
        })?;
        linked.push(path.clone());
    }
    Ok(linked)
}

/// The first port of the lowest block cms hands out.
const PORTS_START: u16 = 20000;

/// A block of ports held by this process for a running task: each port's lock file stays
/// locked until the value is dropped (or the process dies), so no other cms on the machine
/// hands any of them out, whatever block size its repository asks for.
pub struct PortBlock {
    pub first: u16,
    pub size: u16,
    _locks: Vec<fd_lock::RwLock<File>>,
}

impl PortBlock {
    /// The variables a session and its setup commands get.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("CMS_PORT", self.first.to_string()),
            ("CMS_PORTS", self.size.to_string()),
        ]
    }
}

/// Reserves the lowest block of `size` ports that no other running task holds and nothing on
/// the machine listens on; `None` when `size` is 0 or every block is taken.
pub fn reserve_ports(size: u16) -> Option<PortBlock> {
    if size == 0 {
        return None;
    }
    let dir = ports_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let blocks = (u16::MAX - PORTS_START) / size;
    'blocks: for block in 0..blocks {
        let first = PORTS_START + block * size;
        let mut locks = Vec::with_capacity(usize::from(size));
        for port in first..first + size {
            match lock_port(&dir, port) {
                Some(lock) if port_is_free(port) => locks.push(lock),
                // The locks taken so far are let go with `locks`.
                _ => continue 'blocks,
            }
        }
        return Some(PortBlock {
            first,
            size,
            _locks: locks,
        });
    }
    None
}

/// The lock of one port, if no other process holds it.
fn lock_port(dir: &Path, port: u16) -> Option<fd_lock::RwLock<File>> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{port}.lock")))
        .ok()?;
    let mut lock = fd_lock::RwLock::new(file);
    let guard = lock.try_write().ok()?;
    // Held until the lock file is closed, with the block.
    std::mem::forget(guard);
    Some(lock)
}

/// Where the machine's cms processes keep their port locks (per user: the lock files must be
/// writable by whoever runs cms; ports in use by anyone are seen by the bind test).
fn ports_dir() -> PathBuf {
    let uid = crate::platform::process::uid();
    std::env::temp_dir().join(format!("cms-ports-{uid}"))
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Runs `[worktree] setup` in the new worktree, in order; the first that fails stops it.
pub fn run_setup(
    commands: &[String],
    worktree: &Path,
    env: &[(&str, String)],
) -> Result<(), TaskError> {
    for command in commands {
        super::shell::run(worktree, command, env).map_err(|(code, output)| {
            TaskError::SetupFailed {
                command: command.clone(),
                code,
                output,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PortBlock, reserve_ports};

    #[test]
    fn port_blocks_of_different_sizes_never_share_a_port() {
        let held: Vec<PortBlock> = [3, 5, 1, 4, 2]
            .into_iter()
            .filter_map(reserve_ports)
            .collect();
        assert_eq!(held.len(), 5);
        let mut ports: Vec<u16> = held
            .iter()
            .flat_map(|b| b.first..b.first + b.size)
            .collect();
        let all = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), all, "a port was handed out twice");
    }
}
