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
