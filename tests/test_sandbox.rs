//! Claude Code's Bash sandbox as cms asks for it: the `sandbox` settings each preset and each
//! `[safety] sandbox` mode give claude, refusing or warning where the machine has no sandbox,
//! the task's own temp dir, and what `show` and `doctor` say. The real CLI's side of it is in
//! test_real_claude::sandbox.
//!
//! These tests expect bubblewrap and socat installed (`.ci/run` installs them); the ones about a
//! machine without them take `bwrap` off PATH.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::common::TestEnv;

/// The `--settings` document cms gave the fake claude on its last run.
fn last_settings(env: &TestEnv) -> Value {
    let argv = env.claude_invocations().last().unwrap()["argv"].clone();
    let argv = argv.as_array().unwrap();
    let at = argv.iter().position(|a| a == "--settings").unwrap();
    serde_json::from_str(argv[at + 1].as_str().unwrap()).unwrap()
}

/// A PATH holding only git and sh, as on a machine without bubblewrap and socat.
fn path_without_bwrap(env: &TestEnv) -> String {
    let bin = env.root.join("bin-without-bwrap");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["git", "sh"] {
        let real = which(tool);
        std::os::unix::fs::symlink(&real, bin.join(tool)).unwrap();
    }
    bin.display().to_string()
}

/// A repository whose cms runs on a machine without bubblewrap ([`path_without_bwrap`]); with
/// `required`, its `.cms.toml` (committed) requires the sandbox and claude's script is empty.
fn without_bwrap(required: bool) -> TestEnv {
    let mut env = TestEnv::new();
    let path = path_without_bwrap(&env);
    env.set_env("PATH", &path);
    if required {
        env.write(".cms.toml", "[safety]\nsandbox = \"required\"\n");
        env.commit_all("require the sandbox");
        env.steps(json!([]));
    }
    env
}

fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH"))
}

#[test]
fn every_preset_runs_bash_sandboxed_and_only_editing_presets_get_it_without_asking() {
    let env = TestEnv::new();
    env.steps(json!([]));
    let common = env.common_dir();
    for (preset, auto_allow) in [
        ("read-only", false),
        ("review", false),
        ("plan", false),
        ("edit", true),
        ("full", true),
    ] {
        let task = env.task_ok(&["go", "--name", preset, "--preset", preset]);
        assert_eq!(task["safety"]["sandboxed"], true, "{preset}");
        let sandbox = &last_settings(&env)["sandbox"];
        assert_eq!(sandbox["enabled"], true, "{preset}");
        assert_eq!(sandbox["failIfUnavailable"], true, "{preset}");
        // Without it, `dangerouslyDisableSandbox: true` on a Bash call escapes.
        assert_eq!(sandbox["allowUnsandboxedCommands"], false, "{preset}");
        assert_eq!(sandbox["autoAllowBashIfSandboxed"], auto_allow, "{preset}");
        let deny: Vec<PathBuf> = sandbox["filesystem"]["denyWrite"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| PathBuf::from(p.as_str().unwrap()))
            .collect();
        for denied in ["cms", "config", "hooks", "HEAD", "index", "refs/heads/main"] {
            assert!(
                deny.contains(&common.join(denied)),
                "{preset}: {denied} in {deny:?}"
            );
        }
        // The task's own branch and private git dir stay writable for its own commits.
        assert!(!deny.contains(&common.join("refs/heads/cms").join(preset)));
        assert!(!deny.contains(&common.join("worktrees").join(preset)));
        // Tasks that ran before are out of reach.
        if preset != "read-only" {
            assert!(deny.contains(&common.join("refs/heads/cms/read-only")));
            assert!(deny.contains(&common.join("worktrees/read-only")));
        }
        // The hook is still there beside the sandbox.
        assert!(last_settings(&env)["hooks"]["PreToolUse"].is_array());
    }
}

#[test]
fn sandbox_off_tells_claude_so_and_the_task_records_it() {
    let mut env = TestEnv::new();
    env.set_env("CMS_SANDBOX", "off");
    env.steps(json!([]));
    let task = env.task_ok(&["go", "--name", "plain", "--preset", "full"]);
    assert_eq!(task["safety"]["sandboxed"], false);
    assert_eq!(last_settings(&env)["sandbox"], json!({"enabled": false}));
    let show = env.cms(&["show", "plain"]);
    show.success();
    assert!(
        show.stdout.contains("Bash not sandboxed"),
        "{}",
        show.stdout
    );
    assert_eq!(
        env.cms(&["show", "plain", "--json"]).json()["safety"]["sandboxed"],
        false
    );
}

#[test]
fn show_says_the_task_ran_sandboxed() {
    let env = TestEnv::new();
    env.steps(json!([]));
    env.task_ok(&["go", "--name", "boxed"]);
    let show = env.cms(&["show", "boxed"]);
    show.success();
    assert!(
        show.stdout
            .lines()
            .any(|l| l.contains("sandbox") && l.contains("Bash sandboxed")),
        "{}",
        show.stdout
    );
    assert_eq!(
        env.cms(&["show", "boxed", "--json"]).json()["safety"]["sandboxed"],
        true
    );
}

#[test]
fn required_sandbox_without_bubblewrap_refuses_to_start_and_makes_nothing() {
    let env = without_bwrap(true);
    let run = env.cms(&["task", "go", "--name", "boxed"]);
    run.code(1)
        .one_line_error_with_hint("the Bash sandbox is required but unavailable");
    assert!(run.stderr.contains("bwrap"), "{}", run.stderr);
    assert!(
        run.stderr.contains("install bubblewrap and socat"),
        "{}",
        run.stderr
    );
    assert!(env.claude_invocations().is_empty());
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(env.worktrees().len(), 1);
    assert!(!env.common_dir().join("cms/tasks/boxed.json").exists());
}

#[test]
fn auto_sandbox_without_bubblewrap_warns_once_and_runs_unsandboxed() {
    let env = without_bwrap(false);
    env.steps(json!([]));
    let run = env.cms(&["task", "--json", "go", "--name", "open"]);
    run.success();
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("unsandboxed") && warnings[0].contains("bwrap"));
    assert!(warnings[0].contains("install bubblewrap and socat"));
    assert_eq!(run.json()["safety"]["sandboxed"], false);
    assert_eq!(last_settings(&env)["sandbox"], json!({"enabled": false}));
}

#[test]
fn sandbox_setting_accepts_only_auto_required_or_off() {
    let mut env = TestEnv::new();
    env.set_env("CMS_SANDBOX", "yes");
    env.steps(json!([]));
    // A bad environment value is a usage error, like every other CMS_* value.
    env.cms(&["task", "go", "--name", "x"])
        .code(2)
        .one_line_error_with_hint("CMS_SANDBOX");
    assert_eq!(env.branches(), ["main"]);
    let env = TestEnv::new();
    env.write(".cms.toml", "[safety]\nsandbox = true\n");
    env.commit_all("a bad setting");
    env.cms(&["task", "go", "--name", "x"]).code(1);
    assert_eq!(env.branches(), ["main"]);
}

#[test]
fn each_task_gets_its_own_temp_dir_gone_when_the_task_ends() {
    let env = TestEnv::new();
    env.steps(json!([
        {"bash": "echo \"$TMPDIR\" > tmpdir.txt && echo kept > \"$TMPDIR/scratch\" && cat \"$TMPDIR/scratch\" > scratch.txt"},
        {"bash": "git config core.excludesFile > excludes.txt"},
    ]));
    env.task_ok(&["go", "--name", "one", "--preset", "full"]);
    env.task_ok(&["go", "--name", "two", "--preset", "full"]);
    let tmp = |task: &str| PathBuf::from(env.git(&["show", &format!("cms/{task}:tmpdir.txt")]));
    assert_ne!(tmp("one"), tmp("two"));
    for task in ["one", "two"] {
        assert!(tmp(task).is_absolute());
        assert!(
            !tmp(task).exists(),
            "{} outlived its task",
            tmp(task).display()
        );
        assert_eq!(
            env.git(&["show", &format!("cms/{task}:scratch.txt")]),
            "kept"
        );
        // The agent's git hides the sandbox's placeholder dotfiles through an excludes file
        // in that temp dir, not through anything in the repository.
        let excludes = env.git(&["show", &format!("cms/{task}:excludes.txt")]);
        assert!(
            PathBuf::from(&excludes).starts_with(tmp(task)),
            "{excludes}"
        );
    }
    assert!(!env.git_ok(&["config", "core.excludesFile"]));
}

#[test]
fn doctor_says_whether_the_sandbox_is_available_and_why_not() {
    let env = TestEnv::new();
    let run = env.cms(&["doctor", "--json"]);
    let check = &run.json()["checks"]["sandbox"];
    assert_eq!(check["status"], "ok", "{check:#}");
    assert_eq!(check["available"], true);
    assert_eq!(check["mode"], "auto");

    let mut env = without_bwrap(false);
    let doctor = env.cms(&["doctor", "--json"]).json();
    let check = &doctor["checks"]["sandbox"];
    assert_eq!(check["status"], "warning", "{check:#}");
    assert_eq!(check["available"], false);
    assert!(
        check["reason"].as_str().unwrap().contains("bwrap"),
        "{check:#}"
    );
    assert!(
        check["hint"]
            .as_str()
            .unwrap()
            .contains("bubblewrap and socat")
    );
    let human = env.cms(&["doctor"]);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.contains("sandbox") && l.contains("unavailable") && l.contains("bwrap")),
        "{}",
        human.stdout
    );

    env.set_env("CMS_SANDBOX", "required");
    let run = env.cms(&["doctor", "--json"]);
    run.code(1);
    assert_eq!(run.json()["checks"]["sandbox"]["status"], "failed");
}

#[test]
fn sandbox_flag_overrides_the_configuration_and_the_environment() {
    let mut env = without_bwrap(true);
    let task = env.task_ok(&["go", "--name", "open", "--sandbox", "off"]);
    assert_eq!(task["safety"]["sandboxed"], false);
    env.set_env("CMS_SANDBOX", "off");
    env.cms(&["task", "go", "--name", "boxed", "--sandbox", "required"])
        .code(1)
        .one_line_error_with_hint("the Bash sandbox is required but unavailable");
    env.cms(&["task", "go", "--name", "bad", "--sandbox", "on"])
        .code(2);
    assert_eq!(env.branches(), ["cms/open", "main"]);
}

#[test]
fn every_task_has_an_empty_worktree_config_so_other_tasks_sandboxes_leave_it_alone() {
    let mut env = TestEnv::new();
    env.steps(json!([]));
    env.task_ok(&["go", "--name", "boxed"]);
    env.set_env("CMS_SANDBOX", "off");
    env.task_ok(&["go", "--name", "open"]);
    for task in ["boxed", "open"] {
        let config = env
            .common_dir()
            .join("worktrees")
            .join(task)
            .join("config.worktree");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), "", "{task}");
    }
}

#[test]
fn the_users_writable_folders_and_hosts_reach_the_sandbox_and_doctor_shows_them() {
    let env = TestEnv::new();
    let cache = env.root.join("cargo-home");
    std::fs::create_dir_all(&cache).unwrap();
    env.user_config(&format!(
        "[safety]\nwritable = [{:?}]\nhosts = [\"crates.io\", \"*.npmjs.org\"]\n",
        cache.display().to_string()
    ));
    env.cms(&["task", "x", "-n", "t"]).success();
    let sandbox = &last_settings(&env)["sandbox"];
    let cache = std::fs::canonicalize(&cache).unwrap().display().to_string();
    let allowed = sandbox["filesystem"]["allowWrite"].as_array().unwrap();
    assert_eq!(allowed.last(), Some(&json!(cache)), "{sandbox:#}");
    assert_eq!(
        sandbox["network"]["allowedDomains"],
        json!(["crates.io", "*.npmjs.org"])
    );
    let check = &env.cms(&["doctor", "--json"]).json()["checks"]["sandbox"];
    assert_eq!(check["status"], "ok", "{check:#}");
    assert_eq!(check["writable"], json!([cache]));
    assert_eq!(check["hosts"], json!(["crates.io", "*.npmjs.org"]));
    assert!(
        check["message"].as_str().unwrap().contains(&cache),
        "{check:#}"
    );
}

#[test]
fn a_writable_folder_holding_the_repository_or_its_worktrees_is_refused() {
    let env = TestEnv::new();
    for (folder, what) in [
        (env.root.clone(), "the repository's git dir"),
        (env.common_dir().join("cms"), "the repository's git dir"),
        (env.repo.join("src"), "the checkout"),
    ] {
        env.user_config(&format!(
            "[safety]\nwritable = [{:?}]\n",
            folder.display().to_string()
        ));
        let run = env.cms(&["task", "x", "-n", "t"]);
        run.code(1);
        assert!(
            run.stderr.contains("safety.writable") && run.stderr.contains(what),
            "{}: {}",
            folder.display(),
            run.stderr
        );
        assert!(!env.git_ok(&["rev-parse", "--verify", "cms/t"]));
        let doctor = env.cms(&["doctor", "--json"]);
        doctor.code(1);
        assert_eq!(doctor.json()["checks"]["sandbox"]["status"], "failed");
    }
}
