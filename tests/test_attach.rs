//! `cms attach`: an interactive claude session at a terminal. Each test runs cms inside a
//! detached tmux session (a real terminal: claude must own it) and talks to the fake claude's
//! interactive mode through it, synchronizing on what the screen shows.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::terminal::Terminal;
use crate::common::{TestEnv, eventually};

fn show(env: &TestEnv, name: &str) -> Value {
    let run = env.cms(&["show", name, "--json"]);
    run.success();
    run.json()
}

/// A finished task `t` whose one session wrote a.txt, and the script the attached session
/// follows: its turns after the task's first.
fn attachable(env: &TestEnv, task_args: &[&str], attached_turns: Value) -> Value {
    env.script(json!({"turns": [{"steps": [{"write": {"path": "a.txt", "content": "a\n"}}]}]}));
    let mut args = vec!["write a", "-n", "t"];
    args.extend_from_slice(task_args);
    let task = env.task_ok(&args);
    let mut turns = vec![json!({})];
    turns.extend(attached_turns.as_array().unwrap().iter().cloned());
    env.script(json!({"resume_offset": 1, "turns": turns}));
    task
}

fn ready(term: &Terminal, task: &Value) {
    term.wait_for(&format!("session {}", task["session_id"].as_str().unwrap()));
}

/// An `attachable` task `t` attached at a terminal, once its session is ready: the task as it
/// was before, and the terminal. `None` where tmux is missing.
fn attached(
    env: &TestEnv,
    test: &str,
    task_args: &[&str],
    attached_turns: Value,
) -> Option<(Value, Terminal)> {
    let task = attachable(env, task_args, attached_turns);
    let term = Terminal::run(env, test, &["attach", "t"])?;
    ready(&term, &task);
    Some((task, term))
}

#[test]
fn attach_commits_the_interactive_work_on_the_branch_and_adds_up_the_record() {
    let env = TestEnv::new();
    let before = attachable(
        &env,
        &[],
        json!([{"steps": [{"write": {"path": "b.txt", "content": "b\n"}}], "result": "b is written"}]),
    );
    let Some(term) = Terminal::run(&env, "attach_commits", &["attach", "t", "--json"]) else {
        return;
    };
    ready(&term, &before);
    // While the session runs, the task is running under the attached cms.
    let running = show(&env, "t");
    assert_eq!(running["status"], "running");
    term.type_line("write b");
    term.wait_for("● b is written");
    term.type_line("/exit");
    let screen = term.exits_with(0);

    let after = show(&env, "t");
    assert_eq!(after["status"], "completed");
    assert_eq!(after["session_id"], before["session_id"]);
    assert_eq!(after["response"], "b is written");
    // Two API responses in each session, priced alike: the attached one from its transcript.
    assert_eq!(after["turns"], 4);
    let (cost, first) = (
        after["cost_usd"].as_f64().unwrap(),
        before["cost_usd"].as_f64().unwrap(),
    );
    assert!((cost - 2.0 * first).abs() < 1e-9, "{cost} vs 2 × {first}");
    assert_eq!(
        env.git(&["log", "-1", "--format=%s", "cms/t"]),
        "cms attach: interactive session"
    );
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
    assert_eq!(env.git(&["show", "cms/t:a.txt"]), "a");
    assert!(
        after["files_changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "b.txt")
    );
    // --json prints the task as `show --json` does.
    assert!(
        screen.contains(&format!("\"head\":\"{}\"", after["head"].as_str().unwrap()))
            || screen.contains(&format!(
                "\"head\": \"{}\"",
                after["head"].as_str().unwrap()
            )),
        "{screen}"
    );

    // claude ran interactively: resumed, in the worktree, with the guard and the task's env.
    let call = env.claude_invocations().pop().unwrap();
    let argv: Vec<&str> = call["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!argv.contains(&"-p"), "{argv:?}");
    assert!(argv.contains(&"--settings"));
    let resume = argv.iter().position(|a| *a == "--resume").unwrap();
    assert_eq!(argv[resume + 1], before["session_id"]);
    assert_eq!(call["cwd"], before["worktree"]);
    assert_eq!(call["env"]["CMS_TASK"], "t");
}

#[test]
fn an_attached_session_gets_ports_of_its_own_as_a_headless_one_does() {
    let mut env = TestEnv::new();
    // Its own port locks: the lowest free block must not depend on other tests.
    env.private_tmpdir();
    env.write(".cms.toml", "[worktree]\nports = 3\n");
    env.trust();
    let Some((_before, term)) = attached(&env, "attach_ports", &[], json!([])) else {
        return;
    };
    term.type_line("/exit");
    term.exits_with(0);
    let calls = env.claude_invocations();
    let (headless, attached) = (&calls[0]["env"], &calls[calls.len() - 1]["env"]);
    assert_eq!(attached["CMS_PORTS"], "3");
    let port: u16 = attached["CMS_PORT"].as_str().unwrap().parse().unwrap();
    assert!(port >= 20000, "{port}");
    assert_eq!(headless["CMS_PORTS"], "3");
}

#[test]
fn attach_refuses_without_a_terminal_and_changes_nothing() {
    let env = TestEnv::new();
    attachable(&env, &[], json!([]));
    let before = show(&env, "t");
    env.cms(&["attach", "t"])
        .code(2)
        .one_line_error_with_hint("needs a terminal");
    let run = env.cms(&["attach", "t"]);
    assert!(run.stderr.contains("cms continue t"), "{}", run.stderr);
    assert_eq!(show(&env, "t"), before);
}

#[track_caller]
fn refused_at_a_terminal(env: &TestEnv, test: &str, task: &str, needle: &str) {
    let Some(term) = Terminal::run(env, test, &["attach", task]) else {
        return;
    };
    let screen = term.exits_with(1);
    assert!(screen.contains(needle), "{screen}");
    assert!(screen.contains("hint:"), "{screen}");
}

#[test]
fn attach_refuses_unknown_merged_and_running_tasks_at_a_terminal() {
    let env = TestEnv::new();
    refused_at_a_terminal(&env, "attach_refuses", "nobody", "nobody");

    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.task_ok(&["x", "-n", "merged"]);
    env.cms(&["merge", "merged"]).success();
    refused_at_a_terminal(&env, "attach_refuses", "merged", "already merged");

    env.steps(json!([{"sleep_ms": 60000}]));
    let _busy = env.spawn_cms(&["task", "x", "-n", "busy"]);
    eventually("the task to run", || {
        env.cms(&["show", "busy", "--json"])
            .stdout
            .contains("\"running\"")
    });
    let before = show(&env, "busy");
    refused_at_a_terminal(&env, "attach_refuses", "busy", "still running");
    assert_eq!(show(&env, "busy")["supervisor"], before["supervisor"]);
    env.cms(&["abort", "busy"]).success();
}

#[test]
fn a_write_to_a_protected_path_during_attach_is_blocked_by_the_hook() {
    let env = TestEnv::new();
    let Some((task, term)) = attached(
        &env,
        "attach_protected",
        &["--protect", "secret/**"],
        json!([{"steps": [{"write": {"path": "secret/key.txt", "content": "k\n"}}], "result": "tried"}]),
    ) else {
        return;
    };
    term.type_line("write the key");
    term.wait_for("● tried");
    term.type_line("/exit");
    let screen = term.exits_with(0);
    // The hook refused the write before it happened, and claude was told why.
    assert!(screen.contains("protected"), "{screen}");
    let worktree = Path::new(task["worktree"].as_str().unwrap());
    assert!(!worktree.join("secret/key.txt").exists());
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:secret/key.txt"]));
    let after = show(&env, "t");
    assert_eq!(after["safety"]["blocked"].as_array().unwrap().len(), 1);
}

#[test]
fn the_time_limit_ends_an_attached_session_and_keeps_its_work() {
    let mut env = TestEnv::new();
    env.set_env("CMS_INTERRUPT_GRACE_MS", "200");
    let Some((_task, term)) = attached(
        &env,
        "attach_time_limit",
        &["--max-duration", "5s"],
        json!([{"steps": [{"write": {"path": "b.txt", "content": "b\n"}}], "result": "b is written"}]),
    ) else {
        return;
    };
    term.type_line("write b");
    term.wait_for("● b is written");
    // Nothing more is typed: the limit, not the user, ends the session.
    term.exits_with(3);
    let after = show(&env, "t");
    assert_eq!(after["status"], "duration_exceeded");
    assert!(after["error"].as_str().unwrap().contains("time limit"));
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
    // The session is over: the record names no supervisor any more.
    assert!(after["supervisor"].is_null());
}

#[test]
fn the_cost_limit_stops_an_attached_session_from_its_transcript() {
    let mut env = TestEnv::new();
    env.set_env("CMS_INTERRUPT_GRACE_MS", "200");
    // The first session's two responses cost $0.0075 each at the fake's usage, so the
    // attached turn's first response crosses $0.02.
    let Some((_task, term)) = attached(
        &env,
        "attach_cost_limit",
        &["--max-cost", "0.02"],
        json!([{"steps": [{"text": "one"}, {"sleep_ms": 60000}], "result": "never"}]),
    ) else {
        return;
    };
    term.type_line("spend");
    term.exits_with(3);
    let after = show(&env, "t");
    assert_eq!(after["status"], "cost_exceeded", "{after}");
    assert!(after["cost_usd"].as_f64().unwrap() >= 0.02);
}

#[test]
fn ctrl_c_at_the_terminal_interrupts_claudes_turn_and_leaves_the_session_to_the_user() {
    let env = TestEnv::new();
    let Some((_task, term)) = attached(
        &env,
        "attach_ctrl_c",
        &[],
        json!([
            {"steps": [{"text": "working"}, {"sleep_ms": 60000}], "result": "never"},
            {"steps": [{"write": {"path": "b.txt", "content": "b\n"}}], "result": "b is written"},
        ]),
    ) else {
        return;
    };
    term.type_line("work");
    term.wait_for("● working");
    term.tmux(&["send-keys", "C-c"]);
    // claude (in the terminal's foreground process group) got it; cms and the keeper did
    // not end the session over it.
    term.wait_for("[Request interrupted by user]");
    term.type_line("write b");
    term.wait_for("● b is written");
    term.type_line("/exit");
    term.exits_with(0);
    assert_eq!(show(&env, "t")["status"], "completed");
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
}

#[test]
fn abort_stops_an_attached_session_and_keeps_its_work() {
    let mut env = TestEnv::new();
    env.set_env("CMS_INTERRUPT_GRACE_MS", "200");
    let Some((_task, term)) = attached(
        &env,
        "attach_abort",
        &[],
        json!([{"steps": [{"write": {"path": "b.txt", "content": "b\n"}}], "result": "b is written"}]),
    ) else {
        return;
    };
    term.type_line("write b");
    term.wait_for("● b is written");
    env.cms(&["abort", "t"]).success();
    term.exits_with(130);
    let after = show(&env, "t");
    assert_eq!(after["status"], "aborted");
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
}

#[test]
fn nothing_an_attached_session_started_outlives_it() {
    let env = TestEnv::new();
    let detached = crate::test_processes::Detached::new(&env.root);
    let Some((_task, term)) = attached(
        &env,
        "attach_processes",
        &[],
        json!([{"steps": [{"bash": detached.command()}], "result": "started them"}]),
    ) else {
        return;
    };
    term.type_line("start sleepers");
    term.wait_for("● started them");
    assert_eq!(detached.running().len(), 3);
    term.type_line("/exit");
    term.exits_with(0);
    detached.assert_started_and_gone();
}

/// Lets the real CLI's terminal UI start without asking anything: onboarding done, the
/// worktree trusted, the test's API key approved (the CLI keeps these in `.claude.json`).
fn skip_first_run_dialogs(env: &TestEnv, worktree: &str) {
    let path = env.home.join(".claude/.claude.json");
    let mut config: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| json!({}));
    config["hasCompletedOnboarding"] = json!(true);
    config["theme"] = json!("dark");
    config["customApiKeyResponses"] = json!({"approved": ["sk-ant-api03-fake"], "rejected": []});
    config["projects"][worktree]["hasTrustDialogAccepted"] = json!(true);
    config["projects"][worktree]["hasCompletedProjectOnboarding"] = json!(true);
    std::fs::write(&path, config.to_string()).unwrap();
}

/// A real-CLI task started with `task_args` whose first session only answered, attached at a
/// terminal where the user asked for b.txt and claude wrote it: where the real attach tests
/// start. `interrupt_grace_ms` sets `CMS_INTERRUPT_GRACE_MS`. `None` when the test is skipped.
fn real_attached(
    test: &str,
    key: &str,
    task_args: &[&str],
    interrupt_grace_ms: Option<&str>,
) -> Option<(crate::common::fake_api::FakeApi, TestEnv, Value, Terminal)> {
    use crate::common::fake_api::Reply;
    use crate::common::real::{real_scenario, real_task};
    let (api, mut env) = real_scenario(test)?;
    if let Some(grace) = interrupt_grace_ms {
        env.set_env("CMS_INTERRUPT_GRACE_MS", grace);
    }
    api.route(
        key,
        vec![
            Reply::text("First session done."),
            Reply::write("b.txt", "b\n"),
            Reply::text("b is written"),
        ],
    );
    let prompt = format!("{key} start");
    let mut args = vec![prompt.as_str()];
    args.extend_from_slice(task_args);
    let (run, before) = real_task(&env, &args);
    run.success();
    skip_first_run_dialogs(&env, before["worktree"].as_str().unwrap());
    let term = Terminal::run(&env, test, &["attach", "t"])?;
    term.wait_for("First session done.");
    term.type_line("now write b");
    term.wait_for("b is written");
    Some((api, env, before, term))
}

#[test]
fn real_claude_attach_runs_the_real_cli_at_the_terminal_and_records_its_work() {
    use crate::common::real::reply_cost;
    let Some((api, env, before, term)) = real_attached(
        "real_claude_attach",
        "[attach]",
        &["-n", "t", "--preset", "edit"],
        None,
    ) else {
        return;
    };
    term.type_line("/exit");
    let screen = term.exits_with(0);
    let after = show(&env, "t");
    assert_eq!(after["status"], "completed", "{screen}");
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
    assert_eq!(
        env.git(&["log", "-1", "--format=%s", "cms/t"]),
        "cms attach: interactive session"
    );
    // The two replies of the attached session, priced from claude's transcript at the fake
    // API's fixed usage, on top of the first session's claude-reported cost.
    let added = after["cost_usd"].as_f64().unwrap() - before["cost_usd"].as_f64().unwrap();
    assert!((added - 2.0 * reply_cost()).abs() < 1e-9, "{added}");
    assert_eq!(after["turns"], before["turns"].as_u64().unwrap() + 2);
    // The real CLI resumes the same session rather than forking it.
    assert_eq!(after["session_id"], before["session_id"]);
    let requests = api.requests_for("[attach]");
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.cwd.as_deref(), before["worktree"].as_str());
    }
}

#[test]
fn real_claude_attach_time_limit_interrupts_and_ends_the_real_cli_keeping_its_work() {
    // Ended by its limit: cms interrupts claude and gives it a second to go.
    let Some((_api, env, _before, term)) = real_attached(
        "real_claude_attach_time_limit",
        "[limit]",
        &["-n", "t", "--preset", "edit", "--max-duration", "10s"],
        Some("1000"),
    ) else {
        return;
    };
    // Nothing more is typed: the limit ends the session.
    let screen = term.exits_with(3);
    let after = show(&env, "t");
    assert_eq!(after["status"], "duration_exceeded", "{screen}");
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
    assert!(after["duration_ms"].as_u64().unwrap() >= 10_000);
}

#[test]
fn an_attach_whose_claude_fails_to_start_puts_the_task_back_as_it_was() {
    let mut env = TestEnv::new();
    attachable(&env, &[], json!([]));
    let before = show(&env, "t");
    let broken = env.root.join("broken-claude");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'No conversation found with session ID: x' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.set_env("CMS_CLAUDE_BIN", broken.to_str().unwrap());
    let Some(term) = Terminal::run(&env, "attach_failed_start", &["attach", "t"]) else {
        return;
    };
    let screen = term.exits_with(1);
    // claude's own message is on the terminal, and cms says what became of the task.
    assert!(screen.contains("No conversation found"), "{screen}");
    assert!(screen.contains("before its session began"), "{screen}");
    let mut after = show(&env, "t");
    // Only the time of the write-back differs.
    after["updated_at"] = before["updated_at"].clone();
    assert_eq!(after, before);
    assert_eq!(env.git(&["log", "-1", "--format=%s", "cms/t"]), "write a");
}

#[test]
fn an_attach_the_user_leaves_at_once_keeps_the_task_as_it_was() {
    let env = TestEnv::new();
    let Some((before, term)) = attached(&env, "attach_leave", &[], json!([])) else {
        return;
    };
    term.type_line("/exit");
    term.exits_with(0);
    let after = show(&env, "t");
    assert_eq!(after["status"], "completed");
    for field in [
        "response",
        "cost_usd",
        "turns",
        "session_id",
        "head",
        "tools_used",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(env.git(&["log", "-1", "--format=%s", "cms/t"]), "write a");
}

/// What cms reads of a session transcript's assistant lines.
fn assistant_lines(transcript: &Path) -> Vec<Value> {
    std::fs::read_to_string(transcript)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["type"] == "assistant")
        .map(|line| {
            let content: Vec<Value> = line["message"]["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|block| block["type"].clone())
                .collect();
            json!({
                "isSidechain": line["isSidechain"],
                "has_session": line["sessionId"].is_string(),
                "has_id": line["message"]["id"].is_string(),
                "model": line["message"]["model"],
                "content": content,
                "input_tokens": line["message"]["usage"]["input_tokens"],
                "output_tokens": line["message"]["usage"]["output_tokens"],
            })
        })
        .collect()
}

/// Where a finished task's session transcript is, under the test's claude config dir.
fn transcript_of(config_dir: &Path, task: &Value) -> PathBuf {
    let name: String = task["worktree"]
        .as_str()
        .unwrap()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config_dir
        .join("projects")
        .join(name)
        .join(format!("{}.jsonl", task["session_id"].as_str().unwrap()))
}

#[test]
fn real_claude_and_the_fake_write_the_session_transcript_cms_follows_alike() {
    use crate::common::fake_api::{FakeApi, Reply};
    use crate::common::real::{RUN_LIMIT, default_model, real_claude, real_env};
    let Some(claude) = real_claude("real_claude_and_the_fake_write_the_session_transcript") else {
        return;
    };
    let api = FakeApi::start();
    let real = real_env(&claude, &api);
    api.route("[transcript]", vec![Reply::text("done")]);
    let run = real.cms_bounded(&["task", "--json", "[transcript] go", "-n", "t"], RUN_LIMIT);
    run.success();
    let real_lines = assistant_lines(&transcript_of(&real.home.join(".claude"), &run.json()));

    // The fake, with the fake API's usage and model, and no CLAUDE_CONFIG_DIR: $HOME/.claude.
    let fake = TestEnv::new();
    fake.script(json!({
        "usage": {"input_tokens": 1000, "output_tokens": 100},
        "turns": [{"result": "done"}],
    }));
    let task = fake.task_ok(&["go", "-n", "t", "--model", default_model()]);
    let fake_lines = assistant_lines(&transcript_of(&fake.home.join(".claude"), &task));
    assert_eq!(fake_lines, real_lines);
    assert_eq!(real_lines.len(), 1);
}

#[test]
fn the_turn_limit_stops_an_attached_session_from_its_transcript() {
    let mut env = TestEnv::new();
    env.set_env("CMS_INTERRUPT_GRACE_MS", "200");
    // The first session took two turns; the attached one's first reply is the third and last
    // allowed, and it asks for a tool, whose result would need a fourth.
    let Some((_task, term)) = attached(
        &env,
        "attach_turn_limit",
        &["--max-turns", "3"],
        json!([{"steps": [
            {"text": "one"},
            {"write": {"path": "b.txt", "content": "b\n"}},
            {"sleep_ms": 60000},
        ], "result": "never"}]),
    ) else {
        return;
    };
    term.type_line("go on");
    term.exits_with(3);
    let after = show(&env, "t");
    assert_eq!(after["status"], "turns_exceeded", "{after}");
    assert_eq!(after["turns"], 3);
}
