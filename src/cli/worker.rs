//! `cms worker` (hidden): what a runner's job runs on a worker machine. It runs the job's task
//! (`task::run_worker`) and prints what happens as wire lines on stdout, the job's log, which
//! the local cms follows; its own failure is an `error` wire line as well as the usual
//! `error:` line on stderr.

use std::io::Write;

use clap::Args;

use super::CommandContext;
use super::run::timeouts_from_env;
use crate::error::{CommandError, exit_code};
use crate::runner::wire::WireLine;
use crate::task;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The runner's git remote the job's refs are at (a URL or a path)
    #[arg(long)]
    pub remote: String,
    /// The job's id
    #[arg(long)]
    pub job: String,
}

pub fn cmd_worker(_ctx: &CommandContext, args: WorkerArgs) -> Result<u8, CommandError> {
    // First of all: a stop (Ray's job stop sends SIGTERM) that comes before the session's own
    // handlers is remembered and stops the session as soon as it starts.
    task::remember_stop_signals();
    let emit = |line: &WireLine| {
        let mut out = std::io::stdout().lock();
        // The job's log is all there is to write to: a closed stdout loses the lines, not
        // the task, whose results are pushed.
        let _ = writeln!(out, "{}", line.to_line());
        let _ = out.flush();
    };
    let run = timeouts_from_env()
        .and_then(|timeouts| Ok(task::run_worker(&args.remote, &args.job, timeouts, &emit)?));
    match run {
        Ok(_) => Ok(exit_code::OK),
        Err(err) => {
            let line = std::iter::once(err.message.clone())
                .chain(err.causes.iter().cloned())
                .collect::<Vec<_>>()
                .join(": ")
                .replace('\n', " ");
            emit(&WireLine::Error(line));
            Err(err)
        }
    }
}
