//! `cms completions`: the shell code that completes cms's commands, flags and task names.
//!
//! The completions are clap's dynamic ones: the shell calls `COMPLETE=<shell> cms -- <words>`
//! back for each completion (see [`clap_complete::CompleteEnv`] in `main.rs`), so task names
//! come from the repository the shell is in, and the completions never fall out of date with
//! the installed cms.

use clap::{Args, CommandFactory};
use clap_complete::env::Shells;

use super::CommandContext;
use crate::error::{CommandError, ErrorKind, exit_code};

/// Print the shell code that completes cms's commands, flags and task names
///
/// Source it from your shell's startup file, e.g. `source <(cms completions bash)` in
/// ~/.bashrc, `source <(cms completions zsh)` in ~/.zshrc, `cms completions fish | source` in
/// ~/.config/fish/config.fish.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(["bash", "zsh", "fish", "elvish", "powershell"]))]
    pub shell: String,
}

pub fn cmd_completions(ctx: &CommandContext, args: CompletionsArgs) -> Result<u8, CommandError> {
    let shells = Shells::builtins();
    let shell = shells.completer(&args.shell).ok_or_else(|| {
        CommandError::new(ErrorKind::Usage, format!("unknown shell {}", args.shell))
    })?;
    let exe = std::env::current_exe()
        .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
    let cmd = super::Cli::command();
    let mut script = Vec::new();
    shell
        .write_registration(
            "COMPLETE",
            cmd.get_name(),
            cmd.get_name(),
            &exe.display().to_string(),
            &mut script,
        )
        .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
    ctx.ui.print(&String::from_utf8_lossy(&script));
    Ok(exit_code::OK)
}

/// The names of the repository's open tasks, with their status, for completing `<TASK>`.
/// Completion must never fail or write anything: whatever goes wrong gives no candidates.
pub fn task_names() -> Vec<clap_complete::CompletionCandidate> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    let Ok(ws) = crate::workspace::Workspace::discover(&cwd) else {
        return Vec::new();
    };
    let Ok((records, _)) = ws.store.list() else {
        return Vec::new();
    };
    records
        .into_iter()
        .filter(|r| !r.status.is_closed())
        .map(|r| {
            clap_complete::CompletionCandidate::new(r.name.to_string())
                .help(Some(r.status.as_str().into()))
        })
        .collect()
}
