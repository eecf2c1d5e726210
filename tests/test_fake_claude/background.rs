//! The fake's background Bash commands against the real CLI's recorded lines
//! (`samples/background_*.jsonl`): the same events, in the same order, with the same keys.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};

use serde_json::{Value, json};

use super::RUN_LIMIT;
use crate::common::{FAKE_CLAUDE, sample};

/// A stream-json fake whose lines arrive on a channel, so a test can answer as it reads.
struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    _dir: tempfile::TempDir,
}

impl Live {
    fn start(turns: Value) -> Live {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script.json");
        std::fs::write(&script, json!({"turns": turns}).to_string()).unwrap();
        let mut child = Command::new(FAKE_CLAUDE)
            .args([
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
            ])
            .args(["--verbose", "--permission-mode", "bypassPermissions"])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("TMPDIR", dir.path())
            .env("FAKE_CLAUDE_SCRIPT", &script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(serde_json::from_str(&line).unwrap());
            }
        });
        let mut live = Live {
            stdin: child.stdin.take(),
            child,
            lines,
            _dir: dir,
        };
        live.send(json!({"type": "user", "message": {"role": "user", "content": "go"}}));
        live
    }

    fn send(&mut self, line: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The lines up to and including the first that `last` takes.
    fn until(&self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut lines = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(RUN_LIMIT)
                .expect("a line from the fake");
            let done = last(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Closes stdin and returns the rest of the lines and the exit code.
    fn close(mut self) -> (Vec<Value>, Option<i32>) {
        self.stdin = None;
        let rest = self.lines.iter().collect();
        (rest, self.child.wait().unwrap().code())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_result(line: &Value) -> bool {
    line["type"] == "result"
}

/// `type/subtype` of each line, the way the samples read.
fn kinds(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l["subtype"].as_str() {
            Some(subtype) => format!("{}/{subtype}", l["type"].as_str().unwrap()),
            None => l["type"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// The keys of every line, in order, nested objects' keys after their own key.
fn keys(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, v)| {
                std::iter::once(key.clone())
                    .chain(keys(v).into_iter().map(move |k| format!("{key}.{k}")))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn recorded(name: &str) -> Vec<Value> {
    std::fs::read_to_string(sample(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The recorded line of this `type/subtype` (the first, or the one `pick` takes).
fn recorded_line<'a>(lines: &'a [Value], kind: &str, pick: impl Fn(&Value) -> bool) -> &'a Value {
    let at = kinds(lines)
        .iter()
        .zip(lines)
        .position(|(k, l)| k == kind && pick(l))
        .unwrap();
    &lines[at]
}

fn background_step(command: &str) -> Value {
    json!({"bash": {"command": command, "description": "slow build", "run_in_background": true}})
}

#[test]
fn fake_claude_reports_a_background_command_that_ends_between_turns_in_a_turn_of_its_own() {
    let live = Live::start(json!([
        {"steps": [background_step("sleep 0.2")], "result": "started"},
        {"steps": [], "result": "noted the end"}
    ]));
    let first = live.until(is_result);
    let report = live.until(is_result);
    let real = recorded("background_reported.jsonl");
    assert_eq!(kinds(&first), kinds(&real[..first.len()]));
    assert_eq!(kinds(&report), kinds(&real[first.len()..]));
    for kind in [
        "system/task_started",
        "system/task_updated",
        "system/task_notification",
    ] {
        let fake = recorded_line(&[first.clone(), report.clone()].concat(), kind, |_| true).clone();
        assert_eq!(
            keys(&fake),
            keys(recorded_line(&real, kind, |_| true)),
            "{kind}"
        );
    }
    let tool_result = |lines: &[Value]| {
        recorded_line(lines, "user", |l| {
            l["tool_use_result"]["backgroundTaskId"].is_string()
        })
        .clone()
    };
    assert_eq!(keys(&tool_result(&first)), keys(&tool_result(&real)));
    let (rest, code) = live.close();
    assert_eq!((rest, code), (Vec::new(), Some(0)));
}

#[test]
fn fake_claude_stops_a_background_command_on_stop_task_as_the_real_cli_does() {
    let mut live = Live::start(json!([
        {"steps": [background_step("sleep 60")], "result": "started"},
        {"steps": [], "result": "never reported"}
    ]));
    let first = live.until(is_result);
    let started = first
        .iter()
        .find(|l| l["subtype"] == "task_started")
        .unwrap();
    let id = started["task_id"].as_str().unwrap().to_owned();
    live.send(json!({"type": "control_request", "request_id": "stop_0",
        "request": {"subtype": "stop_task", "task_id": id}}));
    let stopped = live.until(|l| l["type"] == "control_response");
    let real = recorded("background_stop_task.jsonl");
    let after = real.iter().position(is_result).unwrap() + 1;
    assert_eq!(kinds(&stopped), kinds(&real[after..]));
    for (fake, real) in stopped.iter().zip(&real[after..]) {
        assert_eq!(keys(fake), keys(real));
    }
    let (rest, code) = live.close();
    assert_eq!((kinds(&rest), code), (Vec::<String>::new(), Some(0)));
}
