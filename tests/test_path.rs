//! `cms path`, `cms shell-init`'s `cmscd`, and `cms --version`.

use std::path::Path;

use serde_json::json;

use crate::common::{CMS, Run, TestEnv};

#[test]
fn path_prints_the_worktree_alone_and_json_names_the_task() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["write a file", "-n", "where"]);
    let worktree = task["worktree"].as_str().unwrap();
    let run = env.cms(&["path", "where"]);
    run.success();
    assert_eq!(run.stdout, format!("{worktree}\n"));
    assert!(Path::new(worktree).join("a.txt").is_file());
    let value = env.cms(&["path", "where", "--json"]).json();
    assert_eq!(value["task"], "where");
    assert_eq!(value["path"], worktree);
    assert!(value["version"].is_number(), "{value}");
}

#[test]
fn path_of_a_discarded_task_fails_saying_its_worktree_is_gone() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["write a file", "-n", "gone"]);
    env.cms(&["discard", "gone", "--force"]).success();
    let run = env.cms(&["path", "gone"]);
    run.code(1).one_line_error_with_hint("no worktree");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("discarded"), "{}", run.stderr);
}

#[test]
fn path_of_a_task_whose_worktree_was_deleted_by_hand_hints_at_its_branch() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["write a file", "-n", "lost"]);
    std::fs::remove_dir_all(task["worktree"].as_str().unwrap()).unwrap();
    let run = env.cms(&["path", "lost"]);
    run.code(1).one_line_error_with_hint("no worktree");
    assert!(run.stderr.contains("cms/lost"), "{}", run.stderr);
}

/// Runs `script` in bash with `cms shell-init bash` evaluated and this build's cms on PATH.
fn bash_with_cmscd(env: &TestEnv, script: &str) -> Run {
    let bin = Path::new(CMS).parent().unwrap().display().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let script = format!("eval \"$(cms shell-init bash)\"\n{script}");
    let mut cmd = env.command(Path::new("bash"), &env.repo, &["-c", &script]);
    cmd.env("PATH", path);
    Run::from(cmd.output().unwrap())
}

#[test]
fn cmscd_from_shell_init_changes_to_the_tasks_worktree() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["write a file", "-n", "go"]);
    let run = bash_with_cmscd(&env, "cmscd go && pwd");
    run.success();
    assert_eq!(
        run.stdout,
        format!("{}\n", task["worktree"].as_str().unwrap())
    );
}

#[test]
fn cmscd_of_an_unknown_task_stays_put_and_keeps_cms_exit_code() {
    let env = TestEnv::new();
    let run = bash_with_cmscd(&env, "cmscd nosuch; echo \"code=$? in=$PWD\"");
    run.success();
    assert_eq!(
        run.stdout,
        format!("code=1 in={}\n", env.repo.display()),
        "{}",
        run.stderr
    );
    // Every other cms command is the binary's own, untouched by the function.
    let run = bash_with_cmscd(&env, "cms path; echo \"code=$?\"");
    assert_eq!(run.stdout, "code=2\n", "{}", run.stderr);
}

#[test]
fn shell_init_prints_a_cmscd_function_for_zsh_and_fish_too() {
    let env = TestEnv::new();
    for shell in ["zsh", "fish"] {
        let run = env.cms(&["shell-init", shell]);
        run.success();
        assert!(run.stdout.contains("cmscd"), "{}", run.stdout);
        assert!(run.stdout.contains("command cms path"), "{}", run.stdout);
    }
    env.cms(&["shell-init", "tcsh"]).code(2);
}

#[test]
fn version_names_the_crate_version_the_commit_and_the_tested_claude_code() {
    let env = TestEnv::new();
    let run = env.cms(&["--version"]);
    run.success();
    let first = run.stdout.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("cms {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.stdout
    );
    // The test binary is built from this checkout, so the commit is its HEAD's.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert!(first.contains(head.trim()), "{first} lacks {head}");
    assert!(
        run.stdout
            .contains("tested with Claude Code 2.1.197, 2.1.332"),
        "{}",
        run.stdout
    );
}
