//! `cms merge`: the task's change lands on its base branch; the user's work is never lost.

mod concurrent;
mod nothing;
mod rebase;

use serde_json::json;

use crate::common::TestEnv;

fn task_writing(env: &TestEnv, name: &str, path: &str, content: &str) -> serde_json::Value {
    env.steps(json!([{"write": {"path": path, "content": content}}]));
    env.task_ok(&["change", "-n", name])
}

/// A task `t` that wrote new.txt, beside the user's uncommitted edit of mine.txt in the main
/// checkout; and main's tip.
fn task_beside_the_users_edit() -> (TestEnv, String) {
    let env = TestEnv::new();
    env.write("mine.txt", "committed\n");
    env.commit_all("mine");
    task_writing(&env, "t", "new.txt", "new\n");
    env.write("mine.txt", "the user's edit\n");
    let before = env.git(&["rev-parse", "main"]);
    (env, before)
}

/// A completed task `name` that edits `c.txt`, which the user then changes on main too: its
/// merge conflicts.
fn conflicting_task(env: &TestEnv, name: &str) {
    env.write("c.txt", "base\n");
    env.commit_all("c");
    env.steps(json!([
        {"read": {"path": "c.txt"}},
        {"edit": {"path": "c.txt", "old": "base", "new": "agent"}},
    ]));
    env.task_ok(&["edit c", "-n", name]);
}

#[test]
fn merge_ff_fast_forwards_the_base_branch_and_updates_the_checkout() {
    let env = TestEnv::new();
    let task = task_writing(&env, "ff", "new.txt", "new\n");
    let run = env.cms(&["merge", "ff", "--ff"]);
    run.success();
    assert!(run.stdout.contains("fast-forward"), "{}", run.stdout);
    assert_eq!(
        env.git(&["rev-parse", "main"]),
        task["head"].as_str().unwrap()
    );
    assert_eq!(env.read("new.txt"), "new\n");
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    // The worktree and branch are gone; the record stays as merged.
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(env.worktrees(), std::slice::from_ref(&env.repo));
    let shown = env.cms(&["show", "--json", "ff"]).json();
    assert_eq!(shown["status"], "merged");
    assert_eq!(shown["merge"]["into"], "main");
    assert_eq!(shown["merge"]["kind"], "fast_forward");
}

#[test]
fn merge_preserves_uncommitted_changes_in_main_checkout() {
    let env = TestEnv::new();
    env.write("mine.txt", "committed\n");
    env.commit_all("mine");
    task_writing(&env, "keep", "theirs.txt", "theirs\n");
    // Unrelated work in progress: an edit, a staged file, an untracked file.
    env.write("mine.txt", "edited but not committed\n");
    env.write("staged.txt", "staged\n");
    env.git(&["add", "staged.txt"]);
    env.write("untracked.txt", "untracked\n");
    env.cms(&["merge", "keep"]).success();
    assert_eq!(env.read("theirs.txt"), "theirs\n");
    assert_eq!(env.read("mine.txt"), "edited but not committed\n");
    assert_eq!(env.read("untracked.txt"), "untracked\n");
    let status = env.git(&["status", "--porcelain"]);
    assert!(status.contains(" M mine.txt"), "{status}");
    assert!(status.contains("A  staged.txt"), "{status}");
    assert!(status.contains("?? untracked.txt"), "{status}");
    assert!(!status.contains("theirs.txt"), "{status}");
}

#[test]
fn merge_refuses_when_it_would_overwrite_local_edits() {
    let env = TestEnv::new();
    env.write("shared.txt", "base\n");
    env.commit_all("shared");
    env.steps(json!([
        {"read": {"path": "shared.txt"}},
        {"edit": {"path": "shared.txt", "old": "base", "new": "agent"}},
    ]));
    env.task_ok(&["edit shared", "-n", "clash"]);
    env.write("shared.txt", "my own edit\n");
    let main_before = env.git(&["rev-parse", "main"]);
    env.cms(&["merge", "clash"])
        .code(1)
        .one_line_error_with_hint("would overwrite uncommitted changes");
    assert_eq!(env.read("shared.txt"), "my own edit\n");
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(env.branches().contains(&"cms/clash".to_owned()));
    assert_eq!(
        env.cms(&["show", "--json", "clash"]).json()["status"],
        "completed"
    );
}

#[test]
fn merge_refuses_an_untracked_file_in_the_way() {
    let env = TestEnv::new();
    task_writing(&env, "way", "new.txt", "agent\n");
    env.write("new.txt", "mine, untracked\n");
    env.cms(&["merge", "way"])
        .code(1)
        .one_line_error_with_hint("new.txt");
    assert_eq!(env.read("new.txt"), "mine, untracked\n");
}

#[test]
fn merge_conflict_changes_nothing() {
    let env = TestEnv::new();
    conflicting_task(&env, "conflict");
    env.write("c.txt", "user\n");
    env.commit_all("user edit");
    let main_before = env.git(&["rev-parse", "main"]);
    let run = env.cms(&["merge", "conflict"]);
    run.code(1)
        .one_line_error_with_hint("task 'conflict' conflicts with main in c.txt");
    assert!(
        run.stderr.contains("`cms continue conflict --rebase`"),
        "{}",
        run.stderr
    );
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert_eq!(env.read("c.txt"), "user\n");
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert!(env.branches().contains(&"cms/conflict".to_owned()));
}

#[test]
fn merge_creates_a_merge_commit_when_the_base_moved_on() {
    let env = TestEnv::new();
    task_writing(&env, "diverged", "task.txt", "task\n");
    env.write("user.txt", "user\n");
    env.commit_all("user work");
    let user_tip = env.git(&["rev-parse", "main"]);
    env.cms(&["merge", "diverged", "--ff"]).success();
    assert_eq!(env.git(&["rev-parse", "main^1"]), user_tip);
    let message = env.git(&["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with("Merge cms task 'diverged': change"),
        "{message}"
    );
    assert!(message.contains("Cms-Task: diverged"), "{message}");
    assert!(message.contains("Cms-Cost: $"), "{message}");
    assert_eq!(env.read("task.txt"), "task\n");
    assert_eq!(env.read("user.txt"), "user\n");
}

#[test]
fn merge_no_ff_always_makes_a_merge_commit() {
    let env = TestEnv::new();
    let task = task_writing(&env, "noff", "x.txt", "x\n");
    let before = env.git(&["rev-parse", "main"]);
    env.cms(&["merge", "noff", "--no-ff"]).success();
    assert_eq!(env.git(&["rev-parse", "main^1"]), before);
    assert_eq!(
        env.git(&["rev-parse", "main^2"]),
        task["head"].as_str().unwrap()
    );
}

#[test]
fn squash_message_has_result_and_trailers() {
    let env = TestEnv::new();
    let task = task_writing(&env, "sq", "x.txt", "x\n");
    let before = env.git(&["rev-parse", "main"]);
    // Squash is the default: one commit, whatever the task's sessions committed.
    let run = env.cms(&["merge", "sq"]);
    run.success();
    assert!(run.stdout.contains("(squash, "), "{}", run.stdout);
    assert_eq!(env.git(&["rev-parse", "main^"]), before);
    assert!(!env.git_ok(&["rev-parse", "--verify", "-q", "main^2"]));
    let message = env.git(&["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("change\n\ndone\n"), "{message}");
    let session = task["session_id"].as_str().unwrap();
    for trailer in [
        "Cms-Task: sq".to_owned(),
        format!("Cms-Session: {session}"),
        format!("Cms-Cost: ${:.4}", task["cost_usd"].as_f64().unwrap()),
        format!("Cms-Turns: {}", task["turns"]),
    ] {
        assert!(
            message.contains(&trailer),
            "{trailer} missing from {message}"
        );
    }
    // git reads them as trailers.
    let parsed = env.git(&[
        "log",
        "-1",
        "--format=%(trailers:key=Cms-Task,valueonly)",
        "main",
    ]);
    assert_eq!(parsed, "sq");
    assert_eq!(env.read("x.txt"), "x\n");
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert_eq!(
        env.cms(&["show", "sq", "--json"]).json()["merge"]["kind"],
        "squash"
    );
}

#[test]
fn merge_rebase_replays_the_task_on_top_of_the_base() {
    let env = TestEnv::new();
    task_writing(&env, "rb", "task.txt", "task\n");
    env.write("user.txt", "user\n");
    env.commit_all("user work");
    let user_tip = env.git(&["rev-parse", "main"]);
    env.cms(&["merge", "rb", "--rebase"]).success();
    assert_eq!(env.git(&["rev-parse", "main^"]), user_tip);
    assert!(
        env.git(&["log", "-1", "--format=%B", "main"])
            .starts_with("change")
    );
    assert_eq!(env.read("task.txt"), "task\n");
}

#[test]
fn merge_keep_leaves_worktree_and_branch() {
    let env = TestEnv::new();
    let task = task_writing(&env, "kept", "x.txt", "x\n");
    env.cms(&["merge", "kept", "--keep"]).success();
    assert!(env.branches().contains(&"cms/kept".to_owned()));
    assert!(std::path::Path::new(task["worktree"].as_str().unwrap()).is_dir());
    env.cms(&["merge", "kept"])
        .code(1)
        .one_line_error_with_hint("already merged");
}

#[test]
fn merge_into_a_branch_that_is_not_checked_out_moves_only_the_branch() {
    let env = TestEnv::new();
    env.git(&["branch", "release"]);
    env.steps(json!([{"write": {"path": "r.txt", "content": "r\n"}}]));
    let task = env.task_ok(&["x", "-n", "rel", "--base", "release"]);
    let main_before = env.git(&["rev-parse", "main"]);
    let release_before = env.git(&["rev-parse", "release"]);
    env.cms(&["merge", "rel"]).success();
    assert_eq!(env.git(&["rev-parse", "release^"]), release_before);
    assert_eq!(
        env.git(&["rev-parse", "release^{tree}"]),
        env.git(&[
            "rev-parse",
            &format!("{}^{{tree}}", task["head"].as_str().unwrap())
        ])
    );
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(!env.repo.join("r.txt").exists());
}

#[test]
fn merge_of_a_detached_task_needs_into() {
    let env = TestEnv::new();
    env.git(&["checkout", "-q", "--detach"]);
    task_writing(&env, "det", "d.txt", "d\n");
    env.git(&["checkout", "-q", "main"]);
    let run = env.cms(&["merge", "det"]);
    run.code(1).one_line_error_with_hint("detached HEAD");
    assert!(
        run.stderr
            .contains("hint: name one: cms merge det --into <BRANCH>"),
        "{}",
        run.stderr
    );
    env.cms(&["merge", "det", "--into", "main"]).success();
    assert_eq!(env.read("d.txt"), "d\n");
}

#[test]
fn merge_refuses_uncommitted_work_in_the_task_worktree() {
    let env = TestEnv::new();
    let task = task_writing(&env, "dirty", "x.txt", "x\n");
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("late.txt"), "added after the session\n").unwrap();
    env.cms(&["merge", "dirty"])
        .code(1)
        .one_line_error_with_hint("uncommitted changes in its worktree");
    assert!(worktree.join("late.txt").exists());
}

#[test]
fn merge_json_reports_the_merged_task() {
    let env = TestEnv::new();
    task_writing(&env, "js", "x.txt", "x\n");
    let run = env.cms(&["merge", "js", "--json"]);
    run.success();
    let value = run.json();
    assert_eq!(value["status"], "merged");
    assert_eq!(value["merge"]["removed"], true);
    assert_eq!(value["merge"]["commit"], env.git(&["rev-parse", "main"]));
}

/// Writes `.cms.toml` in the main checkout (uncommitted: the file there is what cms reads),
/// and trusts it: its checks are commands.
fn repo_config(env: &TestEnv, text: &str) {
    env.write(".cms.toml", text);
    env.trust();
}

#[test]
fn merge_delete_vs_modify_conflict_changes_nothing() {
    let env = TestEnv::new();
    env.write("c.txt", "base\n");
    env.commit_all("c");
    env.steps(json!([{"delete": "c.txt"}]));
    env.task_ok(&["drop c", "-n", "gone"]);
    env.write("c.txt", "changed by the user\n");
    env.commit_all("user edit");
    let main_before = env.git(&["rev-parse", "main"]);
    env.cms(&["merge", "gone"])
        .code(1)
        .one_line_error_with_hint("conflicts with main in c.txt");
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert_eq!(env.read("c.txt"), "changed by the user\n");
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert_eq!(
        env.cms(&["show", "gone", "--json"]).json()["status"],
        "completed"
    );
}

#[test]
fn merge_into_branch_checked_out_in_another_worktree() {
    let env = TestEnv::new();
    env.git(&["branch", "release"]);
    let other = env.root.join("release-checkout");
    env.git(&["worktree", "add", "-q", other.to_str().unwrap(), "release"]);
    std::fs::write(other.join("wip.txt"), "the user's work in progress\n").unwrap();
    env.steps(json!([{"write": {"path": "r.txt", "content": "r\n"}}]));
    env.task_ok(&["x", "-n", "rel", "--base", "release"]);
    let main_before = env.git(&["rev-parse", "main"]);
    let run = env.cms(&["merge", "rel"]);
    run.success();
    assert!(
        run.stdout.contains("Its checkout was updated."),
        "{}",
        run.stdout
    );
    // That checkout follows its branch, keeping the user's untracked work.
    assert_eq!(std::fs::read_to_string(other.join("r.txt")).unwrap(), "r\n");
    assert_eq!(
        std::fs::read_to_string(other.join("wip.txt")).unwrap(),
        "the user's work in progress\n"
    );
    assert_eq!(env.git_in(&other, &["status", "--porcelain"]), "?? wip.txt");
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(!env.repo.join("r.txt").exists());
}

#[test]
fn failing_check_refuses_merge_and_changes_nothing() {
    let env = TestEnv::new();
    repo_config(
        &env,
        "[merge]\ncheck = [\"test -f ok.txt || { echo checking; echo ok.txt is missing; exit 3; }\"]\n",
    );
    task_writing(&env, "bad", "other.txt", "x\n");
    let main_before = env.git(&["rev-parse", "main"]);
    let worktrees_before = env.worktrees();
    let run = env.cms(&["merge", "bad"]);
    run.code(1)
        .one_line_error_with_hint("merge check `test -f ok.txt");
    assert!(run.stderr.contains("failed (exit 3)"), "{}", run.stderr);
    assert!(run.stderr.contains("ok.txt is missing"), "{}", run.stderr);
    assert!(run.stderr.contains("--no-check"), "{}", run.stderr);
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert_eq!(env.worktrees(), worktrees_before);
    assert_eq!(
        env.cms(&["show", "bad", "--json"]).json()["status"],
        "completed"
    );
    // --no-check merges anyway.
    env.cms(&["merge", "bad", "--no-check"]).success();
    assert_eq!(env.read("other.txt"), "x\n");
}

#[test]
fn checks_run_on_the_merge_result_and_are_reported() {
    let env = TestEnv::new();
    repo_config(
        &env,
        "[merge]\ncheck = [\"test -f task.txt\", \"test -f user.txt\"]\n",
    );
    task_writing(&env, "good", "task.txt", "t\n");
    // The base moved on: the checks see the merge of both, in a scratch worktree.
    env.write("user.txt", "u\n");
    env.git(&["add", "user.txt"]);
    env.git(&["commit", "-q", "-m", "user work"]);
    let worktrees_before = env.worktrees();
    let run = env.cms(&["merge", "good", "--json", "--keep"]);
    run.success();
    let task = run.json();
    assert_eq!(
        task["merge"]["checks"],
        json!(["test -f task.txt", "test -f user.txt"])
    );
    assert!(
        run.stderr.contains("check test -f task.txt"),
        "{}",
        run.stderr
    );
    // The scratch worktree is gone.
    assert_eq!(env.worktrees(), worktrees_before);
}

#[test]
fn merge_runs_the_repositorys_commit_hooks_unless_no_verify() {
    let env = TestEnv::new();
    let hooks = env.common_dir().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let install = |name: &str, body: &str| {
        let path = hooks.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
    };
    install("commit-msg", "printf '\\nHooked: yes\\n' >> \"$1\"");
    install(
        "pre-commit",
        "if git diff --cached --name-only | grep -q forbidden.txt; then echo 'forbidden.txt may not be committed' >&2; exit 1; fi",
    );
    task_writing(&env, "fine", "fine.txt", "f\n");
    env.cms(&["merge", "fine"]).success();
    let message = env.git(&["log", "-1", "--format=%B", "main"]);
    assert!(message.contains("Hooked: yes"), "{message}");
    assert!(message.contains("Cms-Task: fine"), "{message}");

    task_writing(&env, "nope", "forbidden.txt", "f\n");
    let main_before = env.git(&["rev-parse", "main"]);
    let run = env.cms(&["merge", "nope"]);
    run.code(1)
        .one_line_error_with_hint("the repository's hooks refused the merge commit");
    assert!(
        run.stderr.contains("forbidden.txt may not be committed"),
        "{}",
        run.stderr
    );
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(!env.repo.join("forbidden.txt").exists());
    env.cms(&["merge", "nope", "--no-verify"]).success();
    assert_eq!(env.read("forbidden.txt"), "f\n");
}

#[test]
fn merging_three_tasks_stops_at_the_first_conflict() {
    let env = TestEnv::new();
    task_writing(&env, "first", "a.txt", "a\n");
    conflicting_task(&env, "second");
    task_writing(&env, "third", "b.txt", "b\n");
    env.write("c.txt", "user\n");
    env.commit_all("user edit");
    let run = env.cms(&["merge", "first", "second", "third", "--json"]);
    run.code(1);
    let out = run.json();
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("task 'second' conflicts with main in c.txt (merged before it: first)"),
        "{out:#}"
    );
    assert_eq!(out["merged"][0]["name"], "first");
    assert_eq!(env.read("a.txt"), "a\n");
    assert!(!env.repo.join("b.txt").exists());
    let status = |name: &str| env.cms(&["show", name, "--json"]).json()["status"].clone();
    assert_eq!(status("first"), "merged");
    assert_eq!(status("second"), "completed");
    assert_eq!(status("third"), "completed");
    // The rest merge once the conflict is out of the way.
    env.cms(&["merge", "third"]).success();
    assert_eq!(env.read("b.txt"), "b\n");
}

#[test]
fn merge_survives_a_kill_at_every_step() {
    for step in 1.. {
        let (env, before) = task_beside_the_users_edit();
        let run = crate::common::Run::from(
            env.cms_command(&env.repo, &["merge", "t"])
                .env("CMS_TEST_KILL_AT", step.to_string())
                .output()
                .unwrap(),
        );
        let killed = run.code == -1;
        if killed {
            assert!(run.stderr.contains("killed at step"), "{}", run.stderr);
        } else {
            run.success();
        }
        // The next command settles whatever the kill left.
        env.cms(&["list"]).success();
        let merged = env.git(&["rev-parse", "main"]) != before;
        let status = env.cms(&["show", "t", "--json"]).json()["status"].clone();
        let listing = env.git(&["status", "--porcelain"]);
        if merged {
            assert_eq!(status, "merged", "step {step}");
            assert_eq!(env.git(&["rev-parse", "main^"]), before, "step {step}");
            assert_eq!(env.read("new.txt"), "new\n", "step {step}");
            assert_eq!(listing, " M mine.txt", "step {step}");
        } else {
            assert_eq!(status, "completed", "step {step}");
            assert!(!env.repo.join("new.txt").exists(), "step {step}");
            assert_eq!(listing, " M mine.txt", "step {step}");
            // And it merges when asked again.
            env.cms(&["merge", "t"]).success();
            assert_eq!(env.read("new.txt"), "new\n", "step {step}");
        }
        assert_eq!(env.read("mine.txt"), "the user's edit\n", "step {step}");
        if !killed {
            assert!(step > 3, "the merge passed only {step} step points");
            break;
        }
    }
}
