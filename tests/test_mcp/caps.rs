//! The `[mcp]` caps: a parent agent cannot raise limits, presets or running tasks beyond them,
//! through a start, a follow-up or an answer to a prompt, nor run an untrusted setup or check.

use serde_json::{Value, json};

use super::Mcp;
use crate::common::TestEnv;

/// `cms mcp` under the `[mcp]` caps of `config`, and the task `f` it started, which wrote a.txt
/// and completed.
fn mcp_with_a_finished_task(env: &TestEnv, config: &str) -> (Mcp, Value) {
    env.user_config(config);
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let mcp = Mcp::start(env);
    let done = mcp.ok(
        "task_start",
        json!({"prompt": "x", "name": "f", "wait": true}),
    );
    assert_eq!(done["status"], "completed", "{done:#}");
    (mcp, done)
}

#[test]
fn mcp_caps_refuse_raised_limits_higher_presets_and_more_running_tasks() {
    let env = TestEnv::new();
    env.user_config(
        "[mcp]\nmax_cost = 1\nmax_turns = 5\nmax_duration = \"5m\"\nmax_preset = \"review\"\nmax_running = 1\n",
    );
    // The repository's file loosens its limits and tries to raise the caps: only the caps'
    // lowering could count, and it lowers nothing here.
    env.write(
        ".cms.toml",
        "[limits]\nmax_cost = 10\n[mcp]\nmax_cost = 50\nmax_running = 8\nmax_preset = \"full\"\n",
    );
    env.commit_all("config");
    // Even trusted, a repository only ever lowers the caps.
    env.trust();
    env.steps(json!([{"ask": {"bash": "true"}}]));
    let mcp = Mcp::start(&env);
    for (args, needle) in [
        (
            json!({"prompt": "x", "max_cost": 1.5}),
            "max_cost $1.5 is above this server's cap of $1",
        ),
        (
            json!({"prompt": "x", "max_turns": 6}),
            "max_turns 6 is above this server's cap of 5",
        ),
        (
            json!({"prompt": "x", "max_duration": "6m"}),
            "max_duration 6m is above this server's cap of 300s",
        ),
        (
            json!({"prompt": "x", "preset": "edit"}),
            "preset edit is above this server's cap",
        ),
    ] {
        let (text, json) = mcp.err("task_start", args);
        assert!(text.contains(needle), "{text}");
        assert!(text.contains("[mcp]"), "{text}");
        assert_eq!(json["exit_code"], 1);
    }
    // Refused starts leave nothing behind.
    assert_eq!(env.branches(), ["main"]);

    let first = mcp.ok(
        "task_start",
        json!({"prompt": "x", "name": "first", "max_turns": 3}),
    );
    assert_eq!(
        first["preset"], "review",
        "the configured edit is lowered to the cap"
    );
    assert_eq!(first["safety"]["limits"]["max_cost_usd"], 1.0);
    assert_eq!(first["safety"]["limits"]["max_turns"], 3);
    assert_eq!(first["safety"]["limits"]["max_duration_ms"], 300_000);
    mcp.until_status("first", "waiting");
    let (text, _) = mcp.err("task_start", json!({"prompt": "y", "name": "second"}));
    assert!(text.contains("max_running = 1"), "{text}");
    assert!(text.contains("task_abort"), "{text}");

    let aborted = mcp.ok("task_abort", json!({"tasks": ["first"]}));
    assert_eq!(aborted["tasks"][0]["status"], "aborted", "{aborted:#}");
    let second = mcp.ok("task_start", json!({"prompt": "y", "name": "second"}));
    assert_eq!(second["name"], "second");
}

#[test]
fn cms_mcp_never_runs_an_untrusted_setup_or_merge_check() {
    let env = TestEnv::new();
    let setup = env.root.join("setup-ran");
    let check = env.root.join("check-ran");
    env.write(
        ".cms.toml",
        &format!(
            "[worktree]\nsetup = [\"touch {}\"]\n[merge]\ncheck = [\"touch {}\"]\n",
            setup.display(),
            check.display()
        ),
    );
    env.commit_all("config");
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let mcp = Mcp::start(&env);
    mcp.ok("task_start", json!({"prompt": "write a", "name": "t"}));
    mcp.until_status("t", "completed");
    assert!(!setup.exists(), "an untrusted setup ran");
    let (text, _) = mcp.err("task_merge", json!({"task": "t"}));
    assert!(text.contains("not trusted"), "{text}");
    assert!(!check.exists(), "an untrusted merge check ran");
    assert!(!env.repo.join("a.txt").exists());
}

#[test]
fn a_follow_up_through_mcp_stays_within_the_caps() {
    let env = TestEnv::new();
    let (mcp, done) = mcp_with_a_finished_task(&env, "[mcp]\nmax_turns = 20\n");
    let (text, _) = mcp.err(
        "task_continue",
        json!({"task": "f", "message": "more", "max_turns": 21}),
    );
    assert!(text.contains("max_turns 21 is above"), "{text}");
    let (text, _) = mcp.err(
        "task_continue",
        json!({"task": "f", "message": "more", "preset": "full"}),
    );
    assert!(text.contains("preset full is above"), "{text}");
    // An allowed tool is a value of claude's --allowedTools, never a flag of its own.
    let (text, _) = mcp.err(
        "task_continue",
        json!({"task": "f", "message": "more", "allow": ["--dangerously-skip-permissions"]}),
    );
    assert!(text.contains("invalid allow"), "{text}");
    let again = mcp.ok(
        "task_continue",
        json!({"task": "f", "message": "more", "max_turns": 10, "wait": true}),
    );
    assert_eq!(again["status"], "completed", "{again:#}");
    assert_eq!(again["safety"]["limits"]["max_turns"], 10);
    assert!(again["turns"].as_u64().unwrap() > done["turns"].as_u64().unwrap());
}

#[test]
fn tools_granted_through_allow_or_an_always_answer_stay_within_max_preset() {
    let env = TestEnv::new();
    let (mcp, done) = mcp_with_a_finished_task(&env, "[mcp]\nmax_preset = \"review\"\n");
    for tool in [
        "Write",
        "Bash",
        "Bash(rm:*)",
        "Bash(git diff-tree:*)",
        "mcp__db__drop",
    ] {
        let (text, json) = mcp.err(
            "task_continue",
            json!({"task": "f", "message": "more", "allow": [tool]}),
        );
        assert!(
            text.contains(&format!(
                "allow {tool} is above this server's cap ([mcp] max_preset = \"review\")"
            )),
            "{text}"
        );
        assert!(
            text.contains("[mcp]") && text.contains("task_answer"),
            "{text}"
        );
        assert_eq!(json["exit_code"], 1);
    }
    // Refused, the follow-ups never ran and granted nothing.
    let shown = mcp.ok("task_status", json!({"task": "f"}));
    assert_eq!(shown["turns"], done["turns"]);
    assert!(
        shown["safety"]["allowed"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{shown:#}"
    );
    // What review itself runs without asking is within it.
    let again = mcp.ok(
        "task_continue",
        json!({"task": "f", "message": "more", "allow": ["Bash(git log --oneline:*)", "Read"], "wait": true}),
    );
    assert_eq!(again["status"], "completed", "{again:#}");

    // An always answer grants the waiting tool for good: Bash is beyond review.
    env.steps(json!([{"ask": {"bash": "echo ok > ran.txt"}}]));
    let waiting = mcp.ok(
        "task_start",
        json!({"prompt": "run it", "name": "w", "wait": true}),
    );
    assert_eq!(waiting["pending"]["tool_name"], "Bash", "{waiting:#}");
    let (text, _) = mcp.err(
        "task_answer",
        json!({"task": "w", "allow": true, "always": true}),
    );
    assert!(
        text.contains(
            "an always answer for Bash is above this server's cap ([mcp] max_preset = \"review\")"
        ),
        "{text}"
    );
    // Still waiting, and a one-call answer is the parent's to give.
    assert_eq!(
        mcp.ok("task_status", json!({"task": "w"}))["status"],
        "waiting"
    );
    mcp.ok("task_answer", json!({"task": "w", "allow": true}));
    let done = &mcp.ok("task_wait", json!({"tasks": ["w"]}))["tasks"][0];
    assert_eq!(done["status"], "completed", "{done:#}");
    assert!(
        done["safety"]["allowed"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{done:#}"
    );
}

#[test]
fn under_max_preset_edit_bash_may_be_granted_only_to_a_sandboxed_session() {
    let env = TestEnv::new();
    let (mcp, _) = mcp_with_a_finished_task(
        &env,
        "[mcp]\nmax_preset = \"edit\"\n[safety]\nsandbox = \"off\"\n",
    );
    // Unsandboxed, edit asks for every Bash command: granting one is beyond it.
    for tool in ["Bash", "Bash(rm:*)"] {
        let (text, _) = mcp.err(
            "task_continue",
            json!({"task": "f", "message": "more", "allow": [tool]}),
        );
        assert!(
            text.contains(&format!(
                "allow {tool} is above this server's cap ([mcp] max_preset = \"edit\")"
            )),
            "{text}"
        );
        assert!(text.contains("Bash only in the sandbox"), "{text}");
    }
    // Edits are edit's own.
    let again = mcp.ok(
        "task_continue",
        json!({"task": "f", "message": "more", "allow": ["Write"], "wait": true}),
    );
    assert_eq!(again["status"], "completed", "{again:#}");
}
