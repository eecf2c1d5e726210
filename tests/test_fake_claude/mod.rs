//! The fake claude on its own, for behaviour cms relies on before it drives it: `PreToolUse`
//! hooks given with `--settings`. The expected lines are the real CLI 2.1.197's, as captured
//! (see "Hooks" in docs/fake-claude.md), so these tests pin the fake to them.

mod background;
mod hook_io;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Background, FAKE_CLAUDE, Run, wait_bounded};

const SESSION: &str = "2937edb0-efe3-4f80-8e4f-d8242ea1291d";
/// Generous for a run of well under a second: CI machines are slow and run tests side by side.
const RUN_LIMIT: Duration = Duration::from_secs(60);
const PROTECTED: &str = "cms: infra/x.txt is a protected path; leave it alone";
const WRITE_TOOLS: &str = "Write|Edit|MultiEdit|NotebookEdit";

/// A hook's stdout that denies the call with `reason`, as cms's hook prints it.
fn deny_json(reason: &str) -> String {
    json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": reason,
    }})
    .to_string()
}

/// `--settings` JSON whose `PreToolUse` hooks are `entries`.
fn settings(entries: Value) -> String {
    json!({"hooks": {"PreToolUse": entries}}).to_string()
}

/// One `PreToolUse` entry running `commands` for the tools `matcher` takes (all when `None`).
fn entry(matcher: Option<&str>, commands: &[&str]) -> Value {
    let hooks: Vec<Value> = commands
        .iter()
        .map(|command| json!({"type": "command", "command": command}))
        .collect();
    match matcher {
        Some(matcher) => json!({"matcher": matcher, "hooks": hooks}),
        None => json!({"hooks": hooks}),
    }
}

/// How the real CLI names a session's project directory: its cwd with every other character `-`.
fn project_dir_name(cwd: &str) -> String {
    cwd.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A working directory for the fake, a home, and hook scripts that record their input.
struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    home: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::Builder::new()
            .prefix("cms-fake")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let work = root.join("w");
        let home = root.join("home");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(&home).unwrap();
        Rig {
            _dir: dir,
            root,
            work,
            home,
        }
    }

    /// A hook command that appends its stdin to the `name` record, then runs the shell `body`
    /// with that input in `$input`.
    fn hook(&self, name: &str, body: &str) -> String {
        let script = self.root.join(format!("{name}.sh"));
        let record = self.root.join(format!("{name}.inputs"));
        let text = format!(
            "input=$(cat)\nprintf '%s\\n' \"$input\" >> '{}'\n{body}\n",
            record.display()
        );
        fs::write(&script, text).unwrap();
        format!("sh '{}'", script.display())
    }

    /// The stdin lines the `name` hook was given, one per run.
    fn inputs(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.root.join(format!("{name}.inputs")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn tool_names(&self, name: &str) -> Vec<String> {
        self.inputs(name)
            .iter()
            .map(|line| {
                let input: Value = serde_json::from_str(line).unwrap();
                input["tool_name"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.work.join(relative)
    }

    fn file(&self, relative: &str) -> Option<String> {
        fs::read_to_string(self.path(relative)).ok()
    }

    /// A rig whose hook `name` runs `body` before every file-editing tool, and its run of one
    /// Write of a.txt: the rig, the hook's command and the run, which must succeed.
    fn write_a_txt_with_hook(name: &str, body: &str) -> (Rig, String, Stream) {
        let rig = Rig::new();
        let hook = rig.hook(name, body);
        let stream = rig
            .run(
                &settings(json!([entry(Some(WRITE_TOOLS), &[&hook])])),
                json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
            )
            .success();
        (rig, hook, stream)
    }

    /// A one-turn run of `steps` in bypassPermissions mode with these settings.
    fn run(&self, settings: &str, steps: Value) -> Stream {
        self.run_with(
            &[
                "--permission-mode",
                "bypassPermissions",
                "--settings",
                settings,
            ],
            &[],
            steps,
        )
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)], steps: Value) -> Stream {
        let mut cmd = self.command(args, env, steps);
        cmd.arg("go").stdin(Stdio::null());
        Stream(wait_bounded(Background::spawn(&mut cmd), RUN_LIMIT))
    }

    /// The fake, ready to run one turn of `steps` in the cwd, with a clean environment.
    fn command(&self, args: &[&str], env: &[(&str, &str)], steps: Value) -> Command {
        let script = self.root.join("script.json");
        let turn = json!({"turns": [{"steps": steps, "result": "done"}]});
        fs::write(&script, turn.to_string()).unwrap();
        let mut cmd = Command::new(FAKE_CLAUDE);
        cmd.args(["-p", "--output-format", "stream-json", "--verbose"])
            .args(["--session-id", SESSION])
            .args(args)
            .current_dir(&self.work)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("FAKE_CLAUDE_SCRIPT", &script);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }
}

/// What one run of the fake printed.
struct Stream(Run);

impl Stream {
    #[track_caller]
    fn success(self) -> Stream {
        self.0.success();
        self
    }

    fn lines(&self) -> Vec<&str> {
        self.0.stdout.lines().collect()
    }

    fn events(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The ids of the tool calls, in order.
    fn tool_use_ids(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|event| event["type"] == "assistant")
            .filter(|event| event["message"]["content"][0]["type"] == "tool_use")
            .map(|event| {
                event["message"]["content"][0]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// The user line answering tool call `id`.
    #[track_caller]
    fn result_for(&self, id: &str) -> &str {
        let lines = self.lines();
        let position = lines
            .iter()
            .position(|line| {
                let event: Value = serde_json::from_str(line).unwrap();
                event["type"] == "user" && event["message"]["content"][0]["tool_use_id"] == id
            })
            .unwrap_or_else(|| panic!("no result for {id} in\n{}", self.0.stdout));
        // The real CLI answers a call right after printing it; only the answer to a control
        // request may come in between.
        let before = lines[..position]
            .iter()
            .rev()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|event| event["type"] != "control_response")
            .unwrap();
        assert_eq!(before["message"]["content"][0]["id"], id);
        lines[position]
    }

    /// The final `result` line, as printed.
    fn result_line(&self) -> &str {
        let line = *self.lines().last().expect("some output");
        assert!(line.starts_with(r#"{"type":"result""#), "{line}");
        line
    }

    fn denied_tools(&self) -> Vec<String> {
        let result: Value = serde_json::from_str(self.result_line()).unwrap();
        result["permission_denials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|denial| denial["tool_name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The real CLI's line for a tool call a hook blocked with `content`, with the uuid and time
/// `actual` has.
fn blocked_line(actual: &str, id: &str, content: &str) -> String {
    let event: Value = serde_json::from_str(actual).unwrap();
    assert!(is_uuid(event["uuid"].as_str().unwrap()), "{actual}");
    assert!(event["timestamp"].is_string(), "{actual}");
    format!(
        r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"tool_result","content":{content},"is_error":true,"tool_use_id":{id}}}]}},"parent_tool_use_id":null,"session_id":{session},"uuid":{uuid},"timestamp":{timestamp},"tool_use_result":{result}}}"#,
        content = json!(content),
        id = json!(id),
        session = json!(SESSION),
        uuid = event["uuid"],
        timestamp = event["timestamp"],
        result = json!(format!("Error: {content}")),
    )
}

#[test]
fn fake_claude_denies_a_write_its_pre_tool_use_hook_denies() {
    let rig = Rig::new();
    let hook = rig.hook(
        "protect",
        &format!(
            "case \"$input\" in *'\"file_path\":\"{}/infra/'*) printf '%s\\n' '{}';; esac",
            rig.work.display(),
            deny_json(PROTECTED)
        ),
    );
    let stream = rig
        .run(
            &settings(json!([entry(Some(WRITE_TOOLS), &[&hook])])),
            json!([
                {"write": {"path": "infra/x.txt", "content": "x\n"}},
                {"write": {"path": "ok.txt", "content": "ok\n"}},
            ]),
        )
        .success();

    let ids = stream.tool_use_ids();
    let denied = stream.result_for(&ids[0]);
    assert_eq!(denied, blocked_line(denied, &ids[0], PROTECTED));
    assert_eq!(rig.file("infra/x.txt"), None);
    assert!(!rig.path("infra").exists());
    // The session goes on: the next call is allowed and happens.
    assert!(!stream.result_for(&ids[1]).contains(r#""is_error":true"#));
    assert_eq!(rig.file("ok.txt").as_deref(), Some("ok\n"));
    let denials = format!(
        r#""permission_denials":[{{"tool_name":"Write","tool_use_id":"{}","tool_input":{{"file_path":{},"content":"x\n"}}}}],"#,
        ids[0],
        json!(rig.path("infra/x.txt").display().to_string()),
    );
    assert!(
        stream.result_line().contains(&denials),
        "{}",
        stream.result_line()
    );
    assert!(stream.result_line().contains(r#""subtype":"success""#));
}

#[test]
fn fake_claude_gives_pre_tool_use_hooks_the_real_clis_input_in_the_session_cwd() {
    let rig = Rig::new();
    let seen = rig.root.join("seen");
    let hook = rig.hook(
        "record",
        &format!(
            "printf '%s\\n%s\\n' \"$(pwd)\" \"$CLAUDE_PROJECT_DIR\" > '{}'",
            seen.display()
        ),
    );
    let cwd = rig.work.display().to_string();
    let config = rig.root.join("config");
    let runs = [
        (vec![], rig.home.join(".claude"), "acceptEdits"),
        (
            vec![("CLAUDE_CONFIG_DIR", config.to_str().unwrap())],
            config.clone(),
            "bypassPermissions",
        ),
    ];
    for (i, (env, config_dir, mode)) in runs.iter().enumerate() {
        let settings = settings(json!([entry(Some("Write"), &[&hook])]));
        let stream = rig
            .run_with(
                &["--permission-mode", *mode, "--settings", &settings],
                env,
                json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
            )
            .success();
        let inputs = rig.inputs("record");
        let input = &inputs[i];
        let prompt_id = serde_json::from_str::<Value>(input).unwrap()["prompt_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(is_uuid(&prompt_id), "{input}");
        let transcript = config_dir
            .join("projects")
            .join(project_dir_name(&cwd))
            .join(format!("{SESSION}.jsonl"));
        let expected = format!(
            r#"{{"session_id":"{SESSION}","transcript_path":{transcript},"cwd":{cwd},"prompt_id":"{prompt_id}","permission_mode":"{mode}","effort":{{"level":"high"}},"hook_event_name":"PreToolUse","tool_name":"Write","tool_input":{{"file_path":{file},"content":"a\n"}},"tool_use_id":"{id}"}}"#,
            transcript = json!(transcript.display().to_string()),
            cwd = json!(cwd),
            file = json!(rig.path("a.txt").display().to_string()),
            id = stream.tool_use_ids()[0],
        );
        assert_eq!(input, &expected);
        assert_eq!(
            fs::read_to_string(&seen).unwrap(),
            format!("{cwd}\n{cwd}\n"),
            "the hook runs in the session's cwd, which is also its CLAUDE_PROJECT_DIR"
        );
    }
}

#[test]
fn fake_claude_runs_a_tool_its_pre_tool_use_hook_allows_or_leaves_undecided() {
    let allow = json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "allow",
        "permissionDecisionReason": "fine",
    }});
    let bodies = [
        ("allow", format!("printf '%s\\n' '{allow}'")),
        ("silent", "exit 0".to_owned()),
        ("text", "echo 'looks fine to me'".to_owned()),
        ("empty_json", "echo '{}'".to_owned()),
    ];
    for (name, body) in bodies {
        let (rig, _, stream) = Rig::write_a_txt_with_hook(name, &body);
        assert_eq!(rig.inputs(name).len(), 1, "{name}");
        assert_eq!(rig.file("a.txt").as_deref(), Some("a\n"), "{name}");
        assert!(!stream.0.stdout.contains(r#""is_error":true"#), "{name}");
        assert!(
            stream.result_line().contains(r#""permission_denials":[],"#),
            "{name}"
        );
    }
}

#[test]
fn fake_claude_runs_a_tool_whose_pre_tool_use_hook_fails_without_exit_2() {
    let bodies = [
        ("exit_1", "exit 1"),
        (
            "stderr_exit_1",
            "echo 'cms: cannot open the task store' >&2; exit 1",
        ),
        ("exit_3", "exit 3"),
        ("killed", "kill -9 $$"),
    ];
    for (name, body) in bodies {
        let (rig, _, stream) = Rig::write_a_txt_with_hook(name, body);
        assert_eq!(rig.inputs(name).len(), 1, "{name}");
        assert_eq!(rig.file("a.txt").as_deref(), Some("a\n"), "{name}");
        assert!(stream.denied_tools().is_empty(), "{name}");
    }
    // A command the shell cannot find fails the same way (exit 127) before reading anything.
    let rig = Rig::new();
    rig.run(
        &settings(json!([entry(
            None,
            &["/nonexistent/cms guard pre-tool-use"]
        )])),
        json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
    )
    .success();
    assert_eq!(rig.file("a.txt").as_deref(), Some("a\n"));
}

#[test]
fn fake_claude_blocks_a_tool_whose_pre_tool_use_hook_exits_2_with_its_stderr() {
    let cases = [
        (
            "reason",
            "printf 'no writes here\\n' >&2; exit 2",
            "no writes here\n",
        ),
        ("no_reason", "exit 2", "No stderr output"),
    ];
    for (name, body, shown) in cases {
        let (rig, hook, stream) = Rig::write_a_txt_with_hook(name, body);
        let id = &stream.tool_use_ids()[0];
        let line = stream.result_for(id);
        let content = format!("PreToolUse:Write hook error: [{hook}]: {shown}");
        assert_eq!(line, blocked_line(line, id, &content), "{name}");
        assert_eq!(rig.file("a.txt"), None, "{name}");
        assert_eq!(stream.denied_tools(), ["Write"], "{name}");
    }
}

/// What a hook's answer should do to the call.
enum Expect {
    Runs,
    Blocked(&'static str),
    /// Blocked with the hook's stderr (`err`), as for a plain exit code 2.
    HookError,
}

#[test]
fn fake_claude_runs_pre_tool_use_hooks_only_for_tools_their_matcher_takes() {
    let rig = Rig::new();
    let hooks = ["list", "regex", "all", "none"].map(|name| rig.hook(name, "exit 0"));
    let settings = settings(json!([
        entry(Some("Write|Edit"), &[&hooks[0]]),
        entry(Some("^(Read|Ba.h)$"), &[&hooks[1]]),
        entry(None, &[&hooks[2]]),
        // A plain name is compared whole, not searched for.
        entry(Some("Writer"), &[&hooks[3]]),
    ]));
    rig.run(
        &settings,
        json!([
            {"write": {"path": "f.txt", "content": "one\n"}},
            {"read": {"path": "f.txt"}},
            {"edit": {"path": "f.txt", "old": "one", "new": "two"}},
            {"bash": "true"},
            {"delete": "f.txt"},
        ]),
    )
    .success();
    assert_eq!(rig.tool_names("list"), ["Write", "Edit"]);
    assert_eq!(rig.tool_names("regex"), ["Read", "Bash", "Bash"]);
    assert_eq!(
        rig.tool_names("all"),
        ["Write", "Read", "Edit", "Bash", "Bash"]
    );
    assert!(rig.inputs("none").is_empty());
    assert_eq!(rig.file("f.txt"), None);
}

#[test]
fn fake_claude_blocks_read_edit_bash_and_delete_before_they_act_when_their_hook_denies() {
    let rig = Rig::new();
    fs::write(rig.path("keep.txt"), "keep\n").unwrap();
    let hook = rig.hook("deny", &format!("printf '%s\\n' '{}'", deny_json("no")));
    let stream = rig
        .run(
            &settings(json!([entry(Some("*"), &[&hook])])),
            json!([
                {"read": {"path": "keep.txt"}},
                {"edit": {"path": "keep.txt", "old": "keep", "new": "changed"}},
                {"bash": "touch made.txt"},
                {"delete": "keep.txt"},
            ]),
        )
        .success();
    let ids = stream.tool_use_ids();
    assert_eq!(ids.len(), 4);
    for id in &ids {
        let line = stream.result_for(id);
        assert_eq!(line, blocked_line(line, id, "no"));
    }
    assert_eq!(stream.denied_tools(), ["Read", "Edit", "Bash", "Bash"]);
    assert_eq!(rig.file("keep.txt").as_deref(), Some("keep\n"));
    assert!(!rig.path("made.txt").exists());
}

#[test]
fn fake_claude_checks_an_edits_input_before_its_pre_tool_use_hooks() {
    let rig = Rig::new();
    fs::write(rig.path("keep.txt"), "keep\n").unwrap();
    let hook = rig.hook("deny", &format!("printf '%s\\n' '{}'", deny_json("no")));
    let stream = rig
        .run(
            &settings(json!([entry(None, &[&hook])])),
            json!([{"edit": {"path": "keep.txt", "old": "missing", "new": "x"}}]),
        )
        .success();
    // The real CLI validates an Edit's input first; a call that fails there never reaches hooks.
    assert!(rig.inputs("deny").is_empty());
    let line = stream.result_for(&stream.tool_use_ids()[0]);
    assert!(
        line.contains("<tool_use_error>String to replace not found in file."),
        "{line}"
    );
    assert!(stream.denied_tools().is_empty());
}

#[test]
fn fake_claude_lets_the_first_denying_pre_tool_use_hook_win() {
    let rig = Rig::new();
    let first = rig.hook("first", "exit 0");
    let second = rig.hook(
        "second",
        &format!("printf '%s\\n' '{}'", deny_json("second says no")),
    );
    let third = rig.hook(
        "third",
        &format!("printf '%s\\n' '{}'", deny_json("third says no")),
    );
    let stream = rig
        .run(
            &settings(json!([
                entry(Some("Write"), &[&first, &second]),
                entry(None, &[&third]),
            ])),
            json!([{"write": {"path": "a.txt", "content": "a\n"}}]),
        )
        .success();
    let id = &stream.tool_use_ids()[0];
    let line = stream.result_for(id);
    assert_eq!(line, blocked_line(line, id, "second says no"));
    assert_eq!(rig.inputs("first").len(), 1);
    assert_eq!(rig.inputs("second").len(), 1);
    assert!(rig.inputs("third").is_empty());
    assert_eq!(stream.denied_tools(), ["Write"]);
}
