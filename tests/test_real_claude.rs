//! `cms` end to end with the real Claude Code CLI (the pinned npm release), offline against the
//! fake Anthropic API of `common::fake_api`: the fake claude encodes what we believe about
//! claude, these tests check it against what claude does.
//!
//! `.ci/run` installs the CLI and names it in `CMS_REAL_CLAUDE_BIN`; without that variable the
//! tests look in the folder `.ci/run` installs into. A missing CLI fails the tests, unless a
//! developer outside CI sets `CMS_SKIP_REAL_CLAUDE=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake_api::{COST_PER_REPLY, CWD, FakeApi, Reply};
use crate::common::{Background, FAKE_CLAUDE, Run, TestEnv, wait_bounded};

/// The release `.ci/run` installs; keep in step with it and with `cms doctor`'s tested versions.
const PINNED_VERSION: &str = "2.1.197";

/// Generous for a run of about a second: CI machines are slow and run tests side by side.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Prints past the test harness's output capture, so the line shows even for passing tests.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The folder `.ci/run` installs the pinned CLI into.
fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/claude-code")
        .join(PINNED_VERSION)
}

fn locate_claude() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("CMS_REAL_CLAUDE_BIN").filter(|v| !v.is_empty()) {
        // Relative to where the tests were started, not to the repositories cms runs in.
        let bin = std::path::absolute(PathBuf::from(bin)).map_err(|e| e.to_string())?;
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "CMS_REAL_CLAUDE_BIN={} does not exist",
                bin.display()
            ))
        };
    }
    // The platform package's binary runs even when npm skipped the wrapper's postinstall,
    // which is what turns `.bin/claude` from a stub into the real thing.
    let modules = install_dir().join("node_modules");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(modules.join("@anthropic-ai"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("claude-code-"))
        .map(|e| e.path().join("claude"))
        .collect();
    candidates.sort();
    candidates.push(modules.join(".bin/claude"));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "CMS_REAL_CLAUDE_BIN is unset and {} holds no install",
            install_dir().display()
        )
    })
}

/// The real claude binary, or `None` when a developer chose to skip these tests. Without the
/// CLI the test fails: in CI always, elsewhere unless `CMS_SKIP_REAL_CLAUDE=1`.
pub(crate) fn real_claude(test: &str) -> Option<PathBuf> {
    let why = match locate_claude() {
        Ok(path) => return Some(path),
        Err(why) => why,
    };
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    let skip = std::env::var("CMS_SKIP_REAL_CLAUDE").is_ok_and(|v| v == "1");
    if skip && !in_ci {
        say(&format!(
            "real_claude tests: claude CLI not available ({why}); skipped {test} \
             (CMS_SKIP_REAL_CLAUDE=1)"
        ));
        return None;
    }
    say(&format!(
        "real_claude tests: claude CLI not available ({why})"
    ));
    if in_ci {
        panic!("claude CLI not available in CI ({why}); .ci/run installs it with npm");
    }
    panic!(
        "claude CLI not available ({why}). Run .ci/run once (it installs \
         @anthropic-ai/claude-code@{PINNED_VERSION} with npm into {}), or set \
         CMS_REAL_CLAUDE_BIN to a claude binary, or set CMS_SKIP_REAL_CLAUDE=1 to skip these tests",
        install_dir().display()
    );
}

/// A repository whose cms runs the real claude against `api`, offline and out of the real home.
pub(crate) fn real_env(claude: &Path, api: &FakeApi) -> TestEnv {
    let mut env = TestEnv::new();
    env.set_env("CMS_CLAUDE_BIN", &claude.display().to_string());
    // Every process of the real claude's sessions inside the outer boundary, as users' are.
    env.set_env("CMS_BOUNDARY", "on");
    for (key, value) in claude_env(api, &env.home.join(".claude")) {
        env.set_env(key, &value);
    }
    env
}

/// What keeps claude offline, talking to `api`, and out of the real home.
fn claude_env(api: &FakeApi, config_dir: &Path) -> [(&'static str, String); 10] {
    [
        ("ANTHROPIC_BASE_URL", api.url.clone()),
        ("ANTHROPIC_API_KEY", "sk-ant-api03-fake".to_owned()),
        // Without it the CLI looks up outside hosts; with it, it talks only to the base URL.
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("DISABLE_TELEMETRY", "1".to_owned()),
        ("DISABLE_ERROR_REPORTING", "1".to_owned()),
        ("CLAUDE_CONFIG_DIR", config_dir.display().to_string()),
        // As root, bypassPermissions (the `full` preset) is refused unless this is exactly 1.
        ("IS_SANDBOX", "1".to_owned()),
        // The default is 10 retries with backoff: minutes for a failing API.
        ("CLAUDE_CODE_MAX_RETRIES", "1".to_owned()),
        // A request the fake API never answers fails the run (one retry included) within
        // RUN_LIMIT, instead of after the default 10 minutes.
        ("API_TIMEOUT_MS", "20000".to_owned()),
    ]
}

#[track_caller]
pub(crate) fn task_json(run: &Run) -> Value {
    let task = run.json();
    assert!(
        task["status"].is_string(),
        "no task in the output\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    task
}

/// The events of a task's transcript: claude's stdout exactly as cms kept it.
pub(crate) fn transcript(env: &TestEnv, task: &str) -> Vec<Value> {
    let path = env.common_dir().join(format!("cms/logs/{task}.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn last_result(events: &[Value]) -> &Value {
    events
        .iter()
        .rfind(|e| e["type"] == "result")
        .expect("the transcript ends its turn with a result")
}

fn names(values: &Value, key: &str) -> Vec<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_cost(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap();
    assert!(
        (actual - expected).abs() < 1e-9,
        "cost {actual} != {expected}"
    );
}

#[test]
fn real_claude_task_commits_exactly_its_tool_changes_and_records_the_clis_cost() {
    let Some(claude) = real_claude("real_claude_task_commits_exactly_its_tool_changes") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    env.write("edit.txt", "one\ntwo\nthree\n");
    env.write("old.txt", "to be deleted\n");
    env.commit_all("files to change");
    let base = env.git(&["rev-parse", "HEAD"]);
    api.route(
        "[tools]",
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": format!("{CWD}/src/new.txt"), "content": "made by Write\n"}),
            )
            .preceded_by_text("Making the changes."),
            // Edit refuses a file the session has not read.
            Reply::tool("Read", json!({"file_path": format!("{CWD}/edit.txt")})),
            Reply::tool(
                "Edit",
                json!({"file_path": format!("{CWD}/edit.txt"), "old_string": "two", "new_string": "TWO"}),
            ),
            Reply::tool(
                "Bash",
                json!({"command": "rm old.txt && echo made-by-bash > bash.txt", "description": "Swap files"}),
            ),
            Reply::text("All four changes are made."),
        ],
    );

    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[tools] change the files",
            "--name",
            "tools",
            "--preset",
            "full",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    run.success();
    assert_eq!(task["status"], "completed");
    assert_eq!(task["response"], "All four changes are made.");
    assert_eq!(
        names(&task["files_changed"], "path"),
        ["bash.txt", "edit.txt", "old.txt", "src/new.txt"]
    );
    assert_eq!(
        names(&task["files_changed"], "status"),
        ["added", "modified", "deleted", "added"]
    );
    assert_eq!(
        env.tree_files("cms/tools"),
        [
            ("README.md".to_owned(), "hello".to_owned()),
            ("bash.txt".to_owned(), "made-by-bash".to_owned()),
            ("edit.txt".to_owned(), "one\nTWO\nthree".to_owned()),
            ("src/new.txt".to_owned(), "made by Write".to_owned()),
        ]
    );
    assert_eq!(env.git(&["rev-parse", "cms/tools^"]), base);
    assert_eq!(task["tools_used"], json!(["Write", "Read", "Edit", "Bash"]));
    assert_eq!(env.git(&["status", "--porcelain"]), "");

    // The recorded cost is claude's own figure, which is the fake API's fixed usage priced.
    let events = transcript(&env, "tools");
    let result = last_result(&events);
    assert_cost(
        &task["cost_usd"],
        result["total_cost_usd"].as_f64().unwrap(),
    );
    assert_cost(&task["cost_usd"], 5.0 * COST_PER_REPLY);
    assert_eq!(task["turns"], result["num_turns"]);
    assert_eq!(task["session_id"], result["session_id"]);

    // claude ran in the task's worktree and asked for each scripted reply once.
    let requests = api.requests_for("[tools]");
    let indexes: Vec<usize> = requests.iter().map(|r| r.reply_index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4]);
    for request in &requests {
        assert_eq!(request.cwd.as_deref(), task["worktree"].as_str());
        // COST_PER_REPLY is priced for the CLI's default model.
        assert_eq!(request.model, "claude-opus-4-8");
    }
}

#[test]
fn real_claude_read_only_task_ends_needs_input_listing_the_denied_tools() {
    let Some(claude) = real_claude("real_claude_read_only_task_ends_needs_input") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    api.route(
        "[look]",
        vec![
            Reply::tool("Read", json!({"file_path": format!("{CWD}/README.md")})),
            Reply::tool(
                "Write",
                json!({"file_path": format!("{CWD}/notes.txt"), "content": "notes\n"}),
            ),
            Reply::tool(
                "Bash",
                json!({"command": format!("touch {CWD}/touched.txt"), "description": "Touch a file"}),
            ),
            Reply::text("I could not write the notes."),
        ],
    );

    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[look] read and take notes",
            "--name",
            "look",
            "--preset",
            "read-only",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    run.code(3);
    assert_eq!(task["status"], "needs_input");
    assert_eq!(
        names(&task["permission_denials"], "tool_name"),
        ["Write", "Bash"]
    );
    assert_eq!(task["files_changed"], json!([]));
    assert_eq!(task["error"], Value::Null);
    let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
    assert!(!worktree.join("notes.txt").exists());
    assert!(!worktree.join("touched.txt").exists());
    // `show` lists the denials for a person too.
    let show = env.cms(&["show", "look"]);
    show.success();
    for denial in ["Write notes.txt", "Bash touch touched.txt"] {
        assert!(
            show.stdout
                .lines()
                .any(|l| l.contains("denied") && l.ends_with(denial)),
            "{denial} missing from:\n{}",
            show.stdout
        );
    }
}

#[test]
fn real_claude_api_errors_fail_the_task_with_the_apis_message() {
    let Some(claude) = real_claude("real_claude_api_errors_fail_the_task") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    // (route, HTTP status, the API's message, what the task's error must say): for 401 claude
    // puts its own words in place of the API's.
    let cases = [
        (
            "[e500]",
            500,
            "fake internal server error",
            "fake internal server error",
        ),
        ("[e529]", 529, "fake overload", "fake overload"),
        ("[e401]", 401, "invalid x-api-key", "Invalid API key"),
    ];
    for (key, status, message, _) in cases {
        api.route(key, vec![Reply::error(status, message)]);
    }
    // Side by side: each waits out claude's retry backoff.
    let children: Vec<_> = cases
        .iter()
        .map(|(key, status, _, _)| {
            let name = format!("e{status}");
            env.spawn_cms(&["task", "--json", &format!("{key} fail"), "--name", &name])
        })
        .collect();
    for (child, (key, status, _, expected)) in children.into_iter().zip(cases) {
        let run = wait_bounded(child, RUN_LIMIT);
        let task = task_json(&run);
        run.code(3);
        assert_eq!(task["status"], "failed", "{key}");
        let error = task["error"].as_str().unwrap();
        assert!(error.contains(expected), "{key}: {error}");
        assert!(error.contains(&status.to_string()), "{key}: {error}");
        assert_cost(&task["cost_usd"], 0.0);
        assert_eq!(task["files_changed"], json!([]));
        // CLAUDE_CODE_MAX_RETRIES=1: one retry, then claude gives up.
        let statuses: Vec<u16> = api.requests_for(key).iter().map(|r| r.status).collect();
        assert_eq!(statuses, [status; 2], "{key}");
    }
}

#[test]
fn real_claude_parallel_tasks_against_one_api_do_not_mix() {
    let Some(claude) = real_claude("real_claude_parallel_tasks_do_not_mix") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    let write = |name: &str| {
        Reply::tool(
            "Write",
            json!({"file_path": format!("{CWD}/{name}.txt"), "content": format!("{name}\n")}),
        )
    };
    // Held back so both sessions are mid-conversation at the same time.
    let held = Duration::from_millis(300);
    // alpha hands its write to a subagent, whose conversation starts afresh inside alpha's.
    api.route(
        "[alpha]",
        vec![
            Reply::tool(
                "Agent",
                json!({"description": "Write alpha", "prompt": "[alpha-sub] write alpha.txt", "subagent_type": "general-purpose"}),
            )
            .delayed(held),
            Reply::text("alpha done"),
        ],
    );
    api.route(
        "[alpha-sub]",
        vec![write("alpha"), Reply::text("alpha.txt written")],
    );
    api.route(
        "[beta]",
        vec![write("beta").delayed(held), Reply::text("beta done")],
    );
    let tasks = ["alpha", "beta"];
    let children: Vec<_> = tasks
        .iter()
        .map(|name| {
            env.spawn_cms(&[
                "task",
                "--json",
                &format!("[{name}] write your file"),
                "--name",
                name,
            ])
        })
        .collect();
    let results: Vec<Value> = children
        .into_iter()
        .map(|child| {
            let run = wait_bounded(child, RUN_LIMIT);
            run.success();
            task_json(&run)
        })
        .collect();

    // (task, its routes, how many replies its claude process paid for)
    let expected = [
        ("alpha", &["[alpha]", "[alpha-sub]"][..], 4),
        ("beta", &["[beta]"], 2),
    ];
    for ((name, routes, replies), task) in expected.into_iter().zip(&results) {
        assert_eq!(task["status"], "completed", "{name}");
        assert_eq!(task["response"], format!("{name} done"));
        assert_eq!(
            env.tree_files(&format!("cms/{name}")),
            [
                ("README.md".to_owned(), "hello".to_owned()),
                (format!("{name}.txt"), name.to_owned()),
            ]
        );
        // A subagent's usage is part of its parent process's cost.
        assert_cost(&task["cost_usd"], f64::from(replies) * COST_PER_REPLY);
        for route in routes {
            let requests = api.requests_for(route);
            assert_eq!(requests.len(), 2, "{route}: {requests:?}");
            for request in &requests {
                assert_eq!(request.cwd.as_deref(), task["worktree"].as_str(), "{route}");
                assert_eq!(request.subagent, route.ends_with("-sub]"), "{route}");
            }
        }
    }
    assert_ne!(results[0]["session_id"], results[1]["session_id"]);
}

#[test]
fn real_claude_doctor_finds_the_pinned_cli_and_accepts_its_version() {
    let Some(claude) = real_claude("real_claude_doctor_finds_the_pinned_cli") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    let run = env.cms_bounded(&["doctor", "--json"], RUN_LIMIT);
    run.success();
    let doctor = run.json();
    let check = &doctor["checks"]["claude"];
    assert_eq!(check["status"], "ok", "{doctor:#}");
    assert_eq!(check["version"], PINNED_VERSION);
    assert_eq!(check["path"], claude.display().to_string());
    assert_eq!(check["source"], "CMS_CLAUDE_BIN");
}

/// A repository whose `.cms.toml` protects `infra/**`, with a file there.
fn protected_real_env(claude: &Path, api: &FakeApi) -> TestEnv {
    let env = real_env(claude, api);
    env.write(".cms.toml", "[safety]\nprotected = [\"infra/**\"]\n");
    env.write("infra/main.tf", "resource {}\n");
    env.commit_all("protect infra");
    env
}

#[test]
fn real_claude_writes_to_protected_paths_or_outside_the_worktree_are_denied_before_they_happen() {
    let Some(claude) = real_claude("real_claude_protected_writes_are_denied") else {
        return;
    };
    let api = FakeApi::start();
    let env = protected_real_env(&claude, &api);
    let outside = env.repo.join("outside.txt");
    api.route(
        "[guard]",
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": format!("{CWD}/infra/new.tf"), "content": "hacked\n"}),
            ),
            Reply::tool(
                "Write",
                json!({"file_path": outside.display().to_string(), "content": "escaped\n"}),
            ),
            Reply::tool(
                "Write",
                json!({"file_path": format!("{CWD}/src/ok.txt"), "content": "fine\n"}),
            ),
            Reply::text("Wrote what I was allowed to."),
        ],
    );
    // `full` bypasses claude's permission prompts; cms's hook still applies.
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[guard] write",
            "--name",
            "guard",
            "-p",
            "full",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    run.success();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["permission_denials"], json!([]));
    assert_eq!(task["safety"]["violations"], json!([]));
    let blocked: Vec<(String, String)> = task["safety"]["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().unwrap().to_owned(),
                b["tool_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        blocked,
        [
            ("protected_path".to_owned(), "Write".to_owned()),
            ("outside_worktree".to_owned(), "Write".to_owned())
        ]
    );
    assert!(!outside.exists());
    assert!(!env.git_ok(&["cat-file", "-e", "cms/guard:infra/new.tf"]));
    assert_eq!(env.git(&["show", "cms/guard:src/ok.txt"]), "fine");
    // The agent was told why, in words it can act on.
    let events = transcript(&env, "guard");
    let denials: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "user")
        .filter_map(|e| e["message"]["content"][0]["content"].as_str())
        .filter(|text| text.starts_with("cms denied this write"))
        .collect();
    assert_eq!(denials.len(), 2, "{events:#?}");
    assert!(denials[0].contains("infra/new.tf is protected by 'infra/**'"));
    assert!(denials[1].contains("outside the task's worktree"));
}

#[test]
fn real_claude_bash_write_to_a_protected_path_is_caught_on_the_diff() {
    let Some(claude) = real_claude("real_claude_bash_write_is_caught_on_the_diff") else {
        return;
    };
    let api = FakeApi::start();
    let env = protected_real_env(&claude, &api);
    api.route(
        "[sneak]",
        vec![
            Reply::tool(
                "Bash",
                json!({"command": "echo sneaky >> infra/main.tf", "description": "Append"}),
            ),
            Reply::text("Appended."),
        ],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[sneak] append",
            "--name",
            "sneak",
            "-p",
            "full",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    run.code(3);
    assert_eq!(task["status"], "protected_path", "{task:#}");
    let violations = task["safety"]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0]["kind"], "protected_path");
    assert_eq!(violations[0]["path"], "infra/main.tf");
    env.cms(&["merge", "sneak"])
        .code(1)
        .one_line_error_with_hint("touched protected paths");
}

/// How one claude answered a Write that a PreToolUse hook saw: the tool_result's text and
/// error flag, a string `tool_use_result` (`None` for a tool's own result object), whether the
/// file was written, and the result's denied tools.
type HookAnswer = (String, bool, Option<String>, bool, Vec<String>);

/// Runs `bin` (the real claude or the fake) in a fresh `dir` with these settings on a prompt
/// the fake API answers with one Write of `a.txt` and a final text.
fn answer_to_a_hooked_write(
    bin: &Path,
    api: &FakeApi,
    dir: &Path,
    key: &str,
    settings: &str,
) -> HookAnswer {
    let work = dir.join("w");
    std::fs::create_dir_all(&work).unwrap();
    let script = dir.join("script.json");
    let steps = json!({"turns": [{"steps": [{"write": {"path": "a.txt", "content": "a\n"}}]}]});
    std::fs::write(&script, steps.to_string()).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["-p", "--output-format", "stream-json", "--verbose"])
        .args([
            "--permission-mode",
            "bypassPermissions",
            "--settings",
            settings,
        ])
        .arg(format!("{key} write a.txt"))
        .current_dir(&work)
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("FAKE_CLAUDE_SCRIPT", &script)
        .envs(claude_env(api, &dir.join(".claude")));
    let run = wait_bounded(Background::spawn(&mut cmd), RUN_LIMIT);
    run.success();
    let events: Vec<Value> = run
        .stdout
        .replace(&work.display().to_string(), "{cwd}")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let answer = events
        .iter()
        .find(|e| e["type"] == "user" && e["message"]["content"][0]["type"] == "tool_result")
        .unwrap_or_else(|| panic!("{}: no tool result in\n{}", bin.display(), run.stdout));
    let block = &answer["message"]["content"][0];
    (
        block["content"].as_str().unwrap().to_owned(),
        block["is_error"] == true,
        answer["tool_use_result"].as_str().map(str::to_owned),
        work.join("a.txt").exists(),
        names(&last_result(&events)["permission_denials"], "tool_name"),
    )
}

#[test]
fn real_claude_and_the_fake_answer_pre_tool_use_hooks_alike() {
    let Some(claude) = real_claude("real_claude_and_the_fake_answer_pre_tool_use_hooks_alike")
    else {
        return;
    };
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let deny = json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "cms: a.txt is a protected path; leave it alone",
    }});
    // Hook bodies; each is run by both, and they must answer the Write alike.
    let cases = [
        ("[deny]", format!("printf '%s\\n' '{deny}'")),
        ("[deny-exit-1]", format!("printf '%s\\n' '{deny}'; exit 1")),
        ("[exit-2]", "echo 'no writes here' >&2; exit 2".to_owned()),
        ("[exit-2-silent]", "exit 2".to_owned()),
        ("[exit-1]", "echo oops >&2; exit 1".to_owned()),
        ("[not-found]", "/nonexistent/cms guard pre-tool-use".to_owned()),
        (
            "[ask]",
            r#"echo '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"ask"}}'"#
                .to_owned(),
        ),
        (
            "[bad-schema-exit-2]",
            r#"echo '{"hookSpecificOutput":{"permissionDecision":"deny"}}'; echo e >&2; exit 2"#
                .to_owned(),
        ),
    ];
    for (key, body) in &cases {
        api.route(
            key,
            vec![
                Reply::tool(
                    "Write",
                    json!({"file_path": format!("{CWD}/a.txt"), "content": "a\n"}),
                ),
                Reply::text("done"),
            ],
        );
        // The hook reads its input first, as cms's does, so neither claude writes to a closed pipe.
        let command = format!("cat >/dev/null; {body}");
        let settings = json!({"hooks": {"PreToolUse": [
            {"matcher": "Write|Edit|MultiEdit|NotebookEdit", "hooks": [{"type": "command", "command": command}]},
        ]}})
        .to_string();
        let name = key.trim_matches(['[', ']']);
        let real =
            answer_to_a_hooked_write(&claude, &api, &root.join(name).join("real"), key, &settings);
        let fake = answer_to_a_hooked_write(
            Path::new(FAKE_CLAUDE),
            &api,
            &root.join(name).join("fake"),
            key,
            &settings,
        );
        say(&format!("real_claude hooks {key}: {real:?}"));
        assert_eq!(
            fake, real,
            "{key}: the fake answers the hooked Write otherwise"
        );
    }
}

#[test]
fn real_claude_cost_limit_stops_the_task_before_the_next_reply_and_keeps_its_work() {
    let Some(claude) = real_claude("real_claude_cost_limit_stops_the_task") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    let write = |name: &str| {
        Reply::tool(
            "Write",
            json!({"file_path": format!("{CWD}/{name}.txt"), "content": format!("{name}\n")}),
        )
    };
    api.route(
        "[spend]",
        vec![
            write("one"),
            write("two"),
            write("three"),
            Reply::text("done"),
        ],
    );
    // Each reply costs COST_PER_REPLY; the second one crosses the limit.
    let limit = format!("{}", 1.5 * COST_PER_REPLY);
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[spend] write",
            "--name",
            "spend",
            "--max-cost",
            &limit,
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    run.code(3);
    assert_eq!(task["status"], "cost_exceeded", "{task:#}");
    assert_cost(&task["cost_usd"], 2.0 * COST_PER_REPLY);
    assert_eq!(api.requests_for("[spend]").len(), 2);
    let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
    assert!(worktree.is_dir());
    assert_eq!(env.git(&["show", "cms/spend:one.txt"]), "one");
    assert!(!worktree.join("three.txt").exists());
}

#[test]
fn real_claude_duration_limit_interrupts_a_slow_reply_and_keeps_the_work_done() {
    let Some(claude) = real_claude("real_claude_duration_limit_interrupts") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    api.route(
        "[slow]",
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": format!("{CWD}/early.txt"), "content": "early\n"}),
            ),
            Reply::text("too late").delayed(Duration::from_secs(50)),
        ],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[slow] write",
            "--name",
            "slow",
            "--max-duration",
            "10s",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    run.code(3);
    assert_eq!(task["status"], "duration_exceeded", "{task:#}");
    assert!(task["error"].as_str().unwrap().contains("time limit"));
    assert_eq!(env.git(&["show", "cms/slow:early.txt"]), "early");
    // claude ended its turn on the interrupt, through the protocol.
    let events = transcript(&env, "slow");
    assert_eq!(last_result(&events)["subtype"], "error_during_execution");
}

#[test]
fn real_claude_starts_with_the_smallest_cost_limit_and_records_the_turns_it_paid() {
    let Some(claude) = real_claude("real_claude_starts_with_the_smallest_cost_limit") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    let write = |name: &str| {
        Reply::tool(
            "Write",
            json!({"file_path": format!("{CWD}/{name}.txt"), "content": format!("{name}\n")}),
        )
    };
    // claude 2.1.197 refuses `--max-budget-usd 0` (and cms once rounded small budgets to
    // that); the smallest limit cms accepts must start a session.
    api.route("[tiny]", vec![write("one"), Reply::text("done")]);
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[tiny] write",
            "-n",
            "tiny",
            "--max-cost",
            "0.0001",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    assert_eq!(task["status"], "cost_exceeded", "{task:#}");
    assert!(task["session_id"].is_string(), "{task:#}");
    assert_eq!(task["turns"], 1, "{task:#}");
    // Turns: two replies paid for, while claude's num_turns counts the tool turns too.
    api.route(
        "[turns]",
        vec![
            write("one"),
            write("two"),
            write("three"),
            Reply::text("done"),
        ],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[turns] write",
            "-n",
            "turns",
            "--max-turns",
            "2",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    assert_eq!(task["status"], "turns_exceeded", "{task:#}");
    assert_eq!(api.requests_for("[turns]").len(), 2);
    assert_eq!(task["turns"], 2, "{task:#}");
    let events = transcript(&env, "turns");
    assert!(last_result(&events)["num_turns"].as_u64().unwrap() > 2);
}

#[test]
fn real_claude_blocks_a_write_when_the_pre_tool_use_hook_panics() {
    let Some(claude) = real_claude("real_claude_blocks_a_write_when_the_pre_tool_use_hook") else {
        return;
    };
    let api = FakeApi::start();
    let mut env = real_env(&claude, &api);
    // Honoured only by test builds of cms: its hook panics before judging the call.
    env.set_env("CMS_TEST_PANIC", "guard");
    api.route(
        "[panic]",
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": format!("{CWD}/fine.txt"), "content": "fine\n"}),
            ),
            Reply::text("done"),
        ],
    );
    let run = env.cms_bounded(
        &["task", "--json", "[panic] write", "-n", "panic"],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
    assert!(!worktree.join("fine.txt").exists(), "{task:#}");
    assert_eq!(task["files_changed"], json!([]), "{task:#}");
    // claude told the model the hook blocked it, with the panic line as the reason.
    let events = transcript(&env, "panic");
    let blocked = events
        .iter()
        .any(|e| e["type"] == "user" && e.to_string().contains("this is a bug in cms"));
    assert!(blocked, "{events:#?}");
}

/// The text of every tool result in a task's transcript, in order.
pub(crate) fn tool_results(env: &TestEnv, task: &str) -> Vec<String> {
    transcript(env, task)
        .iter()
        .filter(|e| e["type"] == "user")
        .map(|e| &e["message"]["content"][0])
        .filter(|block| block["type"] == "tool_result")
        .map(|block| match &block["content"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect()
}

pub(crate) fn bash(command: String) -> Reply {
    Reply::tool("Bash", json!({"command": command, "description": "Run"}))
}

#[test]
fn real_claude_sandboxed_bash_writes_only_in_its_worktree_and_temp_dir() {
    let Some(claude) = real_claude("real_claude_sandboxed_bash_writes_only_in_its_worktree") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    api.route("[other]", vec![Reply::text("nothing to do")]);
    let other = task_json(&env.cms_bounded(
        &[
            "task",
            "--json",
            "[other] idle",
            "--name",
            "other",
            "-p",
            "full",
        ],
        RUN_LIMIT,
    ));
    let other_worktree = other["worktree"].as_str().unwrap().to_owned();
    let main = env.repo.display().to_string();
    let common = env.common_dir().display().to_string();
    let outside = env.root.join("outside.txt");
    let refs_before = env.git(&["for-each-ref"]);
    api.route(
        "[box]",
        vec![
            bash(format!("echo x > {main}/evil.txt; echo rc=$?")),
            bash(format!("echo x > {}; echo rc=$?", outside.display())),
            bash(format!("echo x > {other_worktree}/backdoor.sh; echo rc=$?")),
            Reply::tool(
                "Bash",
                json!({"command": format!("echo x > {main}/escaped.txt; echo rc=$?"),
                       "description": "Escape", "dangerouslyDisableSandbox": true}),
            ),
            bash(format!(
                "echo x >> {common}/cms/tasks/box.json; echo rc=$?; echo x >> {common}/config; echo rc=$?"
            )),
            bash(
                "git update-ref -d refs/heads/main; echo rc=$?; git update-ref -d refs/heads/cms/other; echo rc=$?"
                    .to_owned(),
            ),
            // The user's reflog and packed history.
            bash(format!(
                "rm -f {common}/logs/refs/heads/main; echo rc=$?; touch {common}/objects/pack/planted; echo rc=$?"
            )),
            bash(
                "echo in > inside.txt && echo tmp > \"$TMPDIR/t\" && cp \"$TMPDIR/t\" from-tmp.txt && echo rc=$?"
                    .to_owned(),
            ),
            bash(
                "echo agent > agent.txt && git add -A && git commit -q -m 'agent commit' && echo rc=$?"
                    .to_owned(),
            ),
            // A service on the host's localhost (here the fake API itself) is out of reach.
            bash(format!(
                "(exec 3<>/dev/tcp/{}) && echo connected || echo unreachable",
                api.url.trim_start_matches("http://").replace(':', "/")
            )),
            Reply::text("Tried everything."),
        ],
    );
    let run = env.cms_bounded(
        &["task", "--json", "[box] try", "--name", "box", "-p", "full"],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    let results = tool_results(&env, "box");
    assert_eq!(results.len(), 10, "{results:#?}");
    // Outside the worktree: the main checkout, elsewhere in /tmp, another task's worktree, and
    // the same with the sandbox waived; then cms's store and the repository's config.
    for (i, result) in results[..5].iter().enumerate() {
        assert!(
            result.contains("Read-only file system") && result.contains("rc=1"),
            "call {i}: {result}"
        );
        assert!(!result.contains("rc=0"), "call {i}: {result}");
    }
    assert!(!env.repo.join("evil.txt").exists() && !env.repo.join("escaped.txt").exists());
    assert!(!outside.exists());
    assert!(!Path::new(&other_worktree).join("backdoor.sh").exists());
    assert!(!env.git(&["config", "--list"]).contains("x="));
    // Another task's branch and the user's cannot be deleted.
    assert!(
        results[5].contains("Device or resource busy"),
        "{}",
        results[5]
    );
    assert!(!results[5].contains("rc=0"), "{}", results[5]);
    assert!(!results[6].contains("rc=0"), "{}", results[6]);
    assert!(env.common_dir().join("logs/refs/heads/main").exists());
    assert!(!env.common_dir().join("objects/pack/planted").exists());
    assert_eq!(
        env.git(&["for-each-ref"])
            .lines()
            .filter(|l| !l.contains("cms/box"))
            .collect::<Vec<_>>(),
        refs_before.lines().collect::<Vec<_>>()
    );
    // Inside: the worktree, the temp dir, and the agent's own commit.
    assert!(results[7].ends_with("rc=0"), "{}", results[7]);
    assert!(results[8].ends_with("rc=0"), "{}", results[8]);
    assert!(results[9].ends_with("unreachable"), "{}", results[9]);
    run.success();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]));
    let log = env.git(&["log", "--format=%s", "cms/box"]);
    assert!(log.lines().any(|l| l == "agent commit"), "{log}");
    let files: Vec<String> = env
        .tree_files("cms/box")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        files,
        ["README.md", "agent.txt", "from-tmp.txt", "inside.txt"]
    );
}

#[test]
fn real_claude_sandbox_keeps_bash_from_the_read_only_presets_and_gives_it_to_edit() {
    let Some(claude) = real_claude("real_claude_sandbox_keeps_bash_from_read_only_presets") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    let main = env.repo.display().to_string();
    let presets = ["read-only", "review", "plan", "edit"];
    for preset in presets {
        api.route(
            &format!("[{preset}]"),
            vec![
                bash(format!("echo x > {main}/{preset}-outside.txt; echo rc=$?")),
                bash(format!("echo made > {preset}.txt")),
                Reply::text("done"),
            ],
        );
    }
    let children: Vec<_> = presets
        .iter()
        .map(|preset| {
            env.spawn_cms(&[
                "task",
                "--json",
                &format!("[{preset}] write"),
                "--name",
                preset,
                "-p",
                preset,
            ])
        })
        .collect();
    for (child, preset) in children.into_iter().zip(presets) {
        let run = wait_bounded(child, RUN_LIMIT);
        let task = task_json(&run);
        assert_eq!(task["safety"]["sandboxed"], true, "{preset}");
        assert!(
            !env.repo.join(format!("{preset}-outside.txt")).exists(),
            "{preset}"
        );
        let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
        if preset == "edit" {
            // Confined to the worktree, Bash runs without asking, as Edit and Write do.
            run.success();
            assert_eq!(task["status"], "completed", "{task:#}");
            assert!(tool_results(&env, preset)[0].contains("Read-only file system"));
            assert_eq!(env.git(&["show", "cms/edit:edit.txt"]), "made");
        } else {
            run.code(3);
            assert_eq!(task["status"], "needs_input", "{preset}: {task:#}");
            assert_eq!(
                names(&task["permission_denials"], "tool_name"),
                ["Bash", "Bash"],
                "{preset}"
            );
            assert!(!worktree.join(format!("{preset}.txt")).exists(), "{preset}");
        }
    }
}

/// What models write constantly: a command substitution, a subshell in a pipe, a loop; each
/// is a command Claude Code's own checks would ask about, which `edit` must not.
fn shell_heavy_commands() -> Vec<Reply> {
    vec![
        bash("echo $(echo made) > out.txt".to_owned()),
        bash("(cd sub && ls) | wc -l > count.txt".to_owned()),
        bash("for f in *; do echo $f; done > list.txt".to_owned()),
        Reply::text("done"),
    ]
}

#[track_caller]
fn assert_shell_heavy_commands_ran(env: &TestEnv, task: &Value, name: &str) {
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    assert_eq!(task["permission_denials"], json!([]), "{task:#}");
    let branch = format!("cms/{name}");
    assert_eq!(env.git(&["show", &format!("{branch}:out.txt")]), "made");
    assert_eq!(env.git(&["show", &format!("{branch}:count.txt")]), "1");
    let list = env.git(&["show", &format!("{branch}:list.txt")]);
    assert!(list.lines().any(|l| l == "sub"), "{list}");
}

#[test]
fn real_claude_edit_runs_sandboxed_subshells_pipes_and_loops_without_asking() {
    let Some(claude) = real_claude("real_claude_edit_runs_sandboxed_subshells") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    env.write("sub/a.txt", "a\n");
    env.commit_all("a folder to list");
    api.route("[shell]", shell_heavy_commands());
    // No terminal and no `--ask`: a prompt here would end the task `needs_input`.
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[shell] run",
            "--name",
            "shell",
            "-p",
            "edit",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    assert_shell_heavy_commands_ran(&env, &task, "shell");
    run.success();
}

#[test]
fn real_claude_edit_with_ask_runs_sandboxed_subshells_without_waiting_for_an_answer() {
    let Some(claude) = real_claude("real_claude_edit_with_ask_runs_sandboxed_subshells") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    env.write("sub/a.txt", "a\n");
    env.commit_all("a folder to list");
    api.route("[shell]", shell_heavy_commands());
    // A prompt would leave the task `waiting`, and `wait` would time out.
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "--ask",
            "[shell] run",
            "--name",
            "asked",
            "-p",
            "edit",
        ],
        RUN_LIMIT,
    );
    let task = task_json(&run);
    assert_shell_heavy_commands_ran(&env, &task, "asked");
    run.success();
}

#[test]
fn real_claude_edit_still_refuses_to_run_bash_outside_the_sandbox() {
    let Some(claude) = real_claude("real_claude_edit_still_refuses_to_run_bash_outside") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    let main = env.repo.display().to_string();
    let escape = |key: &str| {
        api.route(
            key,
            vec![
                Reply::tool(
                    "Bash",
                    json!({"command": format!("echo x > {main}/escaped.txt; echo rc=$?"),
                           "description": "Escape", "dangerouslyDisableSandbox": true}),
                ),
                Reply::text("done"),
            ],
        );
    };
    escape("[plain]");
    escape("[asked]");
    for (key, name, ask) in [("[plain]", "plain", false), ("[asked]", "asked", true)] {
        let prompt = format!("{key} escape");
        let mut args = vec!["task", "--json", &prompt, "--name", name, "-p", "edit"];
        if ask {
            args.push("--ask");
        }
        let task = task_json(&env.cms_bounded(&args, RUN_LIMIT));
        assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
        assert!(!env.repo.join("escaped.txt").exists(), "{name}");
        let results = tool_results(&env, name);
        assert_eq!(results.len(), 1, "{name}: {results:#?}");
        // `allowUnsandboxedCommands: false` makes the CLI ignore the flag: the command runs,
        // inside the sandbox, where the checkout is read-only.
        assert!(
            results[0].contains("Read-only file system") && !results[0].contains("rc=0"),
            "{name}: {}",
            results[0]
        );
        assert_eq!(task["status"], "completed", "{name}: {task:#}");
    }
}

/// `cargo test --offline` of a crate with no dependencies, with `CARGO_HOME` at `cargo_home`,
/// then a write of its own into `cargo_home`: what a Rust task's Bash does.
fn cargo_test_in(cargo_home: &Path) -> Reply {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let bin = Path::new(String::from_utf8(sysroot.stdout).unwrap().trim()).join("bin");
    let home = cargo_home.display();
    bash(format!(
        "CARGO_HOME={home} RUSTC={bin}/rustc RUSTDOC={bin}/rustdoc {bin}/cargo test --offline 2>&1; echo rc=$?; \
         touch {home}/probe; echo touch=$?",
        bin = bin.display()
    ))
}

fn small_crate(env: &TestEnv) {
    env.write(
        "Cargo.toml",
        "[package]\nname = \"small\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    env.write(
        "src/lib.rs",
        "pub fn two() -> u8 { 2 }\n#[test]\nfn adds() { assert_eq!(two() + two(), 4); }\n",
    );
    env.write(".gitignore", "/target\n");
    env.commit_all("a small crate");
}

/// Runs `cargo test` on a small crate in a sandboxed `edit` task through one Bash call, with
/// a `CARGO_HOME` of the test's own, listed in `[safety] writable` when `writable`; returns the
/// environment (which holds the folders), the task's run and JSON, the call's result and that
/// `CARGO_HOME`.
fn cargo_test_task(test: &str, writable: bool) -> Option<(TestEnv, Run, Value, String, PathBuf)> {
    let claude = real_claude(test)?;
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    small_crate(&env);
    let cargo_home = env.root.join("cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    if writable {
        env.user_config(&format!(
            "[safety]\nwritable = [{:?}]\n",
            cargo_home.display().to_string()
        ));
    }
    api.route(
        "[rust]",
        vec![cargo_test_in(&cargo_home), Reply::text("tested")],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[rust] test it",
            "--name",
            "rust",
            "-p",
            "edit",
        ],
        Duration::from_secs(240),
    );
    let task = task_json(&run);
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    let mut results = tool_results(&env, "rust");
    assert_eq!(results.len(), 1, "{results:#?}");
    Some((env, run, task, results.remove(0), cargo_home))
}

#[test]
fn real_claude_cargo_test_passes_in_a_sandboxed_task_given_a_writable_cargo_home() {
    let Some((_env, run, task, result, cargo_home)) =
        cargo_test_task("real_claude_cargo_test_passes_in_a_sandboxed_task", true)
    else {
        return;
    };
    assert!(
        result.contains("test adds ... ok") && result.contains("rc=0"),
        "{result}"
    );
    assert!(result.ends_with("touch=0"), "{result}");
    assert!(cargo_home.join("probe").exists());
    assert_eq!(task["status"], "completed", "{task:#}");
    run.success();
}

#[test]
fn real_claude_without_a_writable_path_the_sandbox_refuses_the_write_to_cargo_home() {
    let Some((_env, _, _, result, cargo_home)) = cargo_test_task(
        "real_claude_without_a_writable_path_the_sandbox_refuses",
        false,
    ) else {
        return;
    };
    assert!(
        result.contains("Read-only file system") && result.ends_with("touch=1"),
        "{result}"
    );
    assert!(!cargo_home.join("probe").exists());
}

#[test]
fn real_claude_sandboxed_bash_reaches_a_host_only_once_the_user_lists_it() {
    let Some(claude) = real_claude("real_claude_sandboxed_bash_reaches_a_host_only_once_listed")
    else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    // The fake API stands for a registry, reached by name through the sandbox's proxy (the
    // sandbox's NO_PROXY would send localhost direct, where nothing listens).
    let port = api.url.rsplit(':').next().unwrap().to_owned();
    let fetch = format!(
        "curl --noproxy '' -sS -m 20 -o /dev/null -w 'code=%{{http_code}}' \
         http://localhost:{port}/v1/models; echo rc=$?"
    );
    for key in ["[closed]", "[open]"] {
        api.route(key, vec![bash(fetch.clone()), Reply::text("fetched")]);
    }
    let mut results = Vec::new();
    for (name, hosts) in [("closed", ""), ("open", "localhost")] {
        if !hosts.is_empty() {
            env.user_config(&format!("[safety]\nhosts = [{hosts:?}]\n"));
        }
        let prompt = format!("[{name}] fetch");
        let run = env.cms_bounded(
            &["task", "--json", &prompt, "--name", name, "-p", "edit"],
            RUN_LIMIT,
        );
        let task = task_json(&run);
        assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
        assert_eq!(task["status"], "completed", "{task:#}");
        results.extend(tool_results(&env, name));
    }
    // The proxy refuses a host nobody listed, and lets a listed one through.
    assert_eq!(results, ["code=403rc=0", "code=200rc=0"]);
}
