//! `cms logs`: the readable transcript, `--raw`, `--json` and `--follow`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::common::{LIMIT, TestEnv, eventually, sample, wait_bounded};

fn transcript(env: &TestEnv, name: &str) -> PathBuf {
    env.common_dir().join(format!("cms/logs/{name}.jsonl"))
}

/// A task with a text, a Write, an Edit, two Bash calls (one failing), a denial and a line
/// that is not stream-json.
fn eventful_task(env: &TestEnv, name: &str) {
    env.steps(json!([
        {"text": "I'll write it."},
        {"write": {"path": "a.txt", "content": "alpha\n"}},
        {"edit": {"path": "a.txt", "old": "alpha", "new": "beta"}},
        {"bash": "echo hi > b.txt"},
        {"bash": "echo broken >&2; exit 3"},
        {"deny": {"tool": "Write", "input": {"file_path": "c.txt", "content": "c\n"}}},
        {"garbage": "not json at all"},
    ]));
    env.cms(&["task", "--json", "an eventful task", "-n", name])
        .code(3);
}

#[test]
fn logs_show_one_line_per_text_tool_call_result_denial_and_result() {
    let env = TestEnv::new();
    eventful_task(&env, "busy");
    let run = env.cms(&["logs", "busy"]);
    run.success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let expected_prefixes = [
        "▸ session ",
        "› I'll write it.",
        "● Write a.txt",
        "  ✓ Write: File created successfully at: a.txt",
        "● Edit a.txt",
        "  ✓ Edit: The file a.txt has been updated successfully.",
        "● Bash echo hi > b.txt",
        "  ✓ Bash: ",
        "● Bash echo broken >&2; exit 3",
        "  ✗ Bash: Exit code 3",
        "● Write c.txt",
        "  ✗ Write: ",
        "› done",
        "⊘ denied Write c.txt",
        "■ result success · $",
    ];
    assert_eq!(lines.len(), expected_prefixes.len(), "{}", run.stdout);
    for (line, prefix) in lines.iter().zip(expected_prefixes) {
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}"
        );
    }
    // Paths in the worktree are shown relative to it; the garbage line is not shown.
    let worktree = env.cms(&["show", "--json", "busy"]).json()["worktree"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!run.stdout.contains(&worktree), "{}", run.stdout);
    assert!(!run.stdout.contains("not json"), "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}'), "no color when piped");
    let colored = env.cms(&["--color", "always", "logs", "busy"]);
    assert!(colored.stdout.contains('\u{1b}'), "{}", colored.stdout);
}

#[test]
fn a_deep_path_shows_whole_and_relative_in_logs_and_logs_json() {
    let env = TestEnv::new();
    let relative = format!("{}handbook-chapter-one.md", "documentation/".repeat(4));
    env.steps(json!([{"write": {"path": relative, "content": "deep\n"}}]));
    env.task_ok(&["write deep", "-n", "deep"]);
    let worktree = env.cms(&["show", "--json", "deep"]).json()["worktree"]
        .as_str()
        .unwrap()
        .to_owned();
    // The bug this guards against cut the absolute path at 100 characters before making it
    // relative, which left the relative path cut mid-name.
    assert!(format!("{worktree}/{relative}").chars().count() > 100);
    let run = env.cms(&["logs", "deep"]);
    run.success();
    let call = format!("● Write {relative}");
    assert!(run.stdout.lines().any(|l| l == call), "{}", run.stdout);
    let json = env.cms(&["logs", "deep", "--json"]);
    let events: Vec<Value> = json
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let call = events.iter().find(|e| e["kind"] == "tool_call").unwrap();
    assert_eq!(call["input"], relative.as_str());
}

#[test]
fn logs_raw_prints_the_stored_transcript_byte_for_byte() {
    let env = TestEnv::new();
    eventful_task(&env, "raw");
    let run = env
        .cms_command(&env.repo, &["logs", "raw", "--raw"])
        .output()
        .unwrap();
    assert!(run.status.success());
    let stored = std::fs::read(transcript(&env, "raw")).unwrap();
    assert!(!stored.is_empty());
    assert_eq!(run.stdout, stored);
    // The line claude printed that is not stream-json is kept there.
    assert!(String::from_utf8_lossy(&run.stdout).contains("not json at all\n"));
}

#[test]
fn logs_json_prints_one_object_per_event_with_its_kind() {
    let env = TestEnv::new();
    eventful_task(&env, "jsonl");
    let run = env.cms(&["logs", "jsonl", "--json"]);
    run.success();
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "session",
            "text",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "text",
            "denied",
            "result"
        ]
    );
    assert_eq!(events[2]["tool"], "Write");
    assert_eq!(events[2]["input"], "a.txt");
    assert_eq!(events[3]["tool_use_id"], events[2]["tool_use_id"]);
    assert_eq!(events[3]["is_error"], false);
    assert_eq!(events[9]["is_error"], true);
    assert_eq!(events[9]["text"], "Exit code 3");
    assert_eq!(events[13]["tool"], "Write");
    assert_eq!(events[14]["subtype"], "success");
    assert_eq!(events[14]["is_error"], false);
    assert!(events[14]["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(events[14]["num_turns"].as_u64().unwrap() > 0);
}

#[test]
fn logs_of_a_replayed_real_session_show_every_tool_call() {
    let env = TestEnv::new();
    env.write("existing.txt", "line one\nold value\nline three\n");
    env.commit_all("existing");
    env.script(json!({"turns": [{"replay": sample("tools_bypass.jsonl")}]}));
    env.task_ok(&["replay", "-n", "replay", "--preset", "full"]);
    let run = env.cms(&["logs", "replay"]);
    run.success();
    let calls: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with('●')).collect();
    assert_eq!(
        calls,
        [
            "● Write hello.txt",
            "● Read existing.txt",
            "● Edit existing.txt",
            "● Bash echo hi > bash_made.txt"
        ]
    );
    assert!(
        run.stdout
            .contains("▸ session 7d555fa1-7789-4e3e-a3e7-1ea72abd61f8"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("■ result success · $0.4971 · 5 turns"),
        "{}",
        run.stdout
    );
}

#[test]
fn logs_of_an_unknown_task_is_a_one_line_error_with_a_hint() {
    let env = TestEnv::new();
    env.cms(&["logs", "nope"])
        .code(1)
        .one_line_error_with_hint("no task named 'nope'");
    let run = env.cms(&["logs", "--json", "nope"]);
    run.code(1);
    assert_eq!(run.json()["exit_code"], 1);
    env.cms(&["logs", "../x"])
        .code(2)
        .one_line_error_with_hint("invalid");
    env.cms(&["logs", "nope", "--raw", "--json"])
        .code(2)
        .one_line_error_with_hint("--raw and --json");
}

#[test]
fn logs_of_a_task_without_a_transcript_says_so() {
    let env = TestEnv::new();
    env.steps(json!([]));
    env.task_ok(&["x", "-n", "quiet"]);
    std::fs::remove_file(transcript(&env, "quiet")).unwrap();
    env.cms(&["logs", "quiet"])
        .code(1)
        .one_line_error_with_hint("task 'quiet' has no transcript yet");
    env.cms(&["logs", "-f", "quiet"])
        .code(1)
        .one_line_error_with_hint("no transcript");
}

/// A `cms logs -f` whose output goes to a file the test can read while it runs; killed if
/// the test fails before it ends.
struct Follower {
    child: Option<Child>,
    out: PathBuf,
}

impl Follower {
    fn start(env: &TestEnv, name: &str) -> Follower {
        let out = env.root.join(format!("follow-{name}.out"));
        let child = env
            .cms_command(&env.repo, &["logs", "-f", name])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Follower {
            child: Some(child),
            out,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<i32> {
        let status = self.child.as_mut().unwrap().try_wait().unwrap()?;
        self.child = None;
        Some(status.code().unwrap_or(-1))
    }

    /// Waits for it to exit by itself.
    fn wait(&mut self) -> i32 {
        eventually("the follower to exit", || self.exited())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A task that writes a.txt, then waits in a Bash call until `gate` exists, then writes b.txt.
fn gated_task(env: &TestEnv, name: &str, gate: &Path) -> crate::common::Background {
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"bash": format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())},
        {"sleep_ms": 50},
        {"write": {"path": "b.txt", "content": "b\n"}},
    ]));
    let task = env.spawn_cms(&["task", "--json", "slow", "-n", name]);
    let record = env.common_dir().join(format!("cms/tasks/{name}.json"));
    eventually("the task's record", || record.exists());
    task
}

#[test]
fn logs_follow_prints_lines_as_they_come_and_exits_when_the_task_ends() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    let task = gated_task(&env, "live", &gate);
    let mut follower = Follower::start(&env, "live");
    eventually("the follower to print the write", || {
        follower.output().contains("● Write a.txt")
    });
    // The task cannot end before the gate opens, so neither can the follower.
    eventually("the follower to print the Bash call", || {
        follower.output().contains("● Bash while")
    });
    assert_eq!(follower.exited(), None);
    assert!(
        !follower.output().contains("b.txt"),
        "{}",
        follower.output()
    );
    std::fs::write(&gate, "").unwrap();
    assert_eq!(follower.wait(), 0, "{}", follower.output());
    let output = follower.output();
    assert!(output.contains("● Write b.txt"), "{output}");
    assert!(
        output
            .lines()
            .last()
            .unwrap()
            .starts_with("■ result success"),
        "{output}"
    );
    wait_bounded(task, LIMIT).success();
    // What it printed is what `logs` prints of the finished task.
    assert_eq!(output, env.cms(&["logs", "live"]).stdout);
}

#[test]
fn logs_follow_stops_with_130_on_ctrl_c() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    let task = gated_task(&env, "held", &gate);
    let mut follower = Follower::start(&env, "held");
    eventually("the follower to print the Bash call", || {
        follower.output().contains("● Bash while")
    });
    let pid = follower.child.as_ref().unwrap().id();
    // SAFETY: kill(2) on a child we own and have not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    assert_eq!(follower.wait(), 130);
    std::fs::write(&gate, "").unwrap();
    wait_bounded(task, LIMIT).success();
}

#[test]
fn real_claude_logs_show_each_tool_call_of_a_real_session() {
    use crate::common::fake_api::Reply;
    use crate::common::real::{RUN_LIMIT, real_scenario};
    let Some((api, env)) = real_scenario("real_claude_logs_show_each_tool_call_of_a_real_session")
    else {
        return;
    };
    api.route(
        "[logs]",
        vec![
            Reply::write("a.txt", "a\n").preceded_by_text("Writing a.txt."),
            Reply::tool(
                "Bash",
                json!({"command": "echo hi > b.txt", "description": "Write b.txt"}),
            ),
            Reply::text("Both written."),
        ],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "[logs] write two files",
            "-n",
            "real",
            "--preset",
            "full",
        ],
        RUN_LIMIT,
    );
    run.success();
    let logs = env.cms(&["logs", "real"]);
    logs.success();
    let lines: Vec<&str> = logs.stdout.lines().collect();
    for expected in [
        "› Writing a.txt.",
        "● Write a.txt",
        "● Bash echo hi > b.txt",
        "› Both written.",
    ] {
        assert!(
            lines.contains(&expected),
            "{expected:?} missing:\n{}",
            logs.stdout
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  ✓ Write: File created successfully at: a.txt")),
        "{}",
        logs.stdout
    );
    assert!(
        lines.first().unwrap().starts_with("▸ session "),
        "{}",
        logs.stdout
    );
    assert!(
        lines.last().unwrap().starts_with("■ result success"),
        "{}",
        logs.stdout
    );
    // A follow of a task that has ended prints the same and exits at once.
    let followed = env.cms_bounded(&["logs", "-f", "real"], RUN_LIMIT);
    followed.success();
    assert_eq!(followed.stdout, logs.stdout);
}
