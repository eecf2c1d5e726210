//! `cms pool`: the warm pool of worktrees new tasks take instead of checking out the whole
//! repository.

use clap::{Args, Subcommand};
use serde_json::json;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::task::pool;

/// Keep worktrees checked out ahead of time, so new tasks start without a full checkout
///
/// A task takes a waiting worktree (renamed into place, its branch made at the task's base:
/// only the files that changed since it was warmed are written) and the pool is refilled in
/// the background. `[pool] size` sets how many wait.
#[derive(Debug, Args)]
pub struct PoolArgs {
    #[command(subcommand)]
    pub action: PoolAction,
}

#[derive(Debug, Subcommand)]
pub enum PoolAction {
    /// Fill the pool up to N worktrees (default: pool.size) at the current HEAD's commit
    Warm {
        /// How many worktrees should wait
        #[arg(value_parser = clap::value_parser!(u32).range(1..=64))]
        count: Option<u32>,
    },
    /// List the waiting worktrees
    Status,
    /// Remove every waiting worktree
    Drain,
}

pub fn cmd_pool(ctx: &CommandContext, args: PoolArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let ui = &ctx.ui;
    match args.action {
        PoolAction::Warm { count } => {
            let config = ws.config(None)?;
            let size = count.map_or(config.pool_size, |n| n as usize);
            if size == 0 {
                return Err(CommandError::user("the pool's size is 0").with_hint(
                    "give a count (`cms pool warm 4`) or set [pool] size in .cms.toml",
                ));
            }
            let head = ws.repo.head()?;
            let added = pool::warm(&ws, &config, size, head.oid())?;
            let waiting = pool::pooled(&ws)?.len();
            if ui.json {
                ui.print_json(&json!({"added": added, "waiting": waiting}));
            } else {
                ui.println(&format!("{added} worktree(s) added; {waiting} waiting."));
            }
        }
        PoolAction::Status => {
            let pooled = pool::pooled(&ws)?;
            if ui.json {
                ui.print_json(&serde_json::Value::Array(
                    pooled
                        .iter()
                        .map(|p| json!({"path": p.path, "commit": p.commit}))
                        .collect(),
                ));
            } else if pooled.is_empty() {
                ui.status("No worktree waits in the pool. `cms pool warm N` fills it.");
            } else {
                for p in &pooled {
                    let commit = p.commit.as_deref().unwrap_or("-");
                    ui.println(&format!(
                        "{}  {}",
                        &commit[..commit.len().min(12)],
                        p.path.display()
                    ));
                }
            }
        }
        PoolAction::Drain => {
            let removed = pool::drain(&ws)?;
            if ui.json {
                ui.print_json(&json!({"removed": removed}));
            } else {
                ui.println(&format!("{removed} waiting worktree(s) removed."));
            }
        }
    }
    Ok(exit_code::OK)
}
