//! `cms keeper`: the process `cms task` puts between itself and claude so that nothing the
//! session starts outlives it (see `session::keeper`). Not for people; hidden from help.

use std::ffi::OsString;

use clap::Args;

use super::CommandContext;
use crate::error::CommandError;

#[derive(Debug, Args)]
pub struct KeeperArgs {
    /// The read end of the supervisor's lifeline pipe; its closing ends the session
    #[arg(long, value_name = "FD")]
    pub lifeline_fd: i32,

    /// claude runs at the terminal (`cms attach`): Ctrl-C is claude's, SIGUSR1 interrupts it
    #[arg(long)]
    pub interactive: bool,

    /// The program to run (claude) and its arguments
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// The exit code a shell gives a command it could not execute.
const CANNOT_EXECUTE: u8 = 126;

pub fn cmd_keeper(_ctx: &CommandContext, args: KeeperArgs) -> Result<u8, CommandError> {
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    run(args.lifeline_fd, program, rest, args.interactive)
}

#[cfg(target_os = "linux")]
fn run(
    lifeline: i32,
    program: &OsString,
    args: &[OsString],
    interactive: bool,
) -> Result<u8, CommandError> {
    match crate::session::keeper::run(lifeline, program, args, interactive) {
        Ok(status) => crate::session::keeper::exit_like(status),
        Err(err) => {
            // claude's stderr is the supervisor's pipe, so this line reaches the user's error.
            eprintln!("cms could not start {}: {err}", program.to_string_lossy());
            Ok(CANNOT_EXECUTE)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(
    _lifeline: i32,
    program: &OsString,
    _args: &[OsString],
    _interactive: bool,
) -> Result<u8, CommandError> {
    eprintln!(
        "cms keeper runs only on Linux; cannot run {}",
        program.to_string_lossy()
    );
    Ok(CANNOT_EXECUTE)
}
