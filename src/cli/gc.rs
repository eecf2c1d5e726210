//! `cms gc`: remove what cms made that nothing needs any more, and show what tasks take.

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report::format_bytes;
use crate::task::{DEFAULT_KEEP, GcOptions, GcReport, gc};

/// Remove the worktrees, branches and files of merged, discarded and orphaned tasks
///
/// Worktrees and branches of merged or discarded tasks go at once, and so do worktrees cms
/// made whose task has no record, but only when their work is in their target branch (or
/// with --force). The records and transcripts of merged or discarded tasks, and archived
/// records, go once older than --older-than. Open and running tasks are never removed. Also
/// prunes git's entries of worktrees deleted by hand, and reports the disk space each task's
/// worktree uses.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Show what would be removed, removing nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Remove records of merged and discarded tasks (and archived ones) older than this,
    /// such as 12h, 7d or 0 for all [default: 30d]
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: Option<std::time::Duration>,

    /// Remove merged, discarded and orphaned tasks' worktrees and branches even if they hold
    /// work that is not merged
    #[arg(long)]
    pub force: bool,
}

/// Parses `--older-than`: a plain number of seconds or a duration such as `7d`; zero allowed.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(secs) => Ok(std::time::Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(text)
            .map_err(|err| format!("expected a duration such as 12h, 7d or 0 ({err})")),
    }
}

pub fn cmd_gc(ctx: &CommandContext, args: GcArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let report = gc(
        &ws,
        GcOptions {
            dry_run: args.dry_run,
            older_than: args.older_than.unwrap_or(DEFAULT_KEEP),
            force: args.force,
        },
    )?;
    if ctx.ui.json {
        let mut value = serde_json::to_value(&report).expect("a gc report always serializes");
        value["version"] = serde_json::json!(crate::report::JSON_VERSION);
        ctx.ui.print_json(&value);
    } else {
        print_report(ctx, &report);
    }
    Ok(exit_code::OK)
}

fn print_report(ctx: &CommandContext, report: &GcReport) {
    let ui = &ctx.ui;
    let s = &ui.out;
    if !report.tasks.is_empty() {
        let width = report.tasks.iter().map(|t| t.task.len()).max().unwrap_or(0);
        ui.println(&format!(
            "{}",
            s.dim.apply_to(format!(
                "{:width$}  {:17} {:>9}",
                "TASK", "STATUS", "WORKTREE"
            ))
        ));
        for task in &report.tasks {
            let status = task.status.map_or("no record", |s| s.as_str());
            ui.println(&format!(
                "{}  {status:17} {:>9}",
                s.name.apply_to(format!("{:width$}", task.task)),
                task.worktree
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |_| format_bytes(task.bytes)),
            ));
        }
    }
    let verb = if report.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    for removal in &report.removed {
        let what = match (&removal.branch, &removal.path) {
            (Some(branch), _) => branch.clone(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => String::new(),
        };
        let size = if removal.bytes > 0 {
            format!(" ({})", format_bytes(removal.bytes))
        } else {
            String::new()
        };
        let kind = removal.kind.replace('_', " ");
        ui.println(&format!("{verb} {kind} {what}{size}"));
    }
    for kept in &report.kept {
        ui.println(&format!(
            "Kept {}: {}",
            s.name.apply_to(&kept.task),
            kept.reason
        ));
    }
    ui.println(&match report.removed.len() {
        0 => "Nothing to remove.".to_owned(),
        n => format!(
            "{verb} {n} item(s), {}.",
            if report.dry_run {
                format!("which would free {}", format_bytes(report.freed_bytes))
            } else {
                format!("freeing {}", format_bytes(report.freed_bytes))
            }
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_accept_plain_seconds_units_and_zero() {
        assert_eq!(parse_age("0").unwrap().as_secs(), 0);
        assert_eq!(parse_age("7d").unwrap().as_secs(), 7 * 86400);
        assert_eq!(parse_age("90").unwrap().as_secs(), 90);
        assert!(parse_age("soon").is_err());
    }
}
