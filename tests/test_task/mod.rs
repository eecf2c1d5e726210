//! `cms task`: worktrees, sessions, commits and recorded outcomes.

mod background;
mod endings;
mod progress;

use serde_json::json;

use crate::common::{TestEnv, eventually};

#[test]
fn task_commits_exactly_the_agents_changes_on_its_branch() {
    let env = TestEnv::new();
    env.write("old.txt", "to be deleted\n");
    env.write("edit.txt", "one\ntwo\nthree\n");
    env.write(".gitignore", "*.log\n");
    env.commit_all("more files");
    let base = env.git(&["rev-parse", "HEAD"]);
    env.steps(json!([
        {"text": "working"},
        {"write": {"path": "src/new.rs", "content": "fn main() {}\n"}},
        {"read": {"path": "edit.txt"}},
        {"edit": {"path": "edit.txt", "old": "two", "new": "TWO"}},
        {"delete": "old.txt"},
        {"bash": "echo made-by-bash > bash.txt && echo noise > debug.log"},
    ]));
    let task = env.task_ok(&["add a main", "--name", "t1"]);
    assert_eq!(task["status"], "completed");
    assert_eq!(task["branch"], "cms/t1");
    assert_eq!(task["base"], base);

    // The branch holds exactly the agent's changes, ignored files excluded.
    let files = env.tree_files("cms/t1");
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            ".gitignore",
            "README.md",
            "bash.txt",
            "edit.txt",
            "src/new.rs"
        ]
    );
    assert_eq!(env.git(&["show", "cms/t1:edit.txt"]), "one\nTWO\nthree");
    assert_eq!(env.git(&["show", "cms/t1:bash.txt"]), "made-by-bash");
    assert_eq!(env.git(&["rev-parse", "cms/t1^"]), base);

    // One commit, the prompt as its message, with trailers naming task and session.
    let message = env.git(&["log", "-1", "--format=%B", "cms/t1"]);
    assert!(message.starts_with("add a main\n"), "{message}");
    assert!(message.contains("Cms-Task: t1"), "{message}");
    let session = task["session_id"].as_str().unwrap();
    assert!(
        message.contains(&format!("Cms-Session: {session}")),
        "{message}"
    );

    // The user's checkout is untouched.
    assert_eq!(env.git(&["rev-parse", "HEAD"]), base);
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert!(!env.repo.join("src/new.rs").exists());
    assert!(env.repo.join("old.txt").exists());

    let changed: Vec<(String, String)> = task["files_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            ("bash.txt".into(), "added".into()),
            ("edit.txt".into(), "modified".into()),
            ("old.txt".into(), "deleted".into()),
            ("src/new.rs".into(), "added".into()),
        ]
    );
}

#[test]
fn task_worktree_lives_outside_the_repository_in_the_data_dir() {
    let env = TestEnv::new();
    let task = env.task_ok(&["look around", "--name", "look"]);
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    assert!(!worktree.starts_with(&env.repo), "{}", worktree.display());
    assert!(worktree.starts_with(env.home.join(".local/share/cms/worktrees")));
    assert!(worktree.ends_with("look"));
    assert!(worktree.is_dir());
    assert!(env.worktrees().contains(&worktree));
}

#[test]
fn task_json_carries_every_field_of_the_design() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&[
        "write a", "--name", "fields", "--model", "sonnet", "--preset", "full",
    ]);
    for field in [
        "name",
        "status",
        "prompt",
        "branch",
        "worktree",
        "base",
        "session_id",
        "model",
        "preset",
        "cost_usd",
        "turns",
        "duration_ms",
        "response",
        "can_continue",
        "tools_used",
        "files_changed",
        "safety",
        "error",
        "created_at",
        "updated_at",
    ] {
        assert!(task.get(field).is_some(), "missing {field} in {task}");
    }
    assert_eq!(task["name"], "fields");
    assert_eq!(task["prompt"], "write a");
    assert_eq!(task["model"], "sonnet");
    assert_eq!(task["preset"], "full");
    assert_eq!(task["response"], "done");
    assert_eq!(task["can_continue"], true);
    assert_eq!(task["tools_used"], json!(["Write"]));
    assert_eq!(task["safety"]["violations"], json!([]));
    assert_eq!(task["error"], json!(null));
    assert_eq!(
        task["files_changed"],
        json!([{"path": "a.txt", "status": "added", "additions": 1, "deletions": 0, "binary": false}])
    );
    // Two API responses of 1000 in / 100 out priced as sonnet ($3/$15 per MTok).
    let cost = task["cost_usd"].as_f64().unwrap();
    assert!((cost - 2.0 * (0.003 + 0.0015)).abs() < 1e-9, "{cost}");
    assert_eq!(task["turns"], 2);
    // show --json describes the same task.
    let shown = env.cms(&["show", "fields", "--json"]);
    shown.success();
    let shown = shown.json();
    assert_eq!(shown["session_id"], task["session_id"]);
    assert_eq!(shown["files_changed"], task["files_changed"]);
}

#[test]
fn task_passes_preset_and_model_to_claude_with_stream_json_flags() {
    let env = TestEnv::new();
    env.task_ok(&[
        "review it",
        "--name",
        "r",
        "--preset",
        "read-only",
        "--model",
        "haiku",
    ]);
    let calls = env.claude_invocations();
    assert_eq!(calls.len(), 1);
    let argv: Vec<&str> = calls[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|a| a.as_str().unwrap())
        .collect();
    let joined = argv.join(" ");
    for expected in [
        "-p",
        "--input-format stream-json",
        "--output-format stream-json",
        "--verbose",
        "--permission-mode default",
        "--model haiku",
    ] {
        assert!(joined.contains(expected), "{expected:?} not in {joined}");
    }
    assert!(joined.contains("--allowedTools Read,Glob,Grep"), "{joined}");
    assert_eq!(calls[0]["env"]["CMS_TASK"], "r");
    let cwd = calls[0]["cwd"].as_str().unwrap();
    assert!(cwd.ends_with("/r"), "{cwd}");
}

#[test]
fn default_preset_accepts_edits_and_full_bypasses_permissions() {
    let env = TestEnv::new();
    env.task_ok(&["x", "--name", "e"]);
    env.task_ok(&["x", "--name", "f", "--preset", "full"]);
    let calls = env.claude_invocations();
    let mode = |i: usize| {
        let argv = calls[i]["argv"].as_array().unwrap();
        let at = argv.iter().position(|a| a == "--permission-mode").unwrap();
        argv[at + 1].as_str().unwrap().to_owned()
    };
    assert_eq!(mode(0), "acceptEdits");
    assert_eq!(mode(1), "bypassPermissions");
}

#[test]
fn task_name_defaults_to_a_unique_slug_of_the_prompt() {
    let env = TestEnv::new();
    let a = env.task_ok(&["Fix the login bug!"]);
    let b = env.task_ok(&["fix the login bug"]);
    assert_eq!(a["name"], "fix-the-login-bug");
    assert_eq!(b["name"], "fix-the-login-bug-2");
    assert!(
        env.branches()
            .contains(&"cms/fix-the-login-bug-2".to_owned())
    );
}

#[test]
fn task_runs_from_a_subdirectory_and_from_a_linked_worktree() {
    let env = TestEnv::new();
    env.write("sub/dir/file.txt", "x\n");
    env.commit_all("sub");
    let task = env.cms_in(
        &env.repo.join("sub/dir"),
        &["task", "--json", "from sub", "-n", "sub"],
    );
    task.success();
    assert_eq!(task.json()["base_branch"], "main");

    let linked = env.root.join("linked");
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "feature",
        linked.to_str().unwrap(),
    ]);
    std::fs::write(linked.join("feature.txt"), "f\n").unwrap();
    env.git_in(&linked, &["add", "."]);
    env.git_in(&linked, &["commit", "-q", "-m", "feature"]);
    env.steps(json!([{"write": {"path": "more.txt", "content": "more\n"}}]));
    let run = env.cms_in(&linked, &["task", "--json", "on feature", "-n", "feat"]);
    run.success();
    let task = run.json();
    assert_eq!(task["base_branch"], "feature");
    assert_eq!(task["base"], env.git_in(&linked, &["rev-parse", "HEAD"]));
    // Both tasks share one store: either checkout lists both.
    let names: Vec<String> = env
        .cms_in(&linked, &["list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["sub", "feat"]);
    let files: Vec<String> = env.tree_paths("cms/feat");
    assert_eq!(
        files,
        ["README.md", "feature.txt", "more.txt", "sub/dir/file.txt"]
    );
}

#[test]
fn task_base_can_be_another_branch_or_a_commit() {
    let env = TestEnv::new();
    let first = env.git(&["rev-parse", "HEAD"]);
    env.write("later.txt", "later\n");
    env.commit_all("later");
    env.git(&["branch", "other", &first]);
    let on_branch = env.task_ok(&["x", "-n", "b1", "--base", "other"]);
    assert_eq!(on_branch["base"], first);
    assert_eq!(on_branch["base_branch"], "other");
    let on_commit = env.task_ok(&["x", "-n", "b2", "--base", &first[..10]]);
    assert_eq!(on_commit["base"], first);
    assert_eq!(on_commit["base_branch"], json!(null));
}

#[test]
fn human_summary_lists_status_ledger_files_and_next_commands() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\nb\n"}}]));
    let run = env.cms(&["task", "write a", "-n", "human"]);
    run.success();
    let out = &run.stdout;
    assert!(out.starts_with("completed human"), "{out}");
    assert!(out.contains("2 turns"), "{out}");
    assert!(out.contains("A a.txt  +2 -0"), "{out}");
    assert!(out.contains("cms diff human"), "{out}");
    assert!(out.contains("cms merge human"), "{out}");
    assert!(out.contains("cms discard human"), "{out}");
    // Progress goes to stderr, never stdout.
    assert!(run.stderr.contains("Write a.txt"), "{}", run.stderr);
    assert!(!out.contains("Write a.txt"), "{out}");
}

#[test]
fn detached_head_tasks_are_allowed_and_record_no_base_branch() {
    let env = TestEnv::new();
    let head = env.git(&["rev-parse", "HEAD"]);
    env.git(&["checkout", "-q", "--detach"]);
    let task = env.task_ok(&["x", "-n", "det"]);
    assert_eq!(task["base"], head);
    assert_eq!(task["base_branch"], json!(null));
}

#[test]
fn a_supervisor_that_died_leaves_its_task_interrupted() {
    let env = TestEnv::new();
    let marker = env.root.join("started");
    env.steps(json!([
        {"bash": format!("touch {}", marker.display())},
        {"sleep_ms": 60000},
    ]));
    let mut child = env
        .cms_command(&env.repo, &["task", "x", "-n", "orphan"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the session's Bash call to start", || marker.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let shown = env.cms(&["show", "--json", "orphan"]);
    shown.success();
    let task = shown.json();
    assert_eq!(task["status"], "interrupted");
    assert!(task["error"].as_str().unwrap().contains("supervising"));
    // claude died with its supervisor: nothing is left running in the worktree.
    let worktree = task["worktree"].as_str().unwrap().to_owned();
    eventually("no process left in the worktree", || {
        !process_with_cwd(&worktree)
    });
}

#[test]
fn ctrl_c_stops_the_session_gracefully_and_keeps_its_work() {
    let env = TestEnv::new();
    let marker = env.root.join("started");
    env.steps(json!([
        {"write": {"path": "kept.txt", "content": "kept\n"}},
        {"bash": format!("touch {}", marker.display())},
        {"sleep_ms": 60000},
    ]));
    let child = env
        .cms_command(&env.repo, &["task", "--json", "x", "-n", "stopped"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the session's Bash call to start", || marker.exists());
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    let task: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(task["status"], "aborted");
    assert_eq!(env.git(&["show", "cms/stopped:kept.txt"]), "kept");
}

fn process_with_cwd(dir: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.to_string_lossy() == dir)
        })
}

#[test]
fn parallel_tasks_with_the_same_prompt_get_distinct_names_and_worktrees() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "same.txt", "content": "same\n"}}]));
    let children: Vec<_> = (0..3)
        .map(|_| {
            env.cms_command(&env.repo, &["task", "--json", "same prompt"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut names: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let task: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(task["status"], "completed");
            task["name"].as_str().unwrap().to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["same-prompt", "same-prompt-2", "same-prompt-3"]);
    for name in &names {
        assert_eq!(env.git(&["show", &format!("cms/{name}:same.txt")]), "same");
    }
    assert_eq!(env.git(&["status", "--porcelain"]), "");
}

#[test]
fn git_hook_variables_do_not_send_the_agents_git_commands_to_the_users_repo() {
    let mut env = TestEnv::new();
    // What git exports to a hook running in the user's checkout.
    let git_dir = env.common_dir();
    env.set_env("GIT_DIR", git_dir.to_str().unwrap());
    let work_tree = env.repo.to_str().unwrap().to_owned();
    env.set_env("GIT_WORK_TREE", &work_tree);
    env.set_env("GIT_INDEX_FILE", git_dir.join("index").to_str().unwrap());
    env.steps(json!([
        {"write": {"path": "agent.txt", "content": "agent\n"}},
        {"bash": "git add agent.txt && git commit -q -m 'agent commit'"},
    ]));
    let task = env.task_ok(&["commit it", "-n", "hooked"]);
    assert_eq!(task["status"], "completed");
    // The agent's commit is on the task branch; main and the user's index are untouched.
    let log = env.git(&["log", "--format=%s", "cms/hooked"]);
    assert!(log.starts_with("agent commit"), "{log}");
    assert_eq!(env.git(&["log", "--format=%s", "main"]), "init");
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert!(!env.repo.join("agent.txt").exists());
}

#[test]
fn a_unicode_prompt_gives_a_readable_ascii_task_name() {
    let env = TestEnv::new();
    let task = env.task_ok(&["héllo wörld"]);
    assert_eq!(task["name"], "hello-world");
    assert!(env.branches().contains(&"cms/hello-world".to_owned()));
    assert_eq!(task["prompt"], "héllo wörld");
}

#[test]
fn the_prompt_can_come_from_stdin_or_a_file() {
    let env = TestEnv::new();
    let run = env.cms_with_stdin(
        &["task", "--json", "-", "-n", "piped"],
        b"fix the login bug\nand add a test\n",
    );
    run.success();
    let task = run.json();
    assert_eq!(task["prompt"], "fix the login bug\nand add a test");
    let file = env.root.join("prompt.md");
    std::fs::write(&file, "from a file\n").unwrap();
    let task = env.task_ok(&["--prompt-file", file.to_str().unwrap(), "-n", "filed"]);
    assert_eq!(task["prompt"], "from a file");
    env.cms(&["task", "--prompt-file", "/nonexistent/prompt.md"])
        .code(1)
        .one_line_error_with_hint("cannot read the prompt file");
    env.cms(&["task", "both", "--prompt-file", file.to_str().unwrap()])
        .code(2);
    assert_eq!(env.branches(), ["cms/filed", "cms/piped", "main"]);
}

#[test]
fn the_users_notify_command_gets_the_finished_task_and_a_repository_cannot_set_one() {
    let env = TestEnv::new();
    let out = env.root.join("notified");
    let config = env.home.join(".config/cms/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[notify]\ncommand = [\"sh\", \"-c\", \"cat > {0}.json; echo $CMS_TASK $CMS_STATUS > {0}.env\"]\n",
            out.display()
        ),
    )
    .unwrap();
    env.steps(serde_json::json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "told"]);
    let told: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(told["name"], "told");
    assert_eq!(told["status"], "completed");
    assert_eq!(
        std::fs::read_to_string(out.with_extension("env")).unwrap(),
        "told completed\n"
    );
    // A failing notifier is a warning, never the task's failure.
    std::fs::write(&config, "[notify]\ncommand = [\"false\"]\n").unwrap();
    let run = env.cms(&["task", "x", "-n", "quiet"]);
    run.success();
    assert!(run.stderr.contains("notify.command"), "{}", run.stderr);
    // A repository's .cms.toml may not name a program for cms to run.
    std::fs::remove_file(&config).unwrap();
    env.write(".cms.toml", "[notify]\ncommand = [\"touch\", \"pwned\"]\n");
    env.commit_all("a notifier");
    env.cms(&["task", "x", "-n", "refused"])
        .code(1)
        .one_line_error_with_hint("notify.command");
    assert!(!env.repo.join("pwned").exists());
}
