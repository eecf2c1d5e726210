//! `cms list`, `cms show`, `cms diff` and `cms discard`.

use serde_json::json;

use crate::common::{LIMIT, TestEnv, eventually, wait_bounded};

#[test]
fn list_shows_open_tasks_and_all_includes_closed_ones() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["first task", "-n", "one"]);
    env.task_ok(&["second task", "-n", "two"]);
    env.cms(&["discard", "two", "--force"]).success();
    let run = env.cms(&["list"]);
    run.success();
    assert!(run.stdout.contains("one"), "{}", run.stdout);
    assert!(run.stdout.contains("completed"), "{}", run.stdout);
    assert!(run.stdout.contains("first task"), "{}", run.stdout);
    assert!(!run.stdout.contains("two"), "{}", run.stdout);
    let all = env.cms(&["list", "--all", "--json"]).json();
    let statuses: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("one", "completed"), ("two", "discarded")]);
}

#[test]
fn list_of_a_repository_without_tasks_is_empty_not_an_error() {
    let env = TestEnv::new();
    env.cms(&["list"]).success();
    assert_eq!(env.cms(&["list", "--json"]).json(), json!([]));
}

#[test]
fn show_prints_prompt_status_ledger_and_files() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["write a file", "-n", "shown"]);
    let run = env.cms(&["show", "shown"]);
    run.success();
    for needle in [
        "shown completed",
        "write a file",
        "cms/shown",
        "from main",
        "2 turns",
        "A a.txt",
        "Write",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            run.stdout
        );
    }
}

#[test]
fn the_1m_context_suffix_is_said_in_words_to_people_and_kept_exact_in_json() {
    let env = TestEnv::new();
    // The fake claude reports claude's default model, `claude-opus-4-8[1m]`.
    let run = env.cms(&["task", "say done", "-n", "wide"]);
    run.success();
    let readable = "claude-opus-4-8 (1M context)";
    assert!(run.stderr.contains(readable), "{}", run.stderr);
    let shown = env.cms(&["show", "wide"]);
    assert!(shown.stdout.contains(readable), "{}", shown.stdout);
    let logs = env.cms(&["logs", "wide"]);
    assert!(logs.stdout.contains(readable), "{}", logs.stdout);
    for text in [&run.stderr, &shown.stdout, &logs.stdout] {
        assert!(!text.contains("[1m]"), "{text}");
    }
    let json = env.cms(&["show", "--json", "wide"]).json();
    assert_eq!(json["model"], "claude-opus-4-8[1m]");
}

#[test]
fn show_of_a_running_task_counts_its_elapsed_time() {
    let env = TestEnv::new();
    let gate = env.repo.parent().unwrap().join("gate");
    env.steps(json!([
        {"bash": format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())},
    ]));
    let task = env.spawn_cms(&["task", "--json", "wait for the gate", "-n", "busy"]);
    let record = env.common_dir().join("cms/tasks/busy.json");
    eventually("the task's record", || record.exists());
    // While it runs, its ledger line moves on from 0.0s (the record's own duration is only
    // written when the session ends).
    let line = eventually("an elapsed time above zero", || {
        let run = env.cms(&["show", "busy"]);
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains("ledger"))
            .map(str::to_owned);
        line.filter(|l| !l.ends_with(" 0.0s"))
    });
    assert_eq!(
        env.cms(&["show", "--json", "busy"]).json()["status"],
        "running"
    );
    assert!(line.contains(" turn"), "{line}");
    std::fs::write(&gate, "").unwrap();
    wait_bounded(task, LIMIT).success();
}

#[test]
fn diff_shows_the_patch_stat_and_names() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "alpha\n"}}]));
    env.task_ok(&["x", "-n", "d"]);
    let patch = env.cms(&["diff", "d"]);
    patch.success();
    assert!(patch.stdout.contains("+++ b/a.txt"), "{}", patch.stdout);
    assert!(patch.stdout.contains("+alpha"), "{}", patch.stdout);
    assert!(!patch.stdout.contains('\u{1b}'), "no color when piped");
    let stat = env.cms(&["diff", "d", "--stat"]);
    assert!(stat.stdout.contains("a.txt | 1 +"), "{}", stat.stdout);
    assert_eq!(env.cms(&["diff", "d", "--name-only"]).stdout, "a.txt\n");
    let colored = env.cms(&["--color", "always", "diff", "d"]);
    assert!(colored.stdout.contains('\u{1b}'), "{}", colored.stdout);
}

#[test]
fn diff_includes_uncommitted_and_untracked_work_in_the_worktree() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["x", "-n", "live"]);
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("later.txt"), "later\n").unwrap();
    std::fs::write(worktree.join("README.md"), "changed\n").unwrap();
    let json = env.cms(&["diff", "live", "--json"]).json();
    let names: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["README.md", "a.txt", "later.txt"]);
    assert!(json["patch"].as_str().unwrap().contains("+later"));
    // Measuring did not stage anything in the task's own index.
    let staged = env.git_in(&worktree, &["diff", "--cached", "--name-only"]);
    assert_eq!(staged, "");
}

#[test]
fn diff_sees_every_kind_of_uncommitted_change_in_the_worktree() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"write": {"path": "b.txt", "content": "b\n"}},
        {"write": {"path": "gone.txt", "content": "gone\n"}}
    ]));
    let task = env.task_ok(&["x", "-n", "kinds"]);
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    let write = |path: &str, text: &str| {
        let path = worktree.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("README.md", "changed\n");
    write("staged.txt", "staged\n");
    env.git_in(&worktree, &["add", "staged.txt"]);
    write("staged.txt", "staged, then changed\n");
    env.git_in(&worktree, &["mv", "b.txt", "moved.txt"]);
    std::fs::remove_file(worktree.join("gone.txt")).unwrap();
    write("new dir/x.txt", "x\n");
    write("new dir/.gitignore", "*.log\n");
    write("new dir/noise.log", "ignored\n");
    let json = env.cms(&["diff", "kinds", "--json"]).json();
    let mut files: Vec<(String, String)> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("README.md", "modified"),
            ("a.txt", "added"),
            ("moved.txt", "added"),
            ("new dir/.gitignore", "added"),
            ("new dir/x.txt", "added"),
            ("staged.txt", "added"),
        ]
        .map(|(p, s)| (p.to_owned(), s.to_owned()))
    );
    assert!(
        json["patch"]
            .as_str()
            .unwrap()
            .contains("+staged, then changed")
    );
    // The agent's own index is as it left it.
    let staged = env.git_in(&worktree, &["diff", "--cached", "--name-only"]);
    assert_eq!(staged, "moved.txt\nstaged.txt");
}

#[test]
fn the_users_status_settings_do_not_hide_uncommitted_work_from_diff_or_merge() {
    let env = TestEnv::new();
    env.git(&["config", "status.showUntrackedFiles", "no"]);
    env.git(&["config", "diff.ignoreSubmodules", "all"]);
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["x", "-n", "hidden"]);
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    assert_eq!(
        env.cms(&["diff", "hidden", "--name-only"]).stdout,
        "a.txt\n"
    );
    std::fs::write(worktree.join("untracked.txt"), "mine\n").unwrap();
    assert_eq!(
        env.cms(&["diff", "hidden", "--name-only"]).stdout,
        "a.txt\nuntracked.txt\n"
    );
    env.cms(&["merge", "hidden"])
        .code(1)
        .one_line_error_with_hint("uncommitted");
    assert!(worktree.join("untracked.txt").exists());
}

#[test]
fn diff_of_a_merged_task_still_shows_what_it_changed() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "m"]);
    env.cms(&["merge", "m"]).success();
    assert_eq!(env.cms(&["diff", "m", "--name-only"]).stdout, "a.txt\n");
}

#[test]
fn discard_removes_worktree_and_branch() {
    let env = TestEnv::new();
    let task = env.task_ok(&["nothing to do", "-n", "empty"]);
    env.cms(&["discard", "empty"]).success();
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(env.worktrees(), std::slice::from_ref(&env.repo));
    assert!(!std::path::Path::new(task["worktree"].as_str().unwrap()).exists());
    assert_eq!(
        env.cms(&["show", "--json", "empty"]).json()["status"],
        "discarded"
    );
}

#[test]
fn discard_refuses_unmerged_work_without_force() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["x", "-n", "work"]);
    env.cms(&["discard", "work"])
        .code(1)
        .one_line_error_with_hint("unmerged changes in 1 file");
    assert!(env.branches().contains(&"cms/work".to_owned()));
    assert!(std::path::Path::new(task["worktree"].as_str().unwrap()).is_dir());
    env.cms(&["discard", "work", "--force"]).success();
    assert_eq!(env.branches(), ["main"]);
}

#[test]
fn discard_after_a_manual_merge_needs_no_force() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "hand"]);
    env.git(&["merge", "-q", "--ff-only", "cms/hand"]);
    env.cms(&["discard", "hand"]).success();
}

#[test]
fn discard_never_deletes_a_worktree_cms_did_not_make() {
    let env = TestEnv::new();
    let task = env.task_ok(&["x", "-n", "swap"]);
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    // Someone replaced the task's worktree with one of their own at the same path.
    env.git(&[
        "worktree",
        "remove",
        "--force",
        "--force",
        worktree.to_str().unwrap(),
    ]);
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "theirs",
        worktree.to_str().unwrap(),
    ]);
    std::fs::write(worktree.join("precious.txt"), "keep me\n").unwrap();
    env.cms(&["discard", "swap", "--force"])
        .code(1)
        .one_line_error_with_hint("did not make");
    assert!(worktree.join("precious.txt").exists());
    assert!(env.branches().contains(&"theirs".to_owned()));
}

#[test]
fn discard_of_a_closed_task_is_refused() {
    let env = TestEnv::new();
    env.task_ok(&["x", "-n", "gone"]);
    env.cms(&["discard", "gone"]).success();
    env.cms(&["discard", "gone"])
        .code(1)
        .one_line_error_with_hint("already discarded");
}

#[test]
fn no_color_keeps_diff_and_every_other_output_plain_even_when_git_is_told_to_color() {
    let env = TestEnv::new();
    env.git(&["config", "color.ui", "always"]);
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["add a", "-n", "d"]);
    let escape = |text: &str| text.contains('\u{1b}');
    // The control: without NO_COLOR, git follows color.ui.
    let mut colored = TestEnv::new();
    colored.git(&["config", "color.ui", "always"]);
    colored.set_env("NO_COLOR", "");
    colored.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    colored.task_ok(&["add a", "-n", "d"]);
    assert!(escape(&colored.cms(&["diff", "d"]).success().stdout));
    // TestEnv sets NO_COLOR=1.
    for args in [
        &["diff", "d"][..],
        &["diff", "d", "--stat"],
        &["show", "d"],
        &["list"],
        &["task", "again", "-n", "e"],
        &["merge", "d"],
        &["show", "ghost"],
    ] {
        let run = env.cms(args);
        assert!(
            !escape(&run.stdout) && !escape(&run.stderr),
            "{args:?} colored:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    // An explicit --color=always still wins.
    env.steps(json!([{"write": {"path": "b.txt", "content": "b\n"}}]));
    env.task_ok(&["add b", "-n", "f"]);
    assert!(escape(&env.cms(&["--color", "always", "diff", "f"]).stdout));
}

#[test]
fn a_discarded_or_merged_tasks_name_can_be_used_again_and_list_all_keeps_the_old_one() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "first\n"}}]));
    env.task_ok(&["first", "-n", "x"]);
    env.cms(&["discard", "x", "--force"]).success();
    env.steps(json!([{"write": {"path": "b.txt", "content": "second\n"}}]));
    let again = env.task_ok(&["second", "-n", "x"]);
    assert_eq!(again["status"], "completed");
    assert_eq!(env.cms(&["show", "x", "--json"]).json()["prompt"], "second");
    assert_eq!(env.cms(&["diff", "x", "--name-only"]).stdout, "b.txt\n");
    let all = env.cms(&["list", "--all", "--json"]).json();
    let rows: Vec<(String, String, bool)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["prompt"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
                t["archived"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("first".to_owned(), "discarded".to_owned(), true),
            ("second".to_owned(), "completed".to_owned(), false),
        ]
    );
    let text = env.cms(&["list", "--all"]).stdout;
    assert!(text.contains("x (archived)"), "{text}");
    assert_eq!(
        env.cms(&["list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The old task's transcript is kept beside its record.
    let archive = env.common_dir().join("cms/archive/x");
    assert!(archive.join("1.json").is_file() && archive.join("1.jsonl").is_file());
    // Merged tasks' names too; an open task's name stays taken.
    env.cms(&["merge", "x"]).success();
    env.task_ok(&["third", "-n", "x"]);
    env.cms(&["task", "fourth", "-n", "x"])
        .code(1)
        .one_line_error_with_hint("already exists");
    assert_eq!(env.cms(&["show", "x", "--json"]).json()["prompt"], "third");
    assert!(archive.join("2.json").is_file());
}

#[test]
fn a_name_whose_merged_task_kept_its_branch_is_refused_with_how_to_free_it() {
    let env = TestEnv::new();
    env.steps(serde_json::json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "kept"]);
    env.cms(&["merge", "kept", "--keep"]).success();
    let refused = env.cms(&["task", "again", "-n", "kept"]);
    refused
        .code(1)
        .one_line_error_with_hint("branch 'cms/kept' already exists");
    assert!(
        refused.stderr.contains("git branch -D cms/kept"),
        "{}",
        refused.stderr
    );
}

#[test]
fn diff_json_lists_files_with_counts() {
    let env = TestEnv::new();
    env.write("old.txt", "one\ntwo\nthree\nfour\n");
    env.commit_all("old");
    env.steps(json!([
        {"read": {"path": "README.md"}},
        {"edit": {"path": "README.md", "old": "hello", "new": "hi"}},
        {"write": {"path": "new.txt", "content": "a\nb\n"}},
        {"bash": "git mv old.txt moved.txt && printf '\\000\\001\\002' > bin.dat"},
    ]));
    env.task_ok(&["x", "-n", "counts"]);
    let value = env.cms(&["diff", "counts", "--json"]).json();
    let files = value["files"].as_array().unwrap();
    let by_path = |path: &str| {
        files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing: {value:#}"))
    };
    let readme = by_path("README.md");
    assert_eq!(
        (
            &readme["status"],
            &readme["additions"],
            &readme["deletions"]
        ),
        (&json!("modified"), &json!(1), &json!(1))
    );
    let new = by_path("new.txt");
    assert_eq!(
        (&new["status"], &new["additions"]),
        (&json!("added"), &json!(2))
    );
    let moved = by_path("moved.txt");
    assert_eq!(moved["status"], "renamed");
    assert_eq!(moved["old_path"], "old.txt");
    let binary = by_path("bin.dat");
    assert_eq!(
        (&binary["binary"], &binary["additions"]),
        (&json!(true), &json!(0))
    );
    assert_eq!(files.len(), 4, "{value:#}");
    assert!(value["patch"].as_str().unwrap().contains("+hi"));
}

#[test]
fn diff_base_shows_what_the_target_changed() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "task.txt", "content": "task\n"}}]));
    env.task_ok(&["x", "-n", "onto"]);
    env.write("user.txt", "user\n");
    env.commit_all("user work");
    assert_eq!(
        env.cms(&["diff", "onto", "--base", "--name-only"]).stdout,
        "user.txt\n"
    );
    let value = env.cms(&["diff", "onto", "--base", "--json"]).json();
    assert_eq!(value["target"], "main");
    assert_eq!(value["to"], env.git(&["rev-parse", "main"]));
    let paths: Vec<&str> = value["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["user.txt"]);
    // The task's own diff is unchanged by what the target did.
    assert_eq!(
        env.cms(&["diff", "onto", "--name-only"]).stdout,
        "task.txt\n"
    );
    // A task started from a detached HEAD has no target to compare with.
    env.git(&["checkout", "-q", "--detach"]);
    env.task_ok(&["y", "-n", "loose"]);
    env.cms(&["diff", "loose", "--base"])
        .code(1)
        .one_line_error_with_hint("detached HEAD");
}

#[test]
fn list_shows_each_tasks_age_and_a_total_cost_line() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let one = env.task_ok(&["first task", "-n", "one"]);
    let two = env.task_ok(&["second task", "-n", "two"]);
    let run = env.cms(&["list"]);
    run.success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].contains("AGE"), "{}", run.stdout);
    // Just started: an age in seconds (or minutes on a slow machine).
    for line in &lines[1..3] {
        let age = line.split_whitespace().nth(2).unwrap();
        assert!(
            age.ends_with('s') || age.ends_with('m'),
            "{age:?} in {}",
            run.stdout
        );
    }
    let total = one["cost_usd"].as_f64().unwrap() + two["cost_usd"].as_f64().unwrap();
    let last = lines.last().unwrap();
    assert!(last.starts_with("total"), "{}", run.stdout);
    assert!(last.contains(&format!("${total:.4}")), "{last}");
    assert!(last.contains("(2 tasks)"), "{last}");
}

#[test]
fn list_shows_how_far_the_base_branch_moved_on_since_a_task_started() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "lagging"]);
    let behind = |env: &TestEnv| {
        let run = env.cms(&["list"]);
        run.success();
        let header = run.stdout.lines().next().unwrap();
        let column = header.find("BEHIND").unwrap() + "BEHIND".len();
        let row = run.stdout.lines().nth(1).unwrap();
        row[..column].split_whitespace().last().unwrap().to_owned()
    };
    assert_eq!(behind(&env), "0");
    for n in 1..=2 {
        env.write("user.txt", &format!("{n}\n"));
        env.commit_all("user work");
    }
    assert_eq!(behind(&env), "2");
}

#[test]
fn diff_base_with_the_target_unchanged_says_so_and_prints_nothing() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "task.txt", "content": "task\n"}}]));
    env.task_ok(&["x", "-n", "still"]);
    let run = env.cms(&["diff", "still", "--base"]);
    run.success();
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "main has not changed since task 'still' started from it\n"
    );
}

#[test]
fn diff_json_from_is_the_fork_commit_and_to_the_worktree_snapshot_or_last_commit() {
    let env = TestEnv::new();
    let fork = env.git(&["rev-parse", "main"]);
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["x", "-n", "ends"]);
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("loose.txt"), "not committed\n").unwrap();
    let value = env.cms(&["diff", "ends", "--json"]).json();
    assert_eq!(value["from"], fork.as_str());
    let to = value["to"].as_str().unwrap();
    // A tree of the worktree as it is, uncommitted work included, as README says.
    assert_eq!(env.git(&["cat-file", "-t", to]), "tree");
    assert_eq!(
        env.git(&["diff", "--name-only", &fork, to]),
        "a.txt\nloose.txt"
    );
    // Without its worktree, the task's last commit.
    std::fs::remove_file(worktree.join("loose.txt")).unwrap();
    env.cms(&["merge", "ends"]).success();
    let value = env.cms(&["diff", "ends", "--json"]).json();
    assert_eq!(value["to"], task["head"]);
    assert_eq!(
        env.git(&["cat-file", "-t", value["to"].as_str().unwrap()]),
        "commit"
    );
}
