//! Bad input: each gets a one-line error with a hint, a documented exit code, and leaves
//! nothing half-made.

use serde_json::json;

use crate::common::TestEnv;

/// Nothing of a task may remain: no branch, no worktree, no record, no transcript.
#[track_caller]
fn assert_nothing_made(env: &TestEnv) {
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(env.worktrees(), std::slice::from_ref(&env.repo));
    let tasks = env.common_dir().join("cms/tasks");
    let leftovers: Vec<_> = std::fs::read_dir(&tasks)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let logs = env.common_dir().join("cms/logs");
    let logs: Vec<_> = std::fs::read_dir(&logs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(logs.is_empty(), "{logs:?}");
    let data = env.home.join(".local/share/cms/worktrees");
    let worktrees: Vec<_> = walk_dirs(&data);
    assert!(worktrees.is_empty(), "{worktrees:?}");
}

fn walk_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        // The per-repository folder may stay; task folders inside it may not.
        for inner in std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(inner.path());
        }
    }
    out
}

#[test]
fn outside_a_repository_task_fails_with_a_hint() {
    let env = TestEnv::empty();
    let dir = env.root.join("plain");
    std::fs::create_dir_all(&dir).unwrap();
    for args in [&["task", "x"][..], &["list"], &["show", "x"]] {
        let run = env.cms_in(&dir, args);
        run.code(1)
            .one_line_error_with_hint("not in a git repository");
    }
}

#[test]
fn bare_repository_is_refused() {
    let env = TestEnv::empty();
    let bare = env.root.join("bare.git");
    std::fs::create_dir_all(&bare).unwrap();
    env.git_in(&bare, &["init", "-q", "--bare"]);
    env.cms_in(&bare, &["task", "x"])
        .code(1)
        .one_line_error_with_hint("bare repository");
}

#[test]
fn repository_without_commits_is_refused_and_nothing_is_made() {
    let env = TestEnv::empty();
    std::fs::create_dir_all(&env.repo).unwrap();
    env.git(&["init", "-q", "-b", "main"]);
    env.cms(&["task", "x"])
        .code(1)
        .one_line_error_with_hint("no commits");
    assert!(!env.common_dir().join("cms/tasks").exists());
}

#[test]
fn invalid_task_names_are_usage_errors() {
    let env = TestEnv::new();
    for bad in ["a b", "../x", "-x", "a..b", "x.lock"] {
        let run = env.cms(&["task", "x", &format!("--name={bad}")]);
        run.code(2);
        assert!(
            run.stderr.contains("invalid value"),
            "{bad}: {}",
            run.stderr
        );
    }
    assert_nothing_made(&env);
}

#[test]
fn empty_prompt_is_a_usage_error() {
    let env = TestEnv::new();
    env.cms(&["task", "  "])
        .code(2)
        .one_line_error_with_hint("prompt is empty");
    assert_nothing_made(&env);
}

#[test]
fn a_taken_name_is_refused_and_the_existing_task_is_untouched() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "first\n"}}]));
    env.task_ok(&["first", "-n", "dup"]);
    let tip = env.git(&["rev-parse", "cms/dup"]);
    env.cms(&["task", "second", "-n", "dup"])
        .code(1)
        .one_line_error_with_hint("already exists");
    assert_eq!(env.git(&["rev-parse", "cms/dup"]), tip);
    assert_eq!(
        env.cms(&["show", "--json", "dup"]).json()["prompt"],
        "first"
    );
}

#[test]
fn a_name_whose_branch_exists_is_refused() {
    let env = TestEnv::new();
    env.git(&["branch", "cms/mine"]);
    env.cms(&["task", "x", "-n", "mine"])
        .code(1)
        .one_line_error_with_hint("branch 'cms/mine' already exists");
}

#[test]
fn an_existing_worktree_path_is_refused_and_left_alone() {
    let env = TestEnv::new();
    // Find the folder cms uses for this repository by running one task.
    let task = env.task_ok(&["x", "-n", "probe"]);
    let probe = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    let taken = probe.parent().unwrap().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("precious.txt"), "mine\n").unwrap();
    env.cms(&["task", "x", "-n", "taken"])
        .code(1)
        .one_line_error_with_hint("already exists");
    assert_eq!(
        std::fs::read_to_string(taken.join("precious.txt")).unwrap(),
        "mine\n"
    );
    assert!(!env.branches().contains(&"cms/taken".to_owned()));
}

#[test]
fn missing_claude_says_how_to_install_it_and_makes_nothing() {
    let mut env = TestEnv::new();
    env.set_env("CMS_CLAUDE_BIN", "claude-is-not-installed-here");
    env.cms(&["task", "x"])
        .code(1)
        .one_line_error_with_hint("not found");
    let run = env.cms(&["task", "x"]);
    assert!(run.stderr.contains("CMS_CLAUDE_BIN"), "{}", run.stderr);
    assert!(run.stderr.contains("npm install"), "{}", run.stderr);
    assert_nothing_made(&env);
}

#[test]
fn claude_failing_before_its_session_starts_leaves_nothing_behind() {
    let mut env = TestEnv::new();
    // A program that exits 1 at once, printing nothing: like claude rejecting its arguments.
    env.set_env("CMS_CLAUDE_BIN", "/bin/false");
    env.cms(&["task", "x"])
        .code(1)
        .one_line_error_with_hint("before starting a session");
    assert_nothing_made(&env);
}

#[test]
fn claude_printing_only_garbage_is_a_failed_start() {
    let mut env = TestEnv::new();
    let script = env.root.join("garbage.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'Welcome to something else'\necho 'oops' >&2\nexit 3\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    env.set_env("CMS_CLAUDE_BIN", script.to_str().unwrap());
    let run = env.cms(&["task", "x"]);
    run.code(1).one_line_error_with_hint("exited with code 3");
    assert!(run.stderr.contains("oops"), "{}", run.stderr);
    assert_nothing_made(&env);
}

#[test]
fn json_mode_errors_are_json_on_stdout_too() {
    let env = TestEnv::new();
    let run = env.cms(&["show", "nope", "--json"]);
    run.code(1);
    let error = run.json();
    assert_eq!(error["exit_code"], 1);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no task named 'nope'")
    );
    assert!(!error["error"]["hints"].as_array().unwrap().is_empty());
}

#[test]
fn unknown_tasks_are_reported_by_every_command() {
    let env = TestEnv::new();
    for cmd in ["show", "diff", "merge", "discard", "commit"] {
        env.cms(&[cmd, "ghost"])
            .code(1)
            .one_line_error_with_hint("no task named 'ghost'");
    }
}

#[test]
fn a_mistyped_task_name_gets_the_closest_name_as_a_hint_and_a_far_one_none() {
    let env = TestEnv::new();
    env.steps(serde_json::json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["fix a typo", "-n", "fix-a-typo-in-contributing"]);
    for cmd in ["show", "diff", "merge", "continue"] {
        let mut args = vec![cmd, "fix-a-typo-in-contributign"];
        if cmd == "continue" {
            args.push("go on");
        }
        let run = env.cms(&args);
        run.code(1)
            .one_line_error_with_hint("no task named 'fix-a-typo-in-contributign'");
        assert!(
            run.stderr
                .contains("hint: did you mean 'fix-a-typo-in-contributing'?"),
            "{}",
            run.stderr
        );
    }
    let far = env.cms(&["show", "zzz"]);
    far.code(1);
    assert!(!far.stderr.contains("did you mean"), "{}", far.stderr);
}

#[test]
fn a_unique_prefix_of_a_task_name_stands_for_the_task_except_where_work_would_go() {
    let env = TestEnv::new();
    env.steps(serde_json::json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["fix a typo", "-n", "fix-a-typo-in-contributing"]);
    env.task_ok(&["fix auth", "-n", "fix-auth"]);
    let show = env.cms(&["show", "fix-a-typo", "--json"]);
    show.success();
    assert_eq!(show.json()["name"], "fix-a-typo-in-contributing");
    assert!(
        show.stderr
            .contains("'fix-a-typo' is task 'fix-a-typo-in-contributing'"),
        "{}",
        show.stderr
    );
    // Two tasks start with "fix-a": neither is taken for the other.
    env.cms(&["show", "fix-a"])
        .code(1)
        .one_line_error_with_hint("no task named 'fix-a'");
    // Removing or publishing work takes the whole name only.
    for cmd in ["discard", "merge", "push"] {
        env.cms(&[cmd, "fix-au"])
            .code(1)
            .one_line_error_with_hint("no task named 'fix-au'");
    }
    assert!(
        env.cms(&["show", "fix-auth"])
            .success()
            .stdout
            .contains("fix-auth")
    );
}

#[test]
fn a_bad_config_file_is_named_in_the_error() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[task]\nmodle = \"x\"\n");
    let run = env.cms(&["task", "x"]);
    run.code(1);
    assert!(run.stderr.contains(".cms.toml"), "{}", run.stderr);
    assert_nothing_made(&env);
}

#[test]
fn repository_config_sets_model_and_preset() {
    let env = TestEnv::new();
    env.write(
        ".cms.toml",
        "[task]\nmodel = \"haiku\"\npreset = \"plan\"\n",
    );
    env.commit_all("config");
    let task = env.task_ok(&["x", "-n", "cfg"]);
    assert_eq!(task["model"], "haiku");
    assert_eq!(task["preset"], "plan");
    // Flags win over the file.
    let task = env.task_ok(&["x", "-n", "cfg2", "--preset", "edit"]);
    assert_eq!(task["preset"], "edit");
}

#[test]
fn a_task_argument_that_is_a_path_is_refused_before_the_store_is_touched() {
    let env = TestEnv::new();
    // What `../../x` would reach from the store's tasks folder, if it were used as a name.
    let outside = env.common_dir().join("x.json");
    std::fs::write(&outside, "not cms's\n").unwrap();
    let common = env.common_dir().display().to_string();
    for args in [
        &["show", "../../x"][..],
        &["diff", "../../x"],
        &["merge", "../../x"],
        &["discard", "--force", "../../x"],
        &["commit", "../../x"],
        &["check", "--task", "../../x"],
        &["task", "p", "--name", "../../x"],
        &[
            "guard",
            "pre-tool-use",
            "--repo",
            &common,
            "--task",
            "../../x",
        ],
    ] {
        let run = env.cms(args);
        run.code(2)
            .one_line_error_with_hint("invalid value '../../x'");
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "not cms's\n");
    assert_nothing_made(&env);
}

#[test]
fn usage_errors_are_json_on_stdout_with_json_anywhere_on_the_line() {
    let env = TestEnv::new();
    for args in [
        &["--json", "list", "--bogus"][..],
        &["list", "--bogus", "--json"],
        &["show", "--json"],
        &["show", "--json", "a/b"],
        &["task", "x", "--preset", "yolo", "--json"],
        &["--json"],
    ] {
        let run = env.cms(args);
        run.code(2);
        let error = run.json();
        assert_eq!(error["exit_code"], 2, "{args:?}");
        assert_eq!(error["error"]["kind"], "usage", "{args:?}");
        assert!(
            !error["error"]["message"].as_str().unwrap().contains('\n'),
            "{args:?}: {error}"
        );
        assert!(!error["error"]["hints"].as_array().unwrap().is_empty());
    }
    // Without --json, stdout stays empty and stderr has one error line and hints.
    let run = env.cms(&["show"]);
    run.code(2)
        .one_line_error_with_hint("missing required argument: <TASK>");
    assert!(run.stdout.is_empty());
    // Hidden subcommands stay hidden; a near miss is named.
    let run = env.cms(&["shw", "x"]);
    run.code(2)
        .one_line_error_with_hint("unrecognized subcommand 'shw'");
    assert!(run.stderr.contains("'show'") && !run.stderr.contains("hook,"));
    // A `--json` after `--` is a value, not the flag.
    let run = env.cms(&["task", "--preset", "yolo", "--", "--json"]);
    run.code(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn a_bad_cms_environment_value_is_a_usage_error_naming_it_and_nothing_is_made() {
    for (key, value, accepted) in [
        ("CMS_PRESET", "bogus", "read-only, review, edit, full, plan"),
        ("CMS_MAX_COST", "free", "US dollars"),
        ("CMS_MAX_TURNS", "0", "at least 1"),
        ("CMS_MAX_DURATION", "soon", "300s"),
        ("CMS_INTERRUPT_GRACE_MS", "2s", "milliseconds"),
        ("CMS_EXIT_GRACE_MS", "-1", "milliseconds"),
    ] {
        let mut env = TestEnv::new();
        env.set_env(key, value);
        let run = env.cms(&["task", "x"]);
        run.code(2).one_line_error_with_hint(key);
        assert!(run.stderr.contains(accepted), "{key}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("unset {key}")),
            "{}",
            run.stderr
        );
        assert_nothing_made(&env);
    }
}

#[test]
fn a_panic_is_one_line_saying_where_and_that_it_is_a_bug_with_exit_255() {
    let mut env = TestEnv::new();
    env.set_env("CMS_TEST_PANIC", "run");
    let run = env.cms(&["list"]);
    run.code(255);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("error: cms panicked at src/"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("this is a bug in cms"), "{}", lines[0]);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // With --json, stdout ends with the JSON error too.
    let run = env.cms(&["list", "--json"]);
    run.code(255);
    let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(json["exit_code"], 255);
    assert_eq!(json["error"]["kind"], "internal");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn a_panic_in_the_pre_tool_use_hook_blocks_the_call_with_nothing_on_stdout() {
    let mut env = TestEnv::new();
    // The hook judges a write it would allow; the panic comes before its verdict.
    let task = env.task_ok(&["x", "-n", "hooked"]);
    let worktree = task["worktree"].as_str().unwrap();
    let input = json!({
        "tool_name": "Write",
        "tool_input": {"file_path": format!("{worktree}/fine.txt"), "content": "x"},
    })
    .to_string();
    let hook = crate::test_safety::hook_command(&env);
    crate::test_safety::run_hook(&env, &hook, &input)
        .code(0)
        .success();
    env.set_env("CMS_TEST_PANIC", "guard");
    let run = crate::test_safety::run_hook(&env, &hook, &input);
    run.code(2);
    assert_eq!(run.stdout, "");
    // Even with --json on the line.
    let with_json = hook.replacen(" guard pre-tool-use", " --json guard pre-tool-use", 1);
    let out = crate::test_safety::run_hook(&env, &with_json, &input);
    out.code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    // A hook command line cms did not write (here: no worktree) is a usage error that blocks
    // the call with nothing on stdout, --json or not.
    let (cut, _) = with_json.split_once(" --worktree ").unwrap();
    let out = crate::test_safety::run_hook(&env, cut, &input);
    out.code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        run.stderr.contains("this is a bug in cms"),
        "{}",
        run.stderr
    );
    // Through claude: the panicking hook stops the write from happening.
    env.steps(json!([{"write": {"path": "blocked.txt", "content": "x\n"}}]));
    let run = env.cms(&["task", "y", "-n", "through", "--json"]);
    let task = run.json();
    let worktree = std::path::Path::new(task["worktree"].as_str().unwrap());
    assert!(!worktree.join("blocked.txt").exists(), "{task:#}");
    assert_eq!(task["files_changed"], json!([]));
}

#[test]
fn a_worktrees_root_inside_the_repository_is_refused_and_nothing_is_made() {
    let base = TestEnv::new();
    for root in [
        base.repo.join("wt"),
        base.repo.join("sub/../wt"),
        base.common_dir().join("cms-worktrees"),
    ] {
        let mut env = TestEnv::new();
        let root = root
            .to_str()
            .unwrap()
            .replace(base.repo.to_str().unwrap(), env.repo.to_str().unwrap());
        env.set_env("CMS_WORKTREES_ROOT", &root);
        env.cms(&["task", "x"])
            .code(1)
            .one_line_error_with_hint("is inside the repository");
        assert!(!std::path::Path::new(&root).exists(), "{root}");
        assert_nothing_made(&env);
    }
    // From the user's configuration, relative to where cms runs, too.
    let env = TestEnv::new();
    std::fs::create_dir_all(env.home.join(".config/cms")).unwrap();
    std::fs::write(
        env.home.join(".config/cms/config.toml"),
        "[worktrees]\nroot = \"tasks\"\n",
    )
    .unwrap();
    env.cms(&["task", "x"])
        .code(1)
        .one_line_error_with_hint("is inside the repository");
    assert_nothing_made(&env);
}
