//! Drawing the dashboard: the task list, the selected task's detail, the spend footer and the
//! help bar, in whatever size the terminal has (80×24 at least).

use std::time::SystemTime;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, HighlightSpacing, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};

use super::app::{App, InputFor, Mode};
use super::log::printable;
use crate::report;
use crate::store::TaskRecord;
use crate::vocab::Status;

/// The symbol and colour of a status, so it reads at a glance and without colour too.
pub fn status_look(status: Status) -> (&'static str, Color) {
    match status {
        Status::Running => ("▶", Color::Yellow),
        Status::Waiting => ("?", Color::Magenta),
        Status::NeedsInput => ("!", Color::LightYellow),
        Status::Completed => ("✓", Color::Green),
        Status::Failed => ("✗", Color::Red),
        Status::CostExceeded | Status::TurnsExceeded | Status::DurationExceeded => {
            ("⧗", Color::LightRed)
        }
        Status::ProtectedPath => ("⚠", Color::Red),
        Status::Interrupted => ("⏸", Color::LightRed),
        Status::Aborted => ("■", Color::LightRed),
        Status::Merged => ("⇥", Color::Cyan),
        Status::Discarded => ("·", Color::DarkGray),
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if let Mode::Diff {
        name,
        lines,
        scroll,
    } = &app.mode
    {
        let [body, help] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
        draw_diff(frame, body, name.as_str(), lines, *scroll);
        draw_help(frame, help, app);
        return;
    }
    // Each line as many rows as it wraps to, so cms's error and hint show whole (up to 4 rows).
    let message_height = app.message.as_ref().map_or(0, |m| {
        let rows: usize = m
            .lines
            .iter()
            .map(|l| {
                l.chars()
                    .count()
                    .div_ceil(area.width.max(1) as usize)
                    .max(1)
            })
            .sum();
        rows.min(4) as u16
    });
    // The top border, the header and a row per task, up to half the screen.
    let list_height = (app.visible().len() as u16 + 2).clamp(4, area.height / 2);
    let [title, list, detail, message, footer, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(list_height),
        Constraint::Min(5),
        Constraint::Length(message_height),
        Constraint::Length(1),
        Constraint::Length(help_height(app, area.width)),
    ])
    .areas(area);
    draw_title(frame, title, app);
    draw_list(frame, list, app);
    draw_detail(frame, detail, app);
    if let Some(m) = &app.message {
        let style = if m.error {
            Style::new().fg(Color::Red)
        } else {
            Style::new().fg(Color::Green)
        };
        let lines: Vec<Line> = m
            .lines
            .iter()
            .map(|l| Line::styled(printable(l), style))
            .collect();
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), message);
    }
    draw_footer(frame, footer, app);
    draw_help(frame, help, app);
}

fn draw_title(frame: &mut Frame, area: Rect, app: &App) {
    let waiting = app
        .tasks
        .iter()
        .filter(|r| r.status == Status::Waiting)
        .count();
    let mut spans = vec![
        Span::styled("cms top", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            " · {} · {} shown · filter {}",
            app.title,
            app.visible().len(),
            app.filter.label()
        )),
    ];
    if waiting > 0 {
        spans.push(Span::styled(
            format!(" · {waiting} waiting"),
            Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
        ));
    }
    frame.render_widget(Line::from(spans), area);
}

/// `▰▰▱▱ 3/10`: a bar of `width` cells and the figures, or the figure alone without a limit.
fn gauge(used: f64, limit: Option<f64>, width: usize, text: String) -> String {
    let Some(limit) = limit.filter(|l| *l > 0.0) else {
        return text;
    };
    let filled = ((used / limit).clamp(0.0, 1.0) * width as f64).round() as usize;
    format!(
        "{}{} {text}",
        "▰".repeat(filled),
        "▱".repeat(width - filled)
    )
}

fn elapsed(record: &TaskRecord, now: SystemTime) -> String {
    report::format_duration_ms(report::elapsed_ms(record, now))
}

fn draw_list(frame: &mut Frame, area: Rect, app: &App) {
    let wide = area.width >= 120;
    let bar = if wide { 10 } else { 4 };
    let rows: Vec<Row> = app
        .visible()
        .into_iter()
        .map(|r| {
            let (symbol, colour) = status_look(r.status);
            let limits = r.safety.limits;
            let turns = gauge(
                r.turns as f64,
                limits.map(|l| l.max_turns as f64),
                bar,
                match limits {
                    Some(l) => format!("{}/{}", r.turns, l.max_turns),
                    None => r.turns.to_string(),
                },
            );
            let cost = gauge(
                r.cost_usd,
                limits.map(|l| l.max_cost_usd),
                bar,
                format!("${:.2}", r.cost_usd),
            );
            let mut cells = vec![
                Cell::from(Span::styled(
                    format!("{symbol} {}", r.status.as_str()),
                    Style::new().fg(colour),
                )),
                Cell::from(r.name.as_str().to_owned()),
                Cell::from(turns),
                Cell::from(cost),
                Cell::from(elapsed(r, app.now)),
                Cell::from(r.files_changed.len().to_string()),
            ];
            if wide {
                // As `cms list`: what a waiting task asks for matters more than its prompt.
                let prompt = match report::pending_line(r) {
                    Some(what) => format!("asks for {what}"),
                    None => r.prompt.lines().next().unwrap_or_default().to_owned(),
                };
                cells.push(Cell::from(printable(&prompt)));
            }
            let mut row = Row::new(cells);
            if r.status == Status::Waiting {
                row = row.style(Style::new().add_modifier(Modifier::BOLD));
            }
            row
        })
        .collect();
    // Of every task, not only those shown, so a filter does not move the columns.
    let longest_name = app
        .tasks
        .iter()
        .map(|r| r.name.as_str().chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 32) as u16;
    let mut widths = vec![
        // `⚠ protected_path`, the longest status, whole.
        Constraint::Length(if wide { 18 } else { 16 }),
        if wide {
            Constraint::Length(longest_name)
        } else {
            Constraint::Min(10)
        },
        Constraint::Length(bar as u16 + 8),
        Constraint::Length(bar as u16 + 7),
        Constraint::Length(7),
        Constraint::Length(5),
    ];
    let mut titles = vec!["STATUS", "NAME", "TURNS", "COST", "TIME", "FILES"];
    if wide {
        widths.push(Constraint::Fill(1));
        titles.push("PROMPT");
    }
    let header = Row::new(titles).style(Style::new().add_modifier(Modifier::DIM));
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::new().borders(Borders::TOP).title(" tasks "))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("›")
        // The symbol's column even with no row selected (no row shown), so the header stays.
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(app.selected_index());
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App) {
    let block = Block::new().borders(Borders::TOP);
    let Some(r) = app.selected_record() else {
        let text = if app.tasks.is_empty() {
            "No tasks yet. Press n to start one."
        } else {
            "No task matches the filter; f changes it."
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    };
    let block = block.title(format!(" {} ", r.name));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let dim = Style::new().add_modifier(Modifier::DIM);
    let label = |text: &str| Span::styled(format!("{text:>7} "), dim);
    let mut lines: Vec<Line> = Vec::new();
    let (symbol, colour) = status_look(r.status);
    lines.push(Line::from(vec![
        label("status"),
        Span::styled(
            format!("{symbol} {}", r.status.as_str()),
            Style::new().fg(colour),
        ),
        Span::styled(format!("  {}", report::ledger_line_at(r, app.now)), dim),
    ]));
    let prompt = r.prompt.lines().next().unwrap_or_default();
    lines.push(Line::from(vec![
        label("prompt"),
        Span::raw(printable(prompt)),
    ]));
    if let Some(what) = report::pending_line(r) {
        lines.push(Line::from(vec![
            label("asks"),
            Span::styled(
                printable(&what),
                Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            ),
            Span::styled("  a allow · A always · d deny", dim),
        ]));
    }
    if let Some(error) = &r.error {
        lines.push(Line::from(vec![
            label("error"),
            Span::styled(printable(error), Style::new().fg(Color::Red)),
        ]));
    }
    let plain = report::Styles::plain();
    let files = report::file_lines(&plain, &r.files_changed);
    lines.push(Line::from(vec![
        label("files"),
        Span::raw(format!("{} changed", r.files_changed.len())),
    ]));
    // The diff stat gets at most half of what is left (one line at least): the log tail below
    // it is what moves.
    let room = ((inner.height as usize).saturating_sub(lines.len()) / 2).max(1);
    let shown = files.len().min(room);
    lines.extend(files[..shown].iter().map(|l| Line::raw(l.clone())));
    if shown < files.len() {
        lines.push(Line::styled(
            format!("  … {} more (v shows the diff)", files.len() - shown),
            dim,
        ));
    }
    let head = lines.len() as u16;
    let [top, log] = Layout::vertical([Constraint::Length(head), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), top);
    let tail_room = log.height as usize;
    let start = app.log_tail.len().saturating_sub(tail_room);
    let tail: Vec<Line> = app.log_tail[start..]
        .iter()
        .map(|l| Line::styled(printable(l), dim))
        .collect();
    frame.render_widget(Paragraph::new(tail), log);
}

/// The spend of the last 24 hours, an hour a bar, oldest first, by the hour each task was
/// last updated (the store keeps a task's total, not when each dollar was spent).
pub fn spend_by_hour(tasks: &[TaskRecord], now: SystemTime) -> Vec<u64> {
    let mut hours = vec![0u64; 24];
    for r in tasks {
        let Ok(at) = humantime::parse_rfc3339(&r.updated_at) else {
            continue;
        };
        let Ok(ago) = now.duration_since(at) else {
            continue;
        };
        let hour = (ago.as_secs() / 3600) as usize;
        if hour < 24 {
            // Hundredths of a cent, so small spends still show.
            hours[23 - hour] += (r.cost_usd * 10_000.0).round() as u64;
        }
    }
    hours
}

/// What was spent on tasks last updated today (UTC).
pub fn spent_today(tasks: &[TaskRecord], now: SystemTime) -> f64 {
    let today = &humantime::format_rfc3339(now).to_string()[..10];
    tasks
        .iter()
        .filter(|r| r.updated_at.starts_with(today))
        .map(|r| r.cost_usd)
        .sum()
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let text = format!(
        "today {}  24h ",
        report::format_cost(spent_today(&app.tasks, app.now))
    );
    let [label, spark] = Layout::horizontal([
        Constraint::Length(text.chars().count() as u16),
        Constraint::Max(24),
    ])
    .areas(area);
    frame.render_widget(Span::raw(text), label);
    let data = spend_by_hour(&app.tasks, app.now);
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .style(Style::new().fg(Color::Cyan)),
        spark,
    );
}

/// The keys of the current mode, each as `key what`.
fn help_items(app: &App) -> Vec<(&'static str, &'static str)> {
    match &app.mode {
        Mode::Browse => vec![
            ("↑↓", "select"),
            ("a", "allow"),
            ("A", "always"),
            ("d", "deny"),
            ("c", "continue"),
            ("x", "abort"),
            ("m", "merge"),
            ("D", "discard"),
            ("v", "diff"),
            ("t", "attach"),
            ("n", "new"),
            ("f", "filter"),
            ("q", "quit"),
        ],
        Mode::Input { .. } => vec![("Enter", "send"), ("Esc", "cancel")],
        Mode::Confirm { .. } => vec![("y", "yes"), ("n", "no")],
        Mode::Diff { .. } => vec![("↑↓", "scroll"), ("PgUp/PgDn", "page"), ("v", "back")],
    }
}

fn help_height(app: &App, width: u16) -> u16 {
    let len: usize = help_items(app)
        .iter()
        .map(|(k, w)| k.chars().count() + w.len() + 3)
        .sum();
    let extra = u16::from(matches!(
        app.mode,
        Mode::Input { .. } | Mode::Confirm { .. }
    ));
    (len as u16).div_ceil(width.max(1)).max(1) + extra
}

fn draw_help(frame: &mut Frame, area: Rect, app: &App) {
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    match &app.mode {
        Mode::Input { purpose, text } => {
            let what = match purpose {
                InputFor::Continue(name) => format!("message to {name}: "),
                InputFor::NewTask => "new task: ".to_owned(),
                InputFor::Deny { name, .. } => {
                    format!("reason for task '{name}' (Enter for none): ")
                }
            };
            lines.push(Line::from(vec![
                Span::styled(what, key),
                Span::raw(text.clone()),
                Span::styled("▏", key),
            ]));
        }
        Mode::Confirm { question, .. } => {
            lines.push(Line::styled(
                question.clone(),
                Style::new().add_modifier(Modifier::BOLD),
            ));
        }
        _ => {}
    }
    let mut spans = Vec::new();
    for (k, what) in help_items(app) {
        spans.push(Span::styled(k, key));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    lines.push(Line::from(spans));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn draw_diff(frame: &mut Frame, area: Rect, name: &str, lines: &[String], scroll: usize) {
    let block = Block::new().borders(Borders::TOP).title(format!(
        " diff {name} · line {} of {} ",
        scroll + 1,
        lines.len()
    ));
    let text: Vec<Line> = lines
        .iter()
        .skip(scroll)
        .take(area.height as usize)
        .map(|l| {
            let colour = match l.chars().next() {
                Some('+') if !l.starts_with("+++") => Color::Green,
                Some('-') if !l.starts_with("---") => Color::Red,
                Some('@') => Color::Cyan,
                _ => Color::Reset,
            };
            Line::styled(printable(l), Style::new().fg(colour))
        })
        .collect();
    frame.render_widget(Paragraph::new(text).block(block), area);
}
