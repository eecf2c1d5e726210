//! The repository and its task store together, with the live view of task records: a task
//! recorded as running whose supervisor is gone is reported (and saved) as `interrupted`,
//! and any process of its session still running (its keeper was killed too) is killed.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, RepoConfigSource};
use crate::git::{GitError, Oid, Repo};
use crate::session::{kill_session, supervisor_alive};
use crate::store::{Store, StoreError, TaskName, TaskRecord};
use crate::vocab::Status;

/// What can go wrong opening a repository's tasks or their configuration.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("failed to read {}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error("the worktrees folder {} is inside the repository at {}", dir.display(), inside.display())]
    WorktreesInsideRepository { dir: PathBuf, inside: PathBuf },
    #[error("safety.writable {} overlaps {what} {}: a task's Bash could then write there", path.display(), place.display())]
    WritableOverlaps {
        path: PathBuf,
        what: &'static str,
        place: PathBuf,
    },
}

pub struct Workspace {
    pub repo: Repo,
    pub store: Store,
}

impl Workspace {
    pub fn discover(dir: &Path) -> Result<Workspace, WorkspaceError> {
        let repo = Repo::discover(dir)?;
        let store = Store::new(&repo.common_dir);
        Ok(Workspace { repo, store })
    }

    /// Loads a task, marking it interrupted if its supervisor died.
    pub fn task(&self, name: &TaskName) -> Result<TaskRecord, WorkspaceError> {
        let record = self.store.load(name)?;
        Ok(self.reconcile(record))
    }

    /// All tasks, plus warnings for records that could not be read.
    pub fn tasks(&self) -> Result<(Vec<TaskRecord>, Vec<StoreError>), WorkspaceError> {
        let (records, errors) = self.store.list()?;
        Ok((
            records.into_iter().map(|r| self.reconcile(r)).collect(),
            errors,
        ))
    }

    /// Reconciles every task recorded as running (unreadable records are left to `list`).
    pub fn reconcile_running(&self) {
        if let Ok((records, _)) = self.store.list() {
            for record in records {
                if record.status.is_live() {
                    self.reconcile(record);
                }
            }
        }
    }

    fn reconcile(&self, record: TaskRecord) -> TaskRecord {
        // A remote task's job runs on, whoever follows it: `task::settle` stops it and brings
        // its results home.
        let orphaned = record.status.is_live()
            && record.remote.is_none()
            && record.supervisor.is_some_and(|s| !supervisor_alive(&s));
        if !orphaned {
            return record;
        }
        let pid = record.supervisor.map(|s| s.pid).unwrap_or_default();
        // The last line of defence: the keeper normally kills the session when its supervisor
        // dies, but if it was killed too, the session's processes still carry its token.
        let token = record.supervisor.map_or(0, |s| s.token);
        kill_session(token);
        // The dead supervisor could not remove the session's temp dir; nothing uses it now.
        if token != 0 {
            // What the session deleted comes back before anything looks at the repository.
            crate::git::objects::restore_leftover(
                &self.repo.common_dir,
                &self.store.object_backup_dir(&record.name, token),
            );
            let _ = std::fs::remove_dir_all(crate::safety::sandbox::temp_dir_for(
                record.name.as_str(),
                token,
            ));
        }
        let update = self.store.update(&record.name, |r| {
            // Re-check under the lock: another cms may have reconciled it already.
            if r.status.is_live() {
                r.status = Status::Interrupted;
                r.error = Some(format!(
                    "the cms process supervising this task (pid {pid}) ended before the task did"
                ));
                r.supervisor = None;
                r.pending = None;
                self.commit_left_work(r);
            }
        });
        update.unwrap_or(record)
    }

    /// Commits what an interrupted session left uncommitted in its worktree, so the branch holds
    /// all of it, and records the branch's tip and files. Only on the task's own branch: a
    /// worktree that left it is the checks' business when the task is continued.
    fn commit_left_work(&self, record: &mut TaskRecord) {
        let own = format!("refs/heads/{}", record.branch);
        if !record.worktree.is_dir() {
            return;
        }
        // A tampered admin dir is the next command's to refuse; nothing runs in it here.
        let Ok(task) = crate::git::TaskGit::open(&self.repo.common_dir, &record.worktree) else {
            return;
        };
        if crate::git::state::head_ref(&task).as_deref() != Some(own.as_str()) {
            return;
        }
        let session = record.session_id.clone().unwrap_or_default();
        let message = "cms: the work of an interrupted session";
        match commit_task_work(&task, record, &session, message) {
            Ok(_) => {
                let _ = self.record_branch_tip(record);
            }
            // Said where the user looks: the work is still there, uncommitted.
            Err(err) => {
                let error = record.error.take().unwrap_or_default();
                record.error = Some(format!(
                    "{error}; what it left uncommitted stays in its worktree ({err})"
                ));
            }
        }
    }

    /// Records the task's branch tip as its head, and the files it changed from its base.
    pub fn record_branch_tip(&self, record: &mut TaskRecord) -> Result<(), GitError> {
        let tip = self.repo.branch_tip(&record.branch)?;
        record.head = Some(tip);
        record.files_changed = crate::git::snapshot::changed_files(&self.repo, record.base, tip)?;
        Ok(())
    }

    /// The configuration for tasks based on `base`: the repository's `.cms.toml` is read from
    /// the main checkout if it has one there, otherwise from the base commit, never from a
    /// task's worktree (an agent must not be able to loosen its own rules). Unless the user
    /// trusts that exact file (`cms trust`) it can only tighten, and an untrusted
    /// `.worktreeinclude` is not used: `config.untrusted` says what was left out.
    pub fn config(&self, base: Option<Oid>) -> Result<Config, WorkspaceError> {
        self.config_trusting(&crate::trust::load(&self.repo)?, base)
    }

    /// [`Workspace::config`] with the user's trust already read, for a task that keeps both.
    pub fn config_trusting(
        &self,
        trust: &crate::trust::Trust,
        base: Option<Oid>,
    ) -> Result<Config, WorkspaceError> {
        let mut layers = self.config_layers(trust, base)?;
        Ok(layers
            .pop()
            .expect("the built-in defaults are a layer")
            .config)
    }

    /// The configuration as each layer leaves it, lowest first (see [`Config::load_layers`]);
    /// the last one, the effective configuration, also says what an untrusted repository's
    /// files asked for that was left out.
    pub fn config_layers(
        &self,
        trust: &crate::trust::Trust,
        base: Option<Oid>,
    ) -> Result<Vec<crate::config::LayerConfig>, WorkspaceError> {
        let main_file = self.main_checkout().map(|dir| dir.join(".cms.toml"));
        let mut layers = if let Some(path) = main_file.as_ref().filter(|p| p.is_file()) {
            let text =
                std::fs::read_to_string(path).map_err(|source| WorkspaceError::ReadConfig {
                    path: path.clone(),
                    source,
                })?;
            Config::load_layers(Some(RepoConfigSource {
                text: &text,
                name: path.display().to_string(),
                trusted: trust.covers(".cms.toml", text.as_bytes()),
            }))?
        } else if let Some(base) = base
            && let Some(text) = self.repo.file_at_commit(base, ".cms.toml")
        {
            Config::load_layers(Some(RepoConfigSource {
                text: &text,
                name: format!(".cms.toml at {}", &base.to_string()[..12]),
                trusted: trust.covers(".cms.toml", text.as_bytes()),
            }))?
        } else {
            Config::load_layers(None)?
        };
        let config = &mut layers
            .last_mut()
            .expect("the built-in defaults are a layer")
            .config;
        let include = self
            .main_checkout()
            .and_then(|dir| std::fs::read(dir.join(crate::trust::WORKTREE_INCLUDE)).ok());
        if let Some(bytes) = include {
            config.worktree.include_file = trust.covers(crate::trust::WORKTREE_INCLUDE, &bytes);
            let says_something = String::from_utf8_lossy(&bytes)
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            if !config.worktree.include_file && says_something {
                let untrusted = &mut config.untrusted;
                untrusted
                    .ignored
                    .push(crate::trust::WORKTREE_INCLUDE.to_owned());
                if untrusted.source.is_empty() {
                    untrusted.source = crate::trust::WORKTREE_INCLUDE.to_owned();
                }
            }
        }
        // Said here, with the rest: claude is given none of these until they are trusted.
        for path in [".claude/settings.json", ".mcp.json"] {
            let untrusted = base
                .and_then(|base| self.repo.bytes_at_commit(base, path))
                .is_some_and(|bytes| !trust.covers(path, &bytes));
            if untrusted {
                let untrusted = &mut config.untrusted;
                untrusted
                    .ignored
                    .push(format!("{path} (not given to claude)"));
                if untrusted.source.is_empty() {
                    untrusted.source = format!("the base commit's {path}");
                }
            }
        }
        Ok(layers)
    }

    /// One line on what an untrusted repository's settings asked for that cms ignores for
    /// tasks based on `base`; `None` when nothing was ignored.
    pub fn untrusted_warning(&self, base: Oid) -> Option<String> {
        self.config(Some(base))
            .ok()
            .and_then(|c| c.untrusted.warning())
    }

    /// The repository's main work tree: the parent of the common `.git` directory.
    pub fn main_checkout(&self) -> Option<PathBuf> {
        self.repo.main_checkout()
    }

    /// The folder holding this repository's task worktrees: `<root>/<repo>-<id>`, where the id
    /// tells apart repositories with the same folder name. Refused inside the repository's
    /// checkouts or git dir: the tasks would show up in the user's `git status` and in each
    /// other's changes.
    pub fn worktrees_dir(&self, config: &Config) -> Result<PathBuf, WorkspaceError> {
        let id = self.repo.short_id();
        let dir = config
            .worktrees_root
            .join(format!("{}-{id}", self.repo.display_name()));
        let resolved = resolve(&dir);
        let mut inside = self.main_checkout().into_iter().collect::<Vec<_>>();
        inside.extend([self.repo.checkout.clone(), self.repo.common_dir.clone()]);
        if let Some(place) = inside
            .iter()
            .find(|place| resolved.starts_with(crate::git::canonical(place)))
        {
            return Err(WorkspaceError::WorktreesInsideRepository {
                dir: resolved,
                inside: place.clone(),
            });
        }
        Ok(dir)
    }
}

impl Workspace {
    /// `[safety] writable` as the sandbox gets it, refused when a folder holds or lies inside
    /// the repository's git dir (cms's store is there), a checkout of it, or the folder of its
    /// task worktrees: a task's Bash could then write the user's history, other tasks'
    /// records or their worktrees.
    pub fn sandbox_writable(&self, config: &Config) -> Result<Vec<PathBuf>, WorkspaceError> {
        let mut places: Vec<(&'static str, PathBuf)> = vec![
            ("the repository's git dir", self.repo.common_dir.clone()),
            ("the checkout", self.repo.checkout.clone()),
            ("the task worktrees in", self.worktrees_dir(config)?),
        ];
        places.extend(self.main_checkout().map(|dir| ("the checkout", dir)));
        let places: Vec<(&str, PathBuf)> = places
            .into_iter()
            .map(|(what, place)| (what, resolve(&place)))
            .collect();
        let mut out = Vec::new();
        for path in &config.writable {
            let resolved = resolve(path);
            if let Some((what, place)) = places
                .iter()
                .find(|(_, place)| resolved.starts_with(place) || place.starts_with(&resolved))
            {
                return Err(WorkspaceError::WritableOverlaps {
                    path: path.clone(),
                    what,
                    place: place.clone(),
                });
            }
            out.push(resolved);
        }
        Ok(out)
    }
}

/// Commits everything in a task's worktree the way cms commits a task's work: hooks and
/// signing off, `message` and the `Cms-Task` and `Cms-Session` trailers. The caller makes sure
/// the worktree is on the task's branch. Returns the commit, or `None` when nothing was left.
pub fn commit_task_work(
    task: &crate::git::TaskGit,
    record: &TaskRecord,
    session: &str,
    message: &str,
) -> Result<Option<Oid>, GitError> {
    if record.safety.sandboxed {
        crate::safety::sandbox::remove_leftover_placeholders(task);
    }
    crate::git::snapshot::commit_all(
        task,
        message,
        &[("Cms-Task", record.name.as_str()), ("Cms-Session", session)],
        // The links into the main checkout are the worktree's furniture, not the task's work.
        &record.links,
    )
}

/// `path` made absolute with its symlinks resolved as far as it exists, so a folder not made
/// yet compares like the place it will be.
fn resolve(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut missing = Vec::new();
    let mut existing = path.as_path();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = crate::git::canonical(existing);
    resolved.extend(missing.iter().rev());
    resolved
}
