//! `cms show`: everything about one task.

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;

/// Show one task: prompt, status, ledger, response and the files it changed
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The task's name
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: crate::store::TaskName,
}

pub fn cmd_show(ctx: &CommandContext, args: ShowArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let record = ws.task(&args.task)?;
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&report::task_json(&record));
        return Ok(exit_code::OK);
    }
    let s = &ui.out;
    let field = |label: &str, value: String| format!("{:>9}  {value}", s.dim.apply_to(label));
    let mut lines = vec![format!(
        "{} {}",
        s.name.apply_to(&record.name),
        report::status_style(s, record.status).apply_to(record.status.as_str())
    )];
    lines.push(field(
        "prompt",
        record.prompt.replace('\n', "\n           "),
    ));
    if let (Some(what), Some(pending)) = (report::pending_line(&record), &record.pending) {
        let since = humantime::parse_rfc3339(&pending.since)
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map(|d| {
                format!(
                    " for {}",
                    humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
                )
            })
            .unwrap_or_default();
        lines.push(field(
            "asks",
            format!(
                "{what} (waiting{since}; `cms allow {0}`, `cms allow {0} --always` or `cms deny {0} [MESSAGE]`)",
                record.name
            ),
        ));
    }
    let base = short_id(record.base);
    let base = match &record.base_branch {
        Some(branch) => format!("{branch} @ {base}"),
        None => format!("detached @ {base}"),
    };
    lines.push(field("branch", format!("{} (from {base})", record.branch)));
    let exists = if record.worktree.is_dir() {
        ""
    } else {
        " (removed)"
    };
    lines.push(field(
        "worktree",
        format!("{}{exists}", record.worktree.display()),
    ));
    lines.push(field(
        "session",
        format!(
            "{} · {} · preset {}",
            record.session_id.as_deref().unwrap_or("-"),
            report::model_label(record.model.as_deref()),
            record.preset
        ),
    ));
    if let Some(run) = &record.remote {
        let job = run.job.as_deref().unwrap_or("not submitted");
        lines.push(field(
            "runner",
            format!("{} · job {job} · {}", run.runner, run.address),
        ));
    }
    lines.push(field("ledger", report::ledger_line(&record)));
    if let Some(limits) = report::limits_line(&record) {
        lines.push(field("limits", limits));
    }
    lines.push(field("sandbox", report::sandbox_line(&record).to_owned()));
    if !record.tools_used.is_empty() {
        lines.push(field("tools", record.tools_used.join(", ")));
    }
    if let Some(merge) = &record.merge {
        lines.push(field(
            "merged",
            format!(
                "into {} at {} ({})",
                merge.into,
                short_id(merge.commit),
                merge.kind
            ),
        ));
    }
    if let Some(error) = &record.error {
        lines.push(field("error", s.bad.apply_to(error).to_string()));
    }
    for denial in &record.permission_denials {
        let detail = report::tool_detail(&denial.tool_name, &denial.tool_input, &record.worktree);
        lines.push(field("denied", format!("{} {detail}", denial.tool_name)));
    }
    for command in &record.stopped_commands {
        lines.push(field("stopped", command.label()));
    }
    // Work cut short is picked up by a follow-up: say which.
    if let Some(next) = report::next_commands(&record)
        .into_iter()
        .find(|c| !record.stopped_commands.is_empty() && c.starts_with("cms continue"))
    {
        lines.push(field("next", next));
    }
    for line in report::safety_lines(s, &record) {
        lines.push(format!("{:>9}  {line}", ""));
    }
    lines.push(field(
        "files",
        format!("{} changed", record.files_changed.len()),
    ));
    lines.extend(report::file_lines(s, &record.files_changed));
    if let Some(response) = &record.response {
        lines.push(String::new());
        lines.extend(response.lines().map(|l| format!("  {l}")));
    }
    ui.println(&lines.join("\n"));
    Ok(exit_code::OK)
}

fn short_id(oid: crate::git::Oid) -> String {
    let mut text = oid.to_string();
    text.truncate(12);
    text
}
