//! The write guard's verdict (claude's PreToolUse hook): claude asks before every file-editing tool call, and a write
//! to a protected path or outside the task's worktree is denied with a reason the agent can
//! act on.

use std::path::Path;

use serde_json::{Value, json};

use super::paths::{Rules, check_write};
use crate::vocab::{Violation, ViolationKind};

/// The tools whose calls the hook sees: every built-in tool that writes a file by path.
pub const WRITE_TOOLS_MATCHER: &str = "Write|Edit|MultiEdit|NotebookEdit";

/// The path a file-editing tool call would write, if the tool names one.
pub fn target_path<'a>(tool_name: &str, input: &'a Value) -> Option<&'a str> {
    let key = match tool_name {
        "NotebookEdit" => "notebook_path",
        _ => "file_path",
    };
    input.get(key).and_then(Value::as_str)
}

/// Why the call must be denied, or `None` to let it run.
pub fn verdict(
    worktree: &Path,
    rules: &Rules,
    tool_name: &str,
    input: &Value,
) -> Option<Violation> {
    match target_path(tool_name, input) {
        Some(path) => check_write(worktree, path, rules),
        // A write tool without a path is a shape cms does not know: refuse rather than guess.
        None => Some(Violation {
            kind: ViolationKind::ProtectedPath,
            path: String::new(),
            detail: format!("cms could not tell which file this {tool_name} call writes"),
        }),
    }
}

/// What claude reads from the hook's stdout to deny the call; the reason reaches the agent
/// as the tool's error.
pub fn deny_output(reason: &str) -> Value {
    json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    })
}

/// The message the agent gets for a denied write: what was refused and what to do instead.
pub fn reason_for(violation: &Violation) -> String {
    let advice = match violation.kind {
        ViolationKind::OutsideWorktree => "work only inside your current directory",
        ViolationKind::GitMetadata => "leave git's own files alone",
        _ => "leave this path unchanged, or tell the user it needs changing and why",
    };
    format!("cms denied this write: {}; {advice}.", violation.detail)
}
