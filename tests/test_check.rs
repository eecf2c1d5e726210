//! `cms check`: the protected-path rules for git hooks, on the index, on revision ranges and
//! on tasks.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::common::{CMS, TestEnv};

fn protected_env() -> TestEnv {
    let env = TestEnv::new();
    env.write(".cms.toml", "[safety]\nprotected = [\"infra/**\"]\n");
    env.write("infra/main.tf", "resource {}\n");
    env.write("src/lib.rs", "pub fn f() {}\n");
    env.commit_all("protect infra");
    env
}

fn paths(run: &crate::common::Run) -> Vec<String> {
    run.json()["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn check_staged_reports_protected_paths_in_the_index_and_ignores_unstaged_work() {
    let env = protected_env();
    env.write("infra/main.tf", "changed\n");
    env.write("src/lib.rs", "pub fn g() {}\n");
    env.git(&["add", "src/lib.rs"]);
    let clean = env.cms(&["check", "--staged", "--json"]);
    clean.success();
    assert_eq!(clean.json()["ok"], true);
    env.git(&["add", "infra/main.tf"]);
    let run = env.cms(&["check", "--staged", "--json"]);
    run.code(3);
    assert_eq!(paths(&run), ["infra/main.tf"]);
    let human = env.cms(&["check", "--staged"]);
    human.code(3);
    assert!(
        human
            .stdout
            .contains("violation: protected_path modified: infra/main.tf is protected"),
        "{}",
        human.stdout
    );
    assert!(human.stderr.contains("hint:"), "{}", human.stderr);
}

#[test]
fn check_staged_in_a_pre_commit_hook_sees_the_index_of_commit_all() {
    let env = protected_env();
    let hook = env.repo.join(".git/hooks/pre-commit");
    std::fs::write(&hook, format!("#!/bin/sh\nexec '{CMS}' check --staged\n")).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let head = env.git(&["rev-parse", "HEAD"]);
    env.write("infra/main.tf", "changed\n");
    // `git commit -a` stages into a temporary index named in GIT_INDEX_FILE.
    assert!(!env.git_ok(&["commit", "-qam", "sneaky"]));
    assert_eq!(env.git(&["rev-parse", "HEAD"]), head);
    env.git(&["checkout", "--", "infra/main.tf"]);
    env.write("src/lib.rs", "pub fn g() {}\n");
    env.git(&["commit", "-qam", "fine"]);
    assert_ne!(env.git(&["rev-parse", "HEAD"]), head);
}

#[test]
fn check_ranges_report_what_the_commits_bring() {
    let env = protected_env();
    let root = env.git(&["rev-list", "--max-parents=0", "HEAD"]);
    env.git(&["checkout", "-q", "-b", "feature"]);
    env.write("src/lib.rs", "pub fn g() {}\n");
    env.commit_all("benign");
    let benign = env.git(&["rev-parse", "HEAD"]);
    env.git(&["mv", "infra/main.tf", "main.tf"]);
    env.commit_all("move infra out");
    let sneaky = env.git(&["rev-parse", "HEAD"]);
    env.git(&["checkout", "-q", "main"]);
    env.write("infra/other.tf", "main's own\n");
    env.commit_all("main moves on");

    // main..feature is what feature adds since it forked: not main's own commit.
    let run = env.cms(&["check", "--json", "main..feature"]);
    run.code(3);
    assert_eq!(paths(&run), ["infra/main.tf"]);
    env.cms(&["check", &benign]).success();
    env.cms(&["check", &format!("main..{benign}")]).success();
    assert_eq!(
        paths(env.cms(&["check", "--json", &sneaky]).code(3)),
        ["infra/main.tf"]
    );
    // A root commit is its own change from nothing; so is a range from the empty tree.
    env.cms(&["check", &root]).success();
    let everything = format!("{}..feature", crate::common::EMPTY_TREE);
    let all = env.cms(&["check", "--json", &everything]);
    all.code(3);
    assert_eq!(all.json()["checked"], json!([everything]));
    // All of feature's files are new from nothing, the always-protected .cms.toml included.
    assert_eq!(paths(&all), [".cms.toml"]);
}

#[test]
fn check_task_reports_the_tasks_violations() {
    let env = protected_env();
    env.steps(json!([{"bash": "echo x >> infra/main.tf"}]));
    env.cms(&["task", "sneak", "--name", "sneak", "-p", "full"])
        .code(3);
    let run = env.cms(&["check", "--task", "sneak", "--json"]);
    run.code(3);
    assert_eq!(paths(&run), ["infra/main.tf"]);
    env.steps(json!([{"bash": "echo x >> src/lib.rs"}]));
    env.cms(&["task", "fine", "--name", "fine", "-p", "full"])
        .success();
    env.cms(&["check", "--task", "fine"]).success();
}

#[test]
fn diff_says_which_protected_paths_a_task_touches_and_still_exits_0() {
    let env = protected_env();
    env.steps(json!([{"bash": "echo x >> infra/main.tf"}]));
    env.cms(&["task", "sneak", "--name", "sneak", "-p", "full"])
        .code(3);
    let stat = env.cms(&["diff", "sneak", "--stat"]);
    stat.success();
    assert!(stat.stdout.contains("infra/main.tf"), "{}", stat.stdout);
    assert!(
        stat.stderr
            .contains("warning: task 'sneak' touches protected paths:"),
        "{}",
        stat.stderr
    );
    assert!(stat.stderr.contains("infra/main.tf"), "{}", stat.stderr);
    assert!(stat.stderr.contains("hint: `cms merge --allow-protected`"));
    assert_eq!(
        paths(&env.cms(&["diff", "sneak", "--json"])),
        ["infra/main.tf"]
    );

    env.steps(json!([{"bash": "echo x >> src/lib.rs"}]));
    let task = env.task_ok(&["fine", "--name", "fine", "-p", "full"]);
    let clean = env.cms(&["diff", "fine", "--stat"]);
    clean.success();
    assert_eq!(clean.stderr, "");
    assert_eq!(
        env.cms(&["diff", "fine", "--json"]).json()["violations"],
        json!([])
    );
    // Work left in the worktree after the session counts too.
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("infra/main.tf"), "changed later\n").unwrap();
    assert_eq!(
        paths(&env.cms(&["diff", "fine", "--json"])),
        ["infra/main.tf"]
    );
    // --base shows the target's change, which is not the task's to answer for.
    let base = env.cms(&["diff", "fine", "--base", "--json"]).json();
    assert!(base.get("violations").is_none(), "{base}");
}

#[test]
fn check_bad_input_gets_one_line_errors() {
    let env = protected_env();
    env.cms(&["check"]).code(2);
    env.cms(&["check", "nosuchrev..HEAD"])
        .code(1)
        .one_line_error_with_hint("nosuchrev");
    env.cms(&["check", "--task", "nosuchtask"])
        .code(1)
        .one_line_error_with_hint("nosuchtask");
    let outside = TestEnv::empty();
    std::fs::create_dir_all(&outside.repo).unwrap();
    outside
        .cms(&["check", "--staged"])
        .code(1)
        .one_line_error_with_hint("not in a git repository");
}

#[test]
fn installed_hooks_run_the_real_check_and_block_protected_commits_and_pushes() {
    let env = protected_env();
    let remote = env.root.join("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    env.git(&["push", "-q", "origin", "main"]);
    env.cms(&["hooks", "install"]).success();

    env.write("infra/main.tf", "changed\n");
    let commit = env.git_run_in(&env.repo, &["commit", "-qam", "sneaky"]);
    assert_ne!(
        commit.code, 0,
        "the pre-commit hook let a protected change through"
    );
    assert!(commit.stderr.contains("infra/main.tf"), "{}", commit.stderr);

    // Committed past the hook, the change is still stopped at the push.
    env.git(&["commit", "-q", "--no-verify", "-am", "sneaky"]);
    let push = env.git_run_in(&env.repo, &["push", "-q", "origin", "main"]);
    assert_ne!(
        push.code, 0,
        "the pre-push hook let a protected change through"
    );
    assert!(
        format!("{}{}", push.stdout, push.stderr).contains("infra/main.tf"),
        "{push:?}"
    );
    env.git(&["reset", "-q", "--hard", "HEAD^"]);
    env.write("src/lib.rs", "pub fn g() {}\n");
    env.git(&["commit", "-qam", "fine"]);
    env.git(&["push", "-q", "origin", "main"]);
}
