//! A merge that would not change the target: the task's change is already there, or there is
//! none. No commit is made, the target does not move, and cms says so.

use serde_json::json;

use super::task_writing;
use crate::common::TestEnv;

#[test]
fn merging_a_change_already_in_the_target_makes_no_commit_and_says_so() {
    let env = TestEnv::new();
    task_writing(&env, "picked", "new.txt", "new\n");
    env.steps(json!([{"write": {"path": "new.txt", "content": "new\n"}}]));
    env.task_ok(&["again", "-n", "again"]);
    // The user took the change by hand (as a cherry-pick would).
    env.write("new.txt", "new\n");
    env.commit_all("new.txt, by hand");
    let main = env.git(&["rev-parse", "main"]);
    let run = env.cms(&["merge", "picked"]);
    run.success();
    assert!(
        run.stdout
            .contains("Nothing to merge: task 'picked''s change is already in main"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("Merged"), "{}", run.stdout);
    assert_eq!(env.git(&["rev-parse", "main"]), main);
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    // The task is done with as a merge is: recorded merged, its worktree and branch gone.
    assert!(!env.branches().contains(&"cms/picked".to_owned()));
    let shown = env.cms(&["show", "--json", "picked"]).json();
    assert_eq!(shown["status"], "merged");
    assert_eq!(shown["merge"]["commit"], main.as_str());
    assert_eq!(shown["merge"]["nothing_to_merge"], "already_in_target");
    // Every mode, --json too: a merge commit would be just as empty.
    let merged = env.cms(&["merge", "again", "--no-ff", "--json"]).json();
    assert_eq!(merged["status"], "merged");
    assert_eq!(merged["merge"]["kind"], "up_to_date");
    assert_eq!(merged["merge"]["nothing_to_merge"], "already_in_target");
    assert_eq!(merged["merge"]["removed"], true);
    assert_eq!(env.git(&["rev-parse", "main"]), main);
}

#[test]
fn merging_a_task_that_changed_nothing_makes_no_commit_and_says_so() {
    let env = TestEnv::new();
    env.steps(json!([{"text": "Nothing needs changing."}]));
    env.task_ok(&["look", "-n", "idle"]);
    // The target moved on meanwhile: a merge commit would still bring nothing.
    env.write("other.txt", "other\n");
    env.commit_all("other");
    let main = env.git(&["rev-parse", "main"]);
    let run = env.cms(&["merge", "idle", "--no-ff"]);
    run.success();
    assert!(
        run.stdout
            .contains("Nothing to merge: task 'idle' changed nothing"),
        "{}",
        run.stdout
    );
    assert_eq!(env.git(&["rev-parse", "main"]), main);
    let shown = env.cms(&["show", "--json", "idle"]).json();
    assert_eq!(shown["status"], "merged");
    assert_eq!(shown["merge"]["nothing_to_merge"], "no_changes");
    assert_eq!(env.branches(), ["main"]);
}

#[test]
fn a_real_merge_says_it_had_something_to_merge() {
    let env = TestEnv::new();
    task_writing(&env, "real", "new.txt", "new\n");
    let merged = env.cms(&["merge", "real", "--json"]).json();
    assert_eq!(merged["merge"]["kind"], "squash");
    assert_eq!(merged["merge"]["nothing_to_merge"], serde_json::Value::Null);
    assert_ne!(
        env.git(&["rev-parse", "main^{tree}"]),
        env.git(&["rev-parse", "main~1^{tree}"])
    );
}
