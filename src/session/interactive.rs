//! Following an interactive claude session (`cms attach`) through the transcript claude
//! writes for it, since an interactive claude prints no stream-json for cms to read.
//!
//! claude appends every message of a session to
//! `$CLAUDE_CONFIG_DIR/projects/<cwd, every character but ASCII letters and digits made
//! ->/<session id>.jsonl` (`$HOME/.claude` without the variable), an assistant message with
//! the API's `usage`. The follower reads what the files of that project folder gain after it
//! started (a new session file too: claude makes one when it forks the conversation or on
//! `/clear`) and feeds the assistant messages to the [`Ledger`] as if they had come on
//! stream-json, so the same live estimate prices them and the same limit checks apply.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ledger::Ledger;
use super::protocol::AssistantEvent;

/// The transcripts of one project folder, read from where they stood when following began.
pub struct TranscriptFollower {
    dir: PathBuf,
    /// How far each file has been read, and the incomplete last line held back.
    read: HashMap<PathBuf, (u64, Vec<u8>)>,
    /// Messages already in the transcripts before the session: a resumed conversation that
    /// claude copies into a new file must not be paid for twice.
    known_messages: HashSet<String>,
    /// Whether any file gained a line since following began.
    pub saw_activity: bool,
}

/// Where claude keeps the sessions of `cwd`, for a claude started with this process's
/// environment: the folder named after `cwd`, or whichever project folder holds `session`'s
/// transcript (claude shortens the names of very long paths its own way).
pub fn project_dir(cwd: &Path, session: Option<&str>) -> PathBuf {
    let config = match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".claude"),
    };
    let projects = config.join("projects");
    let name: String = cwd
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let named = projects.join(name);
    let Some(session) = session else {
        return named;
    };
    let file = format!("{session}.jsonl");
    if named.join(&file).is_file() {
        return named;
    }
    std::fs::read_dir(&projects)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .find(|dir| dir.join(&file).is_file())
        .unwrap_or(named)
}

impl TranscriptFollower {
    /// Starts following `dir` from its current contents: only what is written from now on
    /// counts.
    pub fn new(dir: PathBuf) -> TranscriptFollower {
        let mut follower = TranscriptFollower {
            dir,
            read: HashMap::new(),
            known_messages: HashSet::new(),
            saw_activity: false,
        };
        for file in follower.files() {
            let Ok(text) = std::fs::read(&file) else {
                continue;
            };
            for line in text.split(|b| *b == b'\n') {
                if let Some(id) = serde_json::from_slice::<Value>(line)
                    .ok()
                    .and_then(|v| message_id(&v).map(str::to_owned))
                {
                    follower.known_messages.insert(id);
                }
            }
            follower.read.insert(file, (text.len() as u64, Vec::new()));
        }
        follower
    }

    /// Reads what the transcripts gained and feeds it to `ledger`. Returns whether anything
    /// new was read.
    pub fn poll(&mut self, ledger: &mut Ledger) -> bool {
        let mut any = false;
        for file in self.files() {
            let (offset, mut partial) = self.read.remove(&file).unwrap_or_default();
            let mut fresh = Vec::new();
            let read = std::fs::File::open(&file).and_then(|mut f| {
                f.seek(SeekFrom::Start(offset))?;
                f.read_to_end(&mut fresh)
            });
            let Ok(n) = read else {
                self.read.insert(file, (offset, partial));
                continue;
            };
            partial.extend_from_slice(&fresh);
            // Only whole lines: claude may be halfway through writing the last one.
            let whole = partial
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let lines: Vec<u8> = partial.drain(..whole).collect();
            for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(value) = serde_json::from_slice::<Value>(line) {
                    any = true;
                    self.observe(&value, ledger);
                }
            }
            self.read.insert(file, (offset + n as u64, partial));
        }
        self.saw_activity |= any;
        any
    }

    fn observe(&mut self, value: &Value, ledger: &mut Ledger) {
        let sidechain = value.get("isSidechain").and_then(Value::as_bool) == Some(true);
        let session = value.get("sessionId").and_then(Value::as_str);
        if !sidechain
            && matches!(
                value.get("type").and_then(Value::as_str),
                Some("user" | "assistant")
            )
            && let Some(session) = session
        {
            // The conversation the user is in now: the same one, or a fork of it.
            ledger.session_id = Some(session.to_owned());
        }
        if value.get("type").and_then(Value::as_str) != Some("assistant") {
            return;
        }
        if message_id(value).is_some_and(|id| self.known_messages.contains(id)) {
            return;
        }
        let Some(message) = value.get("message") else {
            return;
        };
        let event = serde_json::json!({
            "type": "assistant",
            "message": message,
            "session_id": session,
            // A subagent's messages cost money but are not turns of the conversation.
            "parent_tool_use_id": if sidechain { Value::from("sidechain") } else { Value::Null },
            "error": value.get("error").filter(|e| !e.is_null()),
        });
        if let Ok(event) = serde_json::from_value::<AssistantEvent>(event) {
            ledger.observe_transcript_message(&event);
        }
    }

    /// The transcript files of the project folder and of its session folders (where claude
    /// keeps subagents' transcripts).
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        collect_jsonl(&self.dir, 3, &mut out);
        out.sort();
        out
    }
}

fn message_id(value: &Value) -> Option<&str> {
    value.get("message")?.get("id")?.as_str()
}

fn collect_jsonl(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth > 0 {
            collect_jsonl(&path, depth - 1, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Ledger, TranscriptFollower, project_dir};
    use std::io::Write;
    use std::path::Path;

    fn assistant(session: &str, id: &str, text: &str, sidechain: bool) -> String {
        serde_json::json!({
            "type": "assistant",
            "isSidechain": sidechain,
            "sessionId": session,
            "message": {
                "id": id,
                "model": "claude-sonnet-4-5",
                "role": "assistant",
                "type": "message",
                "content": [{"type": "text", "text": text}],
                "usage": {"input_tokens": 1_000_000, "output_tokens": 0},
            },
        })
        .to_string()
    }

    #[test]
    fn only_messages_written_after_the_start_are_counted_and_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s1.jsonl");
        std::fs::write(&file, format!("{}\n", assistant("s1", "old", "", false))).unwrap();
        let mut follower = TranscriptFollower::new(dir.path().to_owned());
        let mut ledger = Ledger::resume(1.0, 2, Vec::new());
        assert!(!follower.poll(&mut ledger));

        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        // The same message twice (claude writes one line per content block), and half a line.
        let line = assistant("s1", "m1", "", false);
        write!(f, "{line}\n{line}\n{}", &line[..10]).unwrap();
        assert!(follower.poll(&mut ledger));
        // A million input tokens of Sonnet: $3.
        assert!((ledger.live_cost_usd() - 4.0).abs() < 1e-9);
        assert_eq!(ledger.live_turns(), 3);
        writeln!(f, "{}", &line[10..]).unwrap();
        follower.poll(&mut ledger);
        assert_eq!(ledger.live_turns(), 3);
        assert_eq!(ledger.session_id.as_deref(), Some("s1"));
    }

    #[test]
    fn a_fork_copying_the_conversation_pays_only_for_new_messages_and_takes_the_new_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s1.jsonl"),
            format!("{}\n", assistant("s1", "old", "", false)),
        )
        .unwrap();
        let mut follower = TranscriptFollower::new(dir.path().to_owned());
        let mut ledger = Ledger::default();
        std::fs::create_dir(dir.path().join("s2")).unwrap();
        std::fs::write(
            dir.path().join("s2.jsonl"),
            format!(
                "{}\n{}\n",
                assistant("s2", "old", "", false),
                assistant("s2", "new", "", false)
            ),
        )
        .unwrap();
        // A subagent's message: paid for, not a turn.
        std::fs::write(
            dir.path().join("s2/agent.jsonl"),
            format!("{}\n", assistant("s2", "sub", "", true)),
        )
        .unwrap();
        follower.poll(&mut ledger);
        assert!((ledger.live_cost_usd() - 6.0).abs() < 1e-9);
        assert_eq!(ledger.live_turns(), 1);
        assert_eq!(ledger.session_id.as_deref(), Some("s2"));
    }

    #[test]
    fn the_project_folder_is_named_after_the_cwd_as_claude_names_it() {
        let dir = project_dir(Path::new("/tmp/a.b/c_d"), None);
        assert_eq!(dir.file_name().unwrap(), "-tmp-a-b-c-d");
    }
}
