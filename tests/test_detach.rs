//! `--detach`: tasks supervised in the background, followed with `wait`, `show` and `abort`,
//! and recovered with `continue` when their supervisor is killed.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestEnv;

const LIMIT: Duration = Duration::from_secs(60);

/// Steps that wait until `gate` exists, then write done.txt.
fn gated(gate: &Path) -> Value {
    json!([
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done; echo done > done.txt", gate.display())},
    ])
}

fn record(env: &TestEnv, name: &str) -> Value {
    let path = env.common_dir().join(format!("cms/tasks/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn status(env: &TestEnv, name: &str) -> String {
    let run = env.cms(&["show", name, "--json"]);
    run.success();
    run.json()["status"].as_str().unwrap().to_owned()
}

#[test]
fn a_detached_task_returns_at_once_and_runs_in_the_background_to_completion() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(gated(&gate));
    let run = env.cms(&["task", "-d", "x", "-n", "bg"]);
    run.success();
    assert_eq!(run.stdout.trim(), "bg");
    // It runs under a supervisor that is not the command that started it.
    assert_eq!(status(&env, "bg"), "running");
    let supervisor = record(&env, "bg")["supervisor"]["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{supervisor}")).exists());
    std::fs::write(&gate, "").unwrap();
    let waited = env.cms(&["wait", "bg"]);
    waited.success();
    assert_eq!(status(&env, "bg"), "completed");
    assert_eq!(env.git(&["show", "cms/bg:done.txt"]), "done");
    // Its progress and summary are kept in the store.
    let log = env.common_dir().join("cms/logs/bg.supervisor.log");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("completed"), "{log}");
}

#[test]
fn a_detached_task_can_be_aborted_from_anywhere() {
    let env = TestEnv::new();
    let gate = env.root.join("never");
    env.steps(gated(&gate));
    env.cms(&["task", "--detach", "x", "-n", "stuck"]).success();
    let run = env.cms(&["abort", "stuck"]);
    run.success();
    assert_eq!(status(&env, "stuck"), "aborted");
}

#[test]
fn a_killed_detached_supervisor_leaves_the_task_interrupted_and_continue_finishes_it() {
    let env = TestEnv::new();
    let gate = env.root.join("never");
    env.script(json!({"turns": [{"steps": gated(&gate)}, {"steps": [{"write": {"path": "b.txt", "content": "b\n"}}]}]}));
    env.cms(&["task", "-d", "x", "-n", "orphan"]).success();
    // Once the session is under way, kill its supervisor outright.
    let start = Instant::now();
    while record(&env, "orphan")["session_id"].is_null() {
        assert!(start.elapsed() < LIMIT, "the session never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = record(&env, "orphan")["supervisor"]["pid"]
        .as_u64()
        .unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(start.elapsed() < LIMIT, "the supervisor did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    let list = env.cms(&["list", "--json"]);
    list.success();
    assert_eq!(list.json()[0]["status"], "interrupted");
    env.script(json!({"resume_offset": 1, "turns": [{"steps": []}, {"steps": [{"write": {"path": "b.txt", "content": "b\n"}}]}]}));
    env.cms(&["continue", "-d", "orphan", "finish it"])
        .success();
    env.cms(&["wait", "orphan"]).success();
    assert_eq!(env.git(&["show", "cms/orphan:b.txt"]), "b");
}

#[test]
fn a_detached_start_that_is_refused_makes_nothing() {
    let env = TestEnv::new();
    env.cms(&["task", "-d", "   "])
        .code(2)
        .one_line_error_with_hint("prompt is empty");
    assert_eq!(env.branches(), ["main"]);
}

#[test]
fn list_shows_a_running_tasks_live_turns_and_cost() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done", gate.display())},
    ]));
    env.cms(&["task", "-d", "x", "-n", "live"]).success();
    // The Bash call is the second paid message: the list shows it while it runs.
    let start = Instant::now();
    let task = loop {
        let list = env.cms(&["list", "--json"]);
        list.success();
        let task = list.json()[0].clone();
        if task["turns"].as_u64().unwrap_or(0) >= 2 {
            break task;
        }
        assert!(start.elapsed() < LIMIT, "no live turns in {task:#}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(task["status"], "running");
    assert!(task["cost_usd"].as_f64().unwrap() > 0.0, "{task:#}");
    std::fs::write(&gate, "").unwrap();
    env.cms(&["wait", "live"]).success();
    // The final figures are claude's own, and nothing was taken for tampering.
    let done = env.cms(&["show", "live", "--json"]).json();
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["safety"]["violations"], json!([]));
}
