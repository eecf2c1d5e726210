//! cms runs Claude Code tasks in their own git worktrees, inside limits, and merges exactly
//! what they changed.
//!
//! Map: `cli` parses and dispatches; `task` runs a task's life (start, supervise, finish);
//! `session` owns claude processes and the stream-json protocol; `git` is the only code that
//! touches git; `store` keeps task records under the git common dir; `safety` holds limits and
//! protected paths; `vocab` holds the types they share (status, violations, limits, presets);
//! `hooks` installs the git hooks that run `cms check`; `workspace` ties a
//! repo to its store; `report` renders tasks; `fault` kills the process at a step (tests only);
//! `mcp` is the MCP server for parent agents; `platform` makes every syscall and handles every signal; `tui` is `cms top`'s live dashboard; `transcript` turns claude's events into the readable lines of progress and `cms logs`; `ui` writes to the terminal; `config` layers
//! settings; `trust` records which of a repository's own settings files the user trusts.
//! docs/architecture.md explains the design.

// Syscalls and signals go through `platform`, the one module allowed `unsafe` (on its
// narrowest items, each with a `SAFETY:` note).
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error;
pub mod fault;
pub mod git;
pub mod hooks;
pub mod mcp;
pub mod platform;
pub mod report;
pub mod safety;
pub mod session;
pub mod store;
pub mod task;
pub mod transcript;
pub mod trust;
pub mod tui;
pub mod ui;
pub mod vocab;
pub mod workspace;
