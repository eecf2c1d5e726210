//! `--settings` PreToolUse hooks: which ones apply, and running them around a tool call.

mod matcher;
mod verdict;

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::child::{Ended, run_to_end, shell};
use crate::ids::{config_dir, project_dir_name};
use crate::inbox::Abort;
use crate::output::{Json, Obj};
use crate::session::{Session, TurnEnd, TurnState};
use crate::{script_error, usage_error};
use matcher::Matcher;
use verdict::{HookVerdict, hook_verdict};

/// The real CLI's default hook timeout.
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The part of a `--settings` document the fake acts on; its other keys are ignored.
#[derive(Deserialize, Default)]
struct Settings {
    #[serde(default)]
    hooks: HookSettings,
}

#[derive(Deserialize, Default)]
struct HookSettings {
    #[serde(rename = "PreToolUse", default)]
    pre_tool_use: Vec<HookGroupSettings>,
}

#[derive(Deserialize)]
struct HookGroupSettings {
    matcher: Option<String>,
    hooks: Vec<HookSettingsEntry>,
}

#[derive(Deserialize)]
struct HookSettingsEntry {
    #[serde(rename = "type")]
    kind: String,
    command: Option<String>,
    /// Seconds, as in the real settings.
    timeout: Option<f64>,
}

/// One `PreToolUse` entry: the commands it runs for the tools its matcher takes.
pub struct HookGroup {
    matcher: Matcher,
    commands: Vec<HookCommand>,
}

#[derive(Clone)]
struct HookCommand {
    command: String,
    timeout: Duration,
}

/// A settings problem the real CLI would not report the way we could fake is the test author's
/// mistake, so it fails like a broken script.
fn settings_error(message: &str) -> ! {
    script_error(&format!("--settings: {message}"))
}

/// Reads `--settings` as the real CLI does: inline JSON when it looks like an object, else the
/// path of a file (relative to the cwd).
pub fn load_hooks(settings: Option<&str>) -> Vec<HookGroup> {
    let Some(value) = settings else {
        return Vec::new();
    };
    let trimmed = value.trim();
    let text = if trimmed.starts_with('{') && trimmed.ends_with('}') {
        if serde_json::from_str::<Value>(trimmed).is_err() {
            usage_error("Error: Invalid JSON provided to --settings");
        }
        trimmed.to_string()
    } else {
        let path = std::path::absolute(value).unwrap_or_else(|_| PathBuf::from(value));
        fs::read_to_string(&path).unwrap_or_else(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                usage_error(&format!(
                    "Error: Settings file not found: {}",
                    path.display()
                ));
            }
            settings_error(&format!("cannot read {}: {err}", path.display()))
        })
    };
    let settings: Settings = serde_json::from_str(&text).unwrap_or_else(|err| {
        settings_error(&format!("not settings this fake understands: {err}"))
    });
    settings
        .hooks
        .pre_tool_use
        .into_iter()
        .map(|group| {
            let matcher = Matcher::new(group.matcher.as_deref()).unwrap_or_else(|err| {
                settings_error(&format!(
                    "hook matcher {:?}: {err}",
                    group.matcher.unwrap_or_default()
                ))
            });
            let commands = group
                .hooks
                .into_iter()
                .map(|hook| match (hook.kind.as_str(), hook.command) {
                    ("command", Some(command)) => HookCommand {
                        command,
                        timeout: hook
                            .timeout
                            .filter(|secs| *secs > 0.0)
                            .map_or(DEFAULT_HOOK_TIMEOUT, Duration::from_secs_f64),
                    },
                    (kind, _) => settings_error(&format!(
                        "only hooks of type \"command\" with a command are faked, not {kind:?}"
                    )),
                })
                .collect();
            HookGroup { matcher, commands }
        })
        .collect()
}

impl Session {
    /// Prints a tool_use and runs its `PreToolUse` hooks: the id if the tool may run, `None`
    /// if a hook blocked it (its denial is then printed and recorded).
    pub fn hooked_tool_use(
        &mut self,
        st: &mut TurnState,
        tool: &str,
        input: &Json,
    ) -> Result<Option<String>, TurnEnd> {
        let id = self.tool_use(st, tool, input.clone())?;
        Ok((!self.blocked_by_hooks(st, tool, input, &id)?).then_some(id))
    }

    /// Runs the `PreToolUse` hooks whose matcher takes `tool`, in order, for a tool_use already
    /// printed, then (for an `ask` step) the permission check. True when one of them blocked
    /// the call; its denial is then printed and recorded.
    pub fn blocked_by_hooks(
        &mut self,
        st: &mut TurnState,
        tool: &str,
        input: &Json,
        tool_use_id: &str,
    ) -> Result<bool, TurnEnd> {
        let commands: Vec<HookCommand> = self
            .pre_tool_use
            .iter()
            .filter(|group| group.matcher.matches(tool))
            .flat_map(|group| group.commands.iter().cloned())
            .collect();
        if !commands.is_empty() {
            let hook_input = self.hook_input(st, tool, input, tool_use_id);
            for hook in &commands {
                match self.run_hook(hook, tool, &hook_input) {
                    Ok(HookVerdict::Proceed) => {}
                    Ok(HookVerdict::Deny(reason)) => {
                        self.deny(st, tool, tool_use_id, input.clone(), &reason);
                        return Ok(true);
                    }
                    Err(abort) => return Err(self.interrupted(st, abort, Some(tool_use_id))),
                }
            }
        }
        // The real CLI asks for permission after the hooks let a call through.
        if st.gated {
            return self.refused_permission(st, tool, input, tool_use_id);
        }
        Ok(false)
    }

    fn hook_input(&self, st: &TurnState, tool: &str, input: &Json, tool_use_id: &str) -> Json {
        let cwd = self.cwd.display().to_string();
        let transcript = config_dir()
            .join("projects")
            .join(project_dir_name(&cwd))
            .join(format!("{}.jsonl", self.session_id));
        Obj::new()
            .field("session_id", &self.session_id)
            .field("transcript_path", transcript.display().to_string())
            .field("cwd", &cwd)
            .field("prompt_id", &st.prompt_id)
            .field("permission_mode", &self.permission_mode)
            .raw("effort", Obj::new().field("level", &self.effort).end())
            .field("hook_event_name", "PreToolUse")
            .field("tool_name", tool)
            .raw("tool_input", input.clone())
            .field("tool_use_id", tool_use_id)
            .end()
    }

    /// One hook command, the real CLI's way: `sh -c` in the cwd, in a process group of its own,
    /// the input as one line on stdin. A hook that cannot be started or outlives its timeout is
    /// a non-blocking error, after which the tool runs; one that exits is judged by
    /// `hook_verdict`.
    fn run_hook(
        &mut self,
        hook: &HookCommand,
        tool: &str,
        input: &Json,
    ) -> Result<HookVerdict, Abort> {
        let mut cmd = shell(&hook.command, &self.cwd);
        cmd.env("CLAUDE_PROJECT_DIR", &self.cwd);
        let input = Some(format!("{}\n", input.0));
        match run_to_end(cmd, input, Some(hook.timeout), &mut self.inbox) {
            Ok(Ended::Exited(output)) => Ok(hook_verdict(
                tool,
                &hook.command,
                output.code,
                &output.stdout,
                &output.stderr,
            )),
            Ok(Ended::Aborted(abort)) => Err(abort),
            Ok(Ended::TimedOut) | Err(_) => Ok(HookVerdict::Proceed),
        }
    }
}
