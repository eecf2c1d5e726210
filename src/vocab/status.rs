//! Where a task stands (its status) and the process that owns it while it runs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    /// Running, and paused on a permission prompt only the user can answer (`pending`).
    Waiting,
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
            Status::Waiting => "waiting",
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

    /// A supervisor owns the task and its session is alive (running or waiting for an answer).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Waiting)
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
