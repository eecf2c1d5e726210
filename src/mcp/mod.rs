//! `cms mcp`: an MCP server on stdio through which a parent agent starts, follows, answers,
//! merges and discards tasks of the repository it was started in, within the `[mcp]` caps.
//!
//! `server.rs` declares the tools (rmcp's macros) and turns results into tool results,
//! `args.rs` holds their arguments and schemas, `caps.rs` the caps, `hints.rs` the errors' hints
//! as an agent reads them (tools, not commands), and `tools.rs` what each
//! tool does, through the same `task/` functions as the command line.

mod args;
mod caps;
mod hints;
mod server;
mod tools;

pub use server::serve;
