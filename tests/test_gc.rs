//! `cms gc`, `cms discard` of several tasks and killed halfway, and `cms commit`: nothing of
//! the user's is lost, and nothing cms made is left half removed.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::TestEnv;

fn task_writing(env: &TestEnv, name: &str, path: &str, content: &str) -> Value {
    env.steps(json!([{"write": {"path": path, "content": content}}]));
    env.task_ok(&["change", "-n", name])
}

fn worktree(task: &Value) -> PathBuf {
    PathBuf::from(task["worktree"].as_str().unwrap())
}

fn has_branch(env: &TestEnv, branch: &str) -> bool {
    let name = format!("refs/heads/{branch}");
    env.git_ok(&["rev-parse", "--verify", "-q", &name])
}

fn status(env: &TestEnv, name: &str) -> String {
    env.cms(&["show", "--json", name]).json()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn store(env: &TestEnv) -> PathBuf {
    env.common_dir().join("cms")
}

/// Every file under the store and every worktree and branch: what a dry run must not change.
fn everything(env: &TestEnv) -> (Vec<PathBuf>, Vec<PathBuf>, Vec<String>) {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.clone());
            if path.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut files = Vec::new();
    walk(&store(env), &mut files);
    files.sort();
    (files, env.worktrees(), env.branches())
}

fn removed_kinds(report: &Value) -> Vec<(String, String)> {
    report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["task"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn discard_of_several_tasks_refuses_all_if_one_is_unmerged() {
    let env = TestEnv::new();
    let empty = env.task_ok(&["nothing", "-n", "empty"]);
    let work = task_writing(&env, "work", "a.txt", "a\n");
    env.cms(&["discard", "empty", "work"])
        .code(1)
        .one_line_error_with_hint("task 'work' has unmerged changes in 1 file");
    // Neither went: the tasks are discarded together or not at all.
    assert!(worktree(&empty).is_dir() && worktree(&work).is_dir());
    assert!(has_branch(&env, "cms/empty") && has_branch(&env, "cms/work"));
    assert_eq!(status(&env, "empty"), "completed");
    // An unknown task among them refuses the lot as well.
    env.cms(&["discard", "empty", "ghost", "--force"])
        .code(1)
        .one_line_error_with_hint("no task named 'ghost'");
    assert!(worktree(&empty).is_dir());
    let run = env.cms(&["discard", "--json", "empty", "work", "--force"]);
    run.success();
    let discarded = run.json();
    let names: Vec<&str> = discarded
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["empty", "work"]);
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(env.worktrees(), std::slice::from_ref(&env.repo));
    assert_eq!(status(&env, "work"), "discarded");
}

#[test]
fn discard_survives_a_kill_at_every_step() {
    let mut env = TestEnv::new();
    let mut kill_at = 1;
    loop {
        let name = format!("k{kill_at}");
        let task = task_writing(&env, &name, &format!("{name}.txt"), "work\n");
        let branch = format!("cms/{name}");
        let mark = store(&env).join(format!("discarding/{name}.json"));
        env.set_env("CMS_TEST_KILL_AT", &kill_at.to_string());
        let run = env.cms(&["discard", &name, "--force"]);
        env.set_env("CMS_TEST_KILL_AT", "0");
        if run.code == 0 {
            // Unkilled: every step passed, and the job is done.
            assert!(!worktree(&task).exists() && !has_branch(&env, &branch));
            assert!(!mark.exists());
            assert_eq!(status(&env, &name), "discarded");
            assert!(
                kill_at > 4,
                "discard has a step after each thing it changes"
            );
            break;
        }
        assert!(
            run.stderr.contains("killed at step"),
            "kill {kill_at}: {}",
            run.stderr
        );
        // Read from disk, before any cms command can repair anything: the task is either
        // untouched, or marked so that the next command finishes it.
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(store(&env).join(format!("tasks/{name}.json"))).unwrap(),
        )
        .unwrap();
        let untouched = record["status"] == "completed"
            && worktree(&task).is_dir()
            && has_branch(&env, &branch);
        assert!(
            untouched || mark.exists(),
            "kill {kill_at} left a half-discarded task: status {}, worktree {}, branch {}",
            record["status"],
            worktree(&task).is_dir(),
            has_branch(&env, &branch)
        );
        if untouched && !mark.exists() {
            // Killed before the decision took effect: a plain re-run does it all.
            env.cms(&["discard", &name, "--force"]).success();
        } else {
            // Any command finishes a marked discard; gc says so and succeeds.
            let gc = env.cms(&["gc"]);
            gc.success();
            assert!(
                gc.stderr.contains("finished discarding task"),
                "{}",
                gc.stderr
            );
        }
        assert!(!worktree(&task).exists(), "kill {kill_at}");
        assert!(!has_branch(&env, &branch), "kill {kill_at}");
        assert!(!mark.exists(), "kill {kill_at}");
        assert_eq!(status(&env, &name), "discarded", "kill {kill_at}");
        // Nothing else was touched: the user's branch and checkout are as they were.
        assert_eq!(env.git(&["status", "--porcelain"]), "");
        kill_at += 1;
    }
}

#[test]
fn gc_never_removes_unmerged_task() {
    let env = TestEnv::new();
    // An open task: the user has not decided yet, so even --force leaves it.
    let open = task_writing(&env, "open", "a.txt", "a\n");
    // A merged task kept with its worktree, where the user went on working by hand.
    let kept = task_writing(&env, "kept", "b.txt", "b\n");
    env.cms(&["merge", "kept", "--keep"]).success();
    std::fs::write(worktree(&kept).join("later.txt"), "not merged\n").unwrap();
    let report = env.cms(&["gc", "--json", "--older-than", "0"]).json();
    let kept_tasks: Vec<&str> = report["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["task"].as_str().unwrap())
        .collect();
    assert_eq!(kept_tasks, ["kept"], "{report:#}");
    assert!(worktree(&kept).join("later.txt").is_file());
    assert!(has_branch(&env, "cms/kept"));
    assert!(env.cms(&["show", "kept"]).code == 0, "the record stays too");
    // What gc reports of each task: its status and its worktree's size.
    let usage = &report["tasks"].as_array().unwrap()[0];
    assert_eq!(usage["task"], "open");
    assert_eq!(usage["status"], "completed");
    assert!(usage["bytes"].as_u64().unwrap() > 0, "{usage}");
    // --force drops the unmerged work of the merged task, never the open one.
    let forced = env
        .cms(&["gc", "--json", "--force", "--older-than", "0"])
        .json();
    assert!(!worktree(&kept).exists() && !has_branch(&env, "cms/kept"));
    assert!(removed_kinds(&forced).contains(&("record".into(), "kept".into())));
    assert!(worktree(&open).join("a.txt").is_file());
    assert!(has_branch(&env, "cms/open"));
    assert_eq!(status(&env, "open"), "completed");
}

#[test]
fn gc_removes_logs_and_locks_of_merged_tasks() {
    let env = TestEnv::new();
    task_writing(&env, "m", "m.txt", "m\n");
    env.cms(&["merge", "m"]).success();
    let logs = store(&env).join("logs");
    let lock = store(&env).join("locks/task-m.lock");
    assert!(logs.join("m.jsonl").is_file() && lock.is_file());
    // A lock left by a task that no longer exists.
    let stray_lock = store(&env).join("locks/task-gone.lock");
    std::fs::write(&stray_lock, "").unwrap();
    // The merged task is history for 30 days by default: only the stray lock goes.
    let first = env.cms(&["gc", "--json"]).json();
    assert_eq!(
        removed_kinds(&first),
        [("lock".to_owned(), "gone".to_owned())]
    );
    assert!(!stray_lock.exists());
    assert!(logs.join("m.jsonl").is_file());
    assert_eq!(status(&env, "m"), "merged");
    let run = env.cms(&["gc", "--older-than", "0"]);
    run.success();
    assert!(run.stdout.contains("Removed record"), "{}", run.stdout);
    for file in ["m.jsonl", "m.stderr", "m.supervisor.log"] {
        assert!(!logs.join(file).exists(), "{file}");
    }
    assert!(!lock.exists());
    assert!(!store(&env).join("tasks/m.json").exists());
    // The merge itself is untouched.
    assert_eq!(env.read("m.txt"), "m\n");
}

#[test]
fn gc_dry_run_changes_nothing() {
    let env = TestEnv::new();
    let kept = task_writing(&env, "kept", "k.txt", "k\n");
    env.cms(&["merge", "kept", "--keep"]).success();
    env.task_ok(&["again", "-n", "d"]);
    env.cms(&["discard", "d"]).success();
    env.task_ok(&["reused", "-n", "d"]);
    std::fs::write(store(&env).join("locks/task-gone.lock"), "").unwrap();
    let backup = store(&env).join("object-backup/gone-00000000000000ab");
    std::fs::create_dir_all(&backup).unwrap();
    let before = everything(&env);
    let dry = env.cms(&["gc", "--dry-run", "--json", "--older-than", "0"]);
    dry.success();
    assert_eq!(everything(&env), before);
    let report = dry.json();
    assert_eq!(report["dry_run"], true);
    let mut planned = removed_kinds(&report);
    planned.sort();
    for expected in [
        ("worktree", "kept"),
        ("branch", "kept"),
        ("record", "kept"),
        ("archived_record", "d"),
        ("lock", "gone"),
        ("object_backup", "gone"),
    ] {
        let expected = (expected.0.to_owned(), expected.1.to_owned());
        assert!(
            planned.contains(&expected),
            "{expected:?} not in {planned:?}"
        );
    }
    // The real run removes exactly what the dry run listed.
    let done = env.cms(&["gc", "--json", "--older-than", "0"]).json();
    let mut removed = removed_kinds(&done);
    removed.sort();
    assert_eq!(removed, planned);
    assert!(!worktree(&kept).exists() && !backup.exists());
    assert_eq!(
        status(&env, "d"),
        "completed",
        "the open task of that name stays"
    );
}

#[test]
fn gc_prunes_worktrees_deleted_by_hand() {
    let env = TestEnv::new();
    let task = task_writing(&env, "gone", "g.txt", "g\n");
    std::fs::remove_dir_all(worktree(&task)).unwrap();
    // git keeps the entry of a locked worktree whose folder is gone.
    assert_eq!(env.worktrees().len(), 2);
    let report = env.cms(&["gc", "--json"]).json();
    assert_eq!(
        removed_kinds(&report),
        [("worktree_entry".to_owned(), "gone".to_owned())]
    );
    assert_eq!(env.worktrees(), std::slice::from_ref(&env.repo));
    assert!(
        report["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("its work is on branch cms/gone")
    );
    // The task's work is still on its branch: merge takes it from there.
    assert_eq!(status(&env, "gone"), "completed");
    env.cms(&["merge", "gone"]).success();
    assert_eq!(env.read("g.txt"), "g\n");
    // Without a record either, only git's entry goes; the branch holds unmerged work.
    let lost = task_writing(&env, "lost", "l.txt", "l\n");
    std::fs::remove_dir_all(worktree(&lost)).unwrap();
    std::fs::remove_file(store(&env).join("tasks/lost.json")).unwrap();
    let report = env.cms(&["gc", "--json"]).json();
    assert_eq!(
        removed_kinds(&report),
        [("worktree_entry".to_owned(), "lost".to_owned())]
    );
    assert_eq!(env.worktrees(), std::slice::from_ref(&env.repo));
    assert!(has_branch(&env, "cms/lost"));
    assert_eq!(report["kept"][0]["task"], "lost");
    // Later runs leave the branch, and the transcript that tells what is on it.
    env.cms(&["gc"]).success();
    assert!(has_branch(&env, "cms/lost"));
    assert!(store(&env).join("logs/lost.jsonl").is_file());
}

#[test]
fn gc_removes_an_orphaned_cms_worktree_without_a_record_only_when_merged_or_forced() {
    let env = TestEnv::new();
    let merged = task_writing(&env, "merged", "m.txt", "m\n");
    let unmerged = task_writing(&env, "unmerged", "u.txt", "u\n");
    // The user merged one by hand; then both records were lost.
    env.git(&["merge", "-q", "--ff-only", "cms/merged"]);
    for name in ["merged", "unmerged"] {
        std::fs::remove_file(store(&env).join(format!("tasks/{name}.json"))).unwrap();
    }
    // A worktree of the user's own is never cms's business.
    let mine = env.root.join("mine");
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "mine",
        mine.to_str().unwrap(),
    ]);
    std::fs::write(mine.join("x.txt"), "mine\n").unwrap();
    let report = env.cms(&["gc", "--json"]).json();
    let removed = removed_kinds(&report);
    for kind in ["worktree", "branch", "log", "lock"] {
        assert!(
            removed.contains(&(kind.to_owned(), "merged".to_owned())),
            "{kind}: {removed:?}"
        );
    }
    assert!(
        removed.iter().all(|(_, task)| task == "merged"),
        "{removed:?}"
    );
    assert!(!worktree(&merged).exists() && !has_branch(&env, "cms/merged"));
    assert!(!store(&env).join("logs/merged.jsonl").exists());
    assert!(store(&env).join("logs/unmerged.jsonl").exists());
    assert_eq!(report["kept"][0]["task"], "unmerged");
    assert!(worktree(&unmerged).join("u.txt").is_file());
    assert!(has_branch(&env, "cms/unmerged"));
    // A worktree whose record is there but unreadable is no orphan, even with --force.
    let damaged = task_writing(&env, "damaged", "d.txt", "d\n");
    std::fs::write(store(&env).join("tasks/damaged.json"), "{ not json").unwrap();
    env.cms(&["gc", "--force"]).success();
    assert!(!worktree(&unmerged).exists() && !has_branch(&env, "cms/unmerged"));
    assert!(worktree(&damaged).join("d.txt").is_file() && has_branch(&env, "cms/damaged"));
    assert!(mine.join("x.txt").is_file() && has_branch(&env, "mine"));
}

#[test]
fn commit_commits_edits_left_in_a_killed_tasks_worktree_and_merge_then_takes_them() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"sleep_ms": 60000},
    ]));
    let cms = env.spawn_cms(&["task", "slow", "-n", "killed"]);
    let worktrees = env.home.join(".local/share/cms/worktrees");
    crate::common::eventually("the task's first write", || walk_for(&worktrees, "a.txt"));
    // Dropping it SIGKILLs cms (and reaps it); its keeper then kills claude.
    drop(cms);
    // The next command settles the dead task, committing what its session wrote.
    assert_eq!(status(&env, "killed"), "interrupted");
    let task = env.cms(&["show", "--json", "killed"]).json();
    let dir = PathBuf::from(task["worktree"].as_str().unwrap());
    // The user finishes the work by hand in the worktree.
    std::fs::write(dir.join("b.txt"), "finished by hand\n").unwrap();
    env.cms(&["merge", "killed"])
        .code(1)
        .one_line_error_with_hint("uncommitted changes in its worktree");
    let refused = env.cms(&["merge", "killed"]);
    assert!(
        refused.stderr.contains("`cms commit killed`"),
        "{}",
        refused.stderr
    );
    let committed = env.cms(&["commit", "killed", "-m", "finish it", "--json"]);
    committed.success();
    let value = committed.json();
    let commit = value["commit"].as_str().unwrap();
    assert_eq!(value["head"], commit);
    let files: Vec<&str> = value["files_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["a.txt", "b.txt"]);
    let message = env.git(&["log", "-1", "--format=%B", commit]);
    assert!(message.starts_with("finish it\n"), "{message}");
    assert!(message.contains("Cms-Task: killed"), "{message}");
    // Nothing is left to commit the second time.
    assert_eq!(
        env.cms(&["commit", "killed", "--json"]).json()["commit"],
        Value::Null
    );
    env.cms(&["merge", "killed"]).success();
    assert_eq!(env.read("a.txt"), "a\n");
    assert_eq!(env.read("b.txt"), "finished by hand\n");
}

fn walk_for(dir: &Path, file: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let path = entry.path();
            path.file_name().is_some_and(|n| n == file) || (path.is_dir() && walk_for(&path, file))
        })
}

#[test]
fn commit_rechecks_protected_paths_so_merge_refuses_a_protected_edit() {
    let env = TestEnv::new();
    let task = task_writing(&env, "p", "a.txt", "a\n");
    std::fs::write(worktree(&task).join(".cms.toml"), "[limits]\n").unwrap();
    let run = env.cms(&["commit", "p"]);
    run.success();
    assert!(
        run.stderr.contains("protected-path violation"),
        "{}",
        run.stderr
    );
    assert_eq!(status(&env, "p"), "protected_path");
    env.cms(&["merge", "p"])
        .code(1)
        .one_line_error_with_hint("touched protected paths");
}

#[test]
fn commit_refuses_unknown_closed_and_off_branch_tasks() {
    let env = TestEnv::new();
    env.cms(&["commit", "ghost"])
        .code(1)
        .one_line_error_with_hint("no task named 'ghost'");
    env.cms(&["commit", "x", "-m", ""]).code(2);
    task_writing(&env, "done", "a.txt", "a\n");
    env.cms(&["merge", "done"]).success();
    env.cms(&["commit", "done"])
        .code(1)
        .one_line_error_with_hint("already merged");
    env.steps(json!([{"bash": "git checkout -q -b elsewhere"}]));
    let stray = env.cms(&["task", "--json", "stray", "-n", "stray"]).json();
    std::fs::write(worktree(&stray).join("w.txt"), "w\n").unwrap();
    env.cms(&["commit", "stray"])
        .code(1)
        .one_line_error_with_hint("left its branch");
    assert!(worktree(&stray).join("w.txt").is_file());
    // Nothing was committed onto the branch the worktree switched to.
    assert_eq!(
        env.git(&["rev-parse", "elsewhere"]),
        env.git(&["rev-parse", "main"])
    );
}

#[test]
fn gc_never_touches_a_running_task() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done", gate.display())},
    ]));
    env.cms(&["task", "-d", "x", "-n", "busy"]).success();
    let backups = store(&env).join("object-backup");
    crate::common::eventually("the session's object copy", || {
        walk_for(&store(&env).join("logs"), "busy.jsonl") && backups.is_dir()
    });
    let before = everything(&env);
    let report = env
        .cms(&["gc", "--json", "--force", "--older-than", "0"])
        .json();
    assert_eq!(report["removed"], json!([]), "{report:#}");
    assert_eq!(report["tasks"][0]["status"], "running");
    assert_eq!(everything(&env).1, before.1, "worktrees");
    assert_eq!(everything(&env).2, before.2, "branches");
    std::fs::write(&gate, "").unwrap();
    env.cms(&["wait", "busy"]).success();
    assert_eq!(env.git(&["show", "cms/busy:a.txt"]), "a");
}

#[test]
fn gc_refuses_a_bad_age_as_a_usage_error_and_changes_nothing() {
    let env = TestEnv::new();
    std::fs::create_dir_all(store(&env).join("locks")).unwrap();
    let lock = store(&env).join("locks/task-gone.lock");
    std::fs::write(&lock, "").unwrap();
    env.cms(&["gc", "--older-than", "soon"])
        .code(2)
        .one_line_error_with_hint("expected a duration such as 12h, 7d or 0");
    assert!(lock.exists());
}

#[test]
fn gc_counts_a_squashed_or_rebased_task_as_merged_but_not_a_reverted_one() {
    let env = TestEnv::new();
    let squashed = task_writing(&env, "sq", "s.txt", "s\n");
    env.cms(&["merge", "sq", "--squash", "--keep"]).success();
    let rebased = task_writing(&env, "rb", "r.txt", "r\n");
    env.write("user.txt", "user\n");
    env.commit_all("user work");
    env.cms(&["merge", "rb", "--rebase", "--keep"]).success();
    let reverted = task_writing(&env, "rv", "v.txt", "v\n");
    env.cms(&["merge", "rv", "--keep"]).success();
    env.git(&["rm", "-q", "v.txt"]);
    env.git(&["commit", "-q", "-m", "revert rv"]);
    // None of their commits are on main, yet main holds the first two changes.
    let report = env.cms(&["gc", "--json"]).json();
    assert!(!worktree(&squashed).exists() && !has_branch(&env, "cms/sq"));
    assert!(!worktree(&rebased).exists() && !has_branch(&env, "cms/rb"));
    assert!(worktree(&reverted).join("v.txt").is_file() && has_branch(&env, "cms/rv"));
    assert_eq!(report["kept"][0]["task"], "rv", "{report:#}");
}

#[test]
fn gc_removes_the_skills_and_commands_exported_for_a_task_that_is_not_running() {
    let env = TestEnv::new();
    env.write(".claude/commands/hello.md", "Say hello.\n");
    env.commit_all("a command");
    env.trust();
    task_writing(&env, "t", "a.txt", "a\n");
    let export = store(&env).join("plugins/t");
    assert!(
        export.join("commands/hello.md").is_file(),
        "the session got no plugin: {}",
        export.display()
    );
    let report = env.cms(&["gc", "--json"]);
    report.success();
    assert!(
        removed_kinds(&report.json()).contains(&("plugin_export".to_owned(), "t".to_owned())),
        "{}",
        report.stdout
    );
    assert!(!export.exists());
    // The task itself is open and untouched: only its export, which its next session makes
    // again, went.
    assert_eq!(status(&env, "t"), "completed");
}

/// Task `t`, unmerged, and `cms discard t` at a terminal answered with `answer`: the task as it
/// was, the exit code and the last screen. `None` where tmux is missing.
fn discard_answered(test: &str, answer: &str) -> Option<(TestEnv, Value, i32, String)> {
    let env = TestEnv::new();
    let task = task_writing(&env, "t", "a.txt", "a\n");
    let term = crate::common::terminal::Terminal::run(&env, test, &["discard", "t"])?;
    term.wait_for("Discard them? [y/N]");
    term.type_line(answer);
    let (code, screen) = term.wait_exit();
    Some((env, task, code, screen))
}

#[test]
fn answering_no_to_discard_at_a_terminal_says_the_task_was_kept_and_keeps_it() {
    let Some((env, task, code, screen)) = discard_answered("discard_answered_no", "n") else {
        return;
    };
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("Kept task 't': nothing was discarded."),
        "{screen}"
    );
    assert!(!screen.contains("error:"), "{screen}");
    assert!(worktree(&task).join("a.txt").is_file());
    assert!(has_branch(&env, "cms/t"));
    assert_eq!(status(&env, "t"), "completed");
}

#[test]
fn answering_yes_to_discard_at_a_terminal_discards_the_unmerged_task() {
    let Some((env, task, code, screen)) = discard_answered("discard_answered_yes", "y") else {
        return;
    };
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Discarded t"), "{screen}");
    assert!(!worktree(&task).exists());
    assert!(!has_branch(&env, "cms/t"));
}
