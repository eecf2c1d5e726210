//! `cms continue`: follow-ups in the task's own session and worktree, with its ledger and
//! limits carried over, and refusals that change nothing.

use serde_json::{Value, json};

use crate::common::TestEnv;

/// A script whose turn 0 is the task and turn 1 the follow-up; `resume_offset` points the
/// follow-up's process (its first message) at turn 1, as the real CLI's resumed session
/// would go on.
fn two_turns(env: &TestEnv, first: Value, second: Value, resume_offset: u32) {
    env.script(json!({
        "resume_offset": resume_offset,
        "turns": [{"steps": first}, {"steps": second}],
    }));
}

fn show(env: &TestEnv, name: &str) -> Value {
    let run = env.cms(&["show", name, "--json"]);
    run.success();
    run.json()
}

#[test]
fn continue_resumes_the_same_session_in_its_worktree_and_sums_cost_and_turns() {
    let env = TestEnv::new();
    let first = json!([{"write": {"path": "a.txt", "content": "a\n"}}]);
    let second = json!([{"write": {"path": "b.txt", "content": "b\n"}}]);
    two_turns(&env, first.clone(), second.clone(), 0);
    let task = env.task_ok(&["write a", "-n", "followed"]);
    let session = task["session_id"].as_str().unwrap().to_owned();
    two_turns(&env, first, second, 1);
    let run = env.cms(&["continue", "followed", "now write b", "--json"]);
    run.success();
    let after = run.json();
    assert_eq!(after["status"], "completed", "{after:#}");
    // The same conversation, resumed where it ran.
    assert_eq!(
        env.last_claude_arg("--resume").as_deref(),
        Some(session.as_str())
    );
    let cwd = env.claude_invocations().last().unwrap()["cwd"].clone();
    assert_eq!(cwd, task["worktree"]);
    assert_eq!(after["session_id"], session.as_str());
    // The ledger adds up across both sessions.
    let cost = |t: &Value| t["cost_usd"].as_f64().unwrap();
    assert!(cost(&after) > cost(&task) * 1.9, "{after:#}");
    assert_eq!(
        after["turns"].as_u64().unwrap(),
        task["turns"].as_u64().unwrap() * 2
    );
    // Both sessions' work is on the branch, one commit each, the follow-up's named after it.
    assert_eq!(env.git(&["show", "cms/followed:a.txt"]), "a");
    assert_eq!(env.git(&["show", "cms/followed:b.txt"]), "b");
    assert_eq!(
        env.git(&["log", "-1", "--format=%s", "cms/followed"]),
        "now write b"
    );
    assert_eq!(after["files_changed"].as_array().unwrap().len(), 2);
}

#[test]
fn continue_allow_grants_a_denied_tool_for_this_and_later_sessions() {
    let env = TestEnv::new();
    two_turns(
        &env,
        json!([{"deny": {"tool": "Bash", "input": {"command": "npm test"}}}]),
        json!([{"bash": "echo ran > ran.txt"}]),
        0,
    );
    let run = env.cms(&["task", "run the tests", "-n", "tests", "-p", "read-only"]);
    run.code(3);
    // The summary says how to go on.
    assert!(
        run.stdout
            .contains("cms continue tests \"<MESSAGE>\" --allow Bash"),
        "{}",
        run.stdout
    );
    let task = show(&env, "tests");
    assert_eq!(task["status"], "needs_input", "{task:#}");
    assert_eq!(task["permission_denials"][0]["tool_name"], "Bash");
    two_turns(&env, json!([]), json!([{"bash": "echo ran > ran.txt"}]), 1);
    let run = env.cms(&["continue", "--json", "tests", "go on", "--allow", "Bash"]);
    run.success();
    let after = run.json();
    assert_eq!(after["status"], "completed", "{after:#}");
    assert_eq!(after["permission_denials"], json!([]));
    assert_eq!(after["safety"]["allowed"], json!(["Bash"]));
    let allowed = env.last_claude_arg("--allowedTools").unwrap();
    assert!(
        allowed.starts_with("Read,") && allowed.ends_with(",Bash"),
        "{allowed}"
    );
    assert_eq!(env.git(&["show", "cms/tests:ran.txt"]), "ran");
    // Kept for the next follow-up without asking again.
    env.cms(&["continue", "tests", "once more"]).success();
    assert!(
        env.last_claude_arg("--allowedTools")
            .unwrap()
            .ends_with(",Bash")
    );
}

#[test]
fn continue_refuses_a_task_that_used_up_its_limit_until_the_limit_is_raised() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "one.txt", "content": "1\n"}},
        {"write": {"path": "two.txt", "content": "2\n"}},
    ]));
    let run = env.cms(&["task", "--json", "x", "-n", "limited", "--max-turns", "1"]);
    run.code(3);
    assert_eq!(run.json()["status"], "turns_exceeded");
    let before = show(&env, "limited");
    let invocations = env.claude_invocations().len();
    let refused = env.cms(&["continue", "limited", "go on"]);
    refused
        .code(1)
        .one_line_error_with_hint("used up its turn limit");
    assert!(refused.stderr.contains("--max-turns"), "{}", refused.stderr);
    // Nothing started, nothing changed.
    assert_eq!(env.claude_invocations().len(), invocations);
    assert_eq!(show(&env, "limited"), before);
    let raised = env.cms(&[
        "continue",
        "--json",
        "limited",
        "go on",
        "--max-turns",
        "10",
    ]);
    raised.success();
    let after = raised.json();
    assert_eq!(after["safety"]["limits"]["max_turns"], 10);
    // claude is told what is left of the raised limit, not the whole of it.
    let left: u32 = env.last_claude_arg("--max-turns").unwrap().parse().unwrap();
    assert_eq!(left, 10 - before["turns"].as_u64().unwrap() as u32);
}

#[test]
fn continue_refuses_running_merged_discarded_and_unknown_tasks() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "merged"]);
    env.cms(&["merge", "merged"]).success();
    env.cms(&["continue", "merged", "more"])
        .code(1)
        .one_line_error_with_hint("already merged");
    env.task_ok(&["x", "-n", "dropped"]);
    env.cms(&["discard", "dropped", "--force"]).success();
    env.cms(&["continue", "dropped", "more"])
        .code(1)
        .one_line_error_with_hint("already discarded");
    env.cms(&["continue", "nobody", "more"]).code(1);
    env.cms(&["continue", "../x", "more"]).code(2);
    env.task_ok(&["x", "-n", "quiet"]);
    env.cms(&["continue", "quiet", "   "])
        .code(2)
        .one_line_error_with_hint("message is empty");
}

#[test]
fn a_continue_whose_claude_fails_to_start_puts_the_task_back_as_it_was() {
    let mut env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["x", "-n", "kept"]);
    let before = show(&env, "kept");
    let broken = env.root.join("broken-claude");
    std::fs::write(&broken, "#!/bin/sh\necho 'no such model' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.set_env("CMS_CLAUDE_BIN", broken.to_str().unwrap());
    env.cms(&["continue", "kept", "more"])
        .code(1)
        .one_line_error_with_hint("no such model");
    // The task, its worktree and branch are as they were: a follow-up never undoes a task.
    let after = show(&env, "kept");
    assert_eq!(after["status"], "completed");
    assert_eq!(after["cost_usd"], before["cost_usd"]);
    assert!(std::path::Path::new(task["worktree"].as_str().unwrap()).is_dir());
    assert_eq!(env.git(&["show", "cms/kept:a.txt"]), "a");
}

#[test]
fn an_interrupted_task_can_be_continued_to_completion() {
    let env = TestEnv::new();
    two_turns(
        &env,
        json!([{"write": {"path": "a.txt", "content": "a\n"}}, {"sleep_ms": 60000}]),
        json!([{"write": {"path": "b.txt", "content": "b\n"}}]),
        0,
    );
    let child = env.spawn_cms(&["task", "x", "-n", "crashed"]);
    // Wait until the session is recorded and its first write landed, then kill cms.
    crate::common::eventually("the task to get going", || {
        let run = env.cms(&["show", "crashed", "--json"]);
        run.code == 0 && run.json()["session_id"].is_string() && {
            let worktree = run.json()["worktree"].as_str().unwrap().to_owned();
            std::path::Path::new(&worktree).join("a.txt").exists()
        }
    });
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    crate::common::wait_bounded(child, std::time::Duration::from_secs(60));
    // The first command that notices commits what the session left, so nothing of it is
    // only in the worktree.
    let interrupted = show(&env, "crashed");
    assert_eq!(interrupted["status"], "interrupted");
    assert_eq!(env.git(&["show", "cms/crashed:a.txt"]), "a");
    assert_eq!(interrupted["files_changed"][0]["path"], "a.txt");
    let worktree = std::path::PathBuf::from(interrupted["worktree"].as_str().unwrap());
    assert_eq!(env.git_in(&worktree, &["status", "--porcelain"]), "");
    two_turns(
        &env,
        json!([]),
        json!([{"write": {"path": "b.txt", "content": "b\n"}}]),
        1,
    );
    let run = env.cms(&["continue", "--json", "crashed", "finish it"]);
    run.success();
    assert_eq!(run.json()["status"], "completed");
    assert_eq!(env.git(&["show", "cms/crashed:a.txt"]), "a");
    assert_eq!(env.git(&["show", "cms/crashed:b.txt"]), "b");
}

use crate::common::fake_api::{CWD, Reply};
use crate::common::real::{
    RUN_LIMIT, assert_cost, real_scenario, reply_cost, task_json, transcript,
};

#[test]
fn real_claude_continue_resumes_the_session_and_an_allowed_tool_then_runs() {
    let Some((api, env)) = real_scenario("real_claude_continue_resumes_the_session") else {
        return;
    };
    let touch = || {
        Reply::tool(
            "Bash",
            json!({"command": format!("echo ran > {CWD}/ran.txt"), "description": "Run it"}),
        )
    };
    // The resumed process sends the whole conversation again, so its requests follow on from
    // the first session's replies.
    api.route(
        "[resume]",
        vec![
            touch(),
            Reply::text("I was not allowed to run it."),
            touch(),
            Reply::text("done"),
        ],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[resume] run it",
            "-n",
            "resumed",
            "-p",
            "read-only",
        ],
        RUN_LIMIT,
    );
    run.code(3);
    let task = task_json(&run);
    assert_eq!(task["status"], "needs_input", "{task:#}");
    assert_eq!(task["permission_denials"][0]["tool_name"], "Bash");
    let run = env.cms_bounded(
        &[
            "continue",
            "--json",
            "resumed",
            "you may now",
            "--allow",
            "Bash",
        ],
        RUN_LIMIT,
    );
    let after = task_json(&run);
    run.success();
    assert_eq!(after["status"], "completed", "{after:#}");
    assert_eq!(after["session_id"], task["session_id"]);
    assert_eq!(env.git(&["show", "cms/resumed:ran.txt"]), "ran");
    // The cost is what both processes paid, each reply once: 2.1.197's resumed process counts
    // from zero again, 2.1.332's starts its total_cost_usd from the first process's cost.
    let results = transcript(&env, "resumed")
        .iter()
        .filter(|e| e["type"] == "result")
        .count();
    assert_eq!(results, 2);
    // The second session's requests carried the first session's conversation.
    let requests = api.requests_for("[resume]");
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert_cost(&after["cost_usd"], 4.0 * reply_cost());
}
