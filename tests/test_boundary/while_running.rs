//! What the user and cms do while a sandboxed task runs (merge, continue, edit, gc, a packed
//! branch moved) is not held against the task, nothing of it is put back, and a task that
//! undoes the user's move is caught.

use serde_json::json;

use super::{attack, show, victim};
use crate::common::{TestEnv, violations, warnings};

#[test]
fn git_gc_packing_loose_objects_while_a_task_runs_loses_nothing_and_is_no_violation() {
    let env = TestEnv::new();
    victim(&env);
    let commit = env.git(&["rev-parse", "cms/other"]);
    let loose = env
        .common_dir()
        .join("objects")
        .join(&commit[..2])
        .join(&commit[2..]);
    assert!(loose.is_file());
    let (run, task) = attack(&env, "tidy", json!([{"bash": "git gc -q --prune=now"}]));
    run.success();
    assert_eq!(task["safety"]["violations"], json!([]), "{task:#}");
    // Packed, not lost: and not put back as a loose copy either.
    assert!(!loose.exists());
    assert_eq!(env.git(&["show", "cms/other:other.txt"]), "mine");
}

/// Waits for `path` to exist, which a task's Bash creates when it has reached that point.
fn until_exists(path: &std::path::Path) {
    crate::common::eventually(&format!("{} to appear", path.display()), || path.exists());
}

/// While task `c` (recorded sandboxed) waits inside its session, the user merges task `a`,
/// continues task `b` (its follow-up commits), edits a tracked and an ignored file of their
/// checkout, changes git's config and makes a branch; with `packed`, every ref was packed
/// first, so the merge writes main's loose ref where `c`'s sandbox could have.
fn parallel_work_while_a_task_runs(packed: bool) {
    let env = TestEnv::new();
    env.write(".gitignore", ".env\n");
    env.write("shared.txt", "shared\n");
    env.commit_all("shared");
    env.write(".env", "SECRET=1\n");
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["task a", "--name", "a"]);
    env.steps(json!([{"write": {"path": "b.txt", "content": "b\n"}}]));
    let b_first = env.task_ok(&["task b", "--name", "b"]);
    if packed {
        env.git(&["pack-refs", "--all"]);
        assert!(!env.common_dir().join("refs/heads/main").exists());
    }
    let started = env.root.join("c-started");
    let go = env.root.join("c-go");
    let script = env.root.join("c-script.json");
    let steps = json!({"turns": [{"steps": [
        {"bash": format!("touch {} && until [ -f {} ]; do sleep 0.02; done", started.display(), go.display())},
        {"write": {"path": "c.txt", "content": "c\n"}},
    ], "result": "done"}]});
    std::fs::write(&script, steps.to_string()).unwrap();
    let mut cmd = env.cms_command(&env.repo, &["task", "--json", "task c", "--name", "c"]);
    cmd.env("FAKE_CLAUDE_SCRIPT", &script);
    let c = crate::common::Background::spawn(&mut cmd);
    until_exists(&started);

    env.cms(&["merge", "a"]).success();
    let a = show(&env, "a");
    assert_eq!(a["status"], "merged", "{a:#}");
    env.steps(json!([{"write": {"path": "b2.txt", "content": "more\n"}}]));
    let followed = env.cms(&["continue", "b", "more", "--json"]);
    followed.success();
    let b = followed.json();
    assert_eq!(b["status"], "completed", "{b:#}");
    assert!(b["turns"].as_u64() > b_first["turns"].as_u64(), "{b:#}");
    env.write("shared.txt", "edited by the user\n");
    env.write(".env", "SECRET=2\n");
    env.git(&["config", "cms-test.touched", "yes"]);
    env.git(&["branch", "feature"]);
    std::fs::write(&go, "").unwrap();
    let run = crate::common::wait_bounded(c, std::time::Duration::from_secs(120));
    run.success();
    let task = run.json();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]), "{task:#}");
    // A new branch in refs/heads/ could have been the task's: said, not held against it.
    assert_eq!(warnings(&task), ["git_ref refs/heads/feature"], "{task:#}");

    // Nothing of a's or b's was put back: their records, ledgers and branches are as cms and
    // the user left them.
    assert_eq!(show(&env, "a"), a);
    let b_now = show(&env, "b");
    assert_eq!(b_now["status"], "completed");
    assert_eq!(b_now["turns"], b["turns"]);
    assert_eq!(b_now["cost_usd"], b["cost_usd"]);
    assert_eq!(b_now["head"], b["head"]);
    assert_eq!(
        env.git(&["rev-parse", "cms/b"]),
        b["head"].as_str().unwrap()
    );
    assert_eq!(env.git(&["show", "cms/b:b2.txt"]), "more");
    assert_eq!(env.read("shared.txt"), "edited by the user\n");
    env.cms(&["merge", "c"]).success();
    env.cms(&["merge", "b"]).success();
    assert_eq!(env.read("c.txt"), "c\n");
    assert_eq!(env.read("b2.txt"), "more\n");
}

#[test]
fn merging_continuing_and_editing_while_a_sandboxed_task_runs_blames_and_undoes_nothing() {
    parallel_work_while_a_task_runs(false);
}

#[test]
fn a_merge_that_moves_a_packed_branch_while_a_sandboxed_task_runs_is_known_by_its_reflog() {
    parallel_work_while_a_task_runs(true);
}

#[test]
fn a_sandboxed_task_undoing_the_users_move_of_a_packed_branch_is_a_violation() {
    let env = TestEnv::new();
    env.git(&["pack-refs", "--all"]);
    let main_ref = env.common_dir().join("refs/heads/main");
    let started = env.root.join("started");
    let go = env.root.join("go");
    let script = env.root.join("script.json");
    // The task waits for the user's commit on main (which writes main's loose ref in a folder
    // the task's sandbox leaves writable), then deletes that file: main reads its packed
    // value, the one from before the session, again.
    let steps = json!({"turns": [{"steps": [{"bash": format!(
        "touch {} && until [ -f {} ]; do sleep 0.02; done && rm {}",
        started.display(),
        go.display(),
        main_ref.display()
    )}], "result": "done"}]});
    std::fs::write(&script, steps.to_string()).unwrap();
    let mut cmd = env.cms_command(&env.repo, &["task", "--json", "undo", "--name", "undo"]);
    cmd.env("FAKE_CLAUDE_SCRIPT", &script);
    let task = crate::common::Background::spawn(&mut cmd);
    until_exists(&started);
    env.write("user.txt", "mine\n");
    env.commit_all("the user's commit");
    let users = env.git(&["rev-parse", "main"]);
    assert!(main_ref.is_file());
    std::fs::write(&go, "").unwrap();
    let run = crate::common::wait_bounded(task, std::time::Duration::from_secs(120));
    run.code(3);
    let task = run.json();
    assert!(
        violations(&task).contains(&"git_ref refs/heads/main".to_owned()),
        "{task:#}"
    );
    // Left for the user, whose commit is still in main's reflog.
    assert_ne!(env.git(&["rev-parse", "main"]), users);
    assert!(env.git(&["reflog", "main"]).contains("the user's commit"));
}
