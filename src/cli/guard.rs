//! `cms guard pre-tool-use`: the write guard, the command claude runs as its PreToolUse hook
//! before each file-editing tool call of a task (given to it with `--settings`). Named apart
//! from git's hooks (`cms hooks`). Not for people; hidden from help.
//!
//! It fails closed: if the call cannot be judged (unreadable input, a bad argument or glob, or
//! a panic, see `cli/panic.rs`), it is denied with exit code 2, which claude treats as a
//! block, since any other failure would let the write through.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::safety::{Rules, guard};
use crate::store::{Blocked, Store, TaskName};

#[derive(Debug, Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    pub event: GuardEvent,
}

#[derive(Debug, Subcommand)]
pub enum GuardEvent {
    /// Judge one tool call, read as claude's hook JSON on stdin
    PreToolUse {
        /// The repository's git common dir, where the task's record is
        #[arg(long)]
        repo: PathBuf,
        /// The task whose session made the call
        #[arg(long, value_parser = super::parse_task_name)]
        task: TaskName,
        /// The task's worktree: writes must stay inside it
        #[arg(long)]
        worktree: PathBuf,
        /// A protected-path glob in force for the task (repeated; cms passes them all, the
        /// always-protected ones included)
        #[arg(long = "protect")]
        protect: Vec<String>,
        /// The file to append what was blocked to, one JSON line each, for the supervisor to
        /// collect (the outer boundary keeps the record read-only); without it, straight
        /// into the record
        #[arg(long)]
        blocked_to: Option<PathBuf>,
    },
}

/// claude's "block this tool call" exit code for hooks.
const BLOCK: u8 = 2;

pub fn cmd_guard(_ctx: &CommandContext, args: GuardArgs) -> Result<u8, CommandError> {
    // Fail closed on a bug too: exit 2 blocks the call, anything else would let it run.
    super::panic::exit_code_on_panic(BLOCK);
    let GuardEvent::PreToolUse {
        repo,
        task,
        worktree,
        protect,
        blocked_to,
    } = args.event;
    let record = Record {
        file: blocked_to.as_deref(),
        repo: &repo,
        task: &task,
    };
    match pre_tool_use(record, &worktree, &protect) {
        Ok(Some(reason)) => {
            // One compact line: claude parses the hook's whole stdout as one JSON value.
            println!("{}", guard::deny_output(&reason));
            Ok(exit_code::OK)
        }
        Ok(None) => Ok(exit_code::OK),
        Err(why) => {
            eprintln!("cms denied this write because it could not check it: {why}");
            Ok(BLOCK)
        }
    }
}

/// Where a denial is recorded: appended to `file`, which the supervisor collects into the
/// task's record when the session ends; straight into the record in the store at `repo`
/// without one, or when the file's folder is gone (the hook run after its session).
struct Record<'a> {
    file: Option<&'a std::path::Path>,
    repo: &'a std::path::Path,
    task: &'a TaskName,
}

/// The reason to deny the call on stdin, or `None` to allow it. The worktree and globs come
/// from the hook's command line, which cms wrote into claude's arguments: the task's record is
/// in the repository's git dir, where the agent's own git commands can write, so it only
/// receives what was blocked.
fn pre_tool_use(
    record: Record<'_>,
    worktree: &std::path::Path,
    protect: &[String],
) -> Result<Option<String>, String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|err| format!("reading the hook input failed: {err}"))?;
    crate::fault::test_panic_point("guard");
    let input: Value =
        serde_json::from_str(&text).map_err(|err| format!("the hook input is not JSON: {err}"))?;
    let tool_name = input["tool_name"].as_str().unwrap_or_default().to_owned();
    let rules = Rules::new(protect)?;
    let Some(violation) = guard::verdict(worktree, &rules, &tool_name, &input["tool_input"]) else {
        return Ok(None);
    };
    let reason = guard::reason_for(&violation);
    let blocked = Blocked {
        tool_name,
        tool_use_id: input["tool_use_id"].as_str().map(str::to_owned),
        violation,
    };
    // The task's record keeps what was blocked; the denial stands even if that fails.
    let appended = record.file.is_some_and(|file| {
        use std::io::Write;
        let line = format!("{}\n", serde_json::json!(blocked));
        // One append of one whole line: concurrent hooks of the session do not interleave.
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .is_ok()
    });
    if !appended {
        // Inside the outer boundary the store is read-only and this fails: the denial stands.
        let _ = Store::new(record.repo).update(record.task, |r| r.safety.blocked.push(blocked));
    }
    Ok(Some(reason))
}
