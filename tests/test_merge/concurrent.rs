//! Merges side by side and merges cut short: concurrent merges of one task or of several land
//! each once, in turn, and an interrupted merge is taken back to exactly the files it wrote.

use serde_json::json;

use super::{task_beside_the_users_edit, task_writing};
use crate::common::TestEnv;

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
        let (env, before) = task_beside_the_users_edit();
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
