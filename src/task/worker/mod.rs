//! A task's session run for a job on another machine (`cms worker`, which a runner's job
//! runs): the worker fetches the job's refs from the runner's git remote into a scratch
//! repository, makes the task's worktree at the job's start commit and runs the session
//! exactly as a local task runs (`run_foreground`, with the spec's settings instead of a
//! configuration and trust of its own, the sandbox required), and pushes what it did back.
//!
//! While the session runs, a follower thread reads the store as any cms command would: every
//! new line of claude's transcript and every change of the record's status, prompt or cost
//! becomes a [`WireLine`] for the job's log, and each status change pushes the `out` commit,
//! so a worker that dies leaves its last state on the remote. The same thread polls the
//! `control` ref and acts on it as `cms allow`/`cms deny` (the record's answer) and `cms abort`
//! (SIGTERM to this process, the supervisor) do locally. At the end the worker pushes `out`
//! and the task's branch, and says so.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

mod follow;
mod push;

use follow::Follower;
use push::{push_results, session_file_name};

use super::ask::AskOptions;
use super::error::TaskError;
use super::foreground::{Foreground, Quiet, run_foreground};
use super::rules::{RuleScope, rules_for};
use super::run::RunOptions;
use super::settings::Settings;
use super::start::{lock_reason, sandbox_plan};
use super::started::Started;
use crate::config::{Config, ConfigError};
use crate::git::{self, GitError, Oid};
use crate::runner::wire::{
    End, JobRef, Pushed, SESSION_FILE, SPEC_FILE, SPEC_VERSION, Spec, WireLine, job_ref,
    valid_job_id,
};
use crate::safety::sandbox::SandboxMode;
use crate::session::{self, Timeouts};
use crate::store::{NewTask, TaskRecord, now_rfc3339};
use crate::trust::Trust;
use crate::vocab::Status;
use crate::workspace::Workspace;

/// Why a worker could not run its job's task (the task's own ending is not an error).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("'{0}' is not a job id")]
    BadJobId(String),
    #[error("failed to make the worker's scratch repository")]
    Scratch(#[source] std::io::Error),
    #[error("could not fetch job {job} from {remote}")]
    Fetch {
        job: String,
        remote: String,
        #[source]
        source: GitError,
    },
    #[error("job {job}'s spec is not usable: {reason}")]
    BadSpec { job: String, reason: String },
    #[error("could not push job {job}'s results to {remote}")]
    Push {
        job: String,
        remote: String,
        #[source]
        source: GitError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// Runs job `job`'s task with `remote` as the transport, telling `emit` each wire line (from
/// more than one thread, never at once), and returns how the task ended once its results are
/// pushed.
pub fn run_worker(
    remote: &str,
    job: &str,
    timeouts: Timeouts,
    emit: &(dyn Fn(&WireLine) + Sync),
) -> Result<End, WorkerError> {
    if !valid_job_id(job) {
        return Err(WorkerError::BadJobId(job.to_owned()));
    }
    let remote = &absolute_path_url(remote);
    let scratch = tempfile::Builder::new()
        .prefix("cms-worker-")
        .tempdir()
        .map_err(WorkerError::Scratch)?;
    let root = git::canonical(scratch.path());
    let repo_dir = root.join("repo");
    let fetch_failed = |source| WorkerError::Fetch {
        job: job.to_owned(),
        remote: git::remote::redact_url(remote),
        source,
    };
    git::remote::init_repository(&repo_dir).map_err(TaskError::from)?;
    let wanted = [JobRef::Start, JobRef::In].map(|which| {
        let name = job_ref(job, which);
        format!("+{name}:{name}")
    });
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    git::remote::fetch(&repo_dir, remote, &wanted).map_err(fetch_failed)?;
    let ws = Workspace::discover(&repo_dir).map_err(TaskError::from)?;
    let job_in = ws
        .repo
        .resolve(&job_ref(job, JobRef::In))
        .map_err(TaskError::from)?
        .0;
    let start = ws
        .repo
        .resolve(&job_ref(job, JobRef::Start))
        .map_err(TaskError::from)?
        .0;
    let input = read_input(&repo_dir, job, job_in)?;
    let spec = &input.spec;
    let bad = |reason: String| WorkerError::BadSpec {
        job: job.to_owned(),
        reason,
    };
    if spec.start != start {
        return Err(bad(format!(
            "it starts at {} but the job's start ref is {start}",
            spec.start
        )));
    }
    if !ws.repo.is_ancestor(spec.base, start).unwrap_or(false) {
        return Err(bad(format!(
            "its base {} is not in the start commit's history",
            spec.base
        )));
    }

    let prepared =
        prepare(&ws, &root, spec, input.session.as_deref()).map_err(|err| match err {
            Prepared::Spec(reason) => bad(reason),
            Prepared::Failed(err) => *err,
        })?;
    let name = prepared.record.name.clone();
    let ask = spec.ask.then_some(AskOptions {
        typed: None,
        notify: None,
    });
    let done = AtomicBool::new(false);
    let follower = Follower {
        store: ws.store.clone(),
        repo_dir: repo_dir.clone(),
        remote,
        job,
        name: name.clone(),
        done: &done,
        emit,
    };
    let result = std::thread::scope(|scope| {
        let following = scope.spawn(|| follower.run());
        let result = run_foreground(
            &ws,
            prepared,
            Foreground::Headless(RunOptions { timeouts, ask }),
            &mut Quiet,
        )
        .and_then(|record| stopped_all_the_same(&ws, record));
        done.store(true, Ordering::SeqCst);
        let _ = following.join();
        result
    });
    let record = result?;
    let tip = ws
        .repo
        .branch_tip(&record.branch)
        .map_err(TaskError::from)?;
    let out =
        push_results(&ws.store, &repo_dir, remote, job, &record, Some(tip)).map_err(|source| {
            WorkerError::Push {
                job: job.to_owned(),
                remote: git::remote::redact_url(remote),
                source,
            }
        })?;
    emit(&WireLine::Pushed(Pushed { out, branch: tip }));
    let end = End {
        status: record.status,
        error: record.error.clone(),
    };
    emit(&WireLine::End(end.clone()));
    drop(ws);
    drop(scratch);
    Ok(end)
}

/// `url` as git must be given it from the scratch repository: a relative path to a
/// repository here, as a job may be given, made absolute; anything else as it is.
fn absolute_path_url(url: &str) -> String {
    let path = Path::new(url);
    if url.contains("://") || path.is_absolute() || !path.exists() {
        return url.to_owned();
    }
    std::path::absolute(path).map_or_else(|_| url.to_owned(), |p| p.display().to_string())
}

/// The task's final record, `aborted` if a stop was asked of the worker (SIGTERM, or the
/// control's `stop`) while the session ended of itself. A job stop may signal every process
/// under the worker: the keeper then ends claude at once, and the session can end before the
/// worker's own stop request is seen; the user still stopped the task.
fn stopped_all_the_same(ws: &Workspace, record: TaskRecord) -> Result<TaskRecord, TaskError> {
    if record.status != Status::Failed || !super::handoff::stop_requested_early() {
        return Ok(record);
    }
    Ok(ws.store.update(&record.name, |r| {
        r.status = Status::Aborted;
        r.error = Some("stopped by the user".to_owned());
    })?)
}

/// What the `in` commit holds.
struct Input {
    spec: Spec,
    session: Option<Vec<u8>>,
}

fn read_input(repo_dir: &Path, job: &str, commit: Oid) -> Result<Input, WorkerError> {
    let bad = |reason: String| WorkerError::BadSpec {
        job: job.to_owned(),
        reason,
    };
    let mut files = git::remote::read_commit_files(repo_dir, commit).map_err(TaskError::from)?;
    let text = files
        .remove(SPEC_FILE)
        .ok_or_else(|| bad(format!("the job's input has no {SPEC_FILE}")))?;
    // The version first, so a newer spec says so rather than failing on a field.
    let version = serde_json::from_slice::<serde_json::Value>(&text)
        .map_err(|err| bad(format!("{SPEC_FILE} is not JSON ({err})")))?
        .get("version")
        .and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(SPEC_VERSION)) {
        return Err(bad(format!(
            "{SPEC_FILE} is version {}, and this cms reads version {SPEC_VERSION}",
            version.map_or("(none)".to_owned(), |v| v.to_string())
        )));
    }
    let spec: Spec = serde_json::from_slice(&text)
        .map_err(|err| bad(format!("{SPEC_FILE} is not a job spec ({err})")))?;
    Ok(Input {
        spec,
        session: files.remove(SESSION_FILE),
    })
}

/// Why the task could not be made ready: the spec asks for something impossible, or a step
/// failed.
enum Prepared {
    Spec(String),
    // Boxed: a task error is large, and this is only the rare way out.
    Failed(Box<WorkerError>),
}

impl<E: Into<TaskError>> From<E> for Prepared {
    fn from(err: E) -> Self {
        Prepared::Failed(Box::new(WorkerError::Task(err.into())))
    }
}

/// Makes the task's worktree at the spec's start, its record and its settings, and for a
/// follow-up puts the session file where claude looks for it. Nothing is taken back on
/// failure: the scratch repository goes as a whole.
fn prepare(
    ws: &Workspace,
    root: &Path,
    spec: &Spec,
    session: Option<&[u8]>,
) -> Result<Started, Prepared> {
    // The built-in defaults (the first layer), with everything the local start decided: the
    // worker's own configuration has no say in how the task runs.
    let mut config = Config::load_layers(None)
        .map_err(|err| Prepared::Failed(Box::new(err.into())))?
        .swap_remove(0)
        .config;
    config.claude_bin = spec.claude.clone();
    config.model = spec.model.clone();
    config.preset = spec.preset;
    config.limits = spec.limits;
    config.protected = spec.protected.clone();
    config.hosts = spec.hosts.clone();
    config.sandbox = SandboxMode::Required;
    config.worktrees_root = root.join("worktrees");
    let claude = session::find_claude(&config.claude_bin)?;
    let (sandboxed, _) = sandbox_plan(config.sandbox)?;

    let name = spec.task.clone();
    let branch = name.branch();
    let worktrees = ws.worktrees_dir(&config)?;
    std::fs::create_dir_all(&worktrees).map_err(|source| TaskError::WorktreesFolder {
        path: worktrees.clone(),
        source,
    })?;
    let worktree = worktrees.join(name.as_str());
    git::worktree::add(
        &ws.repo.common_dir,
        &worktree,
        &branch,
        spec.start,
        &lock_reason(name.as_str()),
    )?;
    let worktree = git::canonical(&worktree);
    let supervisor = session::current_supervisor();
    let (mut record, resumed_from) = match (&spec.resume, &spec.record) {
        (None, None) => (
            TaskRecord::starting(NewTask {
                name: name.clone(),
                prompt: spec.prompt.clone(),
                branch,
                worktree: worktree.clone(),
                base: spec.base,
                base_branch: None,
                model: spec.model.clone(),
                preset: spec.preset,
                limits: spec.limits,
                protected: spec.protected.clone(),
                sandboxed,
                supervisor,
            }),
            None,
        ),
        (Some(session_id), Some(so_far)) => {
            if so_far.name != name {
                return Err(Prepared::Spec(format!(
                    "its record is task '{}', not '{name}'",
                    so_far.name
                )));
            }
            let Some(session) = session else {
                return Err(Prepared::Spec(format!(
                    "it resumes session {session_id} but the job's input has no {SESSION_FILE}"
                )));
            };
            let file = session_file_name(session_id)
                .ok_or_else(|| Prepared::Spec(format!("'{session_id}' is not a session id")))?;
            // Where claude looks for the session it resumes: the project folder named after
            // this worktree.
            let dir = session::interactive::project_dir(&worktree, None);
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join(file), session))
                .map_err(|source| TaskError::TempDir { dir, source })?;
            let mut previous = so_far.clone();
            previous.worktree = worktree.clone();
            let mut record = previous.clone();
            // As a local follow-up's take-over: running under this process, the counts
            // carried over, the limits (sums over sessions) the follow-up's.
            record.status = Status::Running;
            record.error = None;
            record.permission_denials.clear();
            record.stopped_commands.clear();
            record.pending = None;
            record.base = spec.base;
            record.session_id = Some(session_id.clone());
            record.preset = spec.preset;
            record.model = spec.model.clone().or(record.model);
            record.safety.limits = Some(spec.limits);
            record.safety.protected = spec.protected.clone();
            record.safety.sandboxed = sandboxed;
            record.supervisor = Some(supervisor);
            record.updated_at = now_rfc3339();
            (record, Some(previous))
        }
        _ => {
            return Err(Prepared::Spec(
                "a follow-up needs both the session to resume and the record so far".to_owned(),
            ));
        }
    };
    ws.store.create(&mut record)?;
    let rules = rules_for(ws, RuleScope::Session(&record))?;
    let settings = Settings {
        config,
        trust: Trust {
            record: spec.trust.clone(),
        },
        rules: std::sync::Arc::new(rules),
    };
    Ok(Started {
        record,
        claude,
        sandbox_warning: None,
        message: spec.message.clone(),
        resumed_from,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::absolute_path_url;
    use super::push::session_file_name;

    #[test]
    fn a_relative_path_to_a_repository_here_becomes_absolute_and_urls_stay() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_path_url("src"),
            here.join("src").display().to_string()
        );
        for url in [
            "git@example.com:team/app.git",
            "https://example.com/app.git",
            "/srv/app.git",
            "no-such-folder/app.git",
        ] {
            assert_eq!(absolute_path_url(url), url);
        }
    }

    #[test]
    fn only_a_plain_session_id_names_a_file() {
        assert_eq!(
            session_file_name("0b7c6a1e-1f2a-4c3b-9d8e-000000000001").as_deref(),
            Some("0b7c6a1e-1f2a-4c3b-9d8e-000000000001.jsonl")
        );
        for bad in ["", "../x", "a/b", "a.b", "x\n"] {
            assert_eq!(session_file_name(bad), None, "{bad:?}");
        }
    }
}
