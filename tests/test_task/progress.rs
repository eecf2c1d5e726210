//! What a foreground task shows at a terminal while it runs.

use serde_json::json;

use crate::common::TestEnv;
use crate::common::terminal::Terminal;

#[test]
fn tool_lines_at_a_terminal_carry_the_live_estimate_before_the_result() {
    let env = TestEnv::new();
    // Every API response of the fake reports this usage, so the first message already has a
    // price; claude's own figure comes only with the turn's result.
    env.script(json!({
        "usage": {"input_tokens": 20000, "output_tokens": 100},
        "turns": [{"steps": [{"write": {"path": "a.txt", "content": "a\n"}}]}],
    }));
    let Some(term) = Terminal::run(&env, "progress_cost", &["task", "write a", "-n", "live"])
    else {
        return;
    };
    let screen = term.exits_with(0);
    let line = screen
        .lines()
        .find(|l| l.contains("● Write a.txt"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(line.contains("[$"), "{line}");
    assert!(!line.contains("[$0.0000]"), "{line}");
}

#[test]
fn a_long_tool_call_shows_a_spinner_with_its_time_at_a_terminal_and_it_is_gone_at_the_end() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(json!([
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done; echo done > done.txt", gate.display())},
    ]));
    let Some(term) = Terminal::run(
        &env,
        "progress_spinner",
        &["task", "wait for it", "-n", "long"],
    ) else {
        return;
    };
    // The Bash call is under way: named, with the time it has run.
    let screen = term.wait_for("running Bash");
    let line = screen
        .lines()
        .find(|l| l.contains("running Bash"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(
        line.trim_end().ends_with('s'),
        "an elapsed time ends the line: {line}"
    );
    std::fs::write(&gate, "").unwrap();
    let screen = term.exits_with(0);
    assert!(!screen.contains("running Bash"), "{screen}");
    assert!(screen.contains("completed long"), "{screen}");
}
