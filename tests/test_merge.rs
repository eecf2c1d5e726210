//! `cms merge`: the task's change lands on its base branch; the user's work is never lost.

use serde_json::json;

use crate::common::TestEnv;

fn task_writing(env: &TestEnv, name: &str, path: &str, content: &str) -> serde_json::Value {
    env.steps(json!([{"write": {"path": path, "content": content}}]));
    env.task_ok(&["change", "-n", name])
}

#[test]
fn merge_fast_forwards_the_base_branch_and_updates_the_checkout() {
    let env = TestEnv::new();
    let task = task_writing(&env, "ff", "new.txt", "new\n");
    let run = env.cms(&["merge", "ff"]);
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
fn merge_refuses_to_overwrite_uncommitted_changes_and_changes_nothing() {
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
fn merge_refuses_conflicts_listing_files_and_changes_nothing() {
    let env = TestEnv::new();
    env.write("c.txt", "base\n");
    env.commit_all("c");
    env.steps(json!([
        {"read": {"path": "c.txt"}},
        {"edit": {"path": "c.txt", "old": "base", "new": "agent"}},
    ]));
    env.task_ok(&["edit c", "-n", "conflict"]);
    env.write("c.txt", "user\n");
    env.commit_all("user edit");
    let main_before = env.git(&["rev-parse", "main"]);
    let run = env.cms(&["merge", "conflict"]);
    run.code(1).one_line_error_with_hint("conflict in c.txt");
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
    env.cms(&["merge", "diverged"]).success();
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
fn merge_squash_makes_one_commit_with_the_result_and_trailers() {
    let env = TestEnv::new();
    task_writing(&env, "sq", "x.txt", "x\n");
    let before = env.git(&["rev-parse", "main"]);
    env.cms(&["merge", "sq", "--squash"]).success();
    assert_eq!(env.git(&["rev-parse", "main^"]), before);
    assert!(!env.git_ok(&["rev-parse", "--verify", "-q", "main^2"]));
    let message = env.git(&["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("change\n\ndone\n"), "{message}");
    assert!(message.contains("Cms-Task: sq"), "{message}");
    assert!(message.contains("Cms-Session: "), "{message}");
    assert_eq!(env.read("x.txt"), "x\n");
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
    env.cms(&["merge", "rel"]).success();
    assert_eq!(
        env.git(&["rev-parse", "release"]),
        task["head"].as_str().unwrap()
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
