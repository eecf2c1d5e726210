//! The dashboard's state machine: what is shown and selected, and what each key does, apart
//! from drawing and from the terminal, so it can be driven by tests.

use std::time::SystemTime;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::store::{TaskName, TaskRecord};
use crate::vocab::Status;

/// Which tasks the list shows; `f` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Everything not merged or discarded (as `cms list`).
    Open,
    /// Waiting on a permission answer.
    Waiting,
    /// Running or waiting.
    Live,
    /// Ended and not yet merged or discarded.
    Ended,
    /// Every task, merged and discarded included (as `cms list --all`).
    All,
}

impl Filter {
    pub fn label(self) -> &'static str {
        match self {
            Filter::Open => "open",
            Filter::Waiting => "waiting",
            Filter::Live => "live",
            Filter::Ended => "ended",
            Filter::All => "all",
        }
    }

    fn next(self) -> Filter {
        match self {
            Filter::Open => Filter::Waiting,
            Filter::Waiting => Filter::Live,
            Filter::Live => Filter::Ended,
            Filter::Ended => Filter::All,
            Filter::All => Filter::Open,
        }
    }

    fn admits(self, status: Status) -> bool {
        match self {
            Filter::Open => !status.is_closed(),
            Filter::Waiting => status == Status::Waiting,
            Filter::Live => status.is_live(),
            Filter::Ended => !status.is_live() && !status.is_closed(),
            Filter::All => true,
        }
    }
}

/// Something a key asks the dashboard to do to a task; run by the caller (`tui::run`) through
/// the same code as the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer the prompt `request_id` (only that one: a later prompt is never answered by a
    /// key pressed while looking at an earlier one).
    Answer {
        name: TaskName,
        request_id: String,
        allow: bool,
        always: bool,
        /// Why it was denied, told to the agent.
        message: Option<String>,
    },
    Abort(TaskName),
    Merge(TaskName),
    Discard(TaskName),
    Continue {
        name: TaskName,
        message: String,
    },
    NewTask {
        prompt: String,
    },
    Attach(TaskName),
    Diff(TaskName),
    Quit,
}

/// What a line of text typed in place is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFor {
    Continue(TaskName),
    NewTask,
    /// The reason for denying the prompt `request_id`, which may be left empty.
    Deny {
        name: TaskName,
        request_id: String,
    },
}

/// What the keys act on at the moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The list and the selected task's detail.
    Browse,
    /// A line typed in place at the bottom of the screen.
    Input { purpose: InputFor, text: String },
    /// A yes/no question before a step that cannot be taken back.
    Confirm { question: String, action: Action },
    /// The selected task's diff, full screen, scrolled by `scroll` lines.
    Diff {
        name: TaskName,
        lines: Vec<String>,
        scroll: usize,
    },
}

/// A line at the bottom of the screen saying how the last action went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub error: bool,
    pub lines: Vec<String>,
}

/// Everything the dashboard shows.
pub struct App {
    /// All tasks as last read from the store.
    pub tasks: Vec<TaskRecord>,
    pub filter: Filter,
    /// The selected task, by name so a refresh that reorders the list keeps it.
    pub selected: Option<TaskName>,
    pub mode: Mode,
    pub message: Option<Message>,
    /// The selected task's readable log, last lines last.
    pub log_tail: Vec<String>,
    /// The clock the elapsed times and the day's spend are measured against.
    pub now: SystemTime,
    /// What the title names: the repository.
    pub title: String,
}

impl App {
    pub fn new(title: String, now: SystemTime) -> App {
        App {
            tasks: Vec::new(),
            filter: Filter::Open,
            selected: None,
            mode: Mode::Browse,
            message: None,
            log_tail: Vec::new(),
            now,
            title,
        }
    }

    /// Replaces the tasks with a fresh read of the store, keeping the selection on the same
    /// task while it is shown.
    pub fn set_tasks(&mut self, tasks: Vec<TaskRecord>) {
        self.tasks = tasks;
        self.keep_selection();
    }

    /// The tasks the list shows, in its order: waiting tasks first (they need the user), then
    /// running ones (they move), then the rest; within each, by creation, oldest first, as
    /// `cms list`.
    pub fn visible(&self) -> Vec<&TaskRecord> {
        let mut shown: Vec<&TaskRecord> = self
            .tasks
            .iter()
            .filter(|r| self.filter.admits(r.status))
            .collect();
        shown.sort_by(|a, b| {
            let group = |r: &TaskRecord| match r.status {
                Status::Waiting => 0,
                Status::Running => 1,
                _ => 2,
            };
            (group(a), &a.created_at, &a.name).cmp(&(group(b), &b.created_at, &b.name))
        });
        shown
    }

    pub fn selected_record(&self) -> Option<&TaskRecord> {
        let name = self.selected.as_ref()?;
        self.visible().into_iter().find(|r| &r.name == name)
    }

    /// The index of the selected task in [`App::visible`].
    pub fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_ref()?;
        self.visible().iter().position(|r| &r.name == name)
    }

    fn keep_selection(&mut self) {
        if self.selected_index().is_none() {
            self.selected = self.visible().first().map(|r| r.name.clone());
        }
    }

    fn move_selection(&mut self, down: bool) {
        let names: Vec<TaskName> = self.visible().iter().map(|r| r.name.clone()).collect();
        if names.is_empty() {
            self.selected = None;
            return;
        }
        let at = self.selected_index();
        let next = match (at, down) {
            (None, _) => 0,
            (Some(i), true) => (i + 1).min(names.len() - 1),
            (Some(i), false) => i.saturating_sub(1),
        };
        self.selected = Some(names[next].clone());
    }

    /// Shows how an action went.
    pub fn report(&mut self, error: bool, lines: Vec<String>) {
        self.message = Some(Message { error, lines });
    }

    /// Shows a diff read for `name`, full screen.
    pub fn show_diff(&mut self, name: TaskName, lines: Vec<String>) {
        self.mode = Mode::Diff {
            name,
            lines,
            scroll: 0,
        };
    }

    /// Handles one key: changes what is shown, and returns what should be done, if anything.
    pub fn key(&mut self, key: KeyEvent) -> Option<Action> {
        // Ctrl-C quits from anywhere: the terminal is raw, so it arrives as a key, not SIGINT.
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        match std::mem::replace(&mut self.mode, Mode::Browse) {
            Mode::Browse => self.browse_key(key),
            Mode::Input { purpose, text } => self.input_key(key, purpose, text),
            Mode::Confirm { question, action } => match key.code {
                KeyCode::Char('y' | 'Y') => Some(action),
                KeyCode::Char('n' | 'N') | KeyCode::Esc => None,
                // Any other key leaves the question up: only an answer closes it.
                _ => {
                    self.mode = Mode::Confirm { question, action };
                    None
                }
            },
            Mode::Diff {
                name,
                lines,
                mut scroll,
            } => {
                let last = lines.len().saturating_sub(1);
                match key.code {
                    KeyCode::Esc | KeyCode::Char('q' | 'v') => return None,
                    KeyCode::Down | KeyCode::Char('j') => scroll = (scroll + 1).min(last),
                    KeyCode::Up | KeyCode::Char('k') => scroll = scroll.saturating_sub(1),
                    KeyCode::PageDown | KeyCode::Char(' ') => scroll = (scroll + 20).min(last),
                    KeyCode::PageUp => scroll = scroll.saturating_sub(20),
                    KeyCode::Home | KeyCode::Char('g') => scroll = 0,
                    KeyCode::End | KeyCode::Char('G') => scroll = last,
                    _ => {}
                }
                self.mode = Mode::Diff {
                    name,
                    lines,
                    scroll,
                };
                None
            }
        }
    }

    fn browse_key(&mut self, key: KeyEvent) -> Option<Action> {
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Some(Action::Quit),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(true),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(false),
            KeyCode::Char('f') => {
                self.filter = self.filter.next();
                self.keep_selection();
            }
            KeyCode::Char('n') => {
                self.mode = Mode::Input {
                    purpose: InputFor::NewTask,
                    text: String::new(),
                };
            }
            KeyCode::Char(c) => return self.task_key(c),
            _ => {}
        }
        None
    }

    /// Keys that act on the selected task.
    fn task_key(&mut self, c: char) -> Option<Action> {
        let record = self.selected_record()?;
        let name = record.name.clone();
        match c {
            'a' | 'A' | 'd' => {
                let Some(pending) = record
                    .pending
                    .as_ref()
                    .filter(|_| record.status == Status::Waiting)
                else {
                    let status = record.status;
                    self.report(
                        true,
                        vec![format!(
                            "task '{name}' is {status}, not waiting on a permission prompt"
                        )],
                    );
                    return None;
                };
                let request_id = pending.request_id.clone();
                if c == 'd' {
                    // A reason typed after the key must not be read as keys.
                    self.mode = Mode::Input {
                        purpose: InputFor::Deny { name, request_id },
                        text: String::new(),
                    };
                    return None;
                }
                Some(Action::Answer {
                    request_id,
                    name,
                    allow: true,
                    always: c == 'A',
                    message: None,
                })
            }
            'c' => {
                self.mode = Mode::Input {
                    purpose: InputFor::Continue(name),
                    text: String::new(),
                };
                None
            }
            'x' => self.confirm(format!("Abort task '{name}'?"), Action::Abort(name)),
            'm' => self.confirm(
                format!("Merge task '{name}' into {}?", base_label(record)),
                Action::Merge(name),
            ),
            'D' => {
                let files = record.files_changed.len();
                self.confirm(
                    format!(
                        "Discard task '{name}' (its worktree, branch and {files} changed file(s))?"
                    ),
                    Action::Discard(name),
                )
            }
            't' => Some(Action::Attach(name)),
            'v' => Some(Action::Diff(name)),
            _ => None,
        }
    }

    fn confirm(&mut self, question: String, action: Action) -> Option<Action> {
        self.mode = Mode::Confirm { question, action };
        None
    }

    fn input_key(&mut self, key: KeyEvent, purpose: InputFor, mut text: String) -> Option<Action> {
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Enter => {
                let line = text.trim().to_owned();
                if let InputFor::Deny { name, request_id } = purpose {
                    return Some(Action::Answer {
                        name,
                        request_id,
                        allow: false,
                        always: false,
                        message: Some(line).filter(|l| !l.is_empty()),
                    });
                }
                if line.is_empty() {
                    // An empty message or prompt would be refused anyway; keep the field open.
                    self.mode = Mode::Input { purpose, text };
                    return None;
                }
                return match purpose {
                    InputFor::Continue(name) => Some(Action::Continue {
                        name,
                        message: line,
                    }),
                    // A task costs money: asked once more, as merge, discard and abort are.
                    InputFor::NewTask => self.confirm(
                        "Start a task with this prompt?".to_owned(),
                        Action::NewTask { prompt: line },
                    ),
                    InputFor::Deny { .. } => None,
                };
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
        self.mode = Mode::Input { purpose, text };
        None
    }
}

/// The branch a merge would target, for the question asked before it.
fn base_label(record: &TaskRecord) -> String {
    record
        .base_branch
        .clone()
        .unwrap_or_else(|| "the current branch".to_owned())
}
