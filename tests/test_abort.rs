//! `cms abort`: a running task stopped from another process ends `aborted`, its work
//! committed, and no process of its session left.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{LIMIT, TestEnv, eventually, running_with, wait_bounded};

/// Polls until `path` exists.
fn wait_for_file(path: &Path) {
    eventually(&format!("{} to appear", path.display()), || path.exists());
}

#[test]
fn abort_stops_a_running_task_commits_its_work_and_leaves_no_process() {
    let env = TestEnv::new();
    let started = env.root.join("started");
    // A marker no other test's sleep has, so the check below sees only this task's.
    let marker = format!("1000.{}", std::process::id());
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"bash": format!("touch {} && sleep {marker}", started.display())},
    ]));
    let supervisor = env.spawn_cms(&["task", "x", "-n", "runaway"]);
    wait_for_file(&started);
    assert!(!running_with(&format!("sleep {marker}")).is_empty());
    let run = env.cms(&["abort", "runaway", "--json"]);
    run.success();
    let tasks: Value = run.json();
    assert_eq!(tasks[0]["status"], "aborted", "{tasks:#}");
    // The supervisor ended as Ctrl-C ends it.
    wait_bounded(supervisor, LIMIT).code(130);
    assert!(running_with(&format!("sleep {marker}")).is_empty());
    assert_eq!(env.git(&["show", "cms/runaway:a.txt"]), "a");
}

#[test]
fn abort_of_a_task_that_is_not_running_is_refused_and_touches_nothing() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "done"]);
    let before = env.cms(&["show", "done", "--json"]).json();
    env.cms(&["abort", "done"])
        .code(1)
        .one_line_error_with_hint("is not running");
    assert_eq!(env.cms(&["show", "done", "--json"]).json(), before);
    env.cms(&["abort", "nobody"]).code(1);
    env.cms(&["abort"]).code(2);
}

use crate::common::fake_api::{CWD, Reply};
use crate::common::real::{RUN_LIMIT, real_scenario};

#[test]
fn real_claude_abort_while_a_bash_tool_sleeps_leaves_no_process_and_ends_aborted() {
    let Some((api, env)) = real_scenario("real_claude_abort_while_a_bash_tool_sleeps") else {
        return;
    };
    let marker = format!("1000.{}", std::process::id() % 100_000 + 7);
    api.route(
        "[abort]",
        vec![
            Reply::tool(
                "Bash",
                json!({"command": format!("touch {CWD}/started && sleep {marker}"),
                       "description": "Wait", "timeout": 600000}),
            ),
            Reply::text("done"),
        ],
    );
    let supervisor = env.spawn_cms(&["task", "[abort] wait", "-n", "stuck", "-p", "full"]);
    // The worktree is known once the record is; the tool's file says the sleep is running.
    let started = eventually("the task to start", || {
        let show = env.cms(&["show", "stuck", "--json"]);
        (show.code == 0).then(|| {
            let worktree = show.json()["worktree"].as_str().unwrap().to_owned();
            Path::new(&worktree).join("started")
        })
    });
    wait_for_file(&started);
    let run = env.cms(&["abort", "stuck", "--json"]);
    run.success();
    assert_eq!(run.json()[0]["status"], "aborted", "{}", run.stdout);
    wait_bounded(supervisor, RUN_LIMIT);
    assert!(running_with(&format!("sleep {marker}")).is_empty());
}
