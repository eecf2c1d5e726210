//! `cms hooks install|uninstall`: put cms's pre-commit and pre-push hooks where git runs hooks,
//! and take them out again.

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::json;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::hooks::{self, InstallAction, UninstallAction};
use crate::report::JSON_VERSION;

/// Install or remove the git hooks that run `cms check` before commits and pushes
#[derive(Debug, Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    pub action: HooksAction,
}

#[derive(Debug, Subcommand)]
pub enum HooksAction {
    /// Install pre-commit and pre-push hooks that run `cms check`
    ///
    /// The hooks go where git runs hooks from for this checkout (`core.hooksPath` honoured).
    /// A hook already there that is not cms's is kept as `<hook>.cms-chained` and runs first,
    /// with the same arguments and stdin; if it fails, so does the commit or push. The hooks
    /// run the cms that installed them (CMS_HOOK_BIN overrides it, else `cms` on PATH); if
    /// none is found they warn and let git go ahead. Installing again changes nothing.
    Install,

    /// Remove cms's hooks and put back the hooks they chained
    ///
    /// A hook that is no longer cms's (replaced since) is left alone, with a warning.
    Uninstall,
}

pub fn cmd_hooks(ctx: &CommandContext, args: HooksArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let dir = crate::git::hooks::hooks_dir(&ws.repo.checkout)?;
    match args.action {
        HooksAction::Install => install(ctx, &dir),
        HooksAction::Uninstall => uninstall(ctx, &dir),
    }
}

fn install(ctx: &CommandContext, dir: &Path) -> Result<u8, CommandError> {
    let cms = std::env::current_exe().map_err(|err| {
        CommandError::from(err)
            .with_hint("run cms by its full path, so the hooks can name the same executable")
    })?;
    let done = hooks::install(dir, &cms)?;
    let ui = &ctx.ui;
    if ui.json {
        let entries: Vec<_> = done
            .iter()
            .map(|h| {
                json!({
                    "hook": h.hook.name(),
                    "path": h.path.display().to_string(),
                    "action": h.action.as_str(),
                    "chained": h.chained.as_ref().map(|p| p.display().to_string()),
                    "moved_aside": h.moved_aside,
                })
            })
            .collect();
        ui.print_json(&json!({
            "version": JSON_VERSION,
            "hooks_dir": dir.display().to_string(),
            "cms": cms.display().to_string(),
            "hooks": entries,
        }));
        return Ok(exit_code::OK);
    }
    let s = &ui.out;
    for h in &done {
        let name = s.name.apply_to(h.hook.name());
        let path = h.path.display();
        let mut line = match h.action {
            InstallAction::Installed => format!("Installed {name} hook: {path}"),
            InstallAction::Updated => format!("Updated {name} hook: {path}"),
            InstallAction::Unchanged => format!("{name} hook already installed: {path}"),
        };
        match (&h.chained, h.moved_aside) {
            (Some(chained), true) => line.push_str(&format!(
                " (the {} hook that was there runs first; it is now {})",
                h.hook.name(),
                file_name(chained)
            )),
            (Some(chained), false) => {
                line.push_str(&format!(" (runs {} first)", file_name(chained)));
            }
            (None, _) => {}
        }
        ui.println(&line);
    }
    Ok(exit_code::OK)
}

fn uninstall(ctx: &CommandContext, dir: &Path) -> Result<u8, CommandError> {
    let done = hooks::uninstall(dir)?;
    let ui = &ctx.ui;
    let warnings: Vec<Option<String>> = done
        .iter()
        .map(|h| {
            (h.action == UninstallAction::LeftAlone).then(|| {
                let mut text = format!(
                    "left {} alone: it is no longer cms's hook",
                    h.path.display()
                );
                if let Some(chained) = &h.chained_left {
                    text.push_str(&format!(
                        "; the hook cms chained stays at {}",
                        chained.display()
                    ));
                }
                text
            })
        })
        .collect();
    for warning in warnings.iter().flatten() {
        ui.warn(warning);
    }
    if ui.json {
        let entries: Vec<_> = done
            .iter()
            .zip(&warnings)
            .map(|(h, warning)| {
                json!({
                    "hook": h.hook.name(),
                    "path": h.path.display().to_string(),
                    "action": h.action.as_str(),
                    "restored_from": h.restored_from.as_ref().map(|p| p.display().to_string()),
                    "warning": warning,
                })
            })
            .collect();
        ui.print_json(&json!({
            "version": JSON_VERSION,
            "hooks_dir": dir.display().to_string(),
            "hooks": entries,
        }));
        return Ok(exit_code::OK);
    }
    if done
        .iter()
        .all(|h| h.action == UninstallAction::NotInstalled)
    {
        ui.println(&format!(
            "No cms hooks installed in {}; nothing to do.",
            dir.display()
        ));
        return Ok(exit_code::OK);
    }
    let s = &ui.out;
    for h in &done {
        let name = s.name.apply_to(h.hook.name());
        let path = h.path.display();
        let from = h.restored_from.as_deref().map(file_name);
        let line = match (h.action, from) {
            (UninstallAction::Removed, None) => format!("Removed {name} hook: {path}"),
            (UninstallAction::Removed, Some(from)) => {
                format!("Removed {name} hook: {path} (put back the hook it chained, from {from})")
            }
            (UninstallAction::Restored, from) => format!(
                "Restored {name} hook: {path} (from {}; no cms hook was there)",
                from.unwrap_or_default()
            ),
            (UninstallAction::NotInstalled, _) => format!("{name} hook was not installed"),
            // Already said on stderr.
            (UninstallAction::LeftAlone, _) => continue,
        };
        ui.println(&line);
    }
    Ok(exit_code::OK)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
