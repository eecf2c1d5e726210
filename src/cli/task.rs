//! `cms task`: start a task and supervise it in the foreground with live progress.

use std::io::IsTerminal;

use clap::Args;

use super::CommandContext;
use super::run::{supervise, timeouts_from_env};
use crate::error::{CommandError, ErrorKind};
use crate::safety::sandbox::SandboxMode;
use crate::store::TaskName;
use crate::task::{self, TaskOptions};
use crate::vocab::Preset;

/// Start a task: a branch, a worktree and a claude session doing <PROMPT>
///
/// Runs in the foreground with compact progress on stderr and prints a summary (or, with
/// --json, the task as JSON) at the end. Exits 0 when the task completed, 3 when it ended in
/// any other status, 130 when interrupted. Ctrl-C stops the session gracefully and keeps what
/// it did; a second Ctrl-C kills it at once.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// What the task should do; `-` reads it from stdin
    #[arg(required_unless_present_any = ["prompt_file", "each"])]
    pub prompt: Option<String>,

    /// Read the prompt from this file
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    pub prompt_file: Option<std::path::PathBuf>,

    /// Task name (default: a slug of the prompt, made unique)
    #[arg(short, long, value_parser = super::parse_task_name)]
    pub name: Option<TaskName>,

    /// Start from this commit, branch or tag (default: HEAD)
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,

    /// Model for claude (an alias such as `sonnet`, or a full model name)
    #[arg(short, long)]
    pub model: Option<String>,

    /// What claude may do without asking
    #[arg(short, long, value_parser = parse_preset())]
    pub preset: Option<Preset>,

    /// Protect paths matching this glob as well as the configured ones (repeatable)
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub protect: Vec<String>,

    /// Run it on this runner (`[runners.NAME]` in your configuration; `local` runs it here;
    /// default: task.runner, else here)
    #[arg(long, value_name = "RUNNER")]
    pub on: Option<String>,

    #[command(flatten)]
    pub session: SessionArgs,

    /// Run N independent attempts of the prompt, named <NAME>-1 … <NAME>-N, to diff and
    /// merge the best
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub attempts: Option<u32>,

    /// One task per line of FILE (`-` for stdin; empty lines and # comments are skipped)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "prompt_file", "name", "attempts"])]
    pub each: Option<std::path::PathBuf>,

    /// With --attempts or --each: how many tasks run at once
    #[arg(long, value_name = "N", default_value_t = 4, conflicts_with = "detach",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
}

/// What `task` and `continue` share: the limits, the sandbox, running in the background and
/// answering permission prompts.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Stop the task when it has cost this many US dollars over all its sessions (default:
    /// limits.max_cost, $2; a follow-up keeps its task's)
    #[arg(long, value_name = "USD", value_parser = crate::config::parse_cost)]
    pub max_cost: Option<f64>,

    /// Stop the task after this many turns over all its sessions (default: limits.max_turns,
    /// 50)
    #[arg(long, value_name = "N", value_parser = crate::config::parse_turns)]
    pub max_turns: Option<u32>,

    /// Stop the task after this long over all its sessions, e.g. 300s, 10m, 1h (default:
    /// limits.max_duration, 300s)
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub max_duration: Option<std::time::Duration>,

    /// Run Bash in Claude Code's sandbox: auto (where available), required, off (default:
    /// safety.sandbox, auto)
    #[arg(long, value_name = "MODE", value_parser = parse_sandbox)]
    pub sandbox: Option<SandboxMode>,

    /// Run in the background: print the task's name and return at once (`cms wait`,
    /// `cms show` and `cms abort` follow it; its output is kept in the store)
    #[arg(short, long)]
    pub detach: bool,

    /// Let the task ask for tools its preset does not allow: it waits (status `waiting`)
    /// until `cms allow` or `cms deny` answers, or asks here at a terminal (default at a
    /// terminal and with --detach)
    #[arg(long, overrides_with = "no_ask")]
    pub ask: bool,

    /// Never ask: a tool the preset does not allow is denied and the task ends needs_input
    #[arg(long, overrides_with = "ask")]
    pub no_ask: bool,
}

impl SessionArgs {
    /// Whether claude's permission prompts come to cms: as asked, else for background tasks
    /// and at a terminal, where someone can answer.
    pub fn asks(&self, background: bool) -> bool {
        if self.no_ask {
            return false;
        }
        self.ask
            || background
            || (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
    }
}

pub(super) fn parse_sandbox(text: &str) -> Result<SandboxMode, String> {
    SandboxMode::parse(text).ok_or_else(|| SandboxMode::EXPECTED.to_owned())
}

pub(super) fn parse_preset() -> impl clap::builder::TypedValueParser<Value = Preset> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Preset::NAMES)
        .try_map(|name| Preset::parse(&name).ok_or("not a preset"))
}

fn parse_glob(text: &str) -> Result<String, String> {
    crate::safety::validate_glob(text).map(|()| text.to_owned())
}

pub fn cmd_task(ctx: &CommandContext, args: TaskArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    // Before anything is made: a bad value must not leave a task behind.
    let timeouts = timeouts_from_env()?;
    let each = match &args.each {
        Some(file) => Some(read_prompt(
            Some(file.display().to_string()).filter(|f| f == "-"),
            Some(file.as_path()).filter(|f| f.as_os_str() != "-"),
        )?),
        None => None,
    };
    let prompt = match &each {
        Some(_) => String::new(),
        None => read_prompt(args.prompt, args.prompt_file.as_deref())?,
    };
    let opts = TaskOptions {
        prompt,
        name: args.name,
        base: args.base,
        model: args.model,
        preset: args.preset,
        max_cost_usd: args.session.max_cost,
        max_turns: args.session.max_turns,
        max_duration: args.session.max_duration,
        protect: args.protect,
        sandbox: args.session.sandbox,
        attempt: None,
        runner: args.on,
    };
    let jobs = args.jobs as usize;
    let detach = args.session.detach;
    // Fanned-out tasks run under background supervisors, so they ask like detached ones.
    let fanned_out = each.is_some() || args.attempts.is_some_and(|n| n > 1);
    let ask = args.session.asks(detach || fanned_out);
    if let Some(text) = &each {
        let specs = task::each(text, &opts)?;
        return super::fanout::run_many(ctx, &ws, specs, jobs, detach, ask);
    }
    if let Some(count) = args.attempts.filter(|n| *n > 1) {
        let specs = task::attempts(&ws, &opts, count)?;
        return super::fanout::run_many(ctx, &ws, specs, jobs, detach, ask);
    }
    let started = task::start(&ws, &opts)?;
    if detach {
        return super::run::launch(ctx, &ws, started, ask);
    }
    supervise(ctx, &ws, started, timeouts, "task", ask)
}

/// The prompt as given, from stdin for `-`, or from `--prompt-file`.
fn read_prompt(
    prompt: Option<String>,
    file: Option<&std::path::Path>,
) -> Result<String, CommandError> {
    use std::io::Read;
    match (prompt.as_deref(), file) {
        (Some("-"), _) => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|err| {
                CommandError::from_error(ErrorKind::User, &err)
                    .with_hint("`cms task -` reads the prompt from stdin as UTF-8 text")
            })?;
            Ok(text)
        }
        (_, Some(path)) => std::fs::read_to_string(path).map_err(|err| {
            CommandError::user(format!(
                "cannot read the prompt file {}: {err}",
                path.display()
            ))
            .with_hint("--prompt-file takes a readable UTF-8 text file")
        }),
        (Some(text), None) => Ok(text.to_owned()),
        (None, None) => Ok(String::new()),
    }
}
