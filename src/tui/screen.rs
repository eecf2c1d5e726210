//! The dashboard at the terminal: entering and always leaving the alternate screen, and the
//! loop that polls the store and the keyboard a few times a second.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{EnterAlternateScreen, enable_raw_mode};

use super::actions::{Outcome, Runner};
use super::app::{Action, App};
use super::log::LogTail;
use super::ui;
use crate::platform::Signal;
use crate::platform::signals::{IgnoreInterrupts, set_flag_on};
use crate::platform::terminal::stdin_hung_up;
use crate::workspace::Workspace;

/// How often the store is read again: a few times a second is live enough, and reading a few
/// small JSON files that often costs next to nothing.
const POLL: Duration = Duration::from_millis(250);

/// Leaves the alternate screen and raw mode however the dashboard ends (an error, a return,
/// or a panic unwinding; ratatui's own panic hook covers a panic that aborts).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Set by SIGTERM or SIGHUP (`kill`, a closed terminal) or by the hangup watch; the loop then
/// ends as a quit does, so the terminal is restored.
static TERMINATED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// How the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The user quit (q, Esc or Ctrl-C).
    Quit,
    /// SIGTERM or SIGHUP.
    Terminated,
}

/// Runs the dashboard until the user quits. `exe` is this cms, run for attach; `cwd` is where
/// the actions run, as their cms commands would.
pub fn run(ws: &Workspace, exe: &Path, cwd: &Path) -> io::Result<Ended> {
    set_flag_on(&[Signal::Term, Signal::Hup], &TERMINATED)?;
    let title = ws
        .main_checkout()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "repository".to_owned());
    let mut app = App::new(title, SystemTime::now());
    let mut tail = LogTail::default();
    let runner = Runner::new(cwd.to_owned());
    let mut terminal = ratatui::try_init()?;
    let _restore = Restore;
    watch_for_hangup();
    let mut dirty = true;
    let mut watch = Watch::default();
    let mut last_read: Option<Instant> = None;
    loop {
        if TERMINATED.load(Ordering::SeqCst) {
            return Ok(Ended::Terminated);
        }
        if last_read.is_none_or(|at| at.elapsed() >= POLL) {
            dirty |= refresh(ws, &mut app, &mut tail, &mut watch);
            last_read = Some(Instant::now());
        }
        while let Ok(outcome) = runner.done.try_recv() {
            match outcome {
                Outcome::Report { error, lines } => app.report(error, lines),
                Outcome::Diff { name, lines } => app.show_diff(name, lines),
            }
            // An action changes the store: show it now rather than at the next poll.
            refresh(ws, &mut app, &mut tail, &mut watch);
            dirty = true;
        }
        if dirty {
            terminal.draw(|frame| ui::draw(frame, &app))?;
            dirty = false;
        }
        if !event::poll(POLL)? {
            continue;
        }
        match event::read()? {
            Event::Key(key) if key.kind == KeyEventKind::Press => {
                dirty = true;
                // Read again before drawing: a new selection needs its own log at once.
                last_read = None;
                crate::fault::test_panic_point("top-key");
                match app.key(key) {
                    Some(Action::Quit) => return Ok(Ended::Quit),
                    Some(Action::Attach(name)) => {
                        attach(&mut terminal, ws, exe, cwd, &name, &mut app)?;
                    }
                    Some(action) => {
                        app.message = None;
                        runner.start(&ws.store, action);
                    }
                    None => {}
                }
            }
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    }
}

/// Ends the process soon after its terminal hangs up. crossterm (0.28 and 0.29) reads a dead
/// terminal's end of input as "no key yet" and retries at once inside `event::poll`, which
/// then never returns, so the loop cannot be relied on to notice: this thread first asks it
/// to end, and exits for it if it has not within a second. Nothing is left to restore on a
/// terminal that is gone; the actions under way finish first.
fn watch_for_hangup() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(POLL);
            // The kernel sends SIGHUP only to a terminal's session leader, so this is how the
            // others learn that it hung up.
            if stdin_hung_up() {
                TERMINATED.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(1));
                super::actions::finish_under_way();
                std::process::exit(i32::from(crate::error::exit_code::INTERRUPTED));
            }
        }
    });
}

/// A read of the store at least this often, whatever the records folder's time says (a
/// filesystem's clock may be too coarse to tell two writes apart).
const FULL_READ: Duration = Duration::from_secs(2);

/// When the records were last read, and the records folder's modification time then.
#[derive(Default)]
struct Watch {
    read_at: Option<Instant>,
    stamp: Option<SystemTime>,
}

/// Reads the tasks and the selected task's log again; whether anything shown changed.
fn refresh(ws: &Workspace, app: &mut App, tail: &mut LogTail, watch: &mut Watch) -> bool {
    let before_live = app.tasks.iter().any(|r| r.status.is_live());
    app.now = SystemTime::now();
    let mut changed = false;
    let stamp = std::fs::metadata(ws.store.tasks_dir())
        .and_then(|m| m.modified())
        .ok();
    // Idle, nothing is read but the folder's time: a live task is read every time (its
    // supervisor may have died, which only reading notices), the others when a record was
    // written (each save renames a file into the folder) or after FULL_READ.
    let due = before_live
        || stamp.is_none()
        || stamp != watch.stamp
        || watch.read_at.is_none_or(|at| at.elapsed() >= FULL_READ);
    // Reconciled as `cms list` does: a task whose supervisor died shows as interrupted.
    if due && let Ok((tasks, _unreadable)) = ws.tasks() {
        watch.stamp = stamp;
        watch.read_at = Some(Instant::now());
        if tasks != app.tasks {
            app.set_tasks(tasks);
            changed = true;
        }
    }
    changed |= tail.update(&ws.store, app.selected_record());
    if changed {
        app.log_tail = tail.lines.clone();
    }
    // A live task's elapsed time moves on its own.
    changed || before_live
}

/// Where the child `cms attach` also writes its `error:` and `hint:` lines, which it prints on
/// the screen the dashboard redraws. Only cms's own lines: its stderr is not captured, as
/// claude inherits it and an interactive claude keeps all three of its streams at the terminal.
pub const ATTACH_ERRORS_ENV: &str = "CMS_TOP_ATTACH_ERRORS";

/// Leaves the screen for `cms attach <name>` at the terminal, and comes back when it ends.
///
/// The one action still run as a child cms: an attached run in this process would install
/// its stop-signal handlers (tokio's, which stay registered for the life of the process) over
/// the dashboard's own SIGTERM and SIGHUP handling, and hand the terminal's foreground group
/// back and forth, while the action threads and the hangup watch go on; a child gets all of
/// that fresh and leaves nothing behind when it ends.
fn attach(
    terminal: &mut DefaultTerminal,
    ws: &Workspace,
    exe: &Path,
    cwd: &Path,
    name: &crate::store::TaskName,
    app: &mut App,
) -> io::Result<()> {
    // The child's error lines, which it prints on the screen the dashboard is about to redraw.
    let errors = tempfile::NamedTempFile::new()?;
    ratatui::try_restore()?;
    let status = {
        // The terminal's Ctrl-C goes to the whole foreground group, this process too; while
        // the session runs it is claude's (and `cms attach`'s) to handle, not a reason to quit.
        let _ignore = IgnoreInterrupts::start();
        std::process::Command::new(exe)
            .args(["attach", name.as_str()])
            .current_dir(cwd)
            .env(ATTACH_ERRORS_ENV, errors.path())
            .status()
    };
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen)?;
    terminal.clear()?;
    match status {
        Ok(status) if status.success() => app.report(false, vec![format!("attach {name} ended.")]),
        Ok(status) => {
            let mut lines = vec![format!("cms attach {name} ended with {status}")];
            let said = std::fs::read_to_string(errors.path()).unwrap_or_default();
            lines.extend(said.lines().map(str::to_owned));
            if lines.len() == 1 {
                // It ran the session, which ended short of completed: the record says how.
                if let Ok(record) = ws.task(name) {
                    let why = record.error.map(|e| format!(": {e}")).unwrap_or_default();
                    lines.push(format!("task '{name}' is {}{why}", record.status));
                }
            }
            app.report(true, lines);
        }
        Err(err) => app.report(
            true,
            vec![format!("error: could not run cms attach: {err}")],
        ),
    }
    Ok(())
}
