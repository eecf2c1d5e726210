//! What every kind of session is given, headless or attached: claude's arguments and
//! environment, the sandbox and the outer boundary it runs in, its temp dir, the git
//! environment of the agent's own git commands and the write guard's hook settings.

use super::error::TaskError;
use super::open::task_git;
use crate::git;
use crate::safety::{self, sandbox};
use crate::store::TaskRecord;
use crate::workspace::Workspace;

/// Variables for claude and its tools, on top of cms's own environment.
pub(super) type SessionEnv = Vec<(&'static str, String)>;

/// What a session is confined by, worked out once for both layers: the `--settings` value
/// claude gets (cms's PreToolUse write guard and the Bash sandbox), what that sandbox denies
/// (`None` when the task is unsandboxed) for the checks after it, and the outer boundary's
/// command (empty without one).
pub(super) struct SessionSandbox {
    pub settings: String,
    pub deny: Option<Vec<std::path::PathBuf>>,
    pub boundary: Vec<std::ffi::OsString>,
}

/// claude's arguments shared by every kind of session: the preset's permission flags with the
/// tools the task was allowed, the conversation to resume, the model.
pub(super) fn session_args(record: &TaskRecord, resume: bool) -> Vec<String> {
    let mut allowed = record.safety.allowed.clone();
    if let Some(rule) = sandbox::bash_rule(record.safety.sandboxed, record.preset)
        && !allowed.iter().any(|t| t == rule)
    {
        allowed.push(rule.to_owned());
    }
    let mut args = record.preset.claude_args(&allowed);
    if resume && let Some(session) = &record.session_id {
        // The same conversation, in the same worktree: claude scopes sessions to the cwd.
        args.extend(["--resume".to_owned(), session.clone()]);
    }
    if let Some(model) = &record.model {
        args.extend(["--model".to_owned(), model.clone()]);
    }
    args
}

/// The session's temp dir (removed when the value is dropped) and the environment claude and
/// its tools get: the task's identity, that temp dir, and the agent's git settings.
pub(super) fn session_env(
    ws: &Workspace,
    record: &TaskRecord,
) -> Result<(tempfile::TempDir, SessionEnv), TaskError> {
    let temp = task_temp_dir(record)?;
    safety::boundary::prepare_guard_dir(temp.path()).map_err(|source| TaskError::TempDir {
        dir: temp.path().to_owned(),
        source,
    })?;
    let agent_env = agent_git_env(ws, record, temp.path())?;
    let env = [
        ("CMS_TASK", record.name.to_string()),
        ("CMS_TASK_BRANCH", record.branch.clone()),
        ("CMS_TASK_DIR", record.worktree.display().to_string()),
        ("CMS_REPO", ws.repo.common_dir.display().to_string()),
        // claude keeps its own files here and gives sandboxed Bash a `$TMPDIR` inside it,
        // the only place outside the worktree that Bash may write.
        ("TMPDIR", temp.path().display().to_string()),
    ]
    .into_iter()
    .chain(agent_env)
    .collect();
    Ok((temp, env))
}

/// Builds the task's [`SessionSandbox`]: the admin dir cms verified, the denied git paths (a
/// walk of the refs) and the user's writable folders are taken once and given to both the Bash
/// sandbox and the outer boundary.
pub(super) fn session_sandbox(
    ws: &Workspace,
    record: &TaskRecord,
    config: &crate::config::Config,
    trust: &crate::trust::Trust,
) -> Result<SessionSandbox, TaskError> {
    // The admin dir as cms verified it, never as the worktree's `.git` link says.
    let task = task_git(ws, record)?;
    let private_dir = task.admin_dir().to_owned();
    // Unsandboxed tasks too: other tasks' sandboxes would otherwise make theirs come and go.
    sandbox::prepare_private_dir(&private_dir);
    let mut settings = hook_settings(ws, record)?;
    let deny = sandbox::git_deny_write(&ws.repo.common_dir, Some(&private_dir), &record.branch);
    let mut bash_deny = deny.clone();
    // What the write guard blocked is the supervisor's to collect, not the agent's to forge.
    bash_deny.push(session_temp_dir(record).join(safety::boundary::GUARD_DIR));
    settings["sandbox"] = sandbox::settings(
        record.safety.sandboxed,
        record.preset,
        &bash_deny,
        Some(&private_dir),
    );
    let mut boundary = Vec::new();
    if record.safety.sandboxed {
        let writable = ws.sandbox_writable(config)?;
        sandbox::widen(&mut settings["sandbox"], &writable, &config.hosts);
        if safety::boundary::enabled() {
            boundary = session_boundary(ws, record, &private_dir, &deny, writable);
        }
    }
    let settings = super::project::with_project_settings(ws, record, trust, settings);
    Ok(SessionSandbox {
        settings: settings.to_string(),
        deny: record.safety.sandboxed.then_some(deny),
        boundary,
    })
}

/// The outer boundary claude runs inside (see [`safety::boundary`]), for a sandboxed task:
/// what Bash's sandbox may write (`deny` taken out of the common dir, the user's `writable`
/// folders) is all that any process of the session may write.
pub(super) fn session_boundary(
    ws: &Workspace,
    record: &TaskRecord,
    private_dir: &std::path::Path,
    deny: &[std::path::PathBuf],
    extra_writable: Vec<std::path::PathBuf>,
) -> Vec<std::ffi::OsString> {
    // Claude Code's Bash sandbox makes a mount point for every admin dir's missing
    // `config.worktree`; inside the boundary the other admin dirs are read-only, so every Bash
    // call would fail. An empty one means nothing to git (see `prepare_private_dir`).
    let admin_dirs = ws.repo.common_dir.join("worktrees");
    for dir in deny
        .iter()
        .filter(|p| p.parent() == Some(admin_dirs.as_path()))
    {
        sandbox::prepare_private_dir(dir);
    }
    let mut writable = safety::boundary::writable(
        &record.worktree,
        &session_temp_dir(record),
        &ws.repo.common_dir,
        deny,
    );
    // Its own admin dir bound again, after the common dir: a mount point can be neither
    // renamed nor replaced (`EBUSY`), so no hook or MCP server can swap it for a look-alike,
    // as the Bash sandbox's `allowWrite` keeps Bash from doing.
    let after_common = writable
        .paths
        .iter()
        .position(|p| p == &ws.repo.common_dir)
        .map_or(writable.paths.len(), |i| i + 1);
    writable.paths.insert(after_common, private_dir.to_owned());
    // `[safety] writable`, as the Bash sandbox gets it: Bash runs inside this boundary too.
    writable
        .paths
        .extend(extra_writable.into_iter().filter(|p| p.is_dir()));
    safety::boundary::command(&writable)
}

/// The session's temp dir (made by [`session_env`]): named after the task and its token.
pub(super) fn session_temp_dir(record: &TaskRecord) -> std::path::PathBuf {
    sandbox::temp_dir_for(
        record.name.as_str(),
        record.supervisor.map_or(0, |s| s.token),
    )
}

/// A fresh temp dir for one session of the task.
pub(super) fn task_temp_dir(record: &TaskRecord) -> Result<tempfile::TempDir, TaskError> {
    let path = safety::sandbox::temp_dir_for(
        record.name.as_str(),
        record.supervisor.map_or(0, |s| s.token),
    );
    let name = path.file_name().expect("a temp dir has a name").to_owned();
    tempfile::Builder::new()
        .prefix(&name)
        .rand_bytes(0)
        .tempdir_in(path.parent().expect("a temp dir has a parent"))
        .map_err(|source| TaskError::TempDir {
            dir: std::env::temp_dir(),
            source,
        })
}

/// What the agent's own git commands need under the sandbox: an excludes file that hides the
/// sandbox's placeholder dotfiles (which `git add -A` would refuse), given through
/// `GIT_CONFIG_*` so nothing in the repository changes.
pub(super) fn agent_git_env(
    ws: &Workspace,
    record: &TaskRecord,
    temp: &std::path::Path,
) -> Result<Vec<(&'static str, String)>, TaskError> {
    if !record.safety.sandboxed {
        return Ok(Vec::new());
    }
    let excludes = temp.join("git-excludes");
    let user = git::worktree::user_excludes(&task_git(ws, record)?);
    let mut text = sandbox::agent_excludes(user.as_deref());
    // The links into the main checkout are not the agent's to commit either.
    for link in &record.links {
        text.push_str(&format!("/{link}\n"));
    }
    std::fs::write(&excludes, text).map_err(|source| TaskError::TempDir {
        dir: temp.to_owned(),
        source,
    })?;
    // Appended after any GIT_CONFIG_* entries the user's environment already has.
    let index: usize = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Spawn takes static names; these two are made once per session.
    let key: &'static str = Box::leak(format!("GIT_CONFIG_KEY_{index}").into_boxed_str());
    let value: &'static str = Box::leak(format!("GIT_CONFIG_VALUE_{index}").into_boxed_str());
    Ok(vec![
        ("GIT_CONFIG_COUNT", (index + 1).to_string()),
        (key, "core.excludesFile".to_owned()),
        (value, excludes.display().to_string()),
    ])
}

/// The `--settings` that give claude cms's PreToolUse hook: every file-editing tool call is
/// checked against the task's protected paths and worktree before it runs, in every preset.
pub(super) fn hook_settings(
    ws: &Workspace,
    record: &TaskRecord,
) -> Result<serde_json::Value, TaskError> {
    let exe = std::env::current_exe().map_err(TaskError::OwnPath)?;
    let words = [
        exe.display().to_string(),
        "guard".to_owned(),
        "pre-tool-use".to_owned(),
        "--repo".to_owned(),
        ws.repo.common_dir.display().to_string(),
        "--task".to_owned(),
        record.name.as_str().to_owned(),
        // The hook judges by these, not by the record: the record lives in the repository's
        // git dir, which the agent's own git commands can write.
        "--worktree".to_owned(),
        record.worktree.display().to_string(),
        "--blocked-to".to_owned(),
        safety::boundary::blocked_file(&session_temp_dir(record))
            .display()
            .to_string(),
    ]
    .into_iter()
    .chain(
        record
            .safety
            .protected
            .iter()
            .flat_map(|glob| ["--protect".to_owned(), glob.clone()]),
    )
    .collect::<Vec<_>>();
    let command = sh_command(words.iter().map(String::as_str));
    let settings = serde_json::json!({
        "hooks": {
            "PreToolUse": [{
                "matcher": safety::guard::WRITE_TOOLS_MATCHER,
                "hooks": [{"type": "command", "command": command}],
            }],
        },
    });
    Ok(settings)
}

/// `words` as one line for `sh`, which runs claude's hook commands.
fn sh_command<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let quoter = shlex::Quoter::new().allow_nul(true);
    quoter.join(words).expect("NUL is allowed")
}

#[cfg(test)]
mod tests {
    use super::sh_command;

    #[test]
    fn hook_command_words_reach_the_command_unchanged() {
        for word in [
            "plain",
            "with space",
            "it's",
            "$HOME `id` \"q\"",
            "a'b'c",
            "!x ~y #z {a,b}",
            "",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(sh_command(["printf", "%s", word]))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word);
        }
    }
}
