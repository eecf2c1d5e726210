//! `cms mcp`: the MCP server on stdio (`src/mcp/`), for a parent agent such as Claude Code.

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, exit_code};

/// Serve the Model Context Protocol on stdin/stdout, for a parent agent
///
/// Gives an agent (e.g. `claude --mcp-config`) tools to start tasks of this repository in the
/// background, wait for them, answer their permission prompts, diff, merge, discard and
/// abort them, within the [mcp] caps of your configuration. Every result is the task's JSON
/// as `--json` prints it.
#[derive(Debug, Args)]
pub struct McpArgs {}

pub fn cmd_mcp(ctx: &CommandContext, _args: McpArgs) -> Result<u8, CommandError> {
    crate::mcp::serve(ctx.cwd.clone())?;
    Ok(exit_code::OK)
}
