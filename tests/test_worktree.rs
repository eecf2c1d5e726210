//! Ready-to-run worktrees: the ignored files a task needs are copied in, the project's setup
//! runs before the agent, and each running task gets ports of its own.

use serde_json::json;

use crate::common::{LIMIT, TestEnv, eventually};

/// A repository whose main checkout has ignored files: `.env`, `.env.local`, `secrets/`,
/// `build/` and a `config/` folder with one local file.
fn with_ignored_files(env: &TestEnv) {
    env.ignored(
        ".env*\nsecrets/\nbuild/\nconfig/\n",
        &[
            (".env", "TOKEN=1\n"),
            (".env.local", "LOCAL=1\n"),
            ("secrets/key.pem", "KEY\n"),
            ("build/out.bin", "BIN\n"),
            ("config/local.json", "{}\n"),
            ("config/other.json", "{}\n"),
        ],
    );
}

/// What the agent found in its worktree, as it wrote it to `seen.txt`.
fn seen(env: &TestEnv, task: &str) -> String {
    env.git(&["show", &format!("cms/{task}:seen.txt")])
}

#[test]
fn new_worktrees_get_the_ignored_files_worktreeinclude_and_copy_name() {
    let env = TestEnv::new();
    with_ignored_files(&env);
    env.write(".worktreeinclude", "# what tasks need\n.env*\nsecrets/\n");
    env.write(".cms.toml", "[worktree]\ncopy = [\"config/local.json\"]\n");
    env.trust();
    env.steps(json!([{"bash": "ls -A .env* secrets config build 2>&1 | sort > seen.txt; cat .env >> seen.txt"}]));
    let task = env.task_ok(&["look", "-n", "t"]);
    let seen = seen(&env, "t");
    assert!(seen.contains(".env\n.env.local\n"), "{seen}");
    assert!(seen.contains("key.pem"), "{seen}");
    assert!(seen.contains("local.json"), "{seen}");
    assert!(!seen.contains("other.json"), "{seen}");
    assert!(
        seen.contains("build") && seen.contains("No such file"),
        "{seen}"
    );
    assert!(seen.ends_with("TOKEN=1"), "{seen}");
    // Copied, never committed: they stay ignored in the worktree.
    let files: Vec<String> = env.tree_paths("cms/t");
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with(".env") || f.starts_with("secrets")),
        "{files:?}"
    );
    assert_eq!(task["files_changed"][0]["path"], "seen.txt");
    // The user's files are theirs still.
    assert_eq!(env.read(".env"), "TOKEN=1\n");
}

#[test]
fn a_worktree_gets_only_the_ignored_files_worktreeinclude_names_not_claudes_local_settings() {
    let env = TestEnv::new();
    env.ignored(
        ".env\n.claude/settings.local.json\n.mcp.json\n",
        &[
            (".env", "TOKEN=1\n"),
            (".claude/settings.local.json", "{}\n"),
            (".mcp.json", "{}\n"),
        ],
    );
    env.write(".worktreeinclude", ".env\n");
    env.trust();
    env.steps(json!([{"bash": "ls -A .env .claude .mcp.json > seen.txt 2>&1; true"}]));
    env.task_ok(&["look", "-n", "t"]);
    let seen = seen(&env, "t");
    assert!(seen.lines().any(|l| l == ".env"), "{seen}");
    // Protected paths are not copied for being protected: .worktreeinclude names what is.
    assert!(seen.contains("'.claude': No such file"), "{seen}");
    assert!(seen.contains("'.mcp.json': No such file"), "{seen}");
}

#[test]
fn setup_runs_in_the_new_worktree_before_the_agent_with_the_tasks_environment() {
    let env = TestEnv::new();
    env.ignored("deps/\n", &[]);
    env.write(
        ".cms.toml",
        "[worktree]\nsetup = [\"mkdir -p deps && echo \\\"$CMS_TASK $CMS_TASK_BRANCH\\\" > deps/ready\", \"test -f deps/ready\"]\n",
    );
    env.trust();
    env.steps(json!([{"bash": "cat deps/ready > seen.txt; pwd >> seen.txt; echo $CMS_TASK_DIR >> seen.txt"}]));
    env.task_ok(&["build it", "-n", "t"]);
    let lines: Vec<String> = seen(&env, "t").lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "t cms/t");
    assert_eq!(lines[1], lines[2], "CMS_TASK_DIR is the worktree");
    // A follow-up runs in the same worktree: no second setup.
    env.steps(json!([{"bash": "echo again >> deps/ready; cat deps/ready > seen.txt"}]));
    env.cms(&["continue", "t", "again"]).success();
    assert_eq!(seen(&env, "t"), "t cms/t\nagain");
}

#[test]
fn a_failing_setup_ends_the_task_failed_with_its_output_and_keeps_the_worktree() {
    let env = TestEnv::new();
    env.write(
        ".cms.toml",
        "[worktree]\nsetup = [\"echo installing; echo 'no network' >&2; exit 4\"]\n",
    );
    env.trust();
    let run = env.cms(&["task", "x", "-n", "t", "--json"]);
    run.code(3);
    let task = run.json();
    assert_eq!(task["status"], "failed");
    assert_eq!(
        task["error"],
        "worktree setup `echo installing; echo 'no network' >&2; exit 4` failed (exit 4): no network"
    );
    assert!(
        env.claude_invocations().is_empty(),
        "claude ran after a failed setup"
    );
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    assert!(worktree.is_dir());
    assert_eq!(task["supervisor"], serde_json::Value::Null);
    env.cms(&["discard", "t"]).success();
}

#[test]
fn each_running_task_gets_a_block_of_ports_no_other_running_task_holds() {
    let mut env = TestEnv::new();
    // Its own port locks: the lowest free block must not depend on other tests.
    env.private_tmpdir();
    env.write(".cms.toml", "[worktree]\nports = 5\n");
    env.trust();
    let gate = env.root.join("gate");
    env.steps(json!([{"bash": format!(
        "echo $CMS_PORT $CMS_PORTS > port.txt; until [ -e {} ]; do sleep 0.02; done",
        gate.display()
    )}]));
    env.cms(&["task", "-d", "x", "-n", "a"]).success();
    env.cms(&["task", "-d", "x", "-n", "b"]).success();
    let port_of = |name: &str| {
        eventually(&format!("task {name} to write its port"), || {
            let worktree = env.cms(&["show", name, "--json"]).json()["worktree"]
                .as_str()
                .unwrap()
                .to_owned();
            let text =
                std::fs::read_to_string(std::path::Path::new(&worktree).join("port.txt")).ok()?;
            let words: Vec<u16> = text
                .split_whitespace()
                .map(|w| w.parse().unwrap())
                .collect();
            Some(words)
        })
    };
    let (a, b) = (port_of("a"), port_of("b"));
    assert_eq!(a[1], 5);
    assert_eq!(b[1], 5);
    assert_ne!(a[0], b[0]);
    assert!(a[0].abs_diff(b[0]) >= 5, "{a:?} {b:?}");
    assert_eq!((a[0] - 20000) % 5, 0);
    std::fs::write(&gate, "").unwrap();
    env.cms_bounded(&["wait", "a", "b"], LIMIT).success();
    // Released with their sessions: the lowest free block is handed out again.
    let lowest = a[0].min(b[0]);
    std::fs::remove_file(&gate).unwrap();
    env.steps(json!([{"bash": "echo $CMS_PORT $CMS_PORTS > port.txt"}]));
    env.task_ok(&["x", "-n", "c"]);
    assert_eq!(env.git(&["show", "cms/c:port.txt"]), format!("{lowest} 5"));
}

#[test]
fn linked_paths_point_into_the_main_checkout_and_are_never_committed() {
    let env = TestEnv::new();
    // `node_modules/` ignores folders only: a symlink of that name is not ignored by git.
    env.ignored(
        "node_modules/\n",
        &[("node_modules/left-pad/index.js", "module.exports = 1;\n")],
    );
    env.write(
        ".cms.toml",
        "[worktree]\nlink = [\"node_modules\", \"./missing\"]\n",
    );
    env.trust();
    env.steps(json!([{"bash": "cat node_modules/left-pad/index.js > seen.txt; git add -A; git status --porcelain >> seen.txt"}]));
    let task = env.task_ok(&["x", "-n", "t"]);
    assert_eq!(task["links"], json!(["node_modules"]));
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    let link = std::fs::read_link(worktree.join("node_modules")).unwrap();
    assert_eq!(link, env.repo.join("node_modules"));
    assert!(seen(&env, "t").starts_with("module.exports = 1;"));
    let files: Vec<String> = env.tree_paths("cms/t");
    assert!(
        !files.iter().any(|f| f.starts_with("node_modules")),
        "{files:?}"
    );
    assert_eq!(task["safety"]["violations"], json!([]));
    // Nor are they part of what the task changed: its diff and its merge leave them out,
    // beside uncommitted work as well.
    std::fs::write(worktree.join("later.txt"), "later\n").unwrap();
    assert_eq!(
        env.cms(&["diff", "t", "--name-only"]).stdout,
        "later.txt\nseen.txt\n"
    );
    std::fs::remove_file(worktree.join("later.txt")).unwrap();
    assert_eq!(env.cms(&["diff", "t", "--name-only"]).stdout, "seen.txt\n");
    env.cms(&["merge", "t"]).success();
    assert!(!env.git_ok(&["cat-file", "-e", "main:node_modules"]));
    // A path that climbs out of the checkout is refused.
    env.write(".cms.toml", "[worktree]\nlink = [\"../elsewhere\"]\n");
    env.trust();
    env.cms(&["task", "y", "-n", "u"])
        .code(1)
        .one_line_error_with_hint("invalid value '../elsewhere' for worktree.link");
}

#[test]
fn an_agent_may_not_widen_what_later_tasks_copy_of_the_users_ignored_files() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": ".worktreeinclude", "content": "**\n"}}]));
    let run = env.cms(&["task", "x", "-n", "t", "--json"]);
    let task = run.json();
    assert_eq!(
        task["safety"]["blocked"][0]["path"], ".worktreeinclude",
        "{task:#}"
    );
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:.worktreeinclude"]));
}
