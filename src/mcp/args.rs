//! The tools' arguments: what a parent agent sends, with the JSON schemas (derived by
//! schemars) that `tools/list` shows it. Unknown fields are refused, as in the configuration:
//! a misspelt limit silently ignored would run a task without it.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::vocab::Preset;

/// A preset, as the command line names it.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PresetArg {
    ReadOnly,
    Review,
    Plan,
    Edit,
    Full,
}

impl From<PresetArg> for Preset {
    fn from(arg: PresetArg) -> Preset {
        match arg {
            PresetArg::ReadOnly => Preset::ReadOnly,
            PresetArg::Review => Preset::Review,
            PresetArg::Plan => Preset::Plan,
            PresetArg::Edit => Preset::Edit,
            PresetArg::Full => Preset::Full,
        }
    }
}

/// A task's limits, totals over all its sessions; each at most this server's cap.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitArgs {
    /// Stop the task when it has cost this many US dollars (default: the configured limit,
    /// at most the cap)
    #[serde(default)]
    pub max_cost: Option<f64>,
    /// Stop the task after this many turns (default: the configured limit, at most the cap)
    #[serde(default)]
    pub max_turns: Option<u32>,
    /// Stop the task after this long, e.g. "300s", "10m" (default: the configured limit, at
    /// most the cap)
    #[serde(default)]
    pub max_duration: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartArgs {
    /// What the task should do
    pub prompt: String,
    /// Task name: letters, digits, '-', '_' and '.' (default: a slug of the prompt, made
    /// unique)
    #[serde(default)]
    pub name: Option<String>,
    /// Start from this commit, branch or tag (default: HEAD)
    #[serde(default)]
    pub base: Option<String>,
    /// What claude may do without asking (default: the configured preset, at most the cap)
    #[serde(default)]
    pub preset: Option<PresetArg>,
    /// Model for claude, e.g. "sonnet"
    #[serde(default)]
    pub model: Option<String>,
    #[serde(flatten)]
    pub limits: LimitArgs,
    /// Globs of paths the task must not touch, on top of the configured ones
    #[serde(default)]
    pub protect: Vec<String>,
    /// Run it on this runner of the user's configuration, e.g. a Ray cluster ("local": here;
    /// default: the configured task.runner, else here); the caps apply as anywhere
    #[serde(default)]
    pub on: Option<String>,
    /// Return only when the task has ended or waits for a permission answer (default: return
    /// at once, the task running)
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContinueArgs {
    /// The task to continue
    pub task: String,
    /// What the task should do now
    pub message: String,
    /// Tools to allow on top of the preset, e.g. "Bash(npm test:*)" (kept for later
    /// follow-ups)
    #[serde(default)]
    pub allow: Vec<String>,
    /// What claude may do without asking (default: the task's, at most the cap)
    #[serde(default)]
    pub preset: Option<PresetArg>,
    #[serde(flatten)]
    pub limits: LimitArgs,
    /// Return only when the task has ended or waits for a permission answer
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerArgs {
    /// The waiting task
    pub task: String,
    /// true allows the tool call the task waits on, false denies it
    pub allow: bool,
    /// With allow: allow this tool for the rest of the task without asking again
    #[serde(default)]
    pub always: bool,
    /// With a denial: what the agent is told, e.g. "use the test script instead"
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskArg {
    /// The task's name
    pub task: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Include merged and discarded tasks
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// The tasks to wait for
    pub tasks: Vec<String>,
    /// Return as soon as one of them has ended or waits
    #[serde(default)]
    pub any: bool,
    /// Give up after this long, e.g. "30s", "10m" (default: 10m)
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffArgs {
    /// The task's name
    pub task: String,
    /// Only the changed files with their added and deleted line counts, no patch
    #[serde(default)]
    pub stat: bool,
    /// Cut the patch after this many bytes (default: 40000)
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// How a merge brings the task's work in, as `cms merge` names it.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MergeModeArg {
    #[default]
    Squash,
    Ff,
    NoFf,
    Rebase,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeArgs {
    /// The task to merge into the branch it was based on
    pub task: String,
    /// squash (one commit, the default), ff, no-ff or rebase
    #[serde(default)]
    pub mode: MergeModeArg,
    /// Keep the task's worktree and branch after merging
    #[serde(default)]
    pub keep: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardArgs {
    /// The task to discard (its worktree and branch are removed)
    pub task: String,
    /// Discard even if the task has changes that were never merged
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortArgs {
    /// The running tasks to stop
    pub tasks: Vec<String>,
}
