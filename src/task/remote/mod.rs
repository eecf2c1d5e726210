//! Tasks whose sessions run on a runner (`cms task --on NAME`, `[runners.NAME]` in the user's
//! configuration): the start commit and the session's instructions go up to the runner's git
//! remote, a Ray job runs `cms worker` there, this process follows the job's logs as if the
//! session were its own, and at the end the task's branch and results come back and the task
//! finishes here like any other. Git is the transport; the job's logs are only the live view.

mod follow;
mod import;
mod plan;

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::ask::OnPrompt;
use super::error::TaskError;
use super::run::{RunOptions, take_back};
use super::started::Started;
use crate::runner::{RunnerError, ray, wire};
use crate::session::{Ledger, StopReason, protocol::Event};
use crate::store::{RemoteRun, TaskRecord};
use crate::workspace::Workspace;

pub use import::settle_orphans;
pub(super) use plan::plan;
use plan::{remote_error, runner_error};

/// Runs `started`'s session as a job on its runner and finishes the task here when it ends.
/// Called by [`super::run_foreground`] for a task with a `remote`, in place of
/// [`super::run::run`].
pub(super) async fn run(
    ws: &Workspace,
    started: Started,
    run_opts: RunOptions,
    stop: mpsc::UnboundedReceiver<StopReason>,
    on_event: impl FnMut(&Event, &Ledger),
    on_prompt: OnPrompt,
) -> Result<TaskRecord, TaskError> {
    let remote = started
        .record
        .remote
        .clone()
        .expect("only a task with a remote runs remotely");
    let job = wire::new_job_id(&started.record.name);
    // What the task's earlier sessions left in its transcript and stderr.
    let len = |path: std::path::PathBuf| std::fs::metadata(path).map_or(0, |m| m.len());
    let earlier = (
        len(ws.store.log_path(&started.record.name)),
        len(ws.store.stderr_path(&started.record.name)),
    );
    let submitted = match submit(ws, &started, &remote, &job, run_opts.ask.is_some()) {
        Ok(submitted) => submitted,
        Err(err) => {
            // Nothing runs the session: the start is taken back, as a failed local start is.
            take_back(ws, &started.record, &started.resumed_from);
            let refs = all_refs(&job);
            let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
            let _ =
                crate::git::remote::delete_remote_refs(&ws.repo.common_dir, &remote.remote, &refs);
            return Err(err);
        }
    };
    let name = started.record.name.clone();
    let record = ws.store.update(&name, |r| {
        if let Some(run) = r.remote.as_mut() {
            run.job = Some(job.clone());
            (run.log_from, run.stderr_from) = earlier;
        }
    })?;
    let mut submitted = submitted;
    submitted.remote = record.remote.clone().unwrap_or(submitted.remote);
    let followed = follow::follow(
        ws,
        &record,
        &submitted,
        stop,
        on_event,
        on_prompt,
        run_opts.ask.and_then(|a| a.notify),
    )
    .await;
    import::finish(ws, record, &started.settings, &submitted, followed)
}

/// A job as submitted: what following and importing it need.
pub(super) struct Submitted {
    pub client: ray::RayClient,
    pub job: String,
    pub remote: RemoteRun,
    /// The commit the worker started from (the task's base, or its branch tip for a follow-up).
    pub start: crate::git::Oid,
}

/// Sends the start commit and the session's instructions up to the remote and submits the job.
fn submit(
    ws: &Workspace,
    started: &Started,
    remote: &RemoteRun,
    job: &str,
    ask: bool,
) -> Result<Submitted, TaskError> {
    let record = &started.record;
    let fail = |err: RunnerError| runner_error(&remote.runner, err);
    let config = &started.settings.config;
    let runner =
        config
            .runners
            .get(&remote.runner)
            .cloned()
            .ok_or_else(|| TaskError::UnknownRunner {
                name: remote.runner.clone(),
                known: config.runners.keys().cloned().collect(),
            })?;
    // A follow-up goes on from the task's branch; a new task from its base.
    let start = match &started.resumed_from {
        Some(_) => ws.repo.branch_tip(&record.branch)?,
        None => record.base,
    };
    let spec = wire::Spec {
        version: wire::SPEC_VERSION,
        task: record.name.clone(),
        prompt: record.prompt.clone(),
        message: started.message.clone(),
        base: record.base,
        start,
        resume: started
            .resumed_from
            .as_ref()
            .and_then(|_| record.session_id.clone()),
        // On the worker the session is a local one.
        record: started.resumed_from.as_ref().map(|_| TaskRecord {
            remote: None,
            ..record.clone()
        }),
        model: record.model.clone(),
        preset: record.preset,
        limits: record.safety.limits.unwrap_or(config.limits),
        protected: record.safety.protected.clone(),
        hosts: config.hosts.clone(),
        ask,
        trust: started.settings.trust.record.clone(),
        claude: runner.claude.clone(),
    };
    let mut files = vec![(
        wire::SPEC_FILE.to_owned(),
        serde_json::to_vec_pretty(&spec).expect("a spec serializes"),
    )];
    if started.resumed_from.is_some()
        && let Ok(session) = std::fs::read(ws.store.session_file_path(&record.name))
    {
        files.push((wire::SESSION_FILE.to_owned(), session));
    }
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let dir = &ws.repo.common_dir;
    let input = crate::git::remote::files_commit(dir, &files, &[])?;
    let (start_ref, input_ref) = (
        wire::job_ref(job, wire::JobRef::Start),
        wire::job_ref(job, wire::JobRef::In),
    );
    crate::git::remote::push(
        dir,
        &remote.remote,
        &[
            (start.to_string().as_str(), start_ref.as_str()),
            (input.to_string().as_str(), input_ref.as_str()),
        ],
        true,
    )
    .map_err(|err| remote_error(&remote.runner, &remote.remote, err))?;
    let client = ray::RayClient::new(&remote.address).map_err(fail)?;
    let (working_dir, cms) = match &runner.cms {
        Some(path) => (None, path.clone()),
        None => {
            let exe = std::env::current_exe().map_err(TaskError::OwnPath)?;
            (
                Some(client.ensure_package(&exe).map_err(fail)?),
                "./cms".to_owned(),
            )
        }
    };
    let mut env_vars = BTreeMap::new();
    for name in &runner.env {
        // A name whose variable is unset is handed over as nothing: the worker then runs as
        // the cluster's own environment has it.
        if let Ok(value) = std::env::var(name) {
            env_vars.insert(name.clone(), value);
        }
    }
    let entrypoint = entrypoint(&cms, &remote.remote, job, working_dir.is_some());
    let mut metadata = BTreeMap::new();
    metadata.insert("cms_task".to_owned(), record.name.to_string());
    metadata.insert("cms_repository".to_owned(), ws.repo.display_name());
    client
        .submit(&ray::JobSpec {
            submission_id: job.to_owned(),
            entrypoint,
            env_vars,
            working_dir,
            num_cpus: runner.cpus,
            memory: runner.memory,
            metadata,
        })
        .map_err(fail)?;
    Ok(Submitted {
        client,
        job: job.to_owned(),
        remote: remote.clone(),
        start,
    })
}

/// The shell line Ray runs on a worker: cms itself, installed in the worker image or uploaded
/// with the job. An uploaded cms is run from a copy of the job's own: Ray unpacks a package
/// once per node for every job that uses it, and a process forked while it still held the
/// file open for writing makes exec fail with "Text file busy" (seen with jobs starting
/// together).
fn entrypoint(cms: &str, remote: &str, job: &str, uploaded: bool) -> String {
    let quote = |word: &str| shlex::try_quote(word).map_or_else(|_| word.to_owned(), |q| q.into());
    let args = format!("worker --remote {} --job {}", quote(remote), quote(job));
    if uploaded {
        // The copy goes however the job ends: a stop sends SIGTERM to the shell too, which
        // then waits for the worker, exits, and runs its EXIT trap.
        format!(
            "d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT && trap 'exit 143' TERM INT HUP && \
             cp ./cms \"$d/cms\" && chmod 755 \"$d/cms\" && \"$d/cms\" {args}"
        )
    } else {
        format!("{} {args}", quote(cms))
    }
}

/// Every ref a job may have on the remote, for removing them all.
pub(super) fn all_refs(job: &str) -> Vec<String> {
    use wire::JobRef::*;
    [Start, In, Control, Branch, Out]
        .into_iter()
        .map(|which| wire::job_ref(job, which))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::entrypoint;

    #[test]
    fn an_uploaded_cms_runs_from_a_copy_of_its_own_that_is_removed_after() {
        let line = entrypoint("./cms", "/srv/git/app.git", "cms-fix-1a2b3c4d", true);
        assert_eq!(
            line,
            "d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT && trap 'exit 143' TERM INT HUP && \
             cp ./cms \"$d/cms\" && chmod 755 \"$d/cms\" && \"$d/cms\" worker --remote \
             /srv/git/app.git --job cms-fix-1a2b3c4d"
        );
    }

    #[test]
    fn an_installed_cms_runs_as_configured_with_its_words_quoted() {
        assert_eq!(
            entrypoint(
                "/opt/my tools/cms",
                "git@h:t/a b.git",
                "cms-x-00000000",
                false
            ),
            "'/opt/my tools/cms' worker --remote 'git@h:t/a b.git' --job cms-x-00000000"
        );
    }
}
