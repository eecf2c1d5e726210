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
    let rows = rows(&records);
    let name_width = rows
        .iter()
        .map(|row| row.label().chars().count())
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
    let pad = |text: String| {
        let width = text.chars().count();
        format!("{text}{}", " ".repeat(name_width.saturating_sub(width)))
    };
    for row in &rows {
        match row {
            Row::Group { group, members } => {
                let cost: f64 = members.iter().map(|r| r.cost_usd).sum();
                let turns: u32 = members.iter().map(|r| r.turns).sum();
                let prompt = cut(&first_line_of(&members[0].prompt));
                let status = format!("{:17}", format!("{} attempts", members.len()));
                out.push_str(&format!(
                    "{}  {}  {:>9}  {:>5}  {:>5}  {prompt}\n",
                    s.name.apply_to(pad(group.clone())),
                    s.dim.apply_to(status),
                    report::format_cost(cost),
                    turns,
                    "",
                ));
            }
            Row::Task { record: r, .. } => {
                // A waiting task's prompt matters less than what it waits for; an attempt's
                // prompt is its group's.
                let prompt = match report::pending_line(r) {
                    Some(what) => format!("asks for {what}"),
                    None if r.attempt.is_some() => String::new(),
                    None => first_line_of(&r.prompt),
                };
                let status = format!("{:17}", r.status.as_str());
                let line = format!(
                    "{}  {}  {:>9}  {:>5}  {:>5}  {}",
                    s.name.apply_to(pad(row.label())),
                    report::status_style(s, r.status).apply_to(status),
                    report::format_cost(r.cost_usd),
                    r.turns,
                    r.files_changed.len(),
                    cut(&prompt),
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    ui.print(&out);
    Ok(exit_code::OK)
}

/// A line of the table: a task, or the heading of a group of attempts (listed right after it,
/// indented).
enum Row<'a> {
    Group {
        group: String,
        members: Vec<&'a TaskRecord>,
    },
    Task {
        record: &'a TaskRecord,
        archived: bool,
        in_group: bool,
    },
}

impl Row<'_> {
    fn label(&self) -> String {
        match self {
            Row::Group { group, .. } => group.clone(),
            Row::Task {
                record,
                archived,
                in_group,
            } => {
                let indent = if *in_group { "  " } else { "" };
                // An archived task's name now belongs to a newer task; the mark tells them apart.
                let mark = if *archived { " (archived)" } else { "" };
                format!("{indent}{}{mark}", record.name)
            }
        }
    }
}

/// The records in their order, except that the attempts of one `--attempts` run are listed
/// together, by number, under a heading where the first of them would be.
fn rows(records: &[(TaskRecord, bool)]) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    let mut grouped: Vec<&str> = Vec::new();
    for (record, archived) in records {
        let group = record
            .attempt
            .as_ref()
            .filter(|_| !archived)
            .map(|a| a.group.as_str());
        let Some(group) = group else {
            rows.push(Row::Task {
                record,
                archived: *archived,
                in_group: false,
            });
            continue;
        };
        if grouped.contains(&group) {
            continue;
        }
        grouped.push(group);
        let mut members: Vec<&TaskRecord> = records
            .iter()
            .filter(|(r, archived)| {
                !archived && r.attempt.as_ref().is_some_and(|a| a.group == group)
            })
            .map(|(r, _)| r)
            .collect();
        members.sort_by_key(|r| r.attempt.as_ref().map(|a| a.number));
        rows.push(Row::Group {
            group: group.to_owned(),
            members: members.clone(),
        });
        rows.extend(members.into_iter().map(|record| Row::Task {
            record,
            archived: false,
            in_group: true,
        }));
    }
    rows
}

fn first_line_of(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// A prompt cut to fit the table.
fn cut(prompt: &str) -> String {
    if prompt.chars().count() > 50 {
        format!("{}…", prompt.chars().take(49).collect::<String>())
    } else {
        prompt.to_owned()
    }
}
