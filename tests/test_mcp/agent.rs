//! What an agent reads back through MCP: hints that name the tools it can call, not `cms`
//! commands, and a merge that had nothing to bring in said as such.

use serde_json::json;

use super::Mcp;
use crate::common::TestEnv;

#[test]
fn an_mcp_errors_hint_names_a_tool_not_a_cms_command() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let mcp = Mcp::start(&env);
    mcp.ok(
        "task_start",
        json!({"prompt": "x", "name": "done", "wait": true}),
    );
    // The message is the command line's; the hint names the tool.
    let (text, json) = mcp.err("task_status", json!({"task": "dne"}));
    let cli = env.cms(&["show", "dne", "--json"]).json();
    assert_eq!(json["error"]["message"], cli["error"]["message"]);
    let hints = json["error"]["hints"].to_string();
    assert!(hints.contains(r#"task_list {\"all\":true}"#), "{hints}");
    assert!(!text.contains("cms "), "{text}");
    mcp.ok("task_merge", json!({"task": "done"}));
    let (text, _) = mcp.err("task_merge", json!({"task": "done"}));
    assert!(
        text.contains(r#"hint: nothing was changed; `task_status {"task":"done"}` says where"#),
        "{text}"
    );
    // What no tool does is the user's, at the command line.
    let task = mcp.ok(
        "task_start",
        json!({"prompt": "x", "name": "loose", "wait": true}),
    );
    let worktree = std::path::Path::new(task["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("b.txt"), "not committed\n").unwrap();
    let (text, _) = mcp.err("task_merge", json!({"task": "loose"}));
    assert!(
        text.contains("hint: `cms commit loose` (the user's, at the command line) commits them"),
        "{text}"
    );
}

#[test]
fn task_merge_of_a_change_already_in_the_target_makes_no_commit_and_says_so() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let mcp = Mcp::start(&env);
    mcp.ok(
        "task_start",
        json!({"prompt": "x", "name": "t", "wait": true}),
    );
    env.write("a.txt", "a\n");
    env.commit_all("a.txt, by hand");
    let main = env.git(&["rev-parse", "main"]);
    let merged = mcp.ok("task_merge", json!({"task": "t"}));
    assert_eq!(merged["status"], "merged");
    assert_eq!(merged["merge"]["nothing_to_merge"], "already_in_target");
    assert_eq!(merged["merge"]["removed"], true);
    assert_eq!(env.git(&["rev-parse", "main"]), main);
}
