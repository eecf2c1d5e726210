//! Claude processes: the stream-json protocol, spawning, driving a turn, stopping (the keeper
//! and the process identity it relies on), the ledger.

mod background;
mod driver;
pub mod interactive;
pub mod keeper;
mod ledger;
mod pids;
pub mod pricing;
mod process;
pub mod protocol;
#[cfg(test)]
mod stream_properties;

use std::path::PathBuf;

pub use driver::{Logs, Permissions, StopReason, Timeouts, TurnOutcome, Watch, run_turn};
pub use ledger::{Ledger, first_line, shorten_tool_input, tool_input_text};
pub use process::{
    Spawn, current_supervisor, find_claude, kill_session, signal_supervisor, spawn_interactive,
    supervisor_alive,
};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("claude executable '{bin}' not found")]
    ClaudeNotFound { bin: String },

    #[error("failed to start {}", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to wait for claude to exit")]
    Wait(#[source] std::io::Error),
}
