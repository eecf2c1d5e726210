//! The safety net's protected paths: caught on the task's diff, in git metadata and in the
//! user's checkout, whatever tool made the change, and denied before the write by cms's
//! PreToolUse hook. The limits are `limits`.

mod limits;

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
// tried in test_boundary, as an unsandboxed task.
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
    let w = |path: &str| format!("{worktree}/{path}");
    // (tool, input, denied?), called with ids t1, t2, …
    let cases = [
        ("Write", json!({"file_path": w("src/ok.rs")}), false),
        ("Edit", json!({"file_path": "src/lib.rs"}), false),
        ("Write", json!({"file_path": w("infra/x.tf")}), true),
        ("Write", json!({"file_path": w("./infra//y.tf")}), true),
        (
            "Edit",
            json!({"file_path": w("src/../infra/main.tf")}),
            true,
        ),
        ("MultiEdit", json!({"file_path": w(".cms.toml")}), true),
        ("NotebookEdit", json!({"notebook_path": w("k.pem")}), true),
        (
            "Write",
            json!({"file_path": env.repo.join("README.md")}),
            true,
        ),
        ("Write", json!({"file_path": w("../escape.txt")}), true),
        ("Write", json!({"file_path": w(".git")}), true),
        ("Write", json!({"content": "no path"}), true),
    ];
    for (i, (tool, input, denied)) in cases.iter().enumerate() {
        let input = json!({"hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": input,
                           "tool_use_id": format!("t{}", i + 1), "cwd": worktree});
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
