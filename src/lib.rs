//! cms runs Claude Code tasks in their own git worktrees, inside limits, and merges exactly
//! what they changed.
//!
//! Map: `cli` parses and dispatches; `task` runs a task's life (start, supervise, finish);
//! `session` owns claude processes and the stream-json protocol; `git` is the only code that
//! touches git; `store` keeps task records under the git common dir; `safety` holds limits and
//! protected paths; `vocab` holds the types they share (status, violations, limits, presets);
//! `hooks` installs the git hooks that run `cms check`; `workspace` ties a
//! repo to its store; `report` renders tasks; `fault` kills the process at a step (tests only);
//! `mcp` is the MCP server for parent agents; `runner` talks to where tasks run off this machine (a Ray cluster); `platform` makes every syscall and handles every signal; `tui` is `cms top`'s live dashboard; `transcript` turns claude's events into the readable lines of progress and `cms logs`; `ui` writes to the terminal; `config` layers
//! settings; `trust` records which of a repository's own settings files the user trusts.
//! docs/architecture.md explains the design.

// Syscalls and signals go through `platform`, the one module allowed `unsafe` (on its
// narrowest items, each with a `SAFETY:` note).
#![deny(unsafe_code)]

pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod fault;
pub(crate) mod git;
pub(crate) mod hooks;
pub(crate) mod mcp;
pub(crate) mod platform;
pub(crate) mod report;
pub(crate) mod runner;
pub(crate) mod safety;
pub(crate) mod session;
pub(crate) mod store;
pub(crate) mod task;
pub(crate) mod transcript;
pub(crate) mod trust;
pub(crate) mod tui;
pub(crate) mod ui;
pub(crate) mod vocab;
pub(crate) mod workspace;

pub use cli::main;

/// What the benches measure, and nothing else of the crate: every module is `pub(crate)`.
#[doc(hidden)]
pub mod bench {
    pub use crate::safety::check::{Baseline, Surroundings};
}

/// What the worker's tests (`tests/test_worker.rs`) drive `cms worker` with, and nothing else
/// of the crate: the git transport and the wire format, as the local side uses them.
#[doc(hidden)]
pub mod transport {
    pub use crate::git::remote::{
        delete_remote_refs, fetch, files_commit, ls_remote, push, read_commit_files,
    };

    /// A wire line of a job's log as JSON (`None` for any other line), read by the parser the
    /// local side uses.
    pub fn parse_wire_line(line: &str) -> Option<serde_json::Value> {
        crate::runner::wire::parse_line(line)
            .map(|line| serde_json::to_value(line).expect("wire lines serialize"))
    }

    /// A new job id for task `task` (a valid task name).
    pub fn new_job_id(task: &str) -> String {
        let task = crate::store::TaskName::parse(task).expect("a valid task name");
        crate::runner::wire::new_job_id(&task)
    }
}
