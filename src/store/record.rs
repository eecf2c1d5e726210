//! The task record: everything cms knows about one task, as stored on disk and shown as JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::git::FileChange;
use crate::session::protocol::PermissionDenial;

/// Bumped whenever a change to [`TaskRecord`] would confuse an older cms.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Completed,
    NeedsInput,
    Failed,
    CostExceeded,
    TurnsExceeded,
    DurationExceeded,
    ProtectedPath,
    Interrupted,
    Aborted,
    Merged,
    Discarded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::NeedsInput => "needs_input",
            Status::Failed => "failed",
            Status::CostExceeded => "cost_exceeded",
            Status::TurnsExceeded => "turns_exceeded",
            Status::DurationExceeded => "duration_exceeded",
            Status::ProtectedPath => "protected_path",
            Status::Interrupted => "interrupted",
            Status::Aborted => "aborted",
            Status::Merged => "merged",
            Status::Discarded => "discarded",
        }
    }

    /// Merged and discarded tasks are history: hidden from `list` unless `--all`.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Merged | Status::Discarded)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The process that owns a running task; a record whose supervisor is gone was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervisor {
    pub pid: u32,
    /// Process start time (clock ticks since boot on Linux), so a reused pid is not mistaken
    /// for the supervisor.
    pub start_time: u64,
    /// The value of `CMS_SESSION_TOKEN` in every process of its session, so they can be found
    /// and killed if the supervisor dies; 0 in records from before tokens.
    #[serde(default)]
    pub token: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Safety {
    /// The limits in force, summed across every process of the task.
    pub limits: Option<LimitSettings>,
    /// The protected-path globs in force, the always-protected ones included.
    #[serde(default)]
    pub protected: Vec<String>,
    /// Rules the task broke; any makes it `protected_path`.
    pub violations: Vec<Violation>,
    /// Writes denied before they happened (the agent was told why); not violations.
    #[serde(default)]
    pub blocked: Vec<Blocked>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LimitSettings {
    pub max_cost_usd: f64,
    pub max_turns: u32,
    pub max_duration_ms: u64,
}

/// A tool call cms's PreToolUse hook denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub tool_name: String,
    pub tool_use_id: Option<String>,
    #[serde(flatten)]
    pub violation: Violation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: String,
    pub path: String,
    pub detail: String,
}

/// Where a merged task went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeInfo {
    pub into: String,
    pub commit: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub version: u32,
    pub name: String,
    pub status: Status,
    pub prompt: String,
    pub branch: String,
    pub worktree: PathBuf,
    /// The commit the task started from.
    pub base: String,
    /// The branch that commit was taken from, which `merge` targets; `None` when detached.
    pub base_branch: Option<String>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub preset: String,
    pub cost_usd: f64,
    pub turns: u32,
    pub duration_ms: u64,
    pub response: Option<String>,
    pub tools_used: Vec<String>,
    pub files_changed: Vec<FileChange>,
    pub permission_denials: Vec<PermissionDenial>,
    pub safety: Safety,
    pub error: Option<String>,
    /// The task branch's tip when the session last ended.
    pub head: Option<String>,
    pub merge: Option<MergeInfo>,
    pub supervisor: Option<Supervisor>,
    pub created_at: String,
    pub updated_at: String,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
