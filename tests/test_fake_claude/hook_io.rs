//! The fake claude's `PreToolUse` hooks at their edges, as the real CLI 2.1.197's: the JSON a
//! hook prints, settings given inline or as a file, and a hook that outlives its timeout or is
//! interrupted.

use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Expect, RUN_LIMIT, Rig, Stream, blocked_line, deny_json, entry, settings};
use crate::common::{Background, eventually, wait_bounded};

#[test]
fn fake_claude_reads_a_pre_tool_use_hooks_json_output_as_the_real_cli_does() {
    let pre_tool_use = |decision: Value| {
        let mut specific = json!({"hookEventName": "PreToolUse"});
        specific
            .as_object_mut()
            .unwrap()
            .extend(decision.as_object().unwrap().clone());
        json!({"hookSpecificOutput": specific})
    };
    // Each case was checked against the real CLI 2.1.197: (stdout, exit code, outcome).
    let cases = [
        // A JSON decision counts whatever the exit code.
        (
            json!(deny_json("json says no")),
            1,
            Expect::Blocked("json says no"),
        ),
        (
            json!(deny_json("json says no")),
            2,
            Expect::Blocked("json says no"),
        ),
        // Without a reason of its own, a deny does not fall back on the top-level one.
        (
            json!({"reason": "top", "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny"}}),
            0,
            Expect::Blocked("Hook PreToolUse:Write denied this tool"),
        ),
        (
            pre_tool_use(json!({"permissionDecision": "deny", "permissionDecisionReason": ""})),
            0,
            Expect::Blocked("Hook PreToolUse:Write denied this tool"),
        ),
        // With nobody to ask in -p mode, `ask` blocks too.
        (
            pre_tool_use(json!({"permissionDecision": "ask"})),
            0,
            Expect::Blocked("Hook PreToolUse:Write asked for confirmation for this tool"),
        ),
        (
            pre_tool_use(
                json!({"permissionDecision": "ask", "permissionDecisionReason": "why ask"}),
            ),
            0,
            Expect::Blocked("why ask"),
        ),
        (
            pre_tool_use(json!({"permissionDecision": "ask"})),
            2,
            Expect::HookError,
        ),
        // The older top-level decision.
        (
            json!({"decision": "block", "reason": "old-style no"}),
            0,
            Expect::Blocked("old-style no"),
        ),
        (
            json!({"decision": "block"}),
            0,
            Expect::Blocked("Hook PreToolUse:Write denied this tool"),
        ),
        (
            json!({"decision": "approve", "reason": "fine"}),
            0,
            Expect::Runs,
        ),
        (
            json!({"decision": "block", "reason": "r", "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow"}}),
            0,
            Expect::Blocked("PreToolUse:Write hook error: r"),
        ),
        // An allow, or JSON that decides nothing, does not outweigh exit code 2.
        (
            pre_tool_use(json!({"permissionDecision": "allow"})),
            2,
            Expect::HookError,
        ),
        (json!({}), 2, Expect::HookError),
        // Output that fails the CLI's schema, or an async hook's, never blocks.
        (
            pre_tool_use(json!({"permissionDecision": "block"})),
            2,
            Expect::Runs,
        ),
        (
            json!({"hookSpecificOutput": {"permissionDecision": "deny"}}),
            2,
            Expect::Runs,
        ),
        (
            json!({"hookSpecificOutput": {"hookEventName": "PostToolUse"}}),
            2,
            Expect::Runs,
        ),
        (json!({"async": true}), 2, Expect::Runs),
        // Text that is not a JSON object leaves it to the exit code.
        (json!("{nope"), 2, Expect::HookError),
        (json!("[1]"), 2, Expect::HookError),
    ];
    for (stdout, code, expect) in cases {
        let stdout = match stdout {
            Value::String(text) => text,
            json => json.to_string(),
        };
        let rig = Rig::new();
        let hook = rig.hook(
            "decide",
            &format!("printf '%s\\n' '{stdout}'; echo err >&2; exit {code}"),
        );
        let stream = rig
            .run(
                &settings(json!([entry(Some("Write"), &[&hook])])),
                json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
            )
            .success();
        let id = &stream.tool_use_ids()[0];
        let content = match expect {
            Expect::Runs => {
                assert_eq!(rig.file("a.txt").as_deref(), Some("a\n"), "{stdout} {code}");
                assert!(stream.denied_tools().is_empty(), "{stdout} {code}");
                continue;
            }
            Expect::Blocked(content) => content.to_owned(),
            Expect::HookError => format!("PreToolUse:Write hook error: [{hook}]: err\n"),
        };
        let line = stream.result_for(id);
        assert_eq!(line, blocked_line(line, id, &content), "{stdout} {code}");
        assert_eq!(rig.file("a.txt"), None, "{stdout} {code}");
        assert_eq!(stream.denied_tools(), ["Write"], "{stdout} {code}");
    }
}

#[test]
fn fake_claude_runs_the_tool_when_its_pre_tool_use_hook_outlives_its_timeout() {
    let rig = Rig::new();
    let hook = rig.hook(
        "slow",
        &format!("sleep 30; printf '%s\\n' '{}'", deny_json("too late")),
    );
    let settings = settings(json!([{
        "matcher": "Write",
        "hooks": [{"type": "command", "command": hook, "timeout": 1}],
    }]));
    let started = Instant::now();
    let stream = rig
        .run(
            &settings,
            json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
        )
        .success();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the hook was waited for: {:?}",
        started.elapsed()
    );
    assert_eq!(rig.inputs("slow").len(), 1, "the hook ran");
    assert_eq!(rig.file("a.txt").as_deref(), Some("a\n"));
    assert!(stream.denied_tools().is_empty());
}

#[test]
fn fake_claude_reads_settings_inline_or_from_a_file_as_the_real_cli_does() {
    let rig = Rig::new();
    let hook = rig.hook("deny", &format!("printf '%s\\n' '{}'", deny_json("no")));
    // A value that is not an object is a path, relative to the cwd.
    fs::write(
        rig.path("settings.json"),
        settings(json!([entry(Some("Write"), &[&hook])])),
    )
    .unwrap();
    let stream = rig
        .run(
            "settings.json",
            json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
        )
        .success();
    assert_eq!(stream.denied_tools(), ["Write"]);
    assert_eq!(rig.file("a.txt"), None);

    let steps = json!([{"write": {"path": "b.txt", "content": "b\n"}}]);
    let invalid = rig.run(r#"{"hooks": }"#, steps.clone());
    invalid.0.code(1);
    assert_eq!(
        invalid.0.stderr,
        "Error: Invalid JSON provided to --settings\n"
    );
    let missing = rig.run("missing.json", steps);
    missing.0.code(1);
    assert_eq!(
        missing.0.stderr,
        format!(
            "Error: Settings file not found: {}\n",
            rig.path("missing.json").display()
        )
    );
    assert_eq!(rig.file("b.txt"), None);
}

#[test]
fn fake_claude_interrupted_while_a_pre_tool_use_hook_runs_ends_the_turn_without_the_tool() {
    let rig = Rig::new();
    let hook = rig.hook("slow", "sleep 30");
    let settings = settings(json!([entry(Some("Write"), &[&hook])]));
    let mut cmd = rig.command(
        &[
            "--input-format",
            "stream-json",
            "--permission-mode",
            "bypassPermissions",
            "--settings",
            &settings,
        ],
        &[],
        json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
    );
    cmd.stdin(Stdio::piped());
    let started = Instant::now();
    let mut fake = Background::spawn(&mut cmd);
    let mut stdin = fake.take_stdin().unwrap();
    let user = json!({"type": "user", "message": {"role": "user", "content": "go"}});
    writeln!(stdin, "{user}").unwrap();
    // The hook records its input first thing, so once it is there the hook is running.
    eventually("the hook to start", || !rig.inputs("slow").is_empty());
    let interrupt = json!({
        "type": "control_request",
        "request_id": "req_1",
        "request": {"subtype": "interrupt"},
    });
    writeln!(stdin, "{interrupt}").unwrap();
    drop(stdin);
    let stream = Stream(wait_bounded(fake, RUN_LIMIT)).success();

    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the hook was waited for: {:?}",
        started.elapsed()
    );
    let id = &stream.tool_use_ids()[0];
    let answer: Value = serde_json::from_str(stream.result_for(id)).unwrap();
    assert_eq!(answer["tool_use_result"], "User rejected tool use");
    let result: Value = serde_json::from_str(stream.result_line()).unwrap();
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["terminal_reason"], "aborted_tools");
    assert_eq!(rig.file("a.txt"), None);
}
