//! Where a task's session runs: the runner `--on` or the user's `[task] runner` names,
//! checked reachable before anything is made.

use crate::config::Config;
use crate::runner::{RunnerConfig, RunnerError, ray};
use crate::store::RemoteRun;
use crate::task::error::TaskError;
use crate::workspace::Workspace;

/// How long the runner's git remote may take to answer before a start gives up on it.
const REMOTE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// The name that runs a task on this machine, over a configured `[task] runner`.
pub(super) const LOCAL: &str = "local";

/// The runner a new task runs on (`--on` over `[task] runner`), checked reachable before
/// anything is made; `None` runs it here.
pub(in crate::task) fn plan(
    ws: &Workspace,
    config: &Config,
    asked: Option<&str>,
) -> Result<Option<(RemoteRun, RunnerConfig)>, TaskError> {
    let Some(name) = asked.or(config.runner.as_deref()).filter(|n| *n != LOCAL) else {
        return Ok(None);
    };
    let runner = config
        .runners
        .get(name)
        .cloned()
        .ok_or_else(|| TaskError::UnknownRunner {
            name: name.to_owned(),
            known: config.runners.keys().cloned().collect(),
        })?;
    let fail = |err: RunnerError| runner_error(name, err);
    // A start that cannot reach the cluster or the remote fails here, with nothing made.
    ray::RayClient::new(&runner.address)
        .and_then(|client| client.version())
        .map_err(fail)?;
    crate::git::probe::remote_answers(&ws.repo.common_dir, &runner.remote, REMOTE_PATIENCE)
        .map_err(|reason| TaskError::Runner {
            runner: name.to_owned(),
            reason,
        })?;
    let run = RemoteRun {
        runner: name.to_owned(),
        address: runner.address.clone(),
        remote: runner.remote.clone(),
        job: None,
        log_from: 0,
        stderr_from: 0,
    };
    Ok(Some((run, runner)))
}

pub(in crate::task) fn runner_error(runner: &str, err: RunnerError) -> TaskError {
    TaskError::Runner {
        runner: runner.to_owned(),
        reason: err.to_string(),
    }
}

/// A git error talking to the runner's remote (its URL without credentials).
pub(in crate::task) fn remote_error(
    runner: &str,
    url: &str,
    err: crate::git::GitError,
) -> TaskError {
    TaskError::Runner {
        runner: runner.to_owned(),
        reason: format!(
            "the git remote {}: {err}",
            crate::git::remote::redact_url(url)
        ),
    }
}
