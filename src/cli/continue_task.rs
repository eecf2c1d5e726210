//! `cms continue`: a follow-up in a task's own claude session, supervised like `cms task`.

use clap::Args;

use super::CommandContext;
use super::task::{parse_preset, parse_sandbox, supervise, timeouts_from_env};
use crate::error::CommandError;
use crate::safety::sandbox::SandboxMode;
use crate::session::Preset;
use crate::store::TaskName;
use crate::task::{self, ContinueOptions};

/// Continue a task: send <MESSAGE> to its claude session, in its worktree
///
/// Resumes the same session (claude remembers the conversation) for a task that is not
/// running, merged or discarded: completed, needing input, stopped at a limit, interrupted,
/// aborted or failed. Its cost, turns and time add up with what it used before, against the
/// same limits unless --max-* raises them; the new work is committed on its branch and
/// checked like the first session's. Exit codes as for `cms task`.
#[derive(Debug, Args)]
pub struct ContinueArgs {
    /// The task to continue
    #[arg(value_parser = super::parse_task_name)]
    pub task: TaskName,

    /// What the task should do now
    pub message: String,

    /// Allow this tool on top of the preset, e.g. Bash or 'Bash(npm test:*)' (repeatable;
    /// kept for later follow-ups)
    #[arg(long, value_name = "TOOL")]
    pub allow: Vec<String>,

    /// What claude may do without asking (default: the task's preset)
    #[arg(short, long, value_parser = parse_preset())]
    pub preset: Option<Preset>,

    /// The task's cost limit in US dollars, over all its sessions
    #[arg(long, value_name = "USD", value_parser = crate::config::parse_cost)]
    pub max_cost: Option<f64>,

    /// The task's turn limit, over all its sessions
    #[arg(long, value_name = "N", value_parser = crate::config::parse_turns)]
    pub max_turns: Option<u32>,

    /// The task's time limit, over all its sessions, e.g. 10m
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub max_duration: Option<std::time::Duration>,

    /// Run Bash in Claude Code's sandbox: auto, required, off (default: safety.sandbox)
    #[arg(long, value_name = "MODE", value_parser = parse_sandbox)]
    pub sandbox: Option<SandboxMode>,

    /// Run in the background: return at once (`cms wait` follows it)
    #[arg(short, long)]
    pub detach: bool,
}

pub fn cmd_continue(ctx: &CommandContext, args: ContinueArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let timeouts = timeouts_from_env()?;
    let opts = ContinueOptions {
        name: args.task,
        message: args.message,
        allow: args.allow,
        preset: args.preset,
        max_cost_usd: args.max_cost,
        max_turns: args.max_turns,
        max_duration: args.max_duration,
        sandbox: args.sandbox,
    };
    let started = task::resume(&ws, &opts)?;
    if args.detach {
        return super::supervise::launch(ctx, &ws, started);
    }
    supervise(ctx, &ws, started, timeouts, "continue")
}
