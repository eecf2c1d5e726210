//! A transcript's readable entries: what `cms task`'s live progress and `cms logs` show of
//! claude's stream-json events (texts, tool calls and results, denials, results), one line
//! each, with the worktree's paths shortened.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::report;
use crate::session::protocol::{ContentBlock, Event, SystemEvent, UserContent};
use crate::session::{first_line, shorten_tool_input, tool_input_text};

/// Longest line of a text or tool result in the readable view.
const LINE_CHARS: usize = 100;

/// One readable event. Serialized as `cms logs --json` prints it (`kind` tags the variant).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A session (or a turn of one) starts: claude's `system/init`.
    Session {
        session_id: String,
        model: Option<String>,
    },
    /// claude retries an API request.
    ApiRetry {
        attempt: Option<u32>,
        max_retries: Option<u32>,
        error_status: Option<u16>,
    },
    /// An assistant text block, whole.
    Text { text: String },
    ToolCall {
        tool: String,
        tool_use_id: String,
        /// What the call acts on, whole (a path relative to the worktree, a command, a
        /// pattern); `line` shortens a long command for the one-line view.
        input: String,
    },
    ToolResult {
        /// The tool of the call it answers, when the call is in the transcript.
        tool: Option<String>,
        tool_use_id: String,
        is_error: bool,
        /// The result's first line.
        text: String,
    },
    /// claude asks permission for a tool call (a `can_use_tool` prompt); the task waits for
    /// the answer unless cms's policy gave it at once.
    Asks {
        tool: String,
        tool_use_id: Option<String>,
        input: String,
    },
    /// A tool call claude was not allowed to make, from the result's `permission_denials`.
    Denied {
        tool: String,
        tool_use_id: Option<String>,
        input: String,
    },
    /// The end of a turn, with claude's figures for its process (cost is cumulative per
    /// process; `cms show` has the task's totals).
    Result {
        subtype: String,
        is_error: bool,
        cost_usd: f64,
        num_turns: u32,
        duration_ms: u64,
        /// The response's first line, or the errors claude listed.
        text: Option<String>,
    },
}

impl Entry {
    /// The marker that starts the entry's line.
    pub fn marker(&self) -> &'static str {
        match self {
            Entry::Session { .. } => "▸",
            Entry::ApiRetry { .. } => "↻",
            Entry::Text { .. } => "›",
            Entry::ToolCall { .. } => "●",
            Entry::ToolResult {
                is_error: false, ..
            } => "✓",
            Entry::ToolResult { is_error: true, .. } => "✗",
            Entry::Asks { .. } => "?",
            Entry::Denied { .. } => "⊘",
            Entry::Result { .. } => "■",
        }
    }

    /// The entry as one line of text, without its marker.
    pub fn line(&self) -> String {
        match self {
            Entry::Session { session_id, model } => format!(
                "session {session_id} · {}",
                report::model_label(model.as_deref())
            ),
            Entry::ApiRetry {
                attempt,
                max_retries,
                error_status,
            } => {
                let status =
                    error_status.map_or_else(|| "no response".to_owned(), |s| s.to_string());
                format!(
                    "API error ({status}), retry {} of {}",
                    attempt.unwrap_or(0),
                    max_retries.unwrap_or(0)
                )
            }
            Entry::Text { text } => {
                let more = text.trim_end().lines().count().saturating_sub(1);
                let first = first_line(text.trim_start(), LINE_CHARS);
                match more {
                    0 => first,
                    1 => format!("{first} (+1 line)"),
                    n => format!("{first} (+{n} lines)"),
                }
            }
            Entry::ToolCall { tool, input, .. } if input.is_empty() => tool.clone(),
            Entry::ToolCall { tool, input, .. } => {
                format!("{tool} {}", shorten_tool_input(tool, input))
            }
            Entry::ToolResult { tool, text, .. } => match tool {
                Some(tool) if text.is_empty() => tool.clone(),
                Some(tool) => format!("{tool}: {text}"),
                None => text.clone(),
            },
            Entry::Asks { tool, input, .. } if input.is_empty() => format!("asks for {tool}"),
            Entry::Asks { tool, input, .. } => {
                format!("asks for {tool} {}", shorten_tool_input(tool, input))
            }
            Entry::Denied { tool, input, .. } if input.is_empty() => format!("denied {tool}"),
            Entry::Denied { tool, input, .. } => {
                format!("denied {tool} {}", shorten_tool_input(tool, input))
            }
            Entry::Result {
                subtype,
                is_error,
                cost_usd,
                num_turns,
                duration_ms,
                text,
            } => {
                let outcome = match (*is_error, subtype.as_str()) {
                    (false, "success") => "success".to_owned(),
                    (true, "success") => "error".to_owned(),
                    (_, other) => other.to_owned(),
                };
                let mut line = format!(
                    "result {outcome} · {} · {num_turns} turns · {}",
                    report::format_cost(*cost_usd),
                    report::format_duration_ms(*duration_ms)
                );
                if let Some(text) = text.as_deref().filter(|_| *is_error) {
                    line.push_str(&format!(" · {}", first_line(text, LINE_CHARS)));
                }
                line
            }
        }
    }

    /// Whether the entry reports something that went wrong.
    #[cfg(test)]
    pub fn is_error(&self) -> bool {
        match self {
            Entry::ToolResult { is_error, .. } | Entry::Result { is_error, .. } => *is_error,
            Entry::Denied { .. } | Entry::ApiRetry { .. } | Entry::Asks { .. } => true,
            _ => false,
        }
    }
}

/// Turns events into entries, remembering each tool call's name for its result.
#[derive(Debug, Default)]
pub struct Reader {
    worktree: Option<PathBuf>,
    /// The working directories sessions reported that are not `worktree`.
    elsewhere: Vec<PathBuf>,
    tools: HashMap<String, String>,
}

impl Reader {
    /// A reader that shows the paths below `worktree` relative to it.
    pub fn new(worktree: impl Into<PathBuf>) -> Reader {
        Reader {
            worktree: Some(worktree.into()),
            elsewhere: Vec::new(),
            tools: HashMap::new(),
        }
    }

    fn relative(&self, text: &str) -> String {
        let Some(worktree) = &self.worktree else {
            return text.to_owned();
        };
        let mut text = report::relative(text, worktree);
        // A session run elsewhere (on a runner's worker) had a worktree of its own there.
        for root in &self.elsewhere {
            text = report::relative(&text, root);
        }
        text
    }

    /// The entries of one event; none for events with nothing to read (unknown, malformed,
    /// control lines, thinking).
    pub fn entries(&mut self, event: &Event) -> Vec<Entry> {
        let mut entries = Vec::new();
        match event {
            Event::System(SystemEvent::Init(init)) => {
                let cwd = init.cwd.as_deref().map(PathBuf::from);
                if let Some(cwd) = cwd.filter(|cwd| {
                    self.worktree.as_ref().is_some_and(|w| w != cwd)
                        && !self.elsewhere.contains(cwd)
                }) {
                    self.elsewhere.push(cwd);
                }
                entries.push(Entry::Session {
                    session_id: init.session_id.clone(),
                    model: init.model.clone(),
                });
            }
            Event::System(SystemEvent::ApiRetry(retry)) => entries.push(Entry::ApiRetry {
                attempt: retry.attempt,
                max_retries: retry.max_retries,
                error_status: retry.error_status,
            }),
            Event::Assistant(a) => {
                for block in &a.message.content {
                    match block {
                        ContentBlock::Text { text } if !text.trim().is_empty() => {
                            entries.push(Entry::Text {
                                text: self.relative(text),
                            });
                        }
                        ContentBlock::ToolUse { id, name, input } => {
                            self.tools.insert(id.clone(), name.clone());
                            entries.push(Entry::ToolCall {
                                tool: name.clone(),
                                tool_use_id: id.clone(),
                                input: self.relative(&tool_input_text(name, input)),
                            });
                        }
                        _ => {}
                    }
                }
            }
            Event::User(u) => {
                if let UserContent::Blocks(blocks) = &u.message.content {
                    for block in blocks {
                        if let ContentBlock::ToolResult {
                            tool_use_id,
                            content,
                            is_error,
                        } = block
                        {
                            let text = self.relative(&result_text(content));
                            entries.push(Entry::ToolResult {
                                tool: self.tools.get(tool_use_id).cloned(),
                                tool_use_id: tool_use_id.clone(),
                                is_error: is_error.unwrap_or(false),
                                text: first_line(text.trim_start(), LINE_CHARS),
                            });
                        }
                    }
                }
            }
            Event::ControlRequest(request) => {
                if let Some(prompt) = request.permission() {
                    entries.push(Entry::Asks {
                        input: self.relative(&tool_input_text(&prompt.tool_name, &prompt.input)),
                        tool: prompt.tool_name,
                        tool_use_id: prompt.tool_use_id,
                    });
                }
            }
            Event::Result(result) => {
                for denial in &result.permission_denials {
                    entries.push(Entry::Denied {
                        tool: denial.tool_name.clone(),
                        tool_use_id: denial.tool_use_id.clone(),
                        input: self
                            .relative(&tool_input_text(&denial.tool_name, &denial.tool_input)),
                    });
                }
                entries.push(Entry::Result {
                    subtype: result.subtype.clone(),
                    is_error: result.is_error,
                    cost_usd: result.total_cost_usd,
                    num_turns: result.num_turns,
                    duration_ms: result.duration_ms,
                    text: result.message().map(|text| self.relative(&text)),
                });
            }
            _ => {}
        }
        entries
    }
}

/// A tool result's text: a string, or the text blocks of a list (MCP tools, subagents).
fn result_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, Event, Reader};

    fn read_sample(name: &str, worktree: &str) -> Vec<Entry> {
        read_sample_of("samples", name, worktree)
    }

    /// `folder`: `samples` (2.1.197), or the folder of a later release's samples.
    fn read_sample_of(folder: &str, name: &str, worktree: &str) -> Vec<Entry> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-protocol")
            .join(folder)
            .join(name);
        let mut reader = Reader::new(worktree);
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .flat_map(|line| reader.entries(&Event::parse(line)))
            .collect()
    }

    #[test]
    fn every_tool_call_of_a_session_has_a_line_and_its_result_names_the_tool() {
        let entries = read_sample("tools_bypass.jsonl", "/home/user/work/tools_bypass");
        let lines: Vec<String> = entries
            .iter()
            .map(|e| format!("{} {}", e.marker(), e.line()))
            .collect();
        let calls: Vec<&String> = lines.iter().filter(|l| l.starts_with('●')).collect();
        assert_eq!(
            calls,
            [
                "● Write hello.txt",
                "● Read existing.txt",
                "● Edit existing.txt",
                "● Bash echo hi > bash_made.txt"
            ]
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("✓ Write: File created successfully at: hello.txt (file")),
            "{lines:#?}"
        );
        assert!(lines.contains(&"› I'll create hello.txt.".to_owned()));
        let last = lines.last().unwrap();
        assert!(last.starts_with("■ result success · $0.4971 · "), "{last}");
    }

    #[test]
    fn claude_2_1_332s_tool_calls_read_as_2_1_197s_do() {
        let entries = read_sample_of("2.1.332", "tools_bypass.jsonl", "/tmp/cc-332/tools_bypass");
        let lines: Vec<String> = entries
            .iter()
            .map(|e| format!("{} {}", e.marker(), e.line()))
            .collect();
        let calls: Vec<&String> = lines.iter().filter(|l| l.starts_with('●')).collect();
        assert_eq!(
            calls,
            [
                "● Write hello.txt",
                "● Read existing.txt",
                "● Edit existing.txt",
                "● Bash echo bash-ran > bash.txt && rm gone.txt"
            ]
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("✓ Write: File created successfully at: hello.txt (file")),
            "{lines:#?}"
        );
        let last = lines.last().unwrap();
        assert!(last.starts_with("■ result success · $0.0300 · "), "{last}");
    }

    #[test]
    fn tool_errors_and_denials_are_errors() {
        let entries = read_sample(
            "permission_denied.jsonl",
            "/home/user/work/permission_denied",
        );
        let denied: Vec<String> = entries
            .iter()
            .filter(|e| matches!(e, Entry::Denied { .. }))
            .map(Entry::line)
            .collect();
        assert_eq!(
            denied,
            ["denied Write hello.txt", "denied Bash touch bash_made.txt"]
        );
        assert!(entries.iter().filter(|e| e.is_error()).count() >= 4);
        let errors = read_sample("tool_errors.jsonl", "/home/user/work/tool_errors");
        let failed: Vec<String> = errors
            .iter()
            .filter(|e| matches!(e, Entry::ToolResult { is_error: true, .. }))
            .map(Entry::line)
            .collect();
        assert_eq!(failed[0], "Bash: Exit code 3");
        assert_eq!(failed.len(), 3);
    }

    #[test]
    fn permission_prompts_read_as_asks_between_the_call_and_its_result() {
        let entries = read_sample(
            "permission_prompt.jsonl",
            "/home/user/work/permission_prompt",
        );
        let lines: Vec<String> = entries
            .iter()
            .map(|e| format!("{} {}", e.marker(), e.line()))
            .collect();
        let ask = lines
            .iter()
            .position(|l| l == "? asks for Bash touch denied.txt")
            .unwrap_or_else(|| panic!("{lines:#?}"));
        assert_eq!(lines[ask - 1], "● Bash touch denied.txt");
        assert!(
            lines[ask + 1].starts_with("✗ Bash: Denied by"),
            "{lines:#?}"
        );
        assert!(lines.contains(&"? asks for Write allowed.txt".to_owned()));
    }

    #[test]
    fn entries_serialize_with_their_kind() {
        let entries = read_sample("tools_bypass.jsonl", "/home/user/work/tools_bypass");
        let json = serde_json::to_value(&entries[2]).unwrap();
        assert_eq!(json["kind"], "tool_call");
        assert_eq!(json["tool"], "Write");
        assert_eq!(json["input"], "hello.txt");
    }

    #[test]
    fn sessions_appended_to_one_transcript_each_start_and_end_with_their_own_lines() {
        let mut entries = read_sample("resume_first.jsonl", "/home/user/work");
        entries.extend(read_sample("resume_second.jsonl", "/home/user/work"));
        let kinds: Vec<&str> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Session { .. } => Some("session"),
                Entry::Result { .. } => Some("result"),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, ["session", "result", "session", "result"]);
    }

    #[test]
    fn a_multi_line_text_is_one_line_saying_how_many_more_there_are() {
        let entry = Entry::Text {
            text: "first\nsecond\nthird\n".into(),
        };
        assert_eq!(entry.line(), "first (+2 lines)");
    }

    #[test]
    fn a_deep_path_is_made_relative_whole_and_never_cut() {
        let worktree = format!("/home/user/{}work/task", "deep/".repeat(20));
        let relative = format!("{}notes.md", "doc/chapter/".repeat(6));
        let path = format!("{worktree}/{relative}");
        assert!(path.len() > 100 && relative.len() < 100, "{path}");
        let command = format!("cat {path} {}", "&& echo more ".repeat(12));
        let line = serde_json::json!({"type": "assistant", "message": {"id": "m1",
            "role": "assistant", "model": "claude-opus-4-8", "content": [
            {"type": "tool_use", "id": "t1", "name": "Write",
             "input": {"file_path": path, "content": "x"}},
            {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": command}}]}});
        let entries = Reader::new(&worktree).entries(&Event::parse(&line.to_string()));
        assert_eq!(entries[0].line(), format!("Write {relative}"));
        let json = serde_json::to_value(&entries).unwrap();
        assert_eq!(json[0]["input"], relative.as_str());
        // A long command is shortened for the line at a word, and whole in JSON.
        let whole = command.replace(&format!("{worktree}/"), "");
        assert_eq!(json[1]["input"], whole.as_str());
        let shown = entries[1].line();
        assert!(
            shown.chars().count() <= 105 && shown.ends_with("more …"),
            "{shown}"
        );
        assert!(shown.contains(&relative), "{shown}");
    }

    #[test]
    fn paths_of_a_session_run_in_a_worktree_elsewhere_are_relative_to_that_one() {
        let init = |cwd: &str| {
            serde_json::json!({"type": "system", "subtype": "init", "session_id": "s",
                "cwd": cwd, "model": "claude-opus-4-8", "tools": []})
            .to_string()
        };
        let write = |path: &str| {
            serde_json::json!({"type": "assistant", "message": {"id": "m", "role": "assistant",
                "model": "claude-opus-4-8", "content": [{"type": "tool_use", "id": "t",
                "name": "Write", "input": {"file_path": path, "content": "x"}}]}})
            .to_string()
        };
        let mut reader = Reader::new("/home/me/worktrees/fix");
        reader.entries(&Event::parse(&init("/tmp/cms-worker-1/worktrees/r/fix")));
        let worker = reader.entries(&Event::parse(&write(
            "/tmp/cms-worker-1/worktrees/r/fix/a.rs",
        )));
        assert_eq!(worker[0].line(), "Write a.rs");
        let here = reader.entries(&Event::parse(&write("/home/me/worktrees/fix/b.rs")));
        assert_eq!(here[0].line(), "Write b.rs");
    }
}
