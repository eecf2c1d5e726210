//! Which of a repository's own settings files the user trusts (`cms trust`), recorded by
//! content in the user's data dir, as direnv's `allow` and mise's `trust` do.
//!
//! A repository's settings files can make cms or claude run programs outside any sandbox
//! (`[worktree] setup`, `[merge] check`, Claude Code's hooks and MCP servers) or loosen cms's
//! limits. Until the user trusts them, cms uses none of that: a file is trusted when its path and
//! its exact bytes are in the record, so a changed file needs trust again. The record is keyed
//! by the repository's git common dir (a repository moved elsewhere is trusted anew).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::git::{self, Oid, Repo};

/// The files at the top of the repository that are its settings.
pub const SETTINGS_FILES: &[&str] = &[".cms.toml", WORKTREE_INCLUDE, ".mcp.json"];

/// The file listing, in gitignore syntax, the ignored files a new worktree gets a copy of (as
/// Claude Code's own worktrees do).
pub const WORKTREE_INCLUDE: &str = ".worktreeinclude";
/// The folder whose every file is a setting (Claude Code's project settings, agents, skills,
/// commands).
pub const SETTINGS_DIR: &str = ".claude";

const RECORD_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the trust record {} is not valid", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub use crate::vocab::TrustRecord;

/// The user's trust in one repository: what it trusted, if anything.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub record: Option<TrustRecord>,
}

impl Trust {
    /// Whether `path` with exactly these bytes was trusted.
    pub fn covers(&self, path: &str, bytes: &[u8]) -> bool {
        self.record
            .as_ref()
            .and_then(|r| r.files.get(path))
            .is_some_and(|id| *id == git::blob_id(bytes))
    }
}

/// Where the repository's current settings were read from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The main checkout's files, as they are on disk (untracked ones included).
    Checkout(PathBuf),
    /// A commit's files: a repository without a main checkout, read at HEAD.
    Commit(Oid),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Checkout(dir) => dir.display().to_string(),
            Source::Commit(oid) => format!("commit {}", &oid.to_string()[..12]),
        }
    }
}

/// The repository's settings files as they are now, by path, each with its blob id.
#[derive(Debug, Clone)]
pub struct Current {
    pub source: Source,
    pub files: BTreeMap<String, String>,
}

/// How the current settings differ from the trusted ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The folder the trust records live in: `$XDG_DATA_HOME/cms/trust`.
pub fn trust_dir() -> PathBuf {
    crate::config::data_dir().join("trust")
}

/// The record file of the repository whose common dir is `common_dir`.
fn record_path(common_dir: &Path) -> PathBuf {
    let key = git::canonical(common_dir);
    let id = git::blob_id(key.as_os_str().as_encoded_bytes());
    trust_dir().join(format!("{}.json", &id[..20]))
}

/// The user's trust in the repository of `ws`.
pub fn load(repo: &Repo) -> Result<Trust, TrustError> {
    let path = record_path(&repo.common_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Trust::default()),
        Err(source) => return Err(TrustError::Read { path, source }),
    };
    let record: TrustRecord =
        serde_json::from_str(&text).map_err(|source| TrustError::Corrupt { path, source })?;
    Ok(Trust {
        record: Some(record),
    })
}

/// The repository's settings files now: the main checkout's if it has one, else HEAD's.
pub fn current(repo: &Repo) -> Result<Current, TrustError> {
    let mut files = BTreeMap::new();
    let source = match repo.main_checkout() {
        Some(dir) => {
            for name in SETTINGS_FILES {
                if let Some(bytes) = read_entry(&dir.join(name))? {
                    files.insert((*name).to_owned(), git::blob_id(&bytes));
                }
            }
            let mut pending = vec![PathBuf::from(SETTINGS_DIR)];
            while let Some(rel) = pending.pop() {
                let path = dir.join(&rel);
                let Ok(meta) = path.symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    let entries = std::fs::read_dir(&path).map_err(|source| TrustError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    for entry in entries.flatten() {
                        pending.push(rel.join(entry.file_name()));
                    }
                } else if let Some(bytes) = read_entry(&path)? {
                    files.insert(rel.display().to_string(), git::blob_id(&bytes));
                }
            }
            Source::Checkout(dir)
        }
        None => {
            let head = repo.head().ok().map(|h| h.oid());
            if let Some(head) = head {
                for name in SETTINGS_FILES.iter().chain([&SETTINGS_DIR]) {
                    for (path, bytes) in repo.files_at_commit(head, name) {
                        files.insert(path, git::blob_id(&bytes));
                    }
                }
            }
            Source::Commit(head.unwrap_or(Oid::ZERO_SHA1))
        }
    };
    Ok(Current { source, files })
}

/// A file's bytes, a symlink's target as bytes; `None` when missing or a folder.
fn read_entry(path: &Path) -> Result<Option<Vec<u8>>, TrustError> {
    let read = |source| TrustError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(read(err)),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(read)?;
        return Ok(Some(target.as_os_str().as_encoded_bytes().to_vec()));
    }
    if !meta.is_file() {
        return Ok(None);
    }
    std::fs::read(path).map(Some).map_err(read)
}

/// How `current` differs from what `trust` trusted (everything is added when nothing was).
pub fn changes(trust: &Trust, current: &Current) -> Changes {
    let empty = BTreeMap::new();
    let trusted = trust.record.as_ref().map_or(&empty, |r| &r.files);
    let mut changes = Changes::default();
    for (path, id) in &current.files {
        match trusted.get(path) {
            None => changes.added.push(path.clone()),
            Some(old) if old != id => changes.changed.push(path.clone()),
            Some(_) => {}
        }
    }
    for path in trusted.keys() {
        if !current.files.contains_key(path) {
            changes.removed.push(path.clone());
        }
    }
    changes
}

/// Trusts the repository's current settings files (replacing what was trusted before).
pub fn trust(repo: &Repo) -> Result<(TrustRecord, Current), TrustError> {
    let current = current(repo)?;
    let record = TrustRecord {
        version: RECORD_VERSION,
        repository: git::canonical(&repo.common_dir),
        trusted_at: crate::store::now_rfc3339(),
        files: current.files.clone(),
    };
    let path = record_path(&repo.common_dir);
    let write = |source| TrustError::Write {
        path: path.clone(),
        source,
    };
    let dir = path.parent().expect("a record has a folder");
    std::fs::create_dir_all(dir).map_err(write)?;
    let text = serde_json::to_string_pretty(&record).expect("a record serializes");
    // Written whole or not at all: a half-written record must not trust anything.
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
    std::io::Write::write_all(&mut temp, text.as_bytes()).map_err(write)?;
    temp.persist(&path).map_err(|err| write(err.error))?;
    Ok((record, current))
}

/// Forgets what the user trusted of the repository; whether anything was.
pub fn revoke(repo: &Repo) -> Result<bool, TrustError> {
    let path = record_path(&repo.common_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(TrustError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::{Changes, Current, Source, Trust, TrustRecord, changes, git};
    use std::path::PathBuf;

    fn current(files: &[(&str, &str)]) -> Current {
        Current {
            source: Source::Checkout(PathBuf::from("/r")),
            files: files
                .iter()
                .map(|(p, c)| ((*p).to_owned(), git::blob_id(c.as_bytes())))
                .collect(),
        }
    }

    #[test]
    fn changes_name_added_changed_and_removed_files_and_trust_covers_exact_bytes() {
        let trusted = Trust {
            record: Some(TrustRecord {
                version: 1,
                repository: PathBuf::from("/r/.git"),
                trusted_at: String::new(),
                files: current(&[(".cms.toml", "a"), (".mcp.json", "m")]).files,
            }),
        };
        let now = current(&[(".cms.toml", "b"), (".claude/settings.json", "s")]);
        assert_eq!(
            changes(&trusted, &now),
            Changes {
                added: vec![".claude/settings.json".into()],
                changed: vec![".cms.toml".into()],
                removed: vec![".mcp.json".into()],
            }
        );
        assert!(trusted.covers(".cms.toml", b"a"));
        assert!(!trusted.covers(".cms.toml", b"b"));
        assert!(!trusted.covers(".claude/settings.json", b"s"));
        assert!(!Trust::default().covers(".cms.toml", b"a"));
    }
}
