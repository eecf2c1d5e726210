//! `cms continue --rebase`: a task whose merge conflicts is rebased onto its base and its
//! session resolves the conflict; markers it leaves keep it from merging.

use serde_json::json;

use super::{conflicting_task, task_writing};
use crate::common::TestEnv;

/// A task whose edit of `c.txt` conflicts with the user's later commit on main (which also
/// adds `user.txt`); returns main's tip.
fn diverged_conflict(env: &TestEnv) -> String {
    conflicting_task(env, "t");
    env.write("c.txt", "user\n");
    env.write("user.txt", "u\n");
    env.commit_all("user edit");
    env.cms(&["merge", "t"])
        .code(1)
        .one_line_error_with_hint("conflicts with main in c.txt");
    env.git(&["rev-parse", "main"])
}

#[test]
fn continue_rebase_lets_agent_resolve_conflict() {
    let env = TestEnv::new();
    let main_tip = diverged_conflict(&env);
    let markers = env.root.join("markers");
    env.script(json!({"resume_offset": 1, "turns": [
        {"steps": []},
        {"steps": [
            {"bash": format!("grep -c '^<<<<<<< ' c.txt > {}", markers.display())},
            {"write": {"path": "c.txt", "content": "agent and user\n"}},
        ]},
    ]}));
    let run = env.cms(&["continue", "t", "--rebase", "--json"]);
    run.success();
    let task = run.json();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["rebase"], serde_json::Value::Null);
    // The agent saw the conflict marked in its worktree.
    assert_eq!(std::fs::read_to_string(&markers).unwrap().trim(), "1");
    // The task is now one commit on top of main, with main's work in it.
    assert_eq!(env.git(&["rev-parse", "cms/t^"]), main_tip);
    assert_eq!(task["base"], main_tip.as_str());
    assert_eq!(env.git(&["show", "cms/t:user.txt"]), "u");
    let files: Vec<&str> = task["files_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["c.txt"]);
    // The tip from before stays reachable until the task is merged or discarded.
    assert!(env.git_ok(&["rev-parse", "--verify", "-q", "refs/cms/rebased/t"]));
    env.cms(&["merge", "t"]).success();
    assert_eq!(env.read("c.txt"), "agent and user\n");
    assert!(!env.git_ok(&["rev-parse", "--verify", "-q", "refs/cms/rebased/t"]));
}

#[test]
fn conflict_markers_left_by_the_agent_keep_the_task_from_merging() {
    let env = TestEnv::new();
    let main_before = diverged_conflict(&env);
    env.script(json!({"resume_offset": 1, "turns": [
        {"steps": []},
        {"steps": []},
        {"steps": [{"write": {"path": "c.txt", "content": "resolved\n"}}]},
    ]}));
    let run = env.cms(&["continue", "t", "--rebase", "--json"]);
    run.code(3);
    let task = run.json();
    assert_eq!(task["status"], "needs_input");
    assert_eq!(task["error"], "conflict markers remain in c.txt");
    assert_eq!(task["rebase"]["unresolved"], json!(["c.txt"]));
    env.cms(&["merge", "t"])
        .code(1)
        .one_line_error_with_hint("task 't' still has conflict markers in c.txt");
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    // A follow-up that resolves them clears the way.
    env.steps(json!([{"write": {"path": "c.txt", "content": "resolved\n"}}]));
    env.cms(&["continue", "t", "resolve the conflicts"])
        .success();
    env.cms(&["merge", "t"]).success();
    assert_eq!(env.read("c.txt"), "resolved\n");
}

#[test]
fn continue_rebase_that_cannot_start_claude_leaves_the_task_as_it_was() {
    let mut env = TestEnv::new();
    diverged_conflict(&env);
    let tip = env.git(&["rev-parse", "cms/t"]);
    let before = env.cms(&["show", "t", "--json"]).json();
    env.set_env("CMS_CLAUDE_BIN", "/bin/false");
    env.cms(&["continue", "t", "--rebase"]).code(1);
    assert_eq!(env.git(&["rev-parse", "cms/t"]), tip);
    let worktree = std::path::PathBuf::from(before["worktree"].as_str().unwrap());
    assert_eq!(env.git_in(&worktree, &["status", "--porcelain"]), "");
    assert!(!env.git_ok(&["rev-parse", "--verify", "-q", "refs/cms/rebased/t"]));
    let after = env.cms(&["show", "t", "--json"]).json();
    assert_eq!(after["base"], before["base"]);
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["rebase"], serde_json::Value::Null);
}

#[test]
fn continue_rebase_refuses_a_task_already_on_its_bases_tip() {
    let env = TestEnv::new();
    task_writing(&env, "fresh", "f.txt", "f\n");
    env.cms(&["continue", "fresh", "--rebase"])
        .code(1)
        .one_line_error_with_hint("already starts from the tip of main");
    env.cms(&["continue", "fresh"]).code(2);
}

mod real {
    //! `continue --rebase` with the real Claude Code CLI: the resumed session gets the
    //! conflict and resolves it with its own tools.

    use serde_json::json;

    use crate::common::fake_api::{CWD, FakeApi, Reply};
    use crate::common::real::{RUN_LIMIT, real_claude, real_env, task_json};

    #[test]
    fn real_claude_continue_rebase_lets_agent_resolve_conflict() {
        let Some(claude) = real_claude("real_claude_continue_rebase_lets_agent_resolve_conflict")
        else {
            return;
        };
        let api = FakeApi::start();
        let env = real_env(&claude, &api);
        env.write("c.txt", "base\n");
        env.commit_all("c");
        let read = || Reply::tool("Read", json!({"file_path": format!("{CWD}/c.txt")}));
        let write = |content: &str| {
            Reply::tool(
                "Write",
                json!({"file_path": format!("{CWD}/c.txt"), "content": content}),
            )
        };
        // The resumed process sends the whole conversation again, so its requests follow on
        // from the first session's replies.
        api.route(
            "[rebase]",
            vec![
                read(),
                write("agent\n"),
                Reply::text("changed c.txt"),
                read(),
                write("agent and user\n"),
                Reply::text("resolved the conflict"),
            ],
        );
        let run = env.cms_bounded(
            &["task", "--json", "[rebase] change c", "-n", "t"],
            RUN_LIMIT,
        );
        run.success();
        env.write("c.txt", "user\n");
        env.commit_all("user edit");
        let main_tip = env.git(&["rev-parse", "main"]);
        env.cms(&["merge", "t"])
            .code(1)
            .one_line_error_with_hint("conflicts with main in c.txt");
        let run = env.cms_bounded(&["continue", "t", "--rebase", "--json"], RUN_LIMIT);
        let task = task_json(&run);
        run.success();
        assert_eq!(task["status"], "completed", "{task:#}");
        assert_eq!(env.git(&["rev-parse", "cms/t^"]), main_tip);
        // The resumed session was shown the conflict as it was on disk: its Read may answer
        // from claude's memory of the file from before.
        let requests = api.requests_for("[rebase]");
        assert_eq!(requests.len(), 6, "{requests:#?}");
        let message = requests[3].last_user_text.clone();
        for expected in ["c.txt", "<<<<<<< ", "agent", "user", ">>>>>>> "] {
            assert!(
                message.contains(expected),
                "{expected} missing from {message}"
            );
        }
        env.cms(&["merge", "t"]).success();
        assert_eq!(env.read("c.txt"), "agent and user\n");
    }
}
