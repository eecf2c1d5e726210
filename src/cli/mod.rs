//! The command line: global flags, the subcommand enum and the one dispatch `match`.

mod abort;
mod answer;
mod attach;
mod check;
mod commit;
mod completions;
mod config;
mod continue_task;
mod diff;
mod discard;
mod doctor;
mod fanout;
mod gc;
mod guard;
mod hooks;
mod keeper;
mod list;
mod logs;
mod mcp;
mod merge;
pub mod panic;
mod path;
mod pool;

mod push;
mod run;
mod setup;
mod shell_init;
mod show;
mod supervise;
mod task;
mod top;
mod trust;
mod version;
mod wait;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{CommandError, ErrorKind, exit_code};
use crate::ui::{ColorChoice, Ui};
use crate::workspace::Workspace;

/// Run Claude Code tasks in their own git worktrees and merge exactly what they changed.
///
/// Each task gets a branch `cms/<name>` and a worktree outside your checkout, runs a headless
/// claude session there, and ends with a commit of what it changed. Your own checkout is
/// never touched until you `cms merge`.
#[derive(Debug, Parser)]
#[command(
    name = "cms",
    version = version::short(),
    long_version = version::long(),
    propagate_version = true,
    max_term_width = 100
)]
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
    Continue(continue_task::ContinueArgs),
    Attach(attach::AttachArgs),
    Abort(abort::AbortArgs),
    Wait(wait::WaitArgs),
    Allow(answer::AllowArgs),
    Deny(answer::DenyArgs),
    List(list::ListArgs),
    Show(show::ShowArgs),
    Path(path::PathArgs),
    Logs(logs::LogsArgs),
    Mcp(mcp::McpArgs),
    Top(top::TopArgs),
    Diff(diff::DiffArgs),
    Merge(merge::MergeArgs),
    Push(push::PushArgs),
    Discard(discard::DiscardArgs),
    Commit(commit::CommitArgs),
    Gc(gc::GcArgs),
    Pool(pool::PoolArgs),
    Check(check::CheckArgs),
    Doctor(doctor::DoctorArgs),
    Trust(trust::TrustArgs),
    Config(config::ConfigArgs),
    Hooks(hooks::HooksArgs),
    Setup(setup::SetupArgs),
    Completions(completions::CompletionsArgs),
    ShellInit(shell_init::ShellInitArgs),
    #[command(hide = true)]
    Guard(guard::GuardArgs),
    #[command(hide = true)]
    Keeper(keeper::KeeperArgs),
    #[command(hide = true)]
    Supervise(supervise::SuperviseArgs),
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// What every command gets: output, and the directory it was started in.
pub struct CommandContext {
    pub ui: Ui,
    pub cwd: PathBuf,
}

impl CommandContext {
    pub fn workspace(&self) -> Result<Workspace, CommandError> {
        let ws = Workspace::discover(&self.cwd)?;
        // Whatever the command, what dead or killed cms processes left is settled first: a
        // task whose supervisor died (its leftover processes included), a discard or a merge
        // a killed cms left halfway.
        for line in crate::task::settle(&ws) {
            self.ui.warn(&line);
        }
        Ok(ws)
    }
}

/// Parses the command line, or reports why it is wrong and returns the exit code: usage
/// errors are reported like every other error (one line, hints, the JSON error on stdout when
/// `--json` is anywhere on the line), with exit code 2.
pub fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, u8> {
    // Before `--`, every word that could be the flag is the flag, as clap reads it too.
    let json = args
        .iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json");
    // claude acts on any JSON its PreToolUse hook (the guard) prints, whatever the exit code:
    // a usage error there must leave stdout empty (exit 2 and stderr block the call).
    let guard = args
        .windows(2)
        .any(|pair| pair[0] == "guard" && pair[1] == "pre-tool-use");
    Cli::try_parse_from(args).map_err(|err| report_usage_error(err, json && !guard))
}

fn report_usage_error(err: clap::Error, json: bool) -> u8 {
    use clap::error::ErrorKind as Clap;
    match err.kind() {
        Clap::DisplayHelp | Clap::DisplayVersion => {
            let _ = err.print();
            return exit_code::OK;
        }
        Clap::DisplayHelpOnMissingArgumentOrSubcommand if !json => {
            let _ = err.print();
            return exit_code::USAGE;
        }
        _ => {}
    }
    let ui = Ui::new(ColorChoice::Auto, json);
    let error = if err.kind() == Clap::DisplayHelpOnMissingArgumentOrSubcommand {
        CommandError::new(ErrorKind::Usage, "a subcommand is missing")
            .with_hint("`cms --help` lists the subcommands")
    } else {
        usage_error(&err)
    };
    report_error(&ui, error)
}

/// Turns clap's report (an `error:` line, then tips, usage and a pointer to `--help`) into
/// one error line and hints.
fn usage_error(err: &clap::Error) -> CommandError {
    use clap::error::{ContextKind, ContextValue, ErrorKind as Clap};
    let text = err.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let mut message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let invalid_arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => vec![arg.clone()],
        Some(ContextValue::Strings(args)) => args.clone(),
        _ => Vec::new(),
    };
    let mut hints = Vec::new();
    match err.kind() {
        // clap lists the missing arguments on lines of their own.
        Clap::MissingRequiredArgument => {
            message = format!("missing required argument: {}", invalid_arg.join(", "));
        }
        // clap's list of subcommands would include the hidden ones.
        Clap::MissingSubcommand | Clap::InvalidSubcommand => {
            let mut error = CommandError::new(ErrorKind::Usage, message);
            for line in lines {
                if let Some(tip) = line.strip_prefix("tip: ") {
                    error = error.with_hint(tip);
                }
            }
            return error.with_hint("`cms --help` lists the subcommands");
        }
        Clap::InvalidValue | Clap::ValueValidation
            if invalid_arg
                .iter()
                .any(|a| a == "<TASK>" || a.starts_with("--name") || a.starts_with("--task")) =>
        {
            hints.push(
                "a task name is letters, digits, '-', '_' and '.', such as fix-login; \
                 `cms list --all` shows the tasks"
                    .to_owned(),
            );
        }
        _ => {}
    }
    for line in lines {
        if invalid_arg.iter().any(|a| a == line) {
            continue;
        }
        hints.push(if let Some(tip) = line.strip_prefix("tip: ") {
            tip.to_owned()
        } else if let Some(usage) = line.strip_prefix("Usage: ") {
            format!("usage: {usage}")
        } else if let Some(values) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            values.to_owned()
        } else {
            line.to_owned()
        });
    }
    let mut error = CommandError::new(ErrorKind::Usage, message);
    error.hints = hints;
    error
}

/// Runs the parsed command line, returning the process exit code.
pub fn run(cli: Cli) -> u8 {
    let ui = Ui::new(cli.global.color, cli.global.json);
    if ui.json {
        panic::json_on_panic();
    }
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
    crate::fault::test_panic_point("run");
    let result = match cli.command {
        Command::Task(args) => task::cmd_task(&ctx, args),
        Command::Continue(args) => continue_task::cmd_continue(&ctx, args),
        Command::Attach(args) => attach::cmd_attach(&ctx, args),
        Command::Abort(args) => abort::cmd_abort(&ctx, args),
        Command::Wait(args) => wait::cmd_wait(&ctx, args),
        Command::Allow(args) => answer::cmd_allow(&ctx, args),
        Command::Deny(args) => answer::cmd_deny(&ctx, args),
        Command::Supervise(args) => supervise::cmd_supervise(&ctx, args),
        Command::List(args) => list::cmd_list(&ctx, args),
        Command::Show(args) => show::cmd_show(&ctx, args),
        Command::Path(args) => path::cmd_path(&ctx, args),
        Command::Logs(args) => logs::cmd_logs(&ctx, args),
        Command::Mcp(args) => mcp::cmd_mcp(&ctx, args),
        Command::Top(args) => top::cmd_top(&ctx, args),
        Command::Diff(args) => diff::cmd_diff(&ctx, args),
        Command::Merge(args) => merge::cmd_merge(&ctx, args),
        Command::Push(args) => push::cmd_push(&ctx, args),
        Command::Discard(args) => discard::cmd_discard(&ctx, args),
        Command::Commit(args) => commit::cmd_commit(&ctx, args),
        Command::Gc(args) => gc::cmd_gc(&ctx, args),
        Command::Check(args) => check::cmd_check(&ctx, args),
        Command::Doctor(args) => doctor::cmd_doctor(&ctx, args),
        Command::Trust(args) => trust::cmd_trust(&ctx, args),
        Command::Config(args) => config::cmd_config(&ctx, args),
        Command::Guard(args) => guard::cmd_guard(&ctx, args),
        Command::Hooks(args) => hooks::cmd_hooks(&ctx, args),
        Command::Setup(args) => setup::cmd_setup(&ctx, args),
        Command::Pool(args) => pool::cmd_pool(&ctx, args),
        Command::Completions(args) => completions::cmd_completions(&ctx, args),
        Command::ShellInit(args) => shell_init::cmd_shell_init(&ctx, args),
        Command::Keeper(args) => keeper::cmd_keeper(&ctx, args),
        Command::Worker(args) => worker::cmd_worker(&ctx, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => report_error(&ctx.ui, err),
    }
}

/// Prints an error as `error:`, `caused by:` and `hint:` lines on stderr (and as JSON on stdout
/// with `--json`), returning its exit code.
pub fn report_error(ui: &Ui, err: CommandError) -> u8 {
    ui.status(&err.lines(&ui.err).join("\n"));
    if ui.json {
        ui.print_json(&err.to_json());
    }
    err.exit_code()
}

/// Answers a shell's completion request (`COMPLETE=<shell>` in the environment) and exits;
/// does nothing otherwise.
/// The `cms` binary: answers the shell's completion requests, parses, runs, and exits with
/// the code the command returned.
pub fn main() -> std::process::ExitCode {
    panic::install();
    // `COMPLETE=<shell> cms -- <words>` is the shell asking for completions (see `cms
    // completions`); it answers and exits before anything else runs.
    complete_from_env();
    let code = match parse(std::env::args_os().collect()) {
        Ok(cli) => run(cli),
        Err(code) => code,
    };
    std::process::ExitCode::from(code)
}

pub fn complete_from_env() {
    use clap::CommandFactory;
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
}

/// Completes a `<TASK>` argument with the repository's open tasks.
pub fn completes_tasks() -> clap_complete::ArgValueCandidates {
    clap_complete::ArgValueCandidates::new(completions::task_names)
}

/// Parses a `--name`/`<TASK>` argument.
pub fn parse_task_name(text: &str) -> Result<crate::store::TaskName, String> {
    crate::store::TaskName::parse(text).map_err(|err| err.reason.to_owned())
}

/// Parses a `<TASK>` argument naming a task that exists: where no task has that name but one
/// task's name starts with it, that task is meant (said on stderr), as git takes a unique
/// prefix of a commit id. Commands that remove or publish work (`discard`, `merge`, `push`)
/// take whole names only. Anything else is left for the command to refuse, with its hint.
pub fn parse_existing_task(text: &str) -> Result<crate::store::TaskName, String> {
    let typed = parse_task_name(text)?;
    let resolved = std::env::current_dir()
        .ok()
        .and_then(|cwd| Workspace::discover(&cwd).ok())
        .and_then(|ws| ws.store.unique_prefix_match(&typed));
    match resolved {
        Some(name) => {
            eprintln!("'{typed}' is task '{name}', the only one whose name starts so");
            Ok(name)
        }
        None => Ok(typed),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
