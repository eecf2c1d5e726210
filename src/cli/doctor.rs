//! `cms doctor`: checks what cms depends on here (claude and its version, git, the
//! configuration, the repository) and says how to fix each problem.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value, json};

use super::CommandContext;
use crate::config::Config;
use crate::error::{CommandError, exit_code};
use crate::git::{self, GitError};
use crate::report::JSON_VERSION;
use crate::runner::RunnerConfig;
use crate::runner::ray::RayClient;
use crate::safety::sandbox::{self, SandboxMode};
use crate::session::find_claude;
use crate::workspace::Workspace;
use std::path::PathBuf;

/// The Claude Code versions the test suite's `real_claude_` tests ran against, oldest first:
/// `.ci/run` runs the whole suite against the first (pinned) one and the `real_claude_` tests
/// again against the last, the newest verified. claude's stream-json output changes between
/// versions, so any other version gets a warning.
pub const TESTED_CLAUDE_VERSIONS: &[&str] = &["2.1.197", "2.1.332"];

/// `claude --version` answers in well under a second; a claude that hangs must not hang doctor.
const VERSION_TIMEOUT: Duration = Duration::from_secs(15);

/// Check that cms can work here: claude and its version, git, the configuration, the repository
///
/// Prints one line per check, with a hint for each problem (with --json, an object with one
/// entry per check). Exits 0 when no check failed (warnings do not count), 1 otherwise.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warning,
    Failed,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Failed => "failed",
        }
    }
}

struct Check {
    /// `claude`, `git`, ...; `runner.NAME` for each runner.
    name: String,
    level: Level,
    message: String,
    hint: Option<String>,
    /// Facts for `--json` beyond the message (paths, versions).
    details: Map<String, Value>,
}

impl Check {
    fn new(name: &str, level: Level, message: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            level,
            message: message.into(),
            hint: None,
            details: Map::new(),
        }
    }

    fn failed(name: &'static str, err: CommandError) -> Check {
        let mut check = Check::new(name, Level::Failed, err.message);
        check.hint = err.hints.into_iter().next();
        check
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }

    fn detail(mut self, key: &str, value: impl Into<Value>) -> Check {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

pub fn cmd_doctor(ctx: &CommandContext, _args: DoctorArgs) -> Result<u8, CommandError> {
    let workspace = ctx.workspace();
    let (repository, base) = check_repository(&ctx.cwd, &workspace);
    let config = match &workspace {
        Ok(ws) => ws.config(base).map_err(CommandError::from),
        Err(_) => Config::load(None).map_err(CommandError::from),
    };
    let sandbox_mode = config.as_ref().map(|c| c.sandbox).unwrap_or_default();
    // What `[safety] writable` and `hosts` add to the sandbox, checked as a task's start does.
    let reach = match (&workspace, &config) {
        (Ok(ws), Ok(config)) => ws
            .sandbox_writable(config)
            .map(|writable| (writable, config.hosts.clone()))
            .map_err(|err| err.to_string()),
        (Err(_), Ok(config)) => Ok((config.writable.clone(), config.hosts.clone())),
        (_, Err(_)) => Ok(Default::default()),
    };
    let runners = config.as_ref().map_or_else(
        |_| Vec::new(),
        |c| {
            c.runners
                .iter()
                .map(|(name, r)| check_runner(name, r, c.runner.as_deref() == Some(name), &ctx.cwd))
                .collect()
        },
    );
    let (config_check, claude_bin) = match config {
        Ok(config) => {
            let check = Check::new(
                "config",
                Level::Ok,
                format!(
                    "loaded; preset {}, worktrees in {}",
                    config.preset,
                    config.worktrees_root.display()
                ),
            )
            .detail("claude_bin", config.claude_bin.clone())
            .detail("preset", config.preset.as_str())
            .detail("model", config.model)
            .detail(
                "worktrees_root",
                config.worktrees_root.display().to_string(),
            );
            (check, config.claude_bin)
        }
        // A broken configuration file still leaves CMS_CLAUDE_BIN or PATH to find claude in.
        Err(err) => {
            let bin = std::env::var("CMS_CLAUDE_BIN")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "claude".to_owned());
            (Check::failed("config", err), bin)
        }
    };
    let mut checks = vec![
        check_claude(&claude_bin),
        check_git(),
        config_check,
        check_sandbox(sandbox_mode, reach),
        repository,
    ];
    if let Ok(ws) = &workspace {
        checks.push(check_trust(ws));
    }
    checks.extend(runners);
    let ok = checks.iter().all(|c| c.level != Level::Failed);

    let ui = &ctx.ui;
    if ui.json {
        let entries: Map<String, Value> = checks
            .iter()
            .map(|c| {
                let mut entry = Map::new();
                entry.insert("status".into(), c.level.as_str().into());
                entry.insert("message".into(), c.message.clone().into());
                entry.insert("hint".into(), c.hint.clone().into());
                entry.extend(c.details.clone());
                (c.name.clone(), Value::Object(entry))
            })
            .collect();
        ui.print_json(&json!({"version": JSON_VERSION, "ok": ok, "checks": entries}));
    } else {
        let s = &ui.out;
        for check in &checks {
            let style = match check.level {
                Level::Ok => &s.good,
                Level::Warning => &s.warn,
                Level::Failed => &s.bad,
            };
            let mut text = format!(
                "{}  {:<10} {}",
                style.apply_to(format!("{:<7}", check.level.as_str())),
                check.name,
                check.message
            );
            if let Some(hint) = &check.hint {
                text.push_str(&format!("\n{:20}{} {hint}", "", s.name.apply_to("hint:")));
            }
            ui.println(&text);
        }
    }
    Ok(if ok { exit_code::OK } else { exit_code::ERROR })
}

/// The repository cms would use from here, and its HEAD (where `.cms.toml` may live).
fn check_repository(
    cwd: &Path,
    workspace: &Result<Workspace, CommandError>,
) -> (Check, Option<git::Oid>) {
    let ws = match workspace {
        Ok(ws) => ws,
        Err(err) => {
            // Outside any repository the installation can still be fine; inside one that cms
            // cannot use (a bare one), this is the repository the user meant.
            let outside = matches!(
                git::Repo::discover(cwd),
                Err(GitError::NotARepository { .. })
            );
            let check = if outside {
                Check::new("repository", Level::Warning, err.message.clone()).hint(
                    "cms commands other than doctor need a git repository with a work tree; \
                     run them inside one",
                )
            } else {
                let mut check = Check::new("repository", Level::Failed, err.message.clone());
                check.hint = err.hints.first().cloned();
                check
            };
            return (check, None);
        }
    };
    let checkout = ws.repo.checkout.display().to_string();
    match ws.repo.head() {
        Ok(head) => {
            let on = head
                .branch()
                .map_or_else(|| "a detached HEAD".to_owned(), |b| format!("branch {b}"));
            // The warm pool, so a user can tell whether tasks start from it.
            let waiting = crate::task::pool::pooled(ws).map_or(0, |p| p.len());
            let pool = match waiting {
                0 => String::new(),
                n => format!("; {n} worktree(s) waiting in the pool"),
            };
            let check = Check::new(
                "repository",
                Level::Ok,
                format!("{checkout}, on {on}{pool}"),
            )
            .detail("path", checkout)
            .detail("branch", head.branch().map(str::to_owned))
            .detail("pool", waiting);
            (check, Some(head.oid()))
        }
        Err(err) => (
            Check::failed("repository", CommandError::from(err)).detail("path", checkout),
            None,
        ),
    }
}

/// Whether the repository's own settings files are trusted as they are (`cms trust`).
fn check_trust(ws: &Workspace) -> Check {
    let (trust, current) = match super::trust::state(ws) {
        Ok(state) => state,
        Err(err) => return Check::failed("trust", err),
    };
    let changes = crate::trust::changes(&trust, &current);
    let lines = super::trust::status_lines(&trust, &current, &changes);
    let level = match super::trust::up_to_date(&trust, &changes) {
        true => Level::Ok,
        false => Level::Warning,
    };
    let message: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    let mut check = Check::new("trust", level, message.join("; "));
    if let Value::Object(details) = super::trust::status_json(&trust, &current, &changes) {
        check
            .details
            .extend(details.into_iter().filter(|(k, _)| k != "version"));
    }
    match level {
        Level::Ok => check,
        _ => check.hint("`cms trust --show` lists them; `cms trust` trusts them as they are"),
    }
}

/// Whether tasks' Bash can run in Claude Code's sandbox, and what the configuration asks.
fn check_sandbox(mode: SandboxMode, reach: Result<(Vec<PathBuf>, Vec<String>), String>) -> Check {
    let available = sandbox::availability();
    let (level, message) = match (&available, mode) {
        (Ok(()), SandboxMode::Off) => (
            Level::Warning,
            "available, but off ([safety] sandbox = \"off\"): tasks' Bash is not confined"
                .to_owned(),
        ),
        (Ok(()), _) => (
            Level::Ok,
            "available; tasks' Bash writes only in their worktree and temp dir".to_owned(),
        ),
        (Err(why), SandboxMode::Off) => (
            Level::Warning,
            format!("off ([safety] sandbox = \"off\"), and unavailable: {why}"),
        ),
        (Err(why), SandboxMode::Auto) => (
            Level::Warning,
            format!("unavailable, tasks' Bash runs unsandboxed: {why}"),
        ),
        (Err(why), SandboxMode::Required) => (
            Level::Failed,
            format!("unavailable, and required: tasks will not start: {why}"),
        ),
    };
    let (writable, hosts) = match reach {
        Ok(reach) => reach,
        Err(why) => {
            return Check::new("sandbox", Level::Failed, why)
                .detail("mode", mode.as_str())
                .hint(
                    "name a folder outside the repository and its worktrees in [safety] writable",
                );
        }
    };
    let writable: Vec<String> = writable.iter().map(|p| p.display().to_string()).collect();
    let mut message = message;
    if mode != SandboxMode::Off && !writable.is_empty() {
        message.push_str(&format!("; also writes {}", writable.join(", ")));
    }
    if mode != SandboxMode::Off && !hosts.is_empty() {
        message.push_str(&format!("; reaches {}", hosts.join(", ")));
    }
    let check = Check::new("sandbox", level, message)
        .detail("mode", mode.as_str())
        .detail("available", available.is_ok())
        .detail("reason", available.clone().err())
        .detail("writable", writable)
        .detail("hosts", hosts);
    match (available, mode) {
        (Err(_), _) => check.hint(sandbox::INSTALL_HINT),
        (Ok(()), SandboxMode::Off) => {
            check.hint("set [safety] sandbox = \"auto\" to confine tasks' Bash")
        }
        (Ok(()), _) => check,
    }
}

fn check_git() -> Check {
    match git::version() {
        Ok(version) => Check::new(
            "git",
            Level::Ok,
            format!(
                "{version} ({}.{} or newer needed)",
                git::MIN_GIT_VERSION.0,
                git::MIN_GIT_VERSION.1
            ),
        )
        .detail("version", version),
        Err(err) => {
            let found = match &err {
                GitError::GitTooOld { found, .. } => Some(found.clone()),
                _ => None,
            };
            Check::failed("git", CommandError::from(err)).detail("found", found)
        }
    }
}

/// Where the claude setting came from, for telling the user what to change.
fn claude_source(bin: &str) -> &'static str {
    let from_env = std::env::var("CMS_CLAUDE_BIN").is_ok_and(|v| !v.is_empty());
    if from_env {
        "CMS_CLAUDE_BIN"
    } else if bin != "claude" {
        "claude.bin in the configuration"
    } else {
        "PATH"
    }
}

fn check_claude(bin: &str) -> Check {
    let source = claude_source(bin);
    let path = match find_claude(bin) {
        Ok(path) => path,
        Err(err) => {
            return Check::failed("claude", CommandError::from(err)).detail("source", source);
        }
    };
    let shown = path.display().to_string();
    let check = |level, message: String| {
        Check::new("claude", level, message)
            .detail("path", shown.clone())
            .detail("source", source)
            .detail("tested_versions", TESTED_CLAUDE_VERSIONS.to_vec())
    };
    let output = match run_version(&path) {
        Ok(output) => output,
        Err(why) => {
            return check(Level::Failed, format!("`{shown} --version` failed: {why}")).hint(
                format!("check that {shown} (from {source}) is Claude Code and runs on its own"),
            );
        }
    };
    let version = output
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let located = format!("{output} at {shown} (from {source})");
    if TESTED_CLAUDE_VERSIONS.contains(&version.as_str()) {
        check(Level::Ok, located).detail("version", version)
    } else {
        check(
            Level::Warning,
            format!(
                "{located}, a version cms was not tested with (tested: {})",
                TESTED_CLAUDE_VERSIONS.join(", ")
            ),
        )
        .hint(format!(
            "it may work; if tasks misbehave, install a tested version \
             (npm install -g @anthropic-ai/claude-code@{})",
            TESTED_CLAUDE_VERSIONS[TESTED_CLAUDE_VERSIONS.len() - 1]
        ))
        .detail("version", version)
    }
}

/// Runs `claude --version` with no stdin and a time limit, returning its first line.
fn run_version(path: &Path) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    runtime.block_on(async {
        let child = tokio::process::Command::new(path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropped at the timeout, which must not leave it running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("it could not be started ({err})"))?;
        let output = tokio::time::timeout(VERSION_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| {
                format!(
                    "it did not answer within {} seconds",
                    VERSION_TIMEOUT.as_secs()
                )
            })?
            .map_err(|err| err.to_string())?;
        let first_line = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        };
        if !output.status.success() {
            let mut why = format!("it exited with {}", output.status);
            if let Some(line) = first_line(&output.stderr) {
                why.push_str(&format!(": {line}"));
            }
            return Err(why);
        }
        first_line(&output.stdout).ok_or_else(|| "it printed nothing".to_owned())
    })
}

/// `git ls-remote` of a runner's remote gets this long; ssh's own connect timeout is minutes.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(20);

/// A runner: its Jobs API answers (and with which Ray), its remote answers from here, and what
/// it runs on the workers. The variables it hands to jobs are named, never shown.
fn check_runner(name: &str, runner: &RunnerConfig, default: bool, cwd: &Path) -> Check {
    let key = format!("runner.{name}");
    let missing: Vec<&str> = runner
        .env
        .iter()
        .map(String::as_str)
        .filter(|var| std::env::var_os(var).is_none_or(|v| v.is_empty()))
        .collect();
    let cms = match &runner.cms {
        Some(path) => format!("cms {path} on the workers"),
        None => "this cms uploaded with each job".to_owned(),
    };
    let version = RayClient::new(&runner.address).and_then(|client| client.version());
    // From the repository when there is one, so a relative path means what it means to a task.
    let remote = crate::git::probe::remote_answers(cwd, &runner.remote, REMOTE_TIMEOUT);
    let mut problems: Vec<(Level, String, String)> = Vec::new();
    let api = match &version {
        Ok(version) => format!("Ray {version} at {}", runner.address),
        Err(err) => {
            let hint = format!(
                "check [runners.{name}] address: the Ray head's dashboard port must answer from \
                 here (`ray status` on the head says whether it runs)"
            );
            problems.push((Level::Failed, err.to_string(), hint));
            format!("no answer at {}", runner.address)
        }
    };
    let reach = match &remote {
        Ok(()) => format!("remote {} answers", runner.remote),
        Err(why) => {
            problems.push((
                Level::Failed,
                format!("remote {} does not answer: {why}", runner.remote),
                format!(
                    "`git ls-remote {}` must work from here and from the workers (ssh keys, \
                     credentials, the URL in [runners.{name}] remote)",
                    runner.remote
                ),
            ));
            format!("remote {} does not answer", runner.remote)
        }
    };
    if !missing.is_empty() {
        problems.push((
            Level::Warning,
            format!("not set here: {}", missing.join(", ")),
            format!(
                "jobs get these variables from the environment cms starts in; set them \
                 or take them out of [runners.{name}] env"
            ),
        ));
    }
    let level = problems
        .iter()
        .map(|(level, ..)| *level)
        .max_by_key(|level| match level {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Failed => 2,
        })
        .unwrap_or(Level::Ok);
    let mut message = format!(
        "{api}; {reach}; {cms}; claude {} on the workers",
        runner.claude
    );
    if let Some((_, first, _)) = problems.first() {
        message = format!("{first}; {message}");
    }
    let mut check = Check::new(&key, level, message)
        .detail("runner", name)
        .detail("kind", runner.kind.as_str())
        .detail("default", default)
        .detail("address", runner.address.clone())
        .detail("ray_version", version.as_ref().ok().cloned())
        .detail("api_reachable", version.is_ok())
        .detail("remote", runner.remote.clone())
        .detail("remote_reachable", remote.is_ok())
        .detail("cms", runner.cms.clone())
        .detail("claude", runner.claude.clone())
        .detail("env", runner.env.clone())
        .detail(
            "env_missing",
            missing.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        )
        .detail("cpus", runner.cpus)
        .detail("memory", runner.memory);
    if let Some((_, _, hint)) = problems.into_iter().next() {
        check = check.hint(hint);
    }
    check
}
