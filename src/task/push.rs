//! Pushing a task's branch for review instead of merging it, optionally opening a pull
//! request through the GitHub CLI.

use std::io::Write;
use std::process::{Command, Stdio};

use super::error::TaskError;
use super::open::open_for_change;
use crate::git::{self, Oid};
use crate::report;
use crate::store::{PushInfo, TaskName, TaskRecord};
use crate::workspace::Workspace;

/// What the user asked of a push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub remote: Option<String>,
    /// Open a pull request with `gh` after the push.
    pub pr: bool,
    pub allow_protected: bool,
    pub no_verify: bool,
}

/// Pushes the task's branch as `opts` says and records where it went.
pub fn push(ws: &Workspace, name: &TaskName, opts: &PushOptions) -> Result<TaskRecord, TaskError> {
    let record = open_for_change(ws, name, "push")?;
    let (tip, _) = super::merge::ready_to_leave(ws, &record, opts.allow_protected)?;
    let checkout = &ws.repo.checkout;
    let remote = match &opts.remote {
        Some(remote) => remote.clone(),
        None => git::remote::default_remote(checkout, record.base_branch.as_deref())?
            .ok_or_else(|| TaskError::NoRemote(record.name.clone()))?,
    };
    if !git::remote::remote_exists(checkout, &remote) {
        return Err(TaskError::UnknownRemote(remote));
    }
    let gh = if opts.pr {
        Some(find_gh().ok_or(TaskError::GhMissing)?)
    } else {
        None
    };
    // cms replaces on the remote only what it pushed there itself.
    let lease = record
        .push
        .as_ref()
        .filter(|p| p.remote == remote)
        .map(|p| p.commit);
    git::remote::push_branch(checkout, &remote, &record.branch, lease, opts.no_verify).map_err(
        |err| TaskError::PushFailed {
            name: record.name.clone(),
            remote: remote.clone(),
            why: err.to_string(),
        },
    )?;
    let mut pushed = PushInfo {
        remote: remote.clone(),
        branch: record.branch.clone(),
        commit: tip,
        pr: record.push.as_ref().and_then(|p| p.pr.clone()),
    };
    let saved = ws
        .store
        .update(&record.name, |r| r.push = Some(pushed.clone()))?;
    let Some(gh) = gh else {
        return Ok(saved);
    };
    if pushed.pr.is_some() {
        // The pull request follows its branch; pushing again updated it.
        return Ok(saved);
    }
    let url = open_pr(&gh, &saved, tip, ws)?;
    pushed.pr = Some(url);
    Ok(ws
        .store
        .update(&record.name, |r| r.push = Some(pushed.clone()))?)
}

fn find_gh() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("gh"))
        .find(|candidate| candidate.is_file())
}

/// Runs `gh pr create` for the pushed branch; returns the pull request's URL.
fn open_pr(
    gh: &std::path::Path,
    record: &TaskRecord,
    tip: Oid,
    ws: &Workspace,
) -> Result<String, TaskError> {
    let title = super::merge::subject(record);
    let mut cmd = Command::new(gh);
    cmd.args([
        "pr",
        "create",
        "--head",
        &record.branch,
        "--title",
        &title,
        "--body-file",
        "-",
    ])
    .current_dir(&ws.repo.checkout)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(base) = &record.base_branch {
        cmd.args(["--base", base]);
    }
    for var in git::REPO_ENV_VARS {
        cmd.env_remove(var);
    }
    let failed = |why: String| TaskError::PrFailed {
        name: record.name.clone(),
        why,
    };
    let mut child = cmd.spawn().map_err(|err| failed(err.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(pr_body(record, tip).as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|err| failed(err.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(failed(
            stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("gh failed")
                .to_owned(),
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    // gh prints the new pull request's URL as its last line.
    Ok(stdout.trim().lines().last().unwrap_or_default().to_owned())
}

/// The pull request's description: the task's result, the files it changed, and where it
/// came from.
fn pr_body(record: &TaskRecord, tip: Oid) -> String {
    let mut body = String::new();
    if let Some(response) = record
        .response
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        body.push_str(response);
        body.push_str("\n\n");
    }
    if !record.files_changed.is_empty() {
        body.push_str("Files changed:\n\n");
        for file in &record.files_changed {
            let counts = if file.binary {
                "binary".to_owned()
            } else {
                format!("+{} -{}", file.additions, file.deletions)
            };
            body.push_str(&format!("- `{}` {} ({counts})\n", file.path, file.status));
        }
        body.push('\n');
    }
    body.push_str(&format!(
        "---\nMade by cms task `{}` at {} ({}, {} turns).\n",
        record.name,
        &tip.to_string()[..12],
        report::format_cost(record.cost_usd),
        record.turns
    ));
    body
}
