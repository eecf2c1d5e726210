//! Limits that stop a task and keep its work: cost, turns and time, where they come from, how
//! bad values are refused, and how a stopped task records what it paid.

use serde_json::{Value, json};

use crate::common::TestEnv;

/// The task ended `status`, its error saying `why`.
#[track_caller]
fn stopped(task: &Value, status: &str, why: &str) {
    assert_eq!(task["status"], status, "{task:#}");
    assert!(task["error"].as_str().unwrap().contains(why), "{task:#}");
}

#[test]
fn cost_limit_stops_the_task_keeps_its_worktree_and_commits_what_it_did() {
    let env = TestEnv::new();
    // Each API message of 100k input tokens costs $0.50 on opus.
    env.script(json!({
        "usage": {"input_tokens": 100000, "output_tokens": 100},
        "turns": [{"steps": [
            {"write": {"path": "one.txt", "content": "1\n"}},
            {"write": {"path": "two.txt", "content": "2\n"}},
            {"write": {"path": "three.txt", "content": "3\n"}},
            {"write": {"path": "four.txt", "content": "4\n"}},
            {"write": {"path": "five.txt", "content": "5\n"}},
        ], "result": "done"}]
    }));
    let task = env.task_ending(3, &["spend", "--name", "spend", "--max-cost", "1.2"]);
    stopped(&task, "cost_exceeded", "cost limit");
    assert!(task["cost_usd"].as_f64().unwrap() < 2.0, "{task:#}");
    assert_eq!(task["safety"]["limits"]["max_cost_usd"], 1.2);
    let worktree = std::path::Path::new(task["worktree"].as_str().unwrap());
    assert!(worktree.is_dir());
    assert!(!worktree.join("five.txt").exists());
    let files = env.tree_files("cms/spend");
    assert!(files.iter().any(|(p, _)| p == "one.txt"), "{files:?}");
}

#[test]
fn turn_limit_stops_the_task_before_it_pays_for_another_turn() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "one.txt", "content": "1\n"}},
        {"write": {"path": "two.txt", "content": "2\n"}},
        {"write": {"path": "three.txt", "content": "3\n"}},
        {"write": {"path": "four.txt", "content": "4\n"}},
    ]));
    let task = env.task_ending(3, &["work", "--name", "turns", "--max-turns", "2"]);
    stopped(&task, "turns_exceeded", "turn limit of 2");
    // Two API messages paid for (1000 in / 100 out each on opus), not a third.
    assert!(
        (task["cost_usd"].as_f64().unwrap() - 0.015).abs() < 1e-9,
        "{task:#}"
    );
    let worktree = std::path::Path::new(task["worktree"].as_str().unwrap());
    assert!(worktree.join("one.txt").exists());
    assert!(!worktree.join("four.txt").exists());
    assert!(
        env.tree_files("cms/turns")
            .iter()
            .any(|(p, _)| p == "one.txt")
    );
}

#[test]
fn duration_limit_stops_a_slow_task_and_keeps_its_work() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "early.txt", "content": "early\n"}},
        {"sleep_ms": 60000},
        {"write": {"path": "late.txt", "content": "late\n"}},
    ]));
    let task = env.task_ending(3, &["slow", "--name", "slow", "--max-duration", "1s"]);
    stopped(&task, "duration_exceeded", "time limit");
    assert_eq!(
        env.tree_files("cms/slow"),
        [
            ("README.md".to_owned(), "hello".to_owned()),
            ("early.txt".to_owned(), "early".to_owned())
        ]
    );
}

#[test]
fn limits_come_from_defaults_then_config_then_environment_then_flags() {
    let mut env = TestEnv::new();
    let task = env.task_ok(&["defaults", "--name", "defaults"]);
    assert_eq!(
        task["safety"]["limits"],
        json!({"max_cost_usd": 2.0, "max_turns": 50, "max_duration_ms": 300000})
    );
    env.write(
        ".cms.toml",
        "[limits]\nmax_cost = 0.75\nmax_turns = 9\nmax_duration = \"2m\"\n",
    );
    env.commit_all("limits");
    let task = env.task_ok(&["config", "--name", "config"]);
    assert_eq!(
        task["safety"]["limits"],
        json!({"max_cost_usd": 0.75, "max_turns": 9, "max_duration_ms": 120000})
    );
    env.set_env("CMS_MAX_TURNS", "8");
    let task = env.task_ok(&["env", "--name", "env", "--max-duration", "1h"]);
    assert_eq!(
        task["safety"]["limits"],
        json!({"max_cost_usd": 0.75, "max_turns": 8, "max_duration_ms": 3600000})
    );
    // claude gets what is left as its own backstop.
    let after = |flag: &str| env.last_claude_arg(flag).unwrap();
    assert_eq!(after("--max-turns"), "8");
    assert_eq!(after("--max-budget-usd"), "0.75");
    assert!(after("--settings").contains("pre-tool-use"));
}

#[test]
fn bad_limit_values_are_usage_errors() {
    let env = TestEnv::new();
    for args in [
        ["--max-cost", "free"],
        ["--max-turns", "0"],
        ["--max-duration", "soon"],
    ] {
        let mut full = vec!["task", "x"];
        full.extend_from_slice(&args);
        env.cms(&full).code(2);
    }
    env.write(".cms.toml", "[limits]\nmax_turns = 0\n");
    env.commit_all("bad limits");
    env.cms(&["task", "x"])
        .code(1)
        .one_line_error_with_hint("limits.max_turns");
    assert_eq!(env.branches(), ["main"]);
}

#[test]
fn the_cost_limit_message_shows_the_limit_as_given() {
    let env = TestEnv::new();
    // Each API message of 100k input tokens costs $0.50 on opus: the first crosses $0.5.
    env.script(json!({
        "usage": {"input_tokens": 100000, "output_tokens": 100},
        "turns": [{"steps": [
            {"write": {"path": "one.txt", "content": "1\n"}},
            {"write": {"path": "two.txt", "content": "2\n"}},
        ], "result": "done"}]
    }));
    let run = env.cms(&[
        "task",
        "--json",
        "spend",
        "-n",
        "spend",
        "--max-cost",
        "0.5",
    ]);
    let task = run.json();
    assert_eq!(task["status"], "cost_exceeded", "{task:#}");
    let error = task["error"].as_str().unwrap();
    assert!(error.ends_with(" of $0.5"), "{error}");
    let show = env.cms(&["show", "spend"]).stdout;
    assert!(show.contains("$0.5 · "), "{show}");
}

#[test]
fn turns_exceeded_records_the_turns_paid_not_claudes_num_turns() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "one.txt", "content": "1\n"}},
        {"write": {"path": "two.txt", "content": "2\n"}},
        {"write": {"path": "three.txt", "content": "3\n"}},
    ]));
    let run = env.cms(&["task", "--json", "work", "-n", "turns", "--max-turns", "2"]);
    let task = run.json();
    assert_eq!(task["status"], "turns_exceeded", "{task:#}");
    assert_eq!(task["turns"], 2, "{task:#}");
    // claude's own count includes tool turns.
    let log = std::fs::read_to_string(env.common_dir().join("cms/logs/turns.jsonl")).unwrap();
    let result: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|e| e["type"] == "result")
        .unwrap();
    assert!(result["num_turns"].as_u64().unwrap() > 2, "{result}");
}

#[test]
fn a_cost_limit_claude_cannot_take_is_refused_and_the_smallest_is_passed_whole() {
    let mut env = TestEnv::new();
    env.cms(&["task", "x", "--max-cost", "0.00001"])
        .code(2)
        .one_line_error_with_hint("the smallest cost limit is $0.0001");
    // claude starts with it; the first reply already crosses it.
    let run = env.cms(&["task", "--json", "x", "-n", "tiny", "--max-cost", "0.0001"]);
    assert_eq!(run.json()["status"], "cost_exceeded");
    let argv: Vec<String> = env.claude_invocations()[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let at = argv.iter().position(|a| a == "--max-budget-usd").unwrap();
    assert_eq!(argv[at + 1], "0.0001");
    env.set_env("CMS_MAX_COST", "0.00001");
    env.cms(&["task", "x"])
        .code(2)
        .one_line_error_with_hint("CMS_MAX_COST");
}
