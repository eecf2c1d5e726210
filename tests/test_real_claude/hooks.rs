//! The real Claude Code CLI against protected paths: cms's PreToolUse hook denies a write
//! before it happens (and blocks it when the hook itself fails), a Bash write is caught on the
//! diff, and the real claude and the fake answer a hook's decision alike.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::fake_api::{FakeApi, Reply};
use crate::common::real::{
    RUN_LIMIT, claude_env, claude_version, last_result, names, real_claude, real_env,
    real_scenario, real_task, say, transcript,
};
use crate::common::{Background, FAKE_CLAUDE, TestEnv, wait_bounded};

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
            Reply::write("infra/new.tf", "hacked\n"),
            Reply::tool(
                "Write",
                json!({"file_path": outside.display().to_string(), "content": "escaped\n"}),
            ),
            Reply::write("src/ok.txt", "fine\n"),
            Reply::text("Wrote what I was allowed to."),
        ],
    );
    // `full` bypasses claude's permission prompts; cms's hook still applies.
    let (run, task) = real_task(&env, &["[guard] write", "--name", "guard", "-p", "full"]);
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
        // 2.1.332 puts `PreToolUse:Write hook error: ` before the hook's reason.
        .filter(|text| text.contains("cms denied this write"))
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
    let (run, task) = real_task(&env, &["[sneak] append", "--name", "sneak", "-p", "full"]);
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
        // The fake plays the release it is compared with (the real claude ignores this).
        .env("FAKE_CLAUDE_VERSION", claude_version())
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
        api.route(key, vec![Reply::write("a.txt", "a\n"), Reply::text("done")]);
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
fn real_claude_blocks_a_write_when_the_pre_tool_use_hook_panics() {
    let Some((api, mut env)) =
        real_scenario("real_claude_blocks_a_write_when_the_pre_tool_use_hook")
    else {
        return;
    };
    // Honoured only by test builds of cms: its hook panics before judging the call.
    env.set_env("CMS_TEST_PANIC", "guard");
    api.route(
        "[panic]",
        vec![Reply::write("fine.txt", "fine\n"), Reply::text("done")],
    );
    let (_, task) = real_task(&env, &["[panic] write", "-n", "panic"]);
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
