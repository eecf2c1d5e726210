//! `cms merge`: the task's change lands on its base branch; the user's work is never lost.

use serde_json::json;

use crate::common::TestEnv;

fn task_writing(env: &TestEnv, name: &str, path: &str, content: &str) -> serde_json::Value {
    env.steps(json!([{"write": {"path": path, "content": content}}]));
    env.task_ok(&["change", "-n", name])
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
        let env = TestEnv::new();
        env.write("mine.txt", "committed\n");
        env.commit_all("mine");
        task_writing(&env, "t", "new.txt", "new\n");
        env.write("mine.txt", "the user's edit\n");
        let before = env.git(&["rev-parse", "main"]);
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
    use crate::test_real_claude::{RUN_LIMIT, real_claude, real_env, task_json};

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

/// The main checkout holds its HEAD and the user's unrelated edit, nothing else: the index is
/// HEAD's and the only change is `mine.txt`'s.
#[track_caller]
fn checkout_is_head_plus_the_users_edit(env: &TestEnv, round: usize) {
    assert_eq!(
        env.git(&["status", "--porcelain"]),
        " M mine.txt",
        "round {round}"
    );
    assert!(
        env.git_ok(&["diff", "--cached", "--quiet", "HEAD"]),
        "round {round}: the index differs from HEAD"
    );
    assert_eq!(env.read("mine.txt"), "the user's edit\n", "round {round}");
}

#[test]
fn two_concurrent_merges_of_one_task_merge_it_once_and_leave_the_checkout_at_head() {
    for round in 0..4 {
        let env = TestEnv::new();
        env.write("mine.txt", "committed\n");
        env.commit_all("mine");
        task_writing(&env, "t", "new.txt", "new\n");
        env.write("mine.txt", "the user's edit\n");
        let before = env.git(&["rev-parse", "main"]);
        // Fast-forward in one, squash in the other: whichever wins, the other's plan is stale.
        let runs: Vec<_> = [&["merge", "t", "--ff"][..], &["merge", "t"][..]]
            .into_iter()
            .map(|args| env.spawn_cms(args))
            .collect();
        let runs: Vec<_> = runs
            .into_iter()
            .map(|run| crate::common::wait_bounded(run, std::time::Duration::from_secs(60)))
            .collect();
        let won: Vec<_> = runs.iter().filter(|run| run.code == 0).collect();
        assert_eq!(won.len(), 1, "round {round}: {runs:#?}");
        for lost in runs.iter().filter(|run| run.code != 0) {
            lost.one_line_error_with_hint("already merged");
        }
        checkout_is_head_plus_the_users_edit(&env, round);
        assert_eq!(env.read("new.txt"), "new\n", "round {round}");
        assert!(
            env.tree_files("HEAD")
                .iter()
                .any(|(path, _)| path == "new.txt")
        );
        // One merge landed: one commit (or the task's own, fast-forwarded) on top of before.
        assert_eq!(env.git(&["rev-parse", "HEAD^"]), before, "round {round}");
        let shown = env.cms(&["show", "t", "--json"]).json();
        assert_eq!(shown["status"], "merged", "round {round}");
        assert_eq!(
            shown["merge"]["commit"].as_str(),
            Some(env.git(&["rev-parse", "HEAD"]).as_str()),
            "round {round}"
        );
    }
}

#[test]
fn five_concurrent_merges_of_five_tasks_all_land_one_after_the_other() {
    for round in 0..3 {
        let env = TestEnv::new();
        env.write("mine.txt", "committed\n");
        env.commit_all("mine");
        let names = ["t1", "t2", "t3", "t4", "t5"];
        for name in names {
            task_writing(&env, name, &format!("{name}.txt"), &format!("{name}\n"));
        }
        env.write("mine.txt", "the user's edit\n");
        let runs: Vec<_> = names
            .iter()
            .map(|name| env.spawn_cms(&["merge", name]))
            .collect();
        for run in runs {
            crate::common::wait_bounded(run, std::time::Duration::from_secs(60)).success();
        }
        checkout_is_head_plus_the_users_edit(&env, round);
        let files = env.tree_files("HEAD");
        let merges = env.git(&["rev-list", "--count", "HEAD"]);
        // The two commits of the set-up, then one squash commit per task.
        assert_eq!(merges, "7", "round {round}");
        for name in names {
            let path = format!("{name}.txt");
            assert!(
                files
                    .iter()
                    .any(|(p, content)| *p == path && content.trim() == name),
                "round {round}: {path} missing from HEAD: {files:?}"
            );
            assert_eq!(env.read(&path), format!("{name}\n"), "round {round}");
            let shown = env.cms(&["show", name, "--json"]).json();
            assert_eq!(shown["status"], "merged", "round {round}: {name}");
        }
    }
}

#[test]
fn taking_back_an_interrupted_merge_restores_only_the_files_it_wrote() {
    let env = TestEnv::new();
    env.write("mine.txt", "committed\n");
    env.commit_all("mine");
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"write": {"path": "b.txt", "content": "b\n"}},
    ]));
    env.task_ok(&["two files", "-n", "t"]);
    // Killed once the checkout has the merge's files and before main moves.
    let run = crate::common::Run::from(
        env.cms_command(&env.repo, &["merge", "t"])
            .env("CMS_TEST_KILL_AT", "3")
            .output()
            .unwrap(),
    );
    assert!(
        run.stderr
            .contains("killed at step 'merge:checkout-updated'"),
        "{}",
        run.stderr
    );
    // Meanwhile the user edits one of them and moves main with a commit of their own.
    env.write("a.txt", "the user's a\n");
    env.write("other.txt", "other\n");
    env.git(&["add", "other.txt"]);
    env.git(&["commit", "-q", "-m", "other", "--", "other.txt"]);
    let head = env.git(&["rev-parse", "HEAD"]);
    let settled = env.cms(&["list"]);
    settled.success();
    assert!(settled.stderr.contains("took back"), "{}", settled.stderr);
    assert_eq!(env.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(env.read("a.txt"), "the user's a\n");
    assert!(!env.repo.join("b.txt").exists());
    let status = env.git(&["status", "--porcelain"]);
    assert!(!status.contains("b.txt"), "{status}");
    assert_eq!(
        env.cms(&["show", "t", "--json"]).json()["status"],
        "completed"
    );
}
