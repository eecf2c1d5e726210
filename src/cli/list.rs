//! `cms list`: the tasks of this repository.

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;

/// List the tasks of this repository
///
/// Merged and discarded tasks are hidden unless --all is given.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include merged and discarded tasks
    #[arg(short, long)]
    pub all: bool,
}

pub fn cmd_list(ctx: &CommandContext, args: ListArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let (records, errors) = ws.tasks()?;
    for err in &errors {
        ctx.ui.warn(&format!("skipping a task record: {err}"));
    }
    let records: Vec<_> = records
        .into_iter()
        .filter(|r| args.all || !r.status.is_closed())
        .collect();
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&serde_json::Value::Array(
            records.iter().map(report::task_json).collect(),
        ));
        return Ok(exit_code::OK);
    }
    if records.is_empty() {
        ui.status(if args.all {
            "No tasks yet. Start one with `cms task \"<what to do>\"`."
        } else {
            "No open tasks. `cms list --all` includes merged and discarded ones."
        });
        return Ok(exit_code::OK);
    }
    let s = &ui.out;
    let name_width = records
        .iter()
        .map(|r| r.name.as_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{}\n",
        s.bold.apply_to(format!(
            "{:name_width$}  {:17}  {:>9}  {:>5}  {:>5}  PROMPT",
            "NAME", "STATUS", "COST", "TURNS", "FILES"
        ))
    );
    for r in &records {
        let prompt = r.prompt.lines().next().unwrap_or_default();
        let prompt: String = if prompt.chars().count() > 50 {
            format!("{}…", prompt.chars().take(49).collect::<String>())
        } else {
            prompt.to_owned()
        };
        let status = format!("{:17}", r.status.as_str());
        out.push_str(&format!(
            "{:name_width$}  {}  {:>9}  {:>5}  {:>5}  {prompt}\n",
            s.name.apply_to(&r.name),
            report::status_style(s, r.status).apply_to(status),
            report::format_cost(r.cost_usd),
            r.turns,
            r.files_changed.len(),
        ));
    }
    ui.print(&out);
    Ok(exit_code::OK)
}
