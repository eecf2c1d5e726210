//! What claude gets of the repository's own Claude Code files (`.claude/`, `.mcp.json`).
//!
//! Left to itself, claude loads the project's settings (with their hooks), its MCP servers,
//! agents (whose frontmatter may hold hooks), skills and commands from the worktree, and runs
//! their commands outside any sandbox: code chosen by a cloned repository, or written by the
//! agent itself for its next session. cms passes `--setting-sources user` (the user's own
//! `~/.claude` only) and `--strict-mcp-config`, which shut all of that out, and gives back
//! what may come in: the project's instructions (`CLAUDE.md`), and, once the user trusts them
//! (`cms trust`), the settings and MCP servers of the task's base commit, never of its
//! worktree. docs/architecture.md has the table of which flag covers what.

use std::path::Path;

use serde_json::Value;

use crate::store::TaskRecord;
use crate::trust::Trust;
use crate::workspace::{Workspace, WorkspaceError};

use super::TaskError;

/// The project's settings file, read from the base commit when trusted.
const PROJECT_SETTINGS: &str = ".claude/settings.json";
/// The project's MCP servers, read from the base commit when trusted.
const PROJECT_MCP: &str = ".mcp.json";
/// What `--append-system-prompt` may carry: one argument must stay under Linux's 128 KiB.
const MAX_INSTRUCTIONS: usize = 100 * 1024;

fn trust(ws: &Workspace) -> Result<Trust, TaskError> {
    crate::trust::load(ws).map_err(|err| TaskError::Workspace(WorkspaceError::Trust(err)))
}

/// claude's flags for the repository's Claude Code files: none of the worktree's, the trusted
/// MCP servers of the base commit, and the worktree's instructions.
pub(super) fn claude_args(ws: &Workspace, record: &TaskRecord) -> Result<Vec<String>, TaskError> {
    let trust = trust(ws)?;
    let mut args = vec!["--setting-sources".to_owned(), "user".to_owned()];
    if let Some(servers) = trusted_json(ws, record, &trust, PROJECT_MCP) {
        // `--mcp-config` takes several values: the `=` form and the flag after it end them.
        args.push(format!("--mcp-config={servers}"));
    }
    args.push("--strict-mcp-config".to_owned());
    if let Some(text) = instructions(&record.worktree) {
        // The `=` form, so a file that starts with `-` is not read as a flag.
        args.push(format!("--append-system-prompt={text}"));
    }
    Ok(args)
}

/// cms's own `--settings` with the project's trusted settings of the base commit under them:
/// the project's hooks run after cms's guard, and cms's sandbox and the guard cannot be
/// turned off by them.
pub(super) fn with_project_settings(
    ws: &Workspace,
    record: &TaskRecord,
    ours: Value,
) -> Result<Value, TaskError> {
    let trust = trust(ws)?;
    let Some(Value::Object(project)) = trusted_json(ws, record, &trust, PROJECT_SETTINGS) else {
        return Ok(ours);
    };
    Ok(merge_settings(project, ours))
}

/// The project's settings with cms's over them: hooks add up, cms's first; every other key of
/// cms's replaces the project's.
fn merge_settings(mut project: serde_json::Map<String, Value>, ours: Value) -> Value {
    // Either would silence cms's guard along with the project's hooks.
    project.remove("disableAllHooks");
    project.remove("allowManagedHooksOnly");
    let Value::Object(ours) = ours else {
        return ours;
    };
    for (key, value) in ours {
        match (key.as_str(), project.get_mut(&key)) {
            ("hooks", Some(Value::Object(theirs))) => {
                let Value::Object(hooks) = value else {
                    continue;
                };
                for (event, matchers) in hooks {
                    match (theirs.get_mut(&event), matchers) {
                        (Some(Value::Array(list)), Value::Array(mut mine)) => {
                            mine.append(list);
                            *list = mine;
                        }
                        (_, matchers) => {
                            theirs.insert(event, matchers);
                        }
                    }
                }
            }
            _ => {
                project.insert(key, value);
            }
        }
    }
    Value::Object(project)
}

/// The JSON of `path` at the task's base commit, if the user trusts those exact bytes.
fn trusted_json(ws: &Workspace, record: &TaskRecord, trust: &Trust, path: &str) -> Option<Value> {
    let bytes = ws.repo.bytes_at_commit(record.base, path)?;
    if !trust.covers(path, &bytes) {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// The project's instructions as claude would load them from the worktree: `CLAUDE.md` and
/// `.claude/CLAUDE.md`, with their `@file` lines replaced by those files (one level). Only
/// regular files inside the worktree are read; `None` when there are none.
fn instructions(worktree: &Path) -> Option<String> {
    let mut text = String::new();
    for name in ["CLAUDE.md", ".claude/CLAUDE.md"] {
        let Some(body) = read_inside(worktree, name) else {
            continue;
        };
        let mut expanded = String::new();
        for line in body.lines() {
            let import = line
                .trim()
                .strip_prefix('@')
                .filter(|p| !p.is_empty() && !p.contains(char::is_whitespace));
            match import.and_then(|p| read_inside(worktree, p.trim_start_matches("./"))) {
                Some(imported) => expanded.push_str(&imported),
                None => expanded.push_str(line),
            }
            expanded.push('\n');
        }
        text.push_str(&format!(
            "Contents of {} (project instructions, checked into the codebase):\n\n{expanded}\n",
            worktree.join(name).display()
        ));
    }
    if text.is_empty() {
        return None;
    }
    if text.len() > MAX_INSTRUCTIONS {
        let mut end = MAX_INSTRUCTIONS;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Some(text)
}

/// A regular file at the relative `path` in `root`, reached through no symlink.
fn read_inside(root: &Path, path: &str) -> Option<String> {
    let mut at = root.to_path_buf();
    for part in Path::new(path).components() {
        let std::path::Component::Normal(part) = part else {
            return None;
        };
        at.push(part);
        if at.symlink_metadata().ok()?.file_type().is_symlink() {
            return None;
        }
    }
    at.symlink_metadata().ok()?.is_file().then_some(())?;
    std::fs::read_to_string(&at).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_settings_cannot_drop_cms_guard_or_sandbox() {
        let project = serde_json::json!({
            "disableAllHooks": true,
            "env": {"A": "1"},
            "sandbox": {"enabled": false},
            "hooks": {"PreToolUse": [{"matcher": "*", "hooks": ["theirs"]}], "Stop": ["stop"]},
        });
        let ours = serde_json::json!({
            "hooks": {"PreToolUse": [{"matcher": "Write", "hooks": ["guard"]}]},
            "sandbox": {"enabled": true},
        });
        let Value::Object(project) = project else {
            unreachable!()
        };
        let merged = merge_settings(project, ours);
        assert_eq!(
            merged,
            serde_json::json!({
                "env": {"A": "1"},
                "sandbox": {"enabled": true},
                "hooks": {
                    "PreToolUse": [
                        {"matcher": "Write", "hooks": ["guard"]},
                        {"matcher": "*", "hooks": ["theirs"]},
                    ],
                    "Stop": ["stop"],
                },
            })
        );
    }

    #[test]
    fn instructions_expand_imports_and_skip_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("CLAUDE.md"), "# rules\n@AGENTS.md\n@missing.md\n").unwrap();
        std::fs::write(root.join("AGENTS.md"), "be careful").unwrap();
        let text = instructions(root).unwrap();
        assert!(
            text.contains("# rules\nbe careful\n@missing.md\n"),
            "{text}"
        );
        std::fs::remove_file(root.join("CLAUDE.md")).unwrap();
        std::os::unix::fs::symlink(root.join("AGENTS.md"), root.join("CLAUDE.md")).unwrap();
        assert_eq!(instructions(root), None);
    }
}
