//! The session transcript the real CLI keeps for every session, in every mode:
//! `$CLAUDE_CONFIG_DIR/projects/<cwd, mangled>/<session id>.jsonl`, one line per assistant
//! content block and per user message, each assistant line with the message's final `usage`
//! (not the stream's start snapshot). `--resume` in interactive mode needs it, and cms reads
//! it to follow an interactive session's cost.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use crate::ids::{config_dir, project_dir_name, timestamp, uuid_v4};
use crate::version;

struct Transcript {
    path: PathBuf,
    cwd: String,
    session_id: String,
    output_tokens: u64,
    /// The uuid of the previous line, which the next one names as its parent.
    last_uuid: Mutex<Option<String>>,
}

static TRANSCRIPT: OnceLock<Transcript> = OnceLock::new();

/// Where the session `session_id` of `cwd` is kept.
pub fn path_of(cwd: &str, session_id: &str) -> PathBuf {
    config_dir()
        .join("projects")
        .join(project_dir_name(cwd))
        .join(format!("{session_id}.jsonl"))
}

/// Starts writing this process's session to its transcript (appending, as a resumed session
/// does). `output_tokens` is what each API response generated.
pub fn start(cwd: &str, session_id: &str, output_tokens: u64) {
    let path = path_of(cwd, session_id);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = TRANSCRIPT.set(Transcript {
        path,
        cwd: cwd.to_owned(),
        session_id: session_id.to_owned(),
        output_tokens,
        last_uuid: Mutex::new(None),
    });
}

/// Keeps a stream-json event in the transcript if it is one the real CLI keeps: assistant
/// and user messages.
pub fn record(event: &str) {
    let Some(t) = TRANSCRIPT.get() else {
        return;
    };
    let Ok(event) = serde_json::from_str::<Value>(event) else {
        return;
    };
    let kind = event["type"].as_str().unwrap_or_default();
    if kind != "assistant" && kind != "user" {
        return;
    }
    let mut message = event["message"].clone();
    if kind == "assistant" {
        message["usage"]["output_tokens"] = json!(t.output_tokens);
    }
    let uuid = uuid_v4();
    let mut last = t.last_uuid.lock().unwrap_or_else(|e| e.into_inner());
    let line = json!({
        "parentUuid": last.clone(),
        "isSidechain": false,
        "type": kind,
        "message": message,
        "uuid": uuid,
        "timestamp": timestamp(),
        "cwd": t.cwd,
        "sessionId": t.session_id,
        "version": version(),
    });
    *last = Some(uuid);
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&t.path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(err) = written {
        eprintln!("fake-claude: cannot write {}: {err}", t.path.display());
    }
}
