//! What claude gets of the repository's own Claude Code files (`.claude/`, `.mcp.json`).
//!
//! Left to itself, claude loads the project's settings (with their hooks), its MCP servers,
//! agents (whose frontmatter may hold hooks), skills and commands from the worktree, and runs
//! their commands outside any sandbox: code chosen by a cloned repository, or written by the
//! agent itself for its next session. cms passes `--setting-sources user` (the user's own
//! `~/.claude` only) and `--strict-mcp-config`, which shut all of that out, and gives back
//! what may come in: the project's instructions (`CLAUDE.md`), and, once the user trusts them
//! (`cms trust`), the settings, MCP servers, agents, skills and commands of the task's base
//! commit, never of its worktree. docs/architecture.md has the table of which flag covers what.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::store::TaskRecord;
use crate::trust::Trust;
use crate::workspace::Workspace;

/// The project's settings file, read from the base commit when trusted.
const PROJECT_SETTINGS: &str = ".claude/settings.json";
/// The project's MCP servers, read from the base commit when trusted.
const PROJECT_MCP: &str = ".mcp.json";
/// The project's subagents, read from the base commit when trusted.
const PROJECT_AGENTS: &str = ".claude/agents";
/// The project's skills and commands, read from the base commit when trusted and given to
/// claude as a plugin of this name (so `/project:<name>`).
const PROJECT_PLUGIN: &str = "project";
const PLUGIN_PARTS: [&str; 2] = [".claude/skills", ".claude/commands"];
/// The frontmatter keys `--agents` takes besides `description` and `prompt` (Claude Code
/// 2.1.197's schema for it); `name` is the object's key, and the rest (`color`) is dropped.
const AGENT_KEYS: &[&str] = &[
    "model",
    "effort",
    "permissionMode",
    "mcpServers",
    "hooks",
    "maxTurns",
    "initialPrompt",
    "memory",
    "background",
    "isolation",
];
/// Frontmatter keys that are lists in `--agents` and may be comma-separated strings in a file.
const AGENT_LISTS: &[&str] = &["tools", "disallowedTools", "skills"];
/// What `--append-system-prompt` may carry: one argument must stay under Linux's 128 KiB.
const MAX_INSTRUCTIONS: usize = 100 * 1024;

/// claude's flags for the repository's Claude Code files: none of the worktree's, the trusted
/// MCP servers of the base commit, and the worktree's instructions. `trust` is the user's, as
/// the task's start read it.
pub(super) fn claude_args(ws: &Workspace, record: &TaskRecord, trust: &Trust) -> Vec<String> {
    let mut args = vec!["--setting-sources".to_owned(), "user".to_owned()];
    if let Some(servers) = trusted_json(ws, record, trust, PROJECT_MCP) {
        // `--mcp-config` takes several values: the `=` form and the flag after it end them.
        args.push(format!("--mcp-config={servers}"));
    }
    args.push("--strict-mcp-config".to_owned());
    if let Some(agents) = trusted_agents(ws, record, trust) {
        args.push(format!("--agents={agents}"));
    }
    if let Some(dir) = trusted_plugin(ws, record, trust) {
        args.push(format!("--plugin-dir={}", dir.display()));
    }
    if let Some(text) = instructions(&record.worktree) {
        // The `=` form, so a file that starts with `-` is not read as a flag.
        args.push(format!("--append-system-prompt={text}"));
    }
    args
}

/// cms's own `--settings` with the project's trusted settings of the base commit under them:
/// the project's hooks run after cms's guard, and cms's sandbox and the guard cannot be
/// turned off by them.
pub(super) fn with_project_settings(
    ws: &Workspace,
    record: &TaskRecord,
    trust: &Trust,
    ours: Value,
) -> Value {
    let Some(Value::Object(project)) = trusted_json(ws, record, trust, PROJECT_SETTINGS) else {
        return ours;
    };
    merge_settings(project, ours)
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

/// The base commit's `.claude/agents/**/*.md` whose bytes the user trusts, as one `--agents`
/// object; `None` when there is none. A file that is not an agent is skipped with a warning
/// naming it. Their frontmatter `hooks` run: the user trusted them, and they run inside the
/// outer boundary like any hook.
fn trusted_agents(ws: &Workspace, record: &TaskRecord, trust: &Trust) -> Option<Value> {
    let mut agents = serde_json::Map::new();
    for (path, bytes) in ws.repo.files_at_commit(record.base, PROJECT_AGENTS) {
        if !path.ends_with(".md") || !trust.covers(&path, &bytes) {
            continue;
        }
        match agent(&bytes) {
            Ok((name, definition)) => {
                agents.insert(name, definition);
            }
            Err(why) => eprintln!("cms: warning: {path}: not loaded as an agent: {why}"),
        }
    }
    (!agents.is_empty()).then_some(Value::Object(agents))
}

/// The base commit's trusted `.claude/skills` and `.claude/commands`, written afresh for this
/// session as a plugin in the store (read-only to every sandboxed session, unlike the
/// worktree and the temp dir); `None` when there are none, or with a warning when they
/// cannot be written.
fn trusted_plugin(ws: &Workspace, record: &TaskRecord, trust: &Trust) -> Option<PathBuf> {
    let dir = ws.store.plugin_dir(&record.name);
    let files: Vec<_> = PLUGIN_PARTS
        .iter()
        .flat_map(|part| ws.repo.files_at_commit(record.base, part))
        .filter(|(path, bytes)| trust.covers(path, bytes))
        .collect();
    let write = || -> std::io::Result<bool> {
        match std::fs::remove_dir_all(&dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        if files.is_empty() {
            return Ok(false);
        }
        for (path, bytes) in &files {
            let relative = Path::new(path.strip_prefix(".claude/").unwrap_or(path));
            if !relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                continue;
            }
            let at = dir.join(relative);
            std::fs::create_dir_all(at.parent().unwrap_or(&dir))?;
            std::fs::write(at, bytes)?;
        }
        std::fs::create_dir_all(dir.join(".claude-plugin"))?;
        let manifest = serde_json::json!({"name": PROJECT_PLUGIN});
        std::fs::write(dir.join(".claude-plugin/plugin.json"), manifest.to_string())?;
        Ok(true)
    };
    match write() {
        Ok(written) => written.then_some(dir),
        Err(err) => {
            eprintln!(
                "cms: warning: the project's skills and commands are not loaded: {}: {err}",
                dir.display()
            );
            None
        }
    }
}

/// An agent file's name and its `--agents` definition: the YAML frontmatter's keys, the body
/// as its prompt.
fn agent(bytes: &[u8]) -> Result<(String, Value), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or("no `---` frontmatter")?;
    let (yaml, body) = if let Some(body) = rest.strip_prefix("---") {
        ("", body)
    } else {
        let end = rest
            .find("\n---")
            .ok_or("the frontmatter has no closing `---`")?;
        (&rest[..end], &rest[end + 4..])
    };
    let body = body.split_once('\n').map_or("", |(_, body)| body).trim();
    let front: Value = serde_saphyr::from_str(yaml).map_err(|err| format!("frontmatter: {err}"))?;
    let Value::Object(front) = front else {
        return Err("the frontmatter is not a mapping".to_owned());
    };
    let text_of = |key: &str| match front.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(format!("no `{key}`")),
    };
    let name = text_of("name")?;
    let mut definition = serde_json::Map::new();
    definition.insert("description".to_owned(), text_of("description")?.into());
    if body.is_empty() {
        return Err("no prompt after the frontmatter".to_owned());
    }
    definition.insert("prompt".to_owned(), body.into());
    for key in AGENT_LISTS {
        let list = match front.get(*key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Value::String(t.to_owned()))
                .collect(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
            Some(_) => return Err(format!("`{key}` is not a list of names")),
        };
        definition.insert((*key).to_owned(), Value::Array(list));
    }
    for key in AGENT_KEYS {
        match (*key, front.get(*key)) {
            (_, None | Some(Value::Null)) => {}
            // A file may say `maxTurns: "5"`; `--agents` wants the number.
            ("maxTurns", Some(Value::String(s))) => {
                let turns: u64 = s.trim().parse().map_err(|_| "`maxTurns` is not a number")?;
                definition.insert("maxTurns".to_owned(), turns.into());
            }
            (_, Some(value)) => {
                definition.insert((*key).to_owned(), value.clone());
            }
        }
    }
    Ok((name, Value::Object(definition)))
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
    use super::{agent, instructions, merge_settings};
    use serde_json::Value;

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
    fn an_agent_file_becomes_its_agents_definition() {
        let file = "---\nname: reviewer\ndescription: Reviews code\ntools: Read, Grep\n\
                    color: red\nmaxTurns: \"3\"\nhooks:\n  Stop:\n    - hooks:\n        \
                    - type: command\n          command: \"true\"\n---\n\nYou review.\n";
        let (name, definition) = agent(file.as_bytes()).unwrap();
        assert_eq!(name, "reviewer");
        assert_eq!(
            definition,
            serde_json::json!({
                "description": "Reviews code",
                "prompt": "You review.",
                "tools": ["Read", "Grep"],
                "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "true"}]}]},
                "maxTurns": 3,
            })
        );
        for bad in [
            "no frontmatter\n",
            "---\nname: x\n---\nprompt\n",
            "---\nname: x\ndescription: d\n---\n",
            "---\nname: [x\n---\nprompt\n",
            "---\nname: x\ndescription: d\ntools: {a: 1}\n---\nprompt\n",
        ] {
            assert!(agent(bad.as_bytes()).is_err(), "{bad}");
        }
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
