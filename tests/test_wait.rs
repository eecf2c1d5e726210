//! `cms wait`: blocking until tasks started elsewhere end, with `task`'s exit codes.

use std::path::Path;

use serde_json::json;

use crate::common::{Background, LIMIT, TestEnv, eventually, wait_bounded};

/// Starts a task whose session waits until `gate` exists, and returns once its record does.
fn gated_task(env: &TestEnv, name: &str, gate: &Path) -> Background {
    env.steps(json!([
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done; echo done > done.txt", gate.display())},
    ]));
    let task = env.spawn_cms(&["task", "x", "-n", name]);
    eventually(&format!("task {name} to appear"), || {
        env.cms(&["show", name]).code == 0
    });
    task
}

#[test]
fn wait_returns_when_a_task_started_elsewhere_ends_and_exits_as_task_would() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    let task = gated_task(&env, "slow", &gate);
    let waiter = env.spawn_cms(&["wait", "slow", "--json"]);
    std::fs::write(&gate, "").unwrap();
    let waited = wait_bounded(waiter, LIMIT);
    waited.success();
    assert_eq!(waited.json()[0]["status"], "completed");
    wait_bounded(task, LIMIT).success();
    assert_eq!(env.git(&["show", "cms/slow:done.txt"]), "done");
}

#[test]
fn wait_exits_3_when_a_task_ended_other_than_completed() {
    let env = TestEnv::new();
    env.steps(json!([{"deny": {"tool": "Bash", "input": {"command": "make"}}}]));
    env.cms(&["task", "x", "-n", "denied"]).code(3);
    let run = env.cms(&["wait", "denied"]);
    run.code(3);
    assert!(run.stdout.contains("denied needs_input"), "{}", run.stdout);
}

#[test]
fn wait_times_out_with_exit_1_naming_the_tasks_still_running() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    let task = gated_task(&env, "blocked", &gate);
    env.cms(&["wait", "blocked", "--timeout", "200ms"])
        .code(1)
        .one_line_error_with_hint("timed out waiting for blocked");
    std::fs::write(&gate, "").unwrap();
    wait_bounded(task, LIMIT).success();
}

#[test]
fn wait_any_returns_at_the_first_task_that_ended() {
    let env = TestEnv::new();
    env.steps(json!([]));
    env.task_ok(&["x", "-n", "quick"]);
    let gate = env.root.join("gate");
    let task = gated_task(&env, "blocked", &gate);
    let run = env.cms(&["wait", "quick", "blocked", "--any", "--json"]);
    run.success();
    let tasks = run.json();
    assert_eq!(tasks[0]["status"], "completed");
    assert_eq!(tasks[1]["status"], "running");
    std::fs::write(&gate, "").unwrap();
    wait_bounded(task, LIMIT).success();
    // Unknown names are refused before any waiting.
    env.cms(&["wait", "quick", "nobody"]).code(1);
}
