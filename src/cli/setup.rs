//! `cms setup`: registering `cms mcp` with Claude Code, for the repository (its `.mcp.json`)
//! or for the user (`claude mcp add`), and taking that registration back.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::CommandContext;
use crate::error::{CommandError, ErrorKind, exit_code};

/// The name cms registers under; Claude Code calls its tools `mcp__cms__<tool>`.
const SERVER_NAME: &str = "cms";

/// Register cms's MCP server with Claude Code, so a parent Claude can delegate tasks
///
/// Project scope (the default) adds a `cms` entry to the repository's `.mcp.json`, keeping
/// everything else in it; user scope runs `claude mcp add --scope user`. Running it again
/// changes nothing (or updates the entry if cms moved); --uninstall removes only cms's entry.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Where to register: the repository's .mcp.json, or your user configuration
    #[arg(long, value_enum, default_value_t = Scope::Project)]
    pub scope: Scope,

    /// Remove cms's registration instead
    #[arg(long)]
    pub uninstall: bool,

    /// Print what would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    Project,
    User,
}

pub fn cmd_setup(ctx: &CommandContext, args: SetupArgs) -> Result<u8, CommandError> {
    let command = cms_command()?;
    let outcome = match args.scope {
        Scope::Project => project(ctx, &args, &command)?,
        Scope::User => user(&args, &command)?,
    };
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&outcome);
    } else {
        let what = outcome["what"].as_str().unwrap_or_default();
        ui.println(what);
        if let Some(preview) = outcome["preview"].as_str() {
            ui.println(preview);
        }
    }
    Ok(exit_code::OK)
}

/// How Claude Code should start cms: `cms` when that is this executable on PATH (so a
/// `.mcp.json` shared in the repository works on every machine that installed cms), else
/// this executable's absolute path.
fn cms_command() -> Result<String, CommandError> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("cms"))
            .find(|candidate| candidate.is_file())
    });
    Ok(match on_path.and_then(|p| p.canonicalize().ok()) {
        Some(found) if found == exe => "cms".to_owned(),
        _ => exe.display().to_string(),
    })
}

fn entry(command: &str) -> Value {
    json!({"type": "stdio", "command": command, "args": ["mcp"], "env": {}})
}

/// Adds (or removes) cms's entry in the repository's `.mcp.json`, keeping everything else.
fn project(ctx: &CommandContext, args: &SetupArgs, command: &str) -> Result<Value, CommandError> {
    let ws = ctx.workspace()?;
    let root = ws
        .main_checkout()
        .unwrap_or_else(|| ws.repo.checkout.clone());
    let path = root.join(".mcp.json");
    let mut config = read_mcp_json(&path)?;
    let servers = config
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(servers) = servers else {
        return Err(CommandError::user(format!(
            "{}: \"mcpServers\" is not an object",
            path.display()
        ))
        .with_hint("fix the file by hand; cms changed nothing"));
    };
    let wanted = entry(command);
    let before = servers.get(SERVER_NAME).cloned();
    let (changed, what) = if args.uninstall {
        match servers.shift_remove(SERVER_NAME) {
            Some(_) => (true, format!("removed cms from {}", path.display())),
            None => (
                false,
                format!("cms is not in {}; nothing to remove", path.display()),
            ),
        }
    } else if before.as_ref() == Some(&wanted) {
        (
            false,
            format!("cms is already registered in {}", path.display()),
        )
    } else {
        servers.insert(SERVER_NAME.to_owned(), wanted.clone());
        let verb = if before.is_some() {
            "updated"
        } else {
            "registered"
        };
        (
            true,
            format!(
                "{verb} cms in {} (Claude Code asks once before starting a project's MCP server)",
                path.display()
            ),
        )
    };
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&Value::Object(config.clone()))
            .expect("JSON always serializes")
    );
    if changed && !args.dry_run {
        crate::store::write_atomic(&path, text.as_bytes())?;
    }
    let what = if args.dry_run && changed {
        format!("would have {what} (dry run)")
    } else {
        what
    };
    Ok(json!({
        "scope": "project",
        "file": path,
        "changed": changed,
        "dry_run": args.dry_run,
        "what": what,
        "entry": if args.uninstall { Value::Null } else { wanted },
        "preview": if args.dry_run && changed { Value::String(text) } else { Value::Null },
    }))
}

/// The `.mcp.json` as an object (an empty one when it does not exist).
fn read_mcp_json(path: &Path) -> Result<Map<String, Value>, CommandError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(err) => return Err(CommandError::from_error(ErrorKind::User, &err)),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(
            CommandError::user(format!("{} is not a JSON object", path.display()))
                .with_hint("fix the file by hand; cms changed nothing"),
        ),
        Err(err) => Err(
            CommandError::user(format!("{} is not valid JSON: {err}", path.display()))
                .with_hint("fix the file by hand; cms changed nothing"),
        ),
    }
}

/// Registers (or removes) cms in the user's Claude Code configuration through claude itself,
/// which owns that file.
fn user(args: &SetupArgs, command: &str) -> Result<Value, CommandError> {
    let config = crate::config::Config::load(None).map_err(CommandError::from)?;
    let claude = crate::session::find_claude(&config.claude_bin).map_err(|err| {
        CommandError::from(err)
            .with_hint("or register cms for this repository: cms setup --scope project")
    })?;
    let add: Vec<String> = [
        "mcp",
        "add",
        "--scope",
        "user",
        SERVER_NAME,
        "--",
        command,
        "mcp",
    ]
    .map(str::to_owned)
    .to_vec();
    let remove: Vec<String> = ["mcp", "remove", "--scope", "user", SERVER_NAME]
        .map(str::to_owned)
        .to_vec();
    let shown = |words: &[String]| format!("{} {}", claude.display(), words.join(" "));
    if args.dry_run {
        let plan = if args.uninstall {
            shown(&remove)
        } else {
            shown(&add)
        };
        return Ok(json!({
            "scope": "user",
            "changed": false,
            "dry_run": true,
            "what": format!("would run: {plan} (dry run)"),
            "command": plan,
        }));
    }
    let (changed, what) = if args.uninstall {
        let out = run_claude(&claude, &remove)?;
        if out.success {
            (
                true,
                "removed cms from your Claude Code user configuration".to_owned(),
            )
        } else if out.text.contains("No MCP server") || out.text.contains("not found") {
            (
                false,
                "cms is not in your Claude Code user configuration; nothing to remove".to_owned(),
            )
        } else {
            return Err(claude_failed(&claude, &out.text));
        }
    } else {
        let out = run_claude(&claude, &add)?;
        if out.success {
            (
                true,
                "registered cms in your Claude Code user configuration".to_owned(),
            )
        } else if out.text.contains("already exists") {
            // Replaced, so a cms that moved is found again; the entry stays one.
            let removed = run_claude(&claude, &remove)?;
            let added = run_claude(&claude, &add)?;
            if !removed.success || !added.success {
                return Err(claude_failed(
                    &claude,
                    &format!("{}{}", removed.text, added.text),
                ));
            }
            (
                false,
                "cms is registered in your Claude Code user configuration".to_owned(),
            )
        } else {
            return Err(claude_failed(&claude, &out.text));
        }
    };
    Ok(json!({
        "scope": "user",
        "changed": changed,
        "dry_run": false,
        "what": what,
        "command": shown(if args.uninstall { &remove } else { &add }),
    }))
}

struct ClaudeRun {
    success: bool,
    text: String,
}

fn run_claude(claude: &PathBuf, args: &[String]) -> Result<ClaudeRun, CommandError> {
    let out = Command::new(claude)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| CommandError::from_error(ErrorKind::User, &err))?;
    Ok(ClaudeRun {
        success: out.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn claude_failed(claude: &Path, text: &str) -> CommandError {
    let line = text.trim().lines().last().unwrap_or("no output").to_owned();
    CommandError::user(format!("`{} mcp` failed: {line}", claude.display()))
        .with_hint("run `claude mcp list` to see its MCP configuration")
}
