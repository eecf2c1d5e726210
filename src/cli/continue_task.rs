//! `cms continue`: a follow-up in a task's own claude session, supervised like `cms task`.

use clap::Args;

use super::CommandContext;
use super::run::{launch, supervise, timeouts_from_env};
use super::task::{SessionArgs, parse_preset};
use crate::error::CommandError;
use crate::store::TaskName;
use crate::task::{self, ContinueOptions};
use crate::vocab::Preset;

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
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: TaskName,

    /// What the task should do now (optional with --rebase)
    #[arg(required_unless_present = "rebase")]
    pub message: Option<String>,

    /// First move the task's work onto the current tip of the branch it was based on (one
    /// commit on top of it); the agent resolves any conflicts in the same session, and the
    /// checks run again before it can be merged
    #[arg(long)]
    pub rebase: bool,

    /// Allow this tool on top of the preset, e.g. Bash or 'Bash(npm test:*)' (repeatable;
    /// kept for later follow-ups)
    #[arg(long, value_name = "TOOL")]
    pub allow: Vec<String>,

    /// What claude may do without asking (default: the task's preset)
    #[arg(short, long, value_parser = parse_preset())]
    pub preset: Option<Preset>,

    #[command(flatten)]
    pub session: SessionArgs,
}

pub fn cmd_continue(ctx: &CommandContext, args: ContinueArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let timeouts = timeouts_from_env()?;
    let opts = ContinueOptions {
        name: args.task,
        message: args.message.unwrap_or_default(),
        allow: args.allow,
        preset: args.preset,
        max_cost_usd: args.session.max_cost,
        max_turns: args.session.max_turns,
        max_duration: args.session.max_duration,
        sandbox: args.session.sandbox,
        rebase: args.rebase,
    };
    let ask = args.session.asks(args.session.detach);
    let started = task::resume(&ws, &opts)?;
    if args.session.detach {
        return launch(ctx, &ws, started, ask);
    }
    supervise(ctx, &ws, started, timeouts, "continue", ask)
}
