//! What the user asks of a new task, and a task made ready for its session.

use std::path::PathBuf;
use std::time::Duration;

use super::settings::Settings;
use crate::safety::sandbox::SandboxMode;
use crate::store::{Attempt, TaskName, TaskRecord};
use crate::vocab::Preset;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    pub prompt: String,
    pub name: Option<TaskName>,
    pub base: Option<String>,
    pub model: Option<String>,
    pub preset: Option<Preset>,
    pub max_cost_usd: Option<f64>,
    pub max_turns: Option<u32>,
    pub max_duration: Option<Duration>,
    /// Globs protected on top of the configured ones.
    pub protect: Vec<String>,
    /// Over `[safety] sandbox`.
    pub sandbox: Option<SandboxMode>,
    /// Set for each task of `--attempts N`.
    pub attempt: Option<Attempt>,
    /// The runner to run it on (`--on`) over `[task] runner`; `local` runs it here.
    pub runner: Option<String>,
}

/// A task whose worktree and record exist, ready for its session.
pub struct Started {
    pub record: TaskRecord,
    pub claude: PathBuf,
    /// Why the task's Bash runs unsandboxed under `sandbox = "auto"`, for a warning.
    pub sandbox_warning: Option<String>,
    /// What to send claude: the prompt, or a follow-up's message.
    pub message: String,
    /// For a follow-up (`cms continue`), the record as it was before, which a failed start
    /// puts back; a new task's failed start removes everything instead.
    pub resumed_from: Option<TaskRecord>,
    /// The configuration, trust and protected paths, read once for all the steps to come.
    pub settings: Settings,
}
