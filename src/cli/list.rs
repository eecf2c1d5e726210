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
///
/// AGE is the time since the task was created; BEHIND, how many commits its base branch
/// gained since the task forked from it (or was rebased onto it: `cms continue TASK
/// --rebase`), blank for closed tasks and tasks started from a detached HEAD. A last line
/// totals the cost of the tasks listed.
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
    let now = std::time::SystemTime::now();
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
            "{:name_width$}  {:17}  {:>4}  {:>9}  {:>5}  {:>5}  {:>6}  PROMPT",
            "NAME", "STATUS", "AGE", "COST", "TURNS", "FILES", "BEHIND"
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
                    "{}  {}  {:>4}  {:>9}  {:>5}  {:>5}  {:>6}  {prompt}\n",
                    s.name.apply_to(pad(group.clone())),
                    s.dim.apply_to(status),
                    age(&members[0].created_at, now),
                    report::format_cost(cost),
                    turns,
                    "",
                    "",
                ));
            }
            Row::Task {
                record: r,
                archived,
                ..
            } => {
                // A waiting task's prompt matters less than what it waits for; an attempt's
                // prompt is its group's.
                let prompt = match report::pending_line(r) {
                    Some(what) => format!("asks for {what}"),
                    None if r.attempt.is_some() => String::new(),
                    None => first_line_of(&r.prompt),
                };
                let status = format!("{:17}", r.status.as_str());
                let line = format!(
                    "{}  {}  {:>4}  {:>9}  {:>5}  {:>5}  {:>6}  {}",
                    s.name.apply_to(pad(row.label())),
                    report::status_style(s, r.status).apply_to(status),
                    age(&r.created_at, now),
                    report::format_cost(r.cost_usd),
                    r.turns,
                    r.files_changed.len(),
                    behind(&ws, r, *archived),
                    cut(&prompt),
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    let total: f64 = records.iter().map(|(r, _)| r.cost_usd).sum();
    let count = records.len();
    out.push_str(&format!(
        "{}\n",
        s.dim.apply_to(format!(
            "{:name_width$}  {:17}  {:>4}  {:>9}  ({count} task{})",
            "total",
            "",
            "",
            report::format_cost(total),
            if count == 1 { "" } else { "s" },
        ))
    ));
    ui.print(&out);
    Ok(exit_code::OK)
}

/// Time since `created_at`, short: `45s`, `3m`, `2h`, `5d`.
fn age(created_at: &str, now: std::time::SystemTime) -> String {
    let Some(secs) = humantime::parse_rfc3339(created_at)
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .map(|d| d.as_secs())
    else {
        return "-".to_owned();
    };
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// How many commits the task's base branch gained since the task forked (or was rebased onto
/// it), blank where that cannot be told: a closed or archived task (its branch may be gone or
/// the name reused), a task started from a detached HEAD, a branch deleted by hand.
fn behind(ws: &crate::workspace::Workspace, record: &TaskRecord, archived: bool) -> String {
    let Some(base) = record.base_branch.as_deref() else {
        return String::new();
    };
    if archived || record.status.is_closed() {
        return String::new();
    }
    ws.repo
        .commits_behind(&record.branch, base)
        .map(|n| n.to_string())
        .unwrap_or_default()
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
