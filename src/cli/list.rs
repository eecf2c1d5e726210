//! `cms list`: the tasks of this repository.

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::store::TaskRecord;

/// List the tasks of this repository
///
/// Merged and discarded tasks are hidden unless --all is given; --all also lists the
/// archived ones (closed tasks whose name was used again), marked as such.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include merged and discarded tasks
    #[arg(short, long)]
    pub all: bool,
}

pub fn cmd_list(ctx: &CommandContext, args: ListArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let (records, mut errors) = ws.tasks()?;
    let mut records: Vec<(TaskRecord, bool)> = records
        .into_iter()
        .filter(|r| args.all || !r.status.is_closed())
        .map(|r| (r, false))
        .collect();
    if args.all {
        let (archived, archive_errors) = ws.store.archived()?;
        errors.extend(archive_errors);
        records.extend(archived.into_iter().map(|r| (r, true)));
        records.sort_by(|(a, _), (b, _)| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
    }
    for err in &errors {
        ctx.ui.warn(&format!("skipping a task record: {err}"));
    }
    let ui = &ctx.ui;
    if ui.json {
        ui.print_json(&serde_json::Value::Array(
            records
                .iter()
                .map(|(r, archived)| {
                    let mut json = report::task_json(r);
                    json["archived"] = (*archived).into();
                    json
                })
                .collect(),
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
    // An archived task's name now belongs to a newer task; the mark tells them apart.
    let label = |r: &TaskRecord, archived: bool| {
        if archived {
            format!("{} (archived)", r.name)
        } else {
            r.name.to_string()
        }
    };
    let name_width = records
        .iter()
        .map(|(r, archived)| label(r, *archived).len())
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
    for (r, archived) in &records {
        // A waiting task's prompt matters less than what it waits for.
        let asks = report::pending_line(r).map(|what| format!("asks for {what}"));
        let prompt = asks
            .as_deref()
            .unwrap_or_else(|| r.prompt.lines().next().unwrap_or_default());
        let prompt: String = if prompt.chars().count() > 50 {
            format!("{}…", prompt.chars().take(49).collect::<String>())
        } else {
            prompt.to_owned()
        };
        let status = format!("{:17}", r.status.as_str());
        out.push_str(&format!(
            "{:name_width$}  {}  {:>9}  {:>5}  {:>5}  {prompt}\n",
            s.name.apply_to(label(r, *archived)),
            report::status_style(s, r.status).apply_to(status),
            report::format_cost(r.cost_usd),
            r.turns,
            r.files_changed.len(),
        ));
    }
    ui.print(&out);
    Ok(exit_code::OK)
}
