//! `cms trust`: trust the repository's own settings files, say what is trusted and what
//! changed since, or forget it.

use clap::Args;
use serde_json::{Value, json};

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report::JSON_VERSION;
use crate::trust::{self, Changes, Current, Trust};
use crate::workspace::Workspace;

/// Trust the repository's own settings: .cms.toml, .worktreeinclude, .mcp.json and .claude/
///
/// Until you do, a repository's .cms.toml only tightens cms's settings (what would loosen them
/// is ignored, with a warning naming each key), none of its commands run ([worktree] setup,
/// [merge] check), its .worktreeinclude is not used, and claude gets none of its Claude Code
/// settings, hooks, MCP servers, agents, skills or commands (CLAUDE.md still). Trust is
/// recorded by content in your data folder ($XDG_DATA_HOME/cms/trust): a file that changes
/// needs trust again. Once trusted, tasks get the project's Claude Code settings and MCP
/// servers as their base commit has them, never as a task wrote them.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Say what is trusted and what changed since, trusting nothing
    #[arg(long, conflicts_with = "revoke")]
    pub show: bool,

    /// Forget what was trusted of this repository
    #[arg(long)]
    pub revoke: bool,
}

pub fn cmd_trust(ctx: &CommandContext, args: TrustArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let ui = &ctx.ui;
    if args.revoke {
        let revoked = trust::revoke(&ws.repo)?;
        if ui.json {
            ui.print_json(&json!({"version": JSON_VERSION, "revoked": revoked}));
        } else if revoked {
            ui.println("revoked: the repository's settings are no longer trusted");
        } else {
            ui.println("nothing was trusted in this repository");
        }
        return Ok(exit_code::OK);
    }
    if !args.show {
        trust::trust(&ws.repo)?;
    }
    let (trust, current) = state(&ws)?;
    let changes = trust::changes(&trust, &current);
    if ui.json {
        ui.print_json(&status_json(&trust, &current, &changes));
    } else {
        for line in status_lines(&trust, &current, &changes) {
            ui.println(&line);
        }
    }
    Ok(exit_code::OK)
}

/// What is trusted and what the settings files are now.
pub(super) fn state(ws: &Workspace) -> Result<(Trust, Current), CommandError> {
    Ok((trust::load(&ws.repo)?, trust::current(&ws.repo)?))
}

/// Whether the repository's settings files are all trusted as they are.
pub(super) fn up_to_date(trust: &Trust, changes: &Changes) -> bool {
    changes.is_empty() && (trust.record.is_some() || changes.removed.is_empty())
}

pub(super) fn status_json(trust: &Trust, current: &Current, changes: &Changes) -> Value {
    json!({
        "version": JSON_VERSION,
        "source": current.source.describe(),
        "trusted": trust.record.is_some(),
        "trusted_at": trust.record.as_ref().map(|r| r.trusted_at.clone()),
        "up_to_date": up_to_date(trust, changes),
        "files": current.files.keys().collect::<Vec<_>>(),
        "trusted_files": trust.record.as_ref().map(|r| r.files.keys().collect::<Vec<_>>()),
        "added": changes.added,
        "changed": changes.changed,
        "removed": changes.removed,
    })
}

/// The human form: one line of state, then one per kind of change.
pub(super) fn status_lines(trust: &Trust, current: &Current, changes: &Changes) -> Vec<String> {
    let mut lines = Vec::new();
    match &trust.record {
        Some(record) if changes.is_empty() => lines.push(format!(
            "trusted since {}: {} settings file(s) of {}, unchanged",
            record.trusted_at,
            record.files.len(),
            current.source.describe()
        )),
        Some(record) => lines.push(format!(
            "trusted since {}, but changed since: the changed and added files are not \
             trusted until `cms trust`",
            record.trusted_at
        )),
        None if current.files.is_empty() => {
            lines.push("not trusted; the repository has no settings files of its own".into())
        }
        None => lines.push(format!(
            "not trusted: cms uses its settings files ({}) only where they tighten, and runs \
             none of their commands; `cms trust` trusts them as they are",
            current.source.describe()
        )),
    }
    let list = |label: &str, paths: &[String], lines: &mut Vec<String>| {
        if !paths.is_empty() {
            lines.push(format!("  {label}: {}", paths.join(", ")));
        }
    };
    if trust.record.is_some() {
        list("added", &changes.added, &mut lines);
        list("changed", &changes.changed, &mut lines);
        list("removed", &changes.removed, &mut lines);
    } else {
        list("files", &changes.added, &mut lines);
    }
    lines
}

/// Warns, in one line, about what an untrusted repository's settings asked for that cms
/// ignored for tasks based on `base`.
pub(super) fn warn_untrusted(ctx: &CommandContext, ws: &Workspace, base: crate::git::Oid) {
    if let Some(warning) = ws.untrusted_warning(base) {
        ctx.ui.warn(&warning);
    }
}

/// [`warn_untrusted`] for a configuration already read (a started task's).
pub(super) fn warn_untrusted_in(ctx: &CommandContext, config: &crate::config::Config) {
    if let Some(warning) = config.untrusted.warning() {
        ctx.ui.warn(&warning);
    }
}
