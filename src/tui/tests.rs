//! The dashboard without a terminal: what each key does to the state, and how the screen
//! looks (ratatui's `TestBackend`, snapshots by insta) for a store with a task in every status.

use std::time::{Duration, SystemTime};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;

use super::app::{Action, App, Filter, InputFor, Mode};
use super::log::printable;
use super::ui;
use crate::store::{TaskName, TaskRecord};
use crate::vocab::Status;

/// 2026-03-01T12:00:00Z, the clock every test reads.
fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-03-01T12:00:00Z").unwrap()
}

fn name(text: &str) -> TaskName {
    TaskName::parse(text).unwrap()
}

/// A task as cms records it, `minutes` old, with `turns` and `cost` used of 10 turns and $1.
fn record(task: &str, status: Status, turns: u32, cost: f64, minutes: u64) -> TaskRecord {
    let created = humantime::format_rfc3339(now() - Duration::from_secs(minutes * 60));
    serde_json::from_value(json!({
        "version": 2,
        "name": task,
        "status": status,
        "prompt": format!("do the {task} thing\nwith a second line"),
        "branch": format!("cms/{task}"),
        "worktree": format!("/w/{task}"),
        "base": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "base_branch": "main",
        "session_id": "s-1",
        "model": null,
        "preset": "edit",
        "cost_usd": cost,
        "turns": turns,
        "duration_ms": minutes * 60_000 / 2,
        "response": null,
        "tools_used": [],
        "files_changed": [
            {"path": "src/lib.rs", "status": "modified", "additions": 3, "deletions": 1},
            {"path": "README.md", "status": "added", "additions": 10, "deletions": 0}
        ],
        "permission_denials": [],
        "safety": {
            "limits": {"max_cost_usd": 1.0, "max_turns": 10, "max_duration_ms": 1_800_000},
            "violations": []
        },
        "error": null,
        "merge": null,
        "supervisor": null,
        "created_at": created.to_string(),
        "updated_at": created.to_string(),
    }))
    .unwrap()
}

/// A task waiting on a Bash call.
fn waiting(task: &str) -> TaskRecord {
    let mut r = record(task, Status::Waiting, 2, 0.12, 3);
    r.pending = serde_json::from_value(json!({
        "request_id": "req-1",
        "tool_name": "Bash",
        "input": {"command": "npm test"},
        "description": null,
        "tool_use_id": "tu-1",
        "blocked_path": null,
        "since": "2026-03-01T11:59:00Z",
    }))
    .unwrap();
    r
}

/// One task in every status the list distinguishes.
fn every_status() -> Vec<TaskRecord> {
    let mut failed = record("broken-build", Status::Failed, 4, 0.31, 50);
    failed.error = Some("claude exited with status 1".into());
    vec![
        record("add-login", Status::Running, 3, 0.25, 5),
        waiting("run-tests"),
        record("ask-user", Status::NeedsInput, 6, 0.40, 40),
        record("fix-typo", Status::Completed, 2, 0.05, 90),
        failed,
        record("big-refactor", Status::CostExceeded, 9, 1.02, 120),
        record("touch-env", Status::ProtectedPath, 1, 0.02, 150),
        record("killed", Status::Interrupted, 5, 0.33, 200),
        record("merged-one", Status::Merged, 2, 0.07, 300),
    ]
}

fn app_with(tasks: Vec<TaskRecord>) -> App {
    let mut app = App::new("demo".into(), now());
    app.set_tasks(tasks);
    app
}

fn press(app: &mut App, code: KeyCode) -> Option<Action> {
    app.key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(press(app, KeyCode::Char(c)), None);
    }
}

fn screen(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| ui::draw(frame, app)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buffer[(x, y)].symbol());
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[test]
fn waiting_tasks_are_listed_first_and_selected_first() {
    let app = app_with(every_status());
    let names: Vec<&str> = app.visible().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names[0], "run-tests");
    assert_eq!(app.selected, Some(name("run-tests")));
    // Merged tasks are history, hidden as `cms list` hides them.
    assert!(!names.contains(&"merged-one"));
}

#[test]
fn running_tasks_come_after_waiting_ones_and_before_the_rest() {
    let mut app = app_with(every_status());
    app.tasks
        .push(record("late-run", Status::Running, 1, 0.01, 1));
    app.tasks.push(waiting("second-wait"));
    app.filter = Filter::All;
    let names: Vec<&str> = app.visible().iter().map(|r| r.name.as_str()).collect();
    // Each group oldest first: `waiting` is 3 minutes old everywhere.
    assert_eq!(
        names[..4],
        ["run-tests", "second-wait", "add-login", "late-run"]
    );
    let rest = &app.visible()[4..];
    assert!(rest.iter().all(|r| !r.status.is_live()));
    assert!(rest.windows(2).all(|w| w[0].created_at <= w[1].created_at));
}

#[test]
fn the_header_stays_in_place_when_the_filter_matches_nothing() {
    for width in [80, 160] {
        let header = |app: &App| {
            let text = screen(app, width, 24);
            text.lines()
                .find(|l| l.contains("STATUS"))
                .unwrap()
                .to_owned()
        };
        let mut app = app_with(vec![record("fix-typo", Status::Completed, 1, 0.1, 1)]);
        let with_rows = header(&app);
        app.filter = Filter::Waiting;
        app.set_tasks(app.tasks.clone());
        assert!(app.visible().is_empty());
        assert_eq!(header(&app), with_rows, "{width} columns");
    }
}

#[test]
fn the_log_tail_and_the_prompt_are_drawn_as_the_terminal_shows_them() {
    assert_eq!(printable("a\tb"), "a       b");
    assert_eq!(printable("✓ Read:\t1\tfixed"), "✓ Read: 1       fixed");
    assert_eq!(printable("12345678\tx"), "12345678        x");
    // Wide characters take two columns.
    assert_eq!(printable("日本\tx"), "日本    x");
    assert_eq!(printable("red \u{1b}[31mtext\r\u{7}"), "red [31mtext");
    assert_eq!(printable("two\nlines"), "two lines");

    let mut app = app_with(vec![record("fix-typo", Status::Completed, 1, 0.1, 1)]);
    app.tasks[0].prompt = "fix\tthe tabs".into();
    app.log_tail = vec!["  ✓ Read: 1\tfixed\t[package]".into()];
    let text = screen(&app, 160, 24);
    assert!(text.contains("fix     the tabs"), "{text}");
    assert!(!text.contains('\t'), "{text}");
}

#[test]
fn the_selection_follows_its_task_when_the_store_changes() {
    let mut app = app_with(every_status());
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    let chosen = app.selected.clone().unwrap();
    let mut tasks = every_status();
    tasks.push(waiting("another-wait"));
    app.set_tasks(tasks);
    assert_eq!(app.selected, Some(chosen));
}

#[test]
fn allow_always_and_deny_answer_the_prompt_on_screen_and_only_that_one() {
    let mut app = app_with(every_status());
    for (key, allow, always) in [('a', true, false), ('A', true, true), ('d', false, false)] {
        let mut action = press(&mut app, KeyCode::Char(key));
        if key == 'd' {
            // Deny asks for a reason first; Enter alone gives none.
            assert_eq!(action, None);
            action = press(&mut app, KeyCode::Enter);
        }
        assert_eq!(
            action,
            Some(Action::Answer {
                name: name("run-tests"),
                request_id: "req-1".into(),
                allow,
                always,
                message: None,
            })
        );
    }
}

#[test]
fn deny_sends_the_reason_typed_in_place_and_escape_answers_nothing() {
    let mut app = app_with(every_status());
    assert_eq!(press(&mut app, KeyCode::Char('d')), None);
    assert_eq!(
        app.mode,
        Mode::Input {
            purpose: InputFor::Deny {
                name: name("run-tests"),
                request_id: "req-1".into()
            },
            text: String::new()
        }
    );
    // The reason's letters are text, not keys: no `n`ew task, no `q`uit.
    type_text(&mut app, "no network, use the mock");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Action::Answer {
            name: name("run-tests"),
            request_id: "req-1".into(),
            allow: false,
            always: false,
            message: Some("no network, use the mock".into()),
        })
    );
    assert_eq!(app.mode, Mode::Browse);
    press(&mut app, KeyCode::Char('d'));
    type_text(&mut app, "never mind");
    assert_eq!(press(&mut app, KeyCode::Esc), None);
    assert_eq!(app.mode, Mode::Browse);
    assert!(screen(&app, 80, 24).contains("d deny"));
}

#[test]
fn deny_shows_what_the_reason_is_for() {
    let mut app = app_with(every_status());
    press(&mut app, KeyCode::Char('d'));
    type_text(&mut app, "why");
    let text = screen(&app, 80, 24);
    assert!(
        text.contains("reason for task 'run-tests' (Enter for none): why"),
        "{text}"
    );
}

#[test]
fn answering_a_task_that_is_not_waiting_does_nothing_and_says_why() {
    let mut app = app_with(vec![record("fix-typo", Status::Completed, 1, 0.1, 1)]);
    assert_eq!(press(&mut app, KeyCode::Char('a')), None);
    let message = app.message.clone().unwrap();
    assert!(message.error);
    assert_eq!(
        message.lines,
        ["task 'fix-typo' is completed, not waiting on a permission prompt"]
    );
}

#[test]
fn merge_discard_and_abort_happen_only_after_a_yes() {
    for (key, action) in [
        ('m', Action::Merge(name("run-tests"))),
        ('D', Action::Discard(name("run-tests"))),
        ('x', Action::Abort(name("run-tests"))),
    ] {
        let mut app = app_with(every_status());
        assert_eq!(press(&mut app, KeyCode::Char(key)), None);
        assert!(matches!(app.mode, Mode::Confirm { .. }), "{key}");
        // Keys other than an answer leave the question up.
        assert_eq!(press(&mut app, KeyCode::Char('m')), None);
        assert_eq!(press(&mut app, KeyCode::Char('y')), Some(action.clone()));
        assert_eq!(app.mode, Mode::Browse);

        let mut app = app_with(every_status());
        press(&mut app, KeyCode::Char(key));
        assert_eq!(press(&mut app, KeyCode::Char('n')), None);
        assert_eq!(app.mode, Mode::Browse);
    }
}

#[test]
fn continue_sends_the_message_typed_in_place() {
    let mut app = app_with(every_status());
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(
        app.mode,
        Mode::Input {
            purpose: InputFor::Continue(name("run-tests")),
            text: String::new()
        }
    );
    // Letters that are keys elsewhere are text here.
    type_text(&mut app, "fix it qx");
    press(&mut app, KeyCode::Backspace);
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Action::Continue {
            name: name("run-tests"),
            message: "fix it q".into()
        })
    );
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn a_new_task_needs_a_prompt_and_a_yes_and_escape_cancels_it() {
    let mut app = app_with(Vec::new());
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(press(&mut app, KeyCode::Enter), None);
    assert!(
        matches!(app.mode, Mode::Input { .. }),
        "empty prompt kept the field open"
    );
    type_text(&mut app, "add a readme");
    assert_eq!(press(&mut app, KeyCode::Enter), None);
    assert_eq!(
        app.mode,
        Mode::Confirm {
            question: "Start a task with this prompt?".into(),
            action: Action::NewTask {
                prompt: "add a readme".into()
            }
        }
    );
    assert!(screen(&app, 80, 24).contains("Start a task with this prompt?"));
    // Keys other than an answer leave the question up.
    assert_eq!(press(&mut app, KeyCode::Char('m')), None);
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Action::NewTask {
            prompt: "add a readme".into()
        })
    );
    assert_eq!(app.mode, Mode::Browse);
    // A no starts nothing.
    press(&mut app, KeyCode::Char('n'));
    type_text(&mut app, "add a readme");
    press(&mut app, KeyCode::Enter);
    assert_eq!(press(&mut app, KeyCode::Char('n')), None);
    assert_eq!(app.mode, Mode::Browse);
    press(&mut app, KeyCode::Char('n'));
    type_text(&mut app, "never mind");
    assert_eq!(press(&mut app, KeyCode::Esc), None);
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn the_filter_cycles_through_statuses_and_the_selection_stays_on_a_shown_task() {
    let mut app = app_with(every_status());
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(app.filter, Filter::Waiting);
    let names: Vec<&str> = app.visible().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["run-tests"]);
    assert_eq!(app.selected, Some(name("run-tests")));
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(app.filter, Filter::Live);
    assert_eq!(app.visible().len(), 2);
    press(&mut app, KeyCode::Char('f'));
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(app.filter, Filter::All);
    assert!(
        app.visible()
            .iter()
            .any(|r| r.name.as_str() == "merged-one")
    );
}

#[test]
fn quit_comes_from_q_escape_and_ctrl_c_even_while_typing() {
    let mut app = app_with(every_status());
    assert_eq!(press(&mut app, KeyCode::Char('q')), Some(Action::Quit));
    assert_eq!(press(&mut app, KeyCode::Esc), Some(Action::Quit));
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(
        press(&mut app, KeyCode::Char('q')),
        None,
        "q is text while typing"
    );
    assert_eq!(
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Action::Quit)
    );
}

#[test]
fn the_diff_scrolls_within_its_lines_and_v_goes_back() {
    let mut app = app_with(every_status());
    assert_eq!(
        press(&mut app, KeyCode::Char('v')),
        Some(Action::Diff(name("run-tests")))
    );
    let lines: Vec<String> = (0..50).map(|i| format!("+line {i}")).collect();
    app.show_diff(name("run-tests"), lines);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert!(matches!(app.mode, Mode::Diff { scroll: 2, .. }));
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    assert!(matches!(app.mode, Mode::Diff { scroll: 0, .. }));
    press(&mut app, KeyCode::End);
    assert!(matches!(app.mode, Mode::Diff { scroll: 49, .. }));
    press(&mut app, KeyCode::PageDown);
    assert!(matches!(app.mode, Mode::Diff { scroll: 49, .. }));
    assert_eq!(press(&mut app, KeyCode::Char('v')), None);
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn attach_is_asked_for_the_selected_task() {
    let mut app = app_with(every_status());
    press(&mut app, KeyCode::Down);
    let second = app.selected.clone().unwrap();
    assert_eq!(
        press(&mut app, KeyCode::Char('t')),
        Some(Action::Attach(second))
    );
}

#[test]
fn todays_spend_counts_tasks_updated_today_and_the_sparkline_places_them_by_hour() {
    let tasks = every_status();
    // The oldest was updated five hours ago, at 07:00 the same day.
    let today = ui::spent_today(&tasks, now());
    let total: f64 = tasks.iter().map(|r| r.cost_usd).sum();
    assert!((today - total).abs() < 1e-9, "{today} vs {total}");
    let hours = ui::spend_by_hour(&tasks, now());
    assert_eq!(hours.len(), 24);
    // The newest hour holds the tasks younger than an hour.
    let recent: f64 = [0.25, 0.12, 0.40, 0.31].iter().sum();
    assert_eq!(hours[23], (recent * 10_000.0_f64).round() as u64);
}

fn snapshot_app() -> App {
    let mut app = app_with(every_status());
    app.log_tail = vec![
        "▸ session s-1 · default model".into(),
        "● Bash npm install".into(),
        "  ✓ Bash: added 120 packages".into(),
        "? asks for Bash npm test".into(),
    ];
    app
}

#[test]
fn the_dashboard_fits_80_by_24() {
    insta::assert_snapshot!(screen(&snapshot_app(), 80, 24));
}

#[test]
fn the_dashboard_uses_a_wide_terminal() {
    insta::assert_snapshot!(screen(&snapshot_app(), 160, 40));
}

#[test]
fn a_confirmation_and_a_refusal_show_at_the_bottom() {
    let mut app = snapshot_app();
    app.report(
        true,
        vec![
            "error: task 'run-tests' is waiting; it cannot be merged".into(),
            "hint: `cms abort run-tests` stops it".into(),
        ],
    );
    press(&mut app, KeyCode::Char('m'));
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn a_message_typed_in_place_shows_at_the_bottom() {
    let mut app = snapshot_app();
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('c'));
    type_text(&mut app, "now add tests");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn the_diff_view_fills_the_screen() {
    let mut app = snapshot_app();
    let diff = "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,2 +1,3 @@\n fn main() {\n-    old();\n+    new();\n+    more();\n }";
    app.show_diff(name("run-tests"), diff.lines().map(str::to_owned).collect());
    insta::assert_snapshot!(screen(&app, 80, 24));
}
