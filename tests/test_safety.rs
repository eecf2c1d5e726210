//! The safety net: limits that stop a task and keep its work, and protected paths caught on
//! the task's diff, in git metadata and in the user's checkout, whatever tool made the change.

use serde_json::{Value, json};

use crate::common::{Run, TestEnv, violations};

/// Runs a one-turn task with these steps and returns how it ended and its JSON.
fn run_task(env: &TestEnv, name: &str, steps: Value, extra: &[&str]) -> (Run, Value) {
    env.steps(steps);
    let mut args = vec!["task", "--json", "do the thing", "--name", name];
    args.extend_from_slice(extra);
    let run = env.cms(&args);
    let task = run.json();
    (run, task)
}

/// A repository with protected paths configured in `.cms.toml`, and files under them.
fn protected_repo() -> TestEnv {
    let env = TestEnv::new();
    env.write(
        ".cms.toml",
        "[safety]\nprotected = [\"infra/**\", \".github/**\", \"*.pem\", \"vendor/keys/**\"]\n",
    );
    env.write("infra/main.tf", "resource {}\n");
    env.write(".github/workflows/ci.yml", "on: push\n");
    env.write("docs/readme.md", "docs\n");
    env.write("src/lib.rs", "pub fn f() {}\n");
    env.write("src/old.rs", "old\n");
    env.commit_all("protected files");
    // A submodule pointer (no checkout needed: a gitlink in the tree is what moves).
    let head = env.git(&["rev-parse", "HEAD"]);
    env.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{head},vendor/keys"),
    ]);
    env.git(&["commit", "-q", "-m", "a submodule"]);
    env
}

// Hooks, git config and the user's checkout, which the sandbox keeps out of a task's reach, are
// tried in test_boundary.rs, as an unsandboxed task.
#[test]
fn bypass_corpus_every_trick_to_change_a_protected_path_is_caught() {
    let env = protected_repo();
    // (case, bash command run by the agent in its worktree, expected violation "kind path")
    let cases: &[(&str, &str, &str)] = &[
        (
            "unstaged edit",
            "echo x >> infra/main.tf",
            "protected_path infra/main.tf",
        ),
        (
            "untracked file",
            "echo key > deploy.pem",
            "protected_path deploy.pem",
        ),
        (
            "staged edit",
            "echo x >> infra/main.tf && git add infra/main.tf",
            "protected_path infra/main.tf",
        ),
        (
            "committed edit",
            "echo x >> .github/workflows/ci.yml && git commit -qam sneaky",
            "protected_path .github/workflows/ci.yml",
        ),
        (
            "deletion",
            "rm infra/main.tf",
            "protected_path infra/main.tf",
        ),
        (
            "rename out of a protected folder",
            "git mv infra/main.tf docs/main.tf",
            "protected_path infra/main.tf",
        ),
        (
            "rename into a protected folder",
            "mv docs/readme.md infra/readme.md",
            "protected_path infra/readme.md",
        ),
        (
            "mode change",
            "chmod +x infra/main.tf",
            "protected_path infra/main.tf",
        ),
        (
            "odd spellings of the path",
            "echo x > ./infra//new.tf && echo y > src/../infra/other.tf",
            "protected_path infra/new.tf",
        ),
        (
            "symlink to a protected path",
            "ln -s ../infra/main.tf docs/link",
            "symlink docs/link",
        ),
        (
            "symlink out of the worktree",
            "ln -s /etc/passwd docs/passwd",
            "symlink docs/passwd",
        ),
        (
            "submodule pointer",
            "git update-index --cacheinfo 160000,$(git rev-parse HEAD),vendor/keys",
            "submodule vendor/keys",
        ),
        (
            "the repository's cms config",
            "echo '[safety]' > .cms.toml",
            "protected_path .cms.toml",
        ),
        (
            "claude's project settings",
            "mkdir -p .claude && echo '{}' > .claude/settings.json",
            "protected_path .claude/settings.json",
        ),
    ];
    for (i, (case, command, expected)) in cases.iter().enumerate() {
        let name = format!("trick{i}");
        let (run, task) = run_task(&env, &name, json!([{"bash": command}]), &["-p", "full"]);
        run.code(3);
        assert_eq!(task["status"], "protected_path", "{case}: {task:#}");
        let found = violations(&task);
        assert!(
            found.iter().any(|v| v.starts_with(expected)),
            "{case}: expected {expected:?} in {found:?}"
        );
        assert!(
            task["error"]
                .as_str()
                .unwrap()
                .contains("protected-path violation"),
            "{case}"
        );
        // The work is kept, committed on the task's branch, for the user to judge.
        assert!(env.git_ok(&["rev-parse", "--verify", &format!("cms/{name}")]));
        let worktree = task["worktree"].as_str().unwrap();
        assert!(std::path::Path::new(worktree).is_dir(), "{case}");
    }
}

#[test]
fn benign_corpus_nothing_flagged() {
    let env = protected_repo();
    let steps = json!([
        {"write": {"path": "src/new.rs", "content": "pub fn g() {}\n"}},
        {"read": {"path": "src/lib.rs"}},
        {"edit": {"path": "src/lib.rs", "old": "f()", "new": "h()"}},
        {"bash": "git mv docs/readme.md docs/README.md"},
        {"bash": "ln -s ../src/lib.rs docs/lib.rs && ln -s README.md docs/index.md"},
        {"bash": "echo infra-notes > infrastructure.md && echo x > docs/.github.md"},
        {"bash": "echo 'pem files are keys' > docs/pem.txt && mkdir -p src/infra && echo m > src/infra/main.tf"},
        {"bash": "printf '#!/bin/sh\\n' > src/tool.sh && chmod +x src/tool.sh && rm src/old.rs"},
        {"bash": "git add -A && git commit -qm 'agent commit' && echo after > src/after.rs"},
        {"bash": "echo scratch > /tmp/cms-benign-scratch-$$ && rm /tmp/cms-benign-scratch-$$"},
    ]);
    let (run, task) = run_task(&env, "benign", steps, &["-p", "full"]);
    run.success();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]));
    assert_eq!(task["safety"]["warnings"], json!([]));
    assert_eq!(task["safety"]["blocked"], json!([]));
    assert_eq!(task["error"], Value::Null);
    let merged = env.cms(&["merge", "benign"]);
    merged.success();
}

#[test]
fn merge_refuses_a_task_that_touched_protected_paths_unless_allowed() {
    let env = protected_repo();
    let (run, task) = run_task(
        &env,
        "sneaky",
        json!([{"bash": "echo x >> infra/main.tf"}]),
        &["-p", "full"],
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path");
    let head = env.git(&["rev-parse", "main"]);
    let refused = env.cms(&["merge", "sneaky"]);
    refused
        .code(1)
        .one_line_error_with_hint("touched protected paths");
    assert!(
        refused.stderr.contains("--allow-protected"),
        "{}",
        refused.stderr
    );
    assert_eq!(env.git(&["rev-parse", "main"]), head);
    assert!(env.git_ok(&["rev-parse", "--verify", "cms/sneaky"]));
    env.cms(&["merge", "sneaky", "--allow-protected"]).success();
    assert_eq!(env.read("infra/main.tf"), "resource {}\nx\n");
}

#[test]
fn merge_rechecks_work_added_after_the_task_ended() {
    let env = protected_repo();
    let task = env.task_ok(&["harmless", "--name", "later"]);
    assert_eq!(task["status"], "completed");
    // Someone commits a protected change on the task's branch after the session.
    let worktree = task["worktree"].as_str().unwrap();
    env.git_in(
        std::path::Path::new(worktree),
        &["rm", "-q", "infra/main.tf"],
    );
    env.git_in(
        std::path::Path::new(worktree),
        &["commit", "-q", "-m", "drop infra"],
    );
    env.cms(&["merge", "later"])
        .code(1)
        .one_line_error_with_hint("infra/main.tf");
}

#[test]
fn protect_flag_adds_to_the_configured_globs_and_is_recorded() {
    let env = protected_repo();
    let (run, task) = run_task(
        &env,
        "flagged",
        json!([{"bash": "echo x >> docs/readme.md"}]),
        &["-p", "full", "--protect", "docs/**"],
    );
    run.code(3);
    assert_eq!(violations(&task), ["protected_path docs/readme.md"]);
    let globs: Vec<&str> = task["safety"]["protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    for glob in [".cms.toml", "infra/**", "docs/**"] {
        assert!(
            globs.iter().any(|g| g.trim_start_matches('/') == glob),
            "{glob} in {globs:?}"
        );
    }
}

#[test]
fn invalid_protect_glob_is_a_usage_error_and_makes_nothing() {
    let env = TestEnv::new();
    let run = env.cms(&["task", "x", "--protect", "a/[b"]);
    run.code(2);
    assert!(run.stderr.contains("a/[b"), "{}", run.stderr);
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(env.worktrees().len(), 1);
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
    let run = env.cms(&[
        "task",
        "--json",
        "spend",
        "--name",
        "spend",
        "--max-cost",
        "1.2",
    ]);
    run.code(3);
    let task = run.json();
    assert_eq!(task["status"], "cost_exceeded", "{task:#}");
    assert!(
        task["error"].as_str().unwrap().contains("cost limit"),
        "{task:#}"
    );
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
    let run = env.cms(&[
        "task",
        "--json",
        "work",
        "--name",
        "turns",
        "--max-turns",
        "2",
    ]);
    run.code(3);
    let task = run.json();
    assert_eq!(task["status"], "turns_exceeded", "{task:#}");
    assert!(
        task["error"].as_str().unwrap().contains("turn limit of 2"),
        "{task:#}"
    );
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
    let run = env.cms(&[
        "task",
        "--json",
        "slow",
        "--name",
        "slow",
        "--max-duration",
        "1s",
    ]);
    run.code(3);
    let task = run.json();
    assert_eq!(task["status"], "duration_exceeded", "{task:#}");
    assert!(
        task["error"].as_str().unwrap().contains("time limit"),
        "{task:#}"
    );
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

/// The PreToolUse hook command cms gave claude in its last start, as claude runs it.
pub(crate) fn hook_command(env: &TestEnv) -> String {
    let settings = env.last_claude_arg("--settings").unwrap();
    let settings: Value = serde_json::from_str(&settings).unwrap();
    settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs a hook command through `sh` as claude does: the hook JSON on stdin.
pub(crate) fn run_hook(env: &TestEnv, command: &str, input: &str) -> crate::common::Run {
    use std::io::Write;
    let mut child = env
        .command(std::path::Path::new("sh"), &env.repo, &["-c", command])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A hook that refuses its command line exits before reading: the pipe may be closed.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    crate::common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn pre_tool_use_hook_denies_protected_and_outside_writes_in_claudes_format_and_records_them() {
    let env = protected_repo();
    let task = env.task_ok(&["setup", "--name", "hooked"]);
    let worktree = task["worktree"].as_str().unwrap().to_owned();
    let hook = hook_command(&env);
    let call = |tool: &str, input: Value, id: &str| {
        json!({"hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": input,
               "tool_use_id": id, "cwd": worktree})
    };
    // (tool call, denied?)
    let cases = [
        (
            call(
                "Write",
                json!({"file_path": format!("{worktree}/src/ok.rs")}),
                "t1",
            ),
            false,
        ),
        (
            call("Edit", json!({"file_path": "src/lib.rs"}), "t2"),
            false,
        ),
        (
            call(
                "Write",
                json!({"file_path": format!("{worktree}/infra/x.tf")}),
                "t3",
            ),
            true,
        ),
        (
            call(
                "Write",
                json!({"file_path": format!("{worktree}/./infra//y.tf")}),
                "t4",
            ),
            true,
        ),
        (
            call(
                "Edit",
                json!({"file_path": format!("{worktree}/src/../infra/main.tf")}),
                "t5",
            ),
            true,
        ),
        (
            call(
                "MultiEdit",
                json!({"file_path": format!("{worktree}/.cms.toml")}),
                "t6",
            ),
            true,
        ),
        (
            call(
                "NotebookEdit",
                json!({"notebook_path": format!("{worktree}/k.pem")}),
                "t7",
            ),
            true,
        ),
        (
            call(
                "Write",
                json!({"file_path": env.repo.join("README.md")}),
                "t8",
            ),
            true,
        ),
        (
            call(
                "Write",
                json!({"file_path": format!("{worktree}/../escape.txt")}),
                "t9",
            ),
            true,
        ),
        (
            call(
                "Write",
                json!({"file_path": format!("{worktree}/.git")}),
                "t10",
            ),
            true,
        ),
        (call("Write", json!({"content": "no path"}), "t11"), true),
    ];
    for (input, denied) in &cases {
        let run = run_hook(&env, &hook, &input.to_string());
        run.success();
        if *denied {
            let out: Value = serde_json::from_str(&run.stdout).unwrap();
            let specific = &out["hookSpecificOutput"];
            assert_eq!(specific["hookEventName"], "PreToolUse");
            assert_eq!(specific["permissionDecision"], "deny", "{input}");
            let reason = specific["permissionDecisionReason"].as_str().unwrap();
            assert!(reason.starts_with("cms denied this write: "), "{reason}");
        } else {
            assert_eq!(run.stdout, "", "{input}");
        }
    }
    let record = env.cms(&["show", "hooked", "--json"]).json();
    let ids: Vec<&str> = record["safety"]["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["tool_use_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11"]
    );
}

#[test]
fn pre_tool_use_hook_fails_closed_when_it_cannot_judge_the_call() {
    let env = protected_repo();
    env.task_ok(&["setup", "--name", "hooked"]);
    let hook = hook_command(&env);
    let input = json!({"tool_name": "Write", "tool_input": {"file_path": "/tmp/x"}}).to_string();
    // claude treats exit code 2 as a block, with stderr as the reason; stdout must stay empty,
    // since claude would act on any JSON there whatever the exit code.
    let garbage = run_hook(&env, &hook, "not a hook call");
    garbage.code(2);
    assert!(garbage.stdout.is_empty());
    assert!(
        garbage.stderr.contains("cms denied this write"),
        "{}",
        garbage.stderr
    );
    let bad_glob = run_hook(&env, &format!("{hook} --protect 'a[b'"), &input);
    bad_glob.code(2);
    assert!(bad_glob.stdout.is_empty());
    // Without the worktree to judge against, nothing is allowed either.
    let (without_worktree, _) = hook.split_once(" --worktree ").unwrap();
    let unjudged = run_hook(&env, without_worktree, &input);
    unjudged.code(2);
    assert!(unjudged.stdout.is_empty());
}

#[test]
fn writes_the_hook_denies_never_happen_in_any_preset_and_are_listed_as_blocked() {
    let env = protected_repo();
    let outside = env.repo.join("stolen.txt");
    let steps = json!([
        {"write": {"path": "infra/new.tf", "content": "x\n"}},
        {"write": {"path": "./src/../infra//other.tf", "content": "x\n"}},
        {"write": {"path": outside.display().to_string(), "content": "x\n"}},
        {"bash": "mkdir -p docs && ln -s ../infra docs/infra-link"},
        {"write": {"path": "docs/infra-link/via-link.tf", "content": "x\n"}},
        {"write": {"path": "src/fine.rs", "content": "ok\n"}},
    ]);
    // In every preset, `edit` (the default) and `full` alike.
    for preset in ["edit", "full"] {
        let name = format!("hooked-{preset}");
        let (run, task) = run_task(&env, &name, steps.clone(), &["-p", preset]);
        let blocked: Vec<String> = task["safety"]["blocked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            blocked,
            [
                "protected_path",
                "protected_path",
                "outside_worktree",
                "protected_path"
            ],
            "{preset}: {task:#}"
        );
        assert_eq!(task["permission_denials"], json!([]), "{preset}");
        assert!(!outside.exists(), "{preset}");
        let worktree = std::path::Path::new(task["worktree"].as_str().unwrap());
        for path in ["infra/new.tf", "infra/other.tf", "infra/via-link.tf"] {
            assert!(
                !worktree.join(path).exists(),
                "{preset}: {path} was written"
            );
        }
        assert!(worktree.join("src/fine.rs").exists());
        // The symlink itself points at a protected folder: that one is caught on the diff.
        run.code(3);
        assert_eq!(violations(&task), ["symlink docs/infra-link"], "{preset}");
    }
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
