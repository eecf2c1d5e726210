//! Running a started task from the command line: in the foreground (`cms task`, `cms
//! continue`, the background supervisor) with live progress on stderr and its outcome printed
//! at the end, or handed to a background supervisor (`--detach`). The engine is
//! `task::run_foreground` and `task::hand_off`; this file only shows what they report.

use std::io::IsTerminal;

use super::CommandContext;
use crate::error::{CommandError, exit_code};
use crate::report;
use crate::session::protocol::Event;
use crate::session::{Ledger, Timeouts};
use crate::store::{PendingPermission, TaskRecord};
use crate::task::{self, Foreground, Observer, RunOptions, Started, Stopping};
use crate::transcript::{Entry, Reader};
use crate::ui::Ui;
use crate::vocab::Status;
use crate::workspace::Workspace;

/// Runs a started task's session in the foreground (progress on stderr, Ctrl-C stops it) and
/// prints its outcome; the exit code says how it ended. Shared by `task`, `continue` and the
/// background supervisor (`verb` names which in the first line).
pub(super) fn supervise(
    ctx: &CommandContext,
    ws: &Workspace,
    started: Started,
    timeouts: Timeouts,
    verb: &str,
    ask: bool,
) -> Result<u8, CommandError> {
    let ui = &ctx.ui;
    let notify = started.settings.config.notify.clone();
    if let Some(warning) = &started.sandbox_warning {
        ui.warn(warning);
    }
    super::trust::warn_untrusted_in(ctx, &started.settings.config);
    announce(ui, verb, &started);
    let worktree = started.record.worktree.clone();
    let ask = ask.then(|| super::answer::answers(ui, notify.clone()));
    let mut progress = Progress::new(ui, &worktree);
    let record = task::run_foreground(
        ws,
        started,
        Foreground::Headless(RunOptions { timeouts, ask }),
        &mut progress,
    )?;
    // The spinner goes before the outcome is printed.
    drop(progress);
    Ok(report_outcome(ctx, notify.as_deref(), &record))
}

/// The first line of a foreground run: what runs, on which branch, where.
pub(super) fn announce(ui: &Ui, verb: &str, started: &Started) {
    let s = &ui.err;
    ui.status(&format!(
        "{} {} on {} in {}",
        s.bold.apply_to(verb),
        s.name.apply_to(&started.record.name),
        started.record.branch,
        s.dim.apply_to(started.record.worktree.display())
    ));
}

/// Hands `started` to a new background supervisor and reports the task as started.
pub(super) fn launch(
    ctx: &CommandContext,
    ws: &Workspace,
    started: Started,
    ask: bool,
) -> Result<u8, CommandError> {
    let name = started.record.name.clone();
    if let Some(warning) = &started.sandbox_warning {
        ctx.ui.warn(warning);
    }
    super::trust::warn_untrusted_in(ctx, &started.settings.config);
    task::hand_off(ws, started, ask)?;
    let record = ws.task(&name)?;
    if ctx.ui.json {
        ctx.ui.print_json(&report::task_json(&record));
    } else {
        ctx.ui.println(name.as_str());
        ctx.ui.status(&format!(
            "running in the background; `cms wait {name}` waits for it, `cms show {name}` \
             shows it, `cms abort {name}` stops it"
        ));
    }
    Ok(exit_code::OK)
}

/// Notifies (`notify`: `[notify] command` as the task's start read it), prints the task's final
/// record (JSON or a summary), and returns the exit code its status gives. Shared by `task`,
/// `continue` and `attach`.
pub(super) fn report_outcome(
    ctx: &CommandContext,
    notify: Option<&[String]>,
    record: &TaskRecord,
) -> u8 {
    let ui = &ctx.ui;
    let record = record.clone();
    let json = report::task_json(&record);
    if let Some(command) = notify
        && let Err(why) = task::notify(command, &record, &json)
    {
        ui.warn(&format!("notify.command: {why}"));
    }
    if ui.json {
        ui.print_json(&json);
    } else {
        ui.println(&report::summary(&ui.out, &record));
    }
    match record.status {
        Status::Completed => exit_code::OK,
        Status::Aborted => exit_code::INTERRUPTED,
        _ => exit_code::TASK_NOT_COMPLETED,
    }
}

/// Grace periods can be shortened through the environment (documented for tests and CI).
pub(super) fn timeouts_from_env() -> Result<Timeouts, CommandError> {
    Ok(crate::config::env_timeouts()?)
}

/// Renders events as compact progress lines on stderr.
struct Progress<'a> {
    ui: &'a Ui,
    reader: Reader,
    warned_malformed: bool,
    /// At a terminal, tool lines carry the running cost (the live estimate `list` shows, since
    /// claude's own figure comes only with a turn's result); in logs one line per event is
    /// enough.
    show_ledger: bool,
    /// At a terminal, between two events: a spinner with the time since the last one, so a
    /// long tool call or a long think still shows life. Cleared before any line is printed.
    spinner: Option<indicatif::ProgressBar>,
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.clear_spinner();
    }
}

impl<'a> Progress<'a> {
    fn clear_spinner(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }

    /// Shows `what` is under way, with a spinner and the time since it began.
    fn spin(&mut self, what: String) {
        if !self.show_ledger {
            return;
        }
        let spinner = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("    {spinner} {msg} {elapsed}")
        {
            spinner.set_style(style);
        }
        spinner.set_message(what);
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        self.spinner = Some(spinner);
    }

    fn new(ui: &'a Ui, worktree: &'a std::path::Path) -> Progress<'a> {
        Progress {
            ui,
            reader: Reader::new(worktree),
            warned_malformed: false,
            show_ledger: std::io::stderr().is_terminal(),
            spinner: None,
        }
    }

    fn line(&self, marker: &str, text: &str, ledger: &Ledger) {
        let s = &self.ui.err;
        if self.show_ledger {
            self.ui.status(&format!(
                "  {} {text} {}",
                s.dim.apply_to(marker),
                s.dim
                    .apply_to(format!("[{}]", report::format_cost(ledger.live_cost_usd())))
            ));
        } else {
            self.ui
                .status(&format!("  {} {text}", s.dim.apply_to(marker)));
        }
    }
}

impl Observer for Progress<'_> {
    fn asks(&mut self, record: &TaskRecord, pending: &PendingPermission) {
        self.clear_spinner();
        super::answer::show_prompt(self.ui, record, pending);
    }

    fn stopping(&mut self, how: Stopping) {
        self.clear_spinner();
        self.ui.status(match how {
            Stopping::Early => "stopping the session…",
            Stopping::Graceful => "stopping the session (again to kill it)…",
            Stopping::Kill => "killing the session…",
        });
    }

    fn event(&mut self, event: &Event, ledger: &Ledger) {
        self.clear_spinner();
        let s = &self.ui.err;
        if let Event::Malformed(_) = event {
            if !self.warned_malformed {
                self.warned_malformed = true;
                self.ui.warn(
                    "claude printed a line that is not stream-json; it is kept in the transcript",
                );
            }
            return;
        }
        // The live view shows what claude does and what failed; `cms logs` shows the rest.
        let mut under_way = None;
        for entry in self.reader.entries(event) {
            under_way = Some(match &entry {
                Entry::ToolCall { tool, .. } => format!("running {tool}"),
                Entry::Result { .. } => String::new(),
                _ => "claude is working".to_owned(),
            });
            match &entry {
                Entry::Session { .. } => self.ui.status(&format!(
                    "  {} {}",
                    s.dim.apply_to(entry.marker()),
                    entry.line()
                )),
                Entry::ApiRetry { .. }
                | Entry::ToolCall { .. }
                | Entry::ToolResult { is_error: true, .. } => {
                    self.line(entry.marker(), &entry.line(), ledger);
                }
                _ => {}
            }
        }
        if let Some(what) = under_way.filter(|w| !w.is_empty()) {
            self.spin(what);
        }
    }
}
