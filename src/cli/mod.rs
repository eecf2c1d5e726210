//! The command line: global flags, the subcommand enum and the one dispatch `match`.

mod check;
mod diff;
mod discard;
mod doctor;
mod hook;
mod hooks;
mod keeper;
mod list;
mod merge;
mod show;
mod task;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{CommandError, ErrorKind};
use crate::ui::{ColorChoice, Ui};
use crate::workspace::Workspace;

/// Run Claude Code tasks in their own git worktrees and merge exactly what they changed.
///
/// Each task gets a branch `cms/<name>` and a worktree outside your checkout, runs a headless
/// claude session there, and ends with a commit of what it changed. Your own checkout is
/// never touched until you `cms merge`.
#[derive(Debug, Parser)]
#[command(name = "cms", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// When to color output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Print results as JSON on stdout (errors too), for scripts and agents
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Task(task::TaskArgs),
    List(list::ListArgs),
    Show(show::ShowArgs),
    Diff(diff::DiffArgs),
    Merge(merge::MergeArgs),
    Discard(discard::DiscardArgs),
    Check(check::CheckArgs),
    Doctor(doctor::DoctorArgs),
    Hooks(hooks::HooksArgs),
    #[command(hide = true)]
    Hook(hook::HookArgs),
    #[command(hide = true)]
    Keeper(keeper::KeeperArgs),
}

/// What every command gets: output, and the directory it was started in.
pub struct CommandContext {
    pub ui: Ui,
    pub cwd: PathBuf,
}

impl CommandContext {
    pub fn workspace(&self) -> Result<Workspace, CommandError> {
        let ws = Workspace::discover(&self.cwd)?;
        // Whatever the command, a task whose supervisor died is settled now, its leftover
        // processes included.
        ws.reconcile_running();
        Ok(ws)
    }
}

/// Runs the parsed command line, returning the process exit code.
pub fn run(cli: Cli) -> u8 {
    let ui = Ui::new(cli.global.color, cli.global.json);
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(err) => {
            return report_error(
                &ui,
                CommandError::from_error(ErrorKind::User, &err)
                    .with_hint("the current directory may have been deleted; cd somewhere else"),
            );
        }
    };
    let ctx = CommandContext { ui, cwd };
    let result = match cli.command {
        Command::Task(args) => task::cmd_task(&ctx, args),
        Command::List(args) => list::cmd_list(&ctx, args),
        Command::Show(args) => show::cmd_show(&ctx, args),
        Command::Diff(args) => diff::cmd_diff(&ctx, args),
        Command::Merge(args) => merge::cmd_merge(&ctx, args),
        Command::Discard(args) => discard::cmd_discard(&ctx, args),
        Command::Check(args) => check::cmd_check(&ctx, args),
        Command::Doctor(args) => doctor::cmd_doctor(&ctx, args),
        Command::Hook(args) => hook::cmd_hook(&ctx, args),
        Command::Hooks(args) => hooks::cmd_hooks(&ctx, args),
        Command::Keeper(args) => keeper::cmd_keeper(&ctx, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => report_error(&ctx.ui, err),
    }
}

/// Prints an error as `error:`, `caused by:` and `hint:` lines on stderr (and as JSON on stdout
/// with `--json`), returning its exit code.
pub fn report_error(ui: &Ui, err: CommandError) -> u8 {
    let styles = &ui.err;
    let mut text = format!("{} {}", styles.bad.apply_to("error:"), err.message);
    for cause in &err.causes {
        text.push_str(&format!("\n{} {cause}", styles.dim.apply_to("caused by:")));
    }
    for hint in &err.hints {
        text.push_str(&format!("\n{} {hint}", styles.name.apply_to("hint:")));
    }
    ui.status(&text);
    if ui.json {
        ui.print_json(&err.to_json());
    }
    err.exit_code()
}

/// Parses a `--name`/`<TASK>` argument.
pub fn parse_task_name(text: &str) -> Result<crate::store::TaskName, String> {
    crate::store::TaskName::parse(text).map_err(|err| err.reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
