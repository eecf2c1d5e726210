//! The on-disk store under `<git-common-dir>/cms/`: task records, transcripts and locks.
//!
//! Records are whole-file JSON replaced atomically (temp file, fsync, rename), so readers never
//! lock and never see half a record. Writers serialize on a per-task lock file; operations that
//! move refs or create worktrees also hold one repository-wide lock, so two `cms` processes
//! never race on the same branch name.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::name::TaskName;
use super::record::{RECORD_VERSION, TaskRecord, now_rfc3339};

mod lookup;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no task named '{name}'")]
    UnknownTask {
        name: String,
        /// The open task whose name is closest, when one is close enough to be a typo.
        closest: Option<String>,
    },

    #[error("task '{name}' already exists")]
    TaskExists { name: String },

    #[error("the record of task '{name}' was written by a newer cms (format {found})")]
    TooNew { name: String, found: u32 },

    #[error("the record of task '{name}' is unreadable")]
    Corrupt {
        name: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("failed to access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A discard that was decided and not yet finished (see [`Store::mark_discarding`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiscardMark {
    pub version: u32,
    pub name: TaskName,
    pub created_at: String,
    pub even_off_branch: bool,
}

/// An archived record and the files kept with it.
#[derive(Debug, Clone)]
pub struct Archived {
    pub record: TaskRecord,
    pub files: Vec<PathBuf>,
}

/// The store of one repository.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(common_dir: &Path) -> Store {
        Store {
            root: common_dir.join("cms"),
        }
    }

    /// Where a session's safety copy of the loose objects lives while it runs: inside the
    /// store (which the sandbox keeps read-only), named after the task and its session token
    /// so the reconcile of a dead supervisor can remove it.
    pub fn object_backup_dir(&self, name: &TaskName, token: u64) -> PathBuf {
        self.root
            .join("object-backup")
            .join(format!("{name}-{token:016x}"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of the task records; every save renames a file into it, so its modification
    /// time tells a watcher (`cms top`) whether any record changed.
    pub fn tasks_dir(&self) -> PathBuf {
        self.root.join("tasks")
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn record_path(&self, name: &TaskName) -> PathBuf {
        self.tasks_dir().join(format!("{name}.json"))
    }

    /// The raw stream-json transcript, exactly as claude printed it.
    pub fn log_path(&self, name: &TaskName) -> PathBuf {
        self.root.join("logs").join(format!("{name}.jsonl"))
    }

    /// What a detached supervisor printed (its progress and summary, or why it failed).
    pub fn supervisor_log_path(&self, name: &TaskName) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{name}.supervisor.log"))
    }

    /// What claude printed on stderr, kept for diagnosing failures.
    pub fn stderr_path(&self, name: &TaskName) -> PathBuf {
        self.root.join("logs").join(format!("{name}.stderr"))
    }

    /// claude's own session file of a task that runs on a runner, kept here between its
    /// sessions so a follow-up can resume it on any worker.
    pub fn session_file_path(&self, name: &TaskName) -> PathBuf {
        self.root.join("logs").join(format!("{name}.session.jsonl"))
    }

    /// The file a task's lock is taken on.
    pub fn task_lock_path(&self, name: &TaskName) -> PathBuf {
        self.locks_dir().join(format!("task-{name}.lock"))
    }

    pub fn exists(&self, name: &TaskName) -> bool {
        self.record_path(name).exists()
    }

    pub fn load(&self, name: &TaskName) -> Result<TaskRecord, StoreError> {
        let path = self.record_path(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::UnknownTask {
                    name: name.to_string(),
                    closest: self.closest_name(name.as_str()),
                });
            }
            Err(err) => return Err(io_err(&path)(err)),
        };
        parse_record(name.as_str(), &text)
    }

    /// Every readable record, sorted by creation time; unreadable ones are returned apart so
    /// one bad file does not hide the others.
    pub fn list(&self) -> Result<(Vec<TaskRecord>, Vec<StoreError>), StoreError> {
        let dir = self.tasks_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(err) => return Err(io_err(&dir)(err)),
        };
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err(&dir))?.path();
            // cms only writes records under valid names; anything else is not a task's.
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| TaskName::parse(n).ok())
            else {
                continue;
            };
            match self.load(&name) {
                Ok(record) => records.push(record),
                // Deleted between listing and reading: it is simply gone.
                Err(StoreError::UnknownTask { .. }) => {}
                Err(err) => errors.push(err),
            }
        }
        records.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
        Ok((records, errors))
    }

    /// Writes a record atomically, stamping `updated_at`.
    pub fn save(&self, record: &mut TaskRecord) -> Result<(), StoreError> {
        record.updated_at = now_rfc3339();
        record.version = RECORD_VERSION;
        let dir = self.tasks_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let json = serde_json::to_vec_pretty(record).expect("a task record always serializes");
        write_atomic(&self.record_path(&record.name), &json)
    }

    /// Saves a new record; fails if one with that name exists.
    pub fn create(&self, record: &mut TaskRecord) -> Result<(), StoreError> {
        let name = record.name.clone();
        self.with_task_lock(&name, || {
            if self.record_path(&record.name).exists() {
                return Err(StoreError::TaskExists {
                    name: record.name.to_string(),
                });
            }
            self.save(record)
        })?
    }

    /// Loads, changes and saves a record under its lock, returning the saved record.
    pub fn update(
        &self,
        name: &TaskName,
        change: impl FnOnce(&mut TaskRecord),
    ) -> Result<TaskRecord, StoreError> {
        self.with_task_lock(name, || {
            let mut record = self.load(name)?;
            change(&mut record);
            self.save(&mut record)?;
            Ok(record)
        })?
    }

    /// Writes a record built from the one on disk, if that is still readable, under its lock.
    /// For the supervisor's final write: the record on disk may have been damaged by the
    /// session, and the supervisor holds the true one.
    pub fn rewrite(
        &self,
        name: &TaskName,
        build: impl FnOnce(Option<TaskRecord>) -> TaskRecord,
    ) -> Result<TaskRecord, StoreError> {
        self.with_task_lock(name, || {
            let mut record = build(self.load(name).ok());
            self.save(&mut record)?;
            Ok(record)
        })?
    }

    /// Deletes every file of a task: record, transcript and lock. Used when a start fails, so
    /// that nothing half-made stays behind.
    pub fn remove(&self, name: &TaskName) -> Result<(), StoreError> {
        for path in [
            self.record_path(name),
            self.log_path(name),
            self.stderr_path(name),
            self.supervisor_log_path(name),
            self.task_lock_path(name),
        ] {
            remove_if_there(&path)?;
        }
        Ok(())
    }

    /// Moves a closed (merged or discarded) task's record and transcripts out of the way,
    /// into `archive/<name>/<n>.*` with the first free `n`, so that its name can be used
    /// again while what it did stays readable. Refuses a task that is not closed.
    pub fn archive(&self, name: &TaskName) -> Result<PathBuf, StoreError> {
        self.with_task_lock(name, || {
            let record = self.load(name)?;
            if !record.status.is_closed() {
                return Err(StoreError::TaskExists {
                    name: name.to_string(),
                });
            }
            let dir = self.archive_dir().join(name.as_str());
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let n = (1..)
                .find(|n| !dir.join(format!("{n}.json")).exists())
                .expect("an unbounded range always yields a free number");
            // Transcripts first: a crash in between leaves the record where it was, still
            // closed, and the next start archives it then.
            for (from, ext) in [
                (self.log_path(name), "jsonl"),
                (self.stderr_path(name), "stderr"),
                (self.supervisor_log_path(name), "supervisor.log"),
                (self.record_path(name), "json"),
            ] {
                let to = dir.join(format!("{n}.{ext}"));
                match fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_err(&from)(err)),
                }
            }
            Ok(dir.join(format!("{n}.json")))
        })?
    }

    fn discarding_dir(&self) -> PathBuf {
        self.root.join("discarding")
    }

    /// Records that a discard of the task was decided (with `even_off_branch` when it may
    /// remove a worktree that left the task's branch), before anything of it is removed: a
    /// discard killed halfway is finished from this mark by the next cms command, so the task
    /// is never left half removed under a record that still calls it open. The record's
    /// `created_at` tells this task apart from a later one of the same name.
    pub fn mark_discarding(
        &self,
        name: &TaskName,
        created_at: &str,
        even_off_branch: bool,
    ) -> Result<(), StoreError> {
        let dir = self.discarding_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mark = DiscardMark {
            version: 1,
            name: name.clone(),
            created_at: created_at.to_owned(),
            even_off_branch,
        };
        let json = serde_json::to_vec(&mark).expect("a discard mark always serializes");
        write_atomic(&dir.join(format!("{name}.json")), &json)
    }

    /// The discards that were decided but not finished.
    pub fn discarding(&self) -> Vec<DiscardMark> {
        let Ok(entries) = fs::read_dir(self.discarding_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                // Temp files of `write_atomic` have no `.json` ending.
                let file = entry.file_name();
                let name = TaskName::parse(file.to_str()?.strip_suffix(".json")?).ok()?;
                let text = fs::read_to_string(entry.path()).ok()?;
                serde_json::from_str::<DiscardMark>(&text)
                    .ok()
                    .filter(|mark| mark.name == name)
            })
            .collect()
    }

    /// Removes the mark of a finished discard.
    pub fn clear_discarding(&self, name: &TaskName) -> Result<(), StoreError> {
        remove_if_there(&self.discarding_dir().join(format!("{name}.json")))
    }

    /// Every transcript and lock file of a task (`logs/<name>.jsonl|.stderr|.supervisor.log`,
    /// `locks/task-<name>.lock`), with the task each belongs to, whether or not it has a record.
    pub fn task_files(&self) -> Vec<(TaskName, PathBuf)> {
        let mut files = Vec::new();
        let named = |dir: PathBuf, name_of: fn(&str) -> Option<&str>| {
            fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(move |entry| {
                    let file = entry.file_name();
                    let name = TaskName::parse(name_of(file.to_str()?)?).ok()?;
                    Some((name, entry.path()))
                })
        };
        files.extend(named(self.root.join("logs"), |file| {
            [".jsonl", ".stderr", ".supervisor.log"]
                .into_iter()
                .find_map(|ext| file.strip_suffix(ext))
        }));
        files.extend(named(self.locks_dir(), |file| {
            file.strip_prefix("task-")?.strip_suffix(".lock")
        }));
        files
    }

    /// The loose-object copies of sessions (`object-backup/<task>-<token>`), with the task
    /// and token each was named after.
    pub fn object_backups(&self) -> Vec<(PathBuf, String, u64)> {
        let Ok(entries) = fs::read_dir(self.root.join("object-backup")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().to_str()?.to_owned();
                let (task, token) = file.rsplit_once('-')?;
                let token = u64::from_str_radix(token, 16).ok()?;
                Some((entry.path(), task.to_owned(), token))
            })
            .collect()
    }

    /// Where a task's sessions get the trusted repository's skills and commands as a plugin.
    pub fn plugin_dir(&self, name: &TaskName) -> PathBuf {
        self.root.join("plugins").join(name.as_str())
    }

    /// Every task's plugin export, with the task's name as its folder says.
    pub fn plugin_exports(&self) -> Vec<(PathBuf, String)> {
        let Ok(entries) = fs::read_dir(self.root.join("plugins")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| Some((entry.path(), entry.file_name().to_str()?.to_owned())))
            .collect()
    }

    fn archive_dir(&self) -> PathBuf {
        self.root.join("archive")
    }

    /// The archived records, oldest first; unreadable ones are returned apart.
    pub fn archived(&self) -> Result<(Vec<TaskRecord>, Vec<StoreError>), StoreError> {
        let (archived, errors) = self.archived_with_files()?;
        Ok((archived.into_iter().map(|a| a.record).collect(), errors))
    }

    /// The archived records, oldest first, each with its files (`<n>.json`, `.jsonl`,
    /// `.stderr`, `.supervisor.log`); unreadable ones are returned apart.
    pub fn archived_with_files(&self) -> Result<(Vec<Archived>, Vec<StoreError>), StoreError> {
        let mut records: Vec<Archived> = Vec::new();
        let mut errors = Vec::new();
        let root = self.archive_dir();
        let tasks = match fs::read_dir(&root) {
            Ok(tasks) => tasks,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok((records, errors));
            }
            Err(err) => return Err(io_err(&root)(err)),
        };
        for task in tasks {
            let dir = task.map_err(io_err(&root))?.path();
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let path = entry.map_err(io_err(&dir))?.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let text = fs::read_to_string(&path).map_err(io_err(&path))?;
                match parse_record(name, &text) {
                    Ok(record) => {
                        let files = ["json", "jsonl", "stderr", "supervisor.log"]
                            .into_iter()
                            .map(|ext| path.with_extension(ext))
                            .filter(|p| p.exists())
                            .collect();
                        records.push(Archived { record, files });
                    }
                    Err(err) => errors.push(err),
                }
            }
        }
        records.sort_by(|a, b| {
            (&a.record.created_at, &a.record.name).cmp(&(&b.record.created_at, &b.record.name))
        });
        Ok((records, errors))
    }

    /// Runs `f` holding the task's exclusive lock.
    pub fn with_task_lock<T>(
        &self,
        name: &TaskName,
        f: impl FnOnce() -> T,
    ) -> Result<T, StoreError> {
        self.with_lock(&format!("task-{name}.lock"), f)
    }

    /// Runs `f` holding the repository-wide lock for creating worktrees and moving refs.
    pub fn with_refs_lock<T>(&self, f: impl FnOnce() -> T) -> Result<T, StoreError> {
        self.with_lock("refs.lock", f)
    }

    /// Runs `f` holding the lock of merges into `branch`: cms merges into one branch run one
    /// after the other, each from its checks to its ref move, so none plans against a tip
    /// another is about to move.
    pub fn with_merge_lock<T>(&self, branch: &str, f: impl FnOnce() -> T) -> Result<T, StoreError> {
        self.with_lock(&merge_lock_file(branch), f)
    }

    fn with_lock<T>(&self, file: &str, f: impl FnOnce() -> T) -> Result<T, StoreError> {
        let dir = self.locks_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(file);
        let handle = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut lock = fd_lock::RwLock::new(handle);
        let _guard = lock.write().map_err(io_err(&path))?;
        Ok(f())
    }

    /// Opens the transcript for appending (created if missing).
    pub fn open_log(&self, name: &TaskName) -> Result<File, StoreError> {
        let path = self.log_path(name);
        append_file(&path)
    }

    pub fn open_stderr_log(&self, name: &TaskName) -> Result<File, StoreError> {
        append_file(&self.stderr_path(name))
    }

    /// Opens the transcript for reading, or `None` when the task has none (yet).
    pub fn read_log(&self, name: &TaskName) -> Result<Option<File>, StoreError> {
        let path = self.log_path(name);
        match File::open(&path) {
            Ok(file) => Ok(Some(file)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_err(&path)(err)),
        }
    }
}

/// The lock file of merges into `branch`: a branch name may hold `/` and any byte a file
/// name cannot, so every byte outside `[A-Za-z0-9._-]` is written as `%XX`; a name too long
/// for a file keeps its start and gains a hash of the whole, so two branches never share one.
fn merge_lock_file(branch: &str) -> String {
    let mut safe = String::new();
    for byte in branch.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => safe.push(byte as char),
            _ => safe.push_str(&format!("%{byte:02X}")),
        }
    }
    const KEEP: usize = 160;
    if safe.len() > KEEP {
        // FNV-1a: stable across builds, unlike std's hasher.
        let hash = branch.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let cut = (0..=KEEP)
            .rev()
            .find(|&i| safe.is_char_boundary(i))
            .unwrap_or(0);
        safe = format!("{}~{hash:016x}", &safe[..cut]);
    }
    format!("merge-{safe}.lock")
}

/// Deletes a file; one that is already gone is fine.
fn remove_if_there(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_err(path)(err)),
    }
}

fn append_file(path: &Path) -> Result<File, StoreError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

fn parse_record(name: &str, text: &str) -> Result<TaskRecord, StoreError> {
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    if let Ok(v) = serde_json::from_str::<VersionOnly>(text)
        && v.version > RECORD_VERSION
    {
        return Err(StoreError::TooNew {
            name: name.to_owned(),
            found: v.version,
        });
    }
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        name: name.to_owned(),
        source,
    })
}

/// Replaces `path` with `bytes` so that readers see the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("store paths always have a parent");
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    temp.write_all(bytes).map_err(io_err(path))?;
    temp.as_file().sync_data().map_err(io_err(path))?;
    temp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
