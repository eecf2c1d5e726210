//! How claude's output ends a task: a replayed real session, denied tools, API errors, a
//! claude that dies mid-task, and malformed lines kept in the transcript.

use serde_json::json;

use crate::common::{TestEnv, sample};

#[test]
fn replaying_a_real_cli_session_records_its_cost_turns_and_changes() {
    let env = TestEnv::new();
    env.write("existing.txt", "line one\nold value\nline three\n");
    env.commit_all("existing");
    env.script(json!({"turns": [{"replay": sample("tools_bypass.jsonl")}]}));
    let task = env.task_ok(&["replay", "-n", "replay", "--preset", "full"]);
    assert_eq!(task["status"], "completed");
    assert_eq!(task["session_id"], "7d555fa1-7789-4e3e-a3e7-1ea72abd61f8");
    assert!((task["cost_usd"].as_f64().unwrap() - 0.49706).abs() < 1e-9);
    assert_eq!(task["turns"], 5);
    assert_eq!(task["tools_used"], json!(["Write", "Read", "Edit", "Bash"]));
    assert_eq!(task["response"], "done");
    assert_eq!(env.git(&["show", "cms/replay:hello.txt"]), "hello world");
    assert_eq!(
        env.git(&["show", "cms/replay:existing.txt"]),
        "line one\nnew value\nline three"
    );
    assert_eq!(env.git(&["show", "cms/replay:bash_made.txt"]), "hi");
}

#[test]
fn replaying_denied_tools_ends_needs_input_listing_them() {
    let env = TestEnv::new();
    env.script(json!({"turns": [{"replay": sample("permission_denied.jsonl")}]}));
    let task = env.task_ending(3, &["try writing", "-n", "denied", "--preset", "read-only"]);
    assert_eq!(task["status"], "needs_input");
    let denied: Vec<&str> = task["permission_denials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tool_name"].as_str().unwrap())
        .collect();
    assert_eq!(denied, ["Write", "Bash"]);
    let human = env.cms(&["show", "denied"]);
    assert!(human.stdout.contains("denied"), "{}", human.stdout);
    assert!(human.stdout.contains("hello.txt"), "{}", human.stdout);
}

#[test]
fn scripted_denials_end_needs_input() {
    let env = TestEnv::new();
    env.steps(json!([{"deny": {"tool": "Bash", "input": {"command": "npm test"}}}]));
    let run = env.cms(&["task", "run tests", "-n", "deny"]);
    run.code(3);
    assert!(run.stdout.contains("needs_input"), "{}", run.stdout);
    assert!(run.stdout.contains("npm test"), "{}", run.stdout);
}

#[test]
fn api_errors_end_failed_with_the_apis_message() {
    for (status, needle) in [(500, "500"), (529, "529"), (401, "Invalid API key")] {
        let env = TestEnv::new();
        env.steps(
            json!([{"api_error": {"status": status, "message": "fake failure", "retries": 1}}]),
        );
        let task = env.task_ending(3, &["x", "-n", "api"]);
        assert_eq!(task["status"], "failed", "{status}");
        let error = task["error"].as_str().unwrap();
        assert!(error.contains(needle), "{status}: {error}");
        assert_eq!(task["cost_usd"], 0.0);
    }
}

#[test]
fn replayed_api_error_sample_ends_failed() {
    let env = TestEnv::new();
    env.script(json!({"turns": [{"replay": sample("api_error_500.jsonl")}]}));
    let task = env.task_ending(3, &["x", "-n", "api500"]);
    assert_eq!(task["status"], "failed");
    assert!(
        task["error"]
            .as_str()
            .unwrap()
            .starts_with("API Error: 500")
    );
}

#[test]
fn claude_dying_mid_task_ends_failed_and_keeps_its_work() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "partial.txt", "content": "half\n"}},
        {"stderr": "boom: out of memory"},
        {"exit": 7},
    ]));
    let task = env.task_ending(3, &["x", "-n", "dies"]);
    assert_eq!(task["status"], "failed");
    let error = task["error"].as_str().unwrap();
    assert!(error.contains("exited with code 7"), "{error}");
    assert!(error.contains("boom: out of memory"), "{error}");
    assert_eq!(env.git(&["show", "cms/dies:partial.txt"]), "half");
}

#[test]
fn malformed_output_lines_are_tolerated_and_kept_in_the_transcript() {
    let env = TestEnv::new();
    env.steps(json!([
        {"garbage": "this is not json"},
        {"raw": {"type": "brand_new_event", "x": 1}},
        {"write": {"path": "a.txt", "content": "a\n"}},
    ]));
    let run = env.cms(&["task", "--json", "x", "-n", "garbage"]);
    run.success();
    assert_eq!(run.json()["status"], "completed");
    assert!(run.stderr.contains("not stream-json"), "{}", run.stderr);
    let transcript =
        std::fs::read_to_string(env.common_dir().join("cms/logs/garbage.jsonl")).unwrap();
    assert!(transcript.contains("this is not json\n"));
    assert!(transcript.contains("brand_new_event"));
    assert!(
        transcript
            .lines()
            .last()
            .unwrap()
            .contains("\"type\":\"result\"")
    );
}
