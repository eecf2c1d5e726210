//! `cms mcp`: an MCP client (rmcp's, spawning `cms mcp` over stdio as a parent agent would)
//! lists the tools, starts detached tasks, waits for them with progress, answers their
//! permission prompts, diffs, merges, discards and aborts them, within the `[mcp]` caps, and
//! gets the command line's JSON or its errors as tool errors.

mod agent;
mod caps;
mod ray;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::{LIMIT, TestEnv, eventually};

/// The parent's side: records the progress notifications it gets.
#[derive(Clone, Default)]
struct Parent {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Parent {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

/// A connected `cms mcp` in a directory, and the runtime its client runs on.
struct Mcp {
    runtime: tokio::runtime::Runtime,
    client: RunningService<RoleClient, Parent>,
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl Mcp {
    fn start(env: &TestEnv) -> Mcp {
        Mcp::start_in(env, &env.repo)
    }

    fn start_in(env: &TestEnv, dir: &Path) -> Mcp {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let command = tokio::process::Command::from(env.cms_command(dir, &["mcp"]));
        let parent = Parent::default();
        let progress = parent.progress.clone();
        let client = runtime.block_on(async {
            let transport = TokioChildProcess::new(command).unwrap();
            parent.serve(transport).await.unwrap()
        });
        Mcp {
            runtime,
            client,
            progress,
        }
    }

    fn params(tool: &str, args: Value) -> CallToolRequestParams {
        let Value::Object(args) = args else {
            panic!("arguments are an object")
        };
        CallToolRequestParams::new(tool.to_owned()).with_arguments(args)
    }

    fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let params = Self::params(tool, args);
        let call = self.client.call_tool(params);
        self.runtime
            .block_on(async { tokio::time::timeout(LIMIT, call).await })
            .unwrap_or_else(|_| panic!("{tool} did not answer within {LIMIT:?}"))
            .unwrap()
    }

    /// A call that must succeed: its structured content, which the text repeats.
    #[track_caller]
    fn ok(&self, tool: &str, args: Value) -> Value {
        let result = self.call(tool, args);
        assert_ne!(result.is_error, Some(true), "{tool} failed: {result:?}");
        let value = result.structured_content.clone().unwrap();
        let text = &result.content[0].as_text().unwrap().text;
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), value);
        value
    }

    /// A call that must be a tool error: its text (error and hint lines) and JSON error.
    #[track_caller]
    fn err(&self, tool: &str, args: Value) -> (String, Value) {
        let result = self.call(tool, args);
        assert_eq!(result.is_error, Some(true), "{tool} succeeded: {result:?}");
        let text = result.content[0].as_text().unwrap().text.clone();
        assert!(text.starts_with("error: "), "{text}");
        assert!(text.contains("\nhint: "), "no hint: {text}");
        (text, result.structured_content.unwrap())
    }

    /// Polls `task_status` until the task is in `status`.
    #[track_caller]
    fn until_status(&self, name: &str, status: &str) -> Value {
        eventually(&format!("task {name} to become {status}"), || {
            let task = self.ok("task_status", json!({"task": name}));
            if task["status"] == status {
                Ok(task)
            } else {
                Err(format!("{task:#}"))
            }
        })
    }
}

/// Steps that wait until `gate` exists, then write a.txt.
fn gated(gate: &Path) -> Value {
    json!([
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done; echo a > a.txt", gate.display())},
    ])
}

#[test]
fn mcp_lists_every_tool_with_an_argument_schema() {
    let env = TestEnv::new();
    let mcp = Mcp::start(&env);
    let tools = mcp.runtime.block_on(mcp.client.list_all_tools()).unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "task_abort",
            "task_answer",
            "task_continue",
            "task_diff",
            "task_discard",
            "task_list",
            "task_merge",
            "task_start",
            "task_status",
            "task_wait",
        ]
    );
    for tool in &tools {
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()));
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
    }
    let start = tools.iter().find(|t| t.name == "task_start").unwrap();
    let schema = Value::Object((*start.input_schema).clone());
    assert_eq!(schema["required"], json!(["prompt"]));
    for field in [
        "name",
        "base",
        "preset",
        "model",
        "max_cost",
        "max_turns",
        "max_duration",
        "protect",
        "wait",
    ] {
        assert!(
            schema["properties"][field].is_object(),
            "no {field}: {schema:#}"
        );
    }
    assert_eq!(schema["additionalProperties"], false);
    let presets = &schema["$defs"]["PresetArg"]["enum"];
    assert_eq!(
        presets,
        &json!(["read-only", "review", "plan", "edit", "full"])
    );
}

#[test]
fn a_task_started_through_mcp_runs_detached_is_waited_for_with_progress_diffed_and_merged() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(gated(&gate));
    let mcp = Mcp::start(&env);
    let started = mcp.ok("task_start", json!({"prompt": "write a", "name": "t"}));
    // It returns at once: the task runs under a background supervisor, asking for
    // permissions like any detached task.
    assert_eq!(started["name"], "t");
    assert_eq!(started["status"], "running");

    // rmcp's client gives each request a progress token, for the server to report on.
    let params = Mcp::params("task_wait", json!({"tasks": ["t"]}));
    let waited = mcp.runtime.block_on(async {
        let call = tokio::spawn({
            let peer = mcp.client.peer().clone();
            async move { peer.call_tool(params).await }
        });
        // The wait reports where the task is while it runs; only then may it end.
        // Polled here, not with `eventually`: the notifications arrive on this runtime's one
        // thread, which a blocking poll would hold.
        tokio::time::timeout(LIMIT, async {
            while mcp.progress.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("timed out waiting for progress while waiting");
        std::fs::write(&gate, "").unwrap();
        tokio::time::timeout(LIMIT, call)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    });
    let note = mcp.progress.lock().unwrap()[0].clone();
    assert!(
        note.message.as_deref().unwrap().starts_with("t running"),
        "{note:?}"
    );
    assert_ne!(waited.is_error, Some(true), "{waited:?}");
    let tasks = &waited.structured_content.unwrap()["tasks"];
    assert_eq!(tasks[0]["status"], "completed", "{tasks:#}");
    assert_eq!(
        env.last_claude_arg("--permission-prompt-tool").as_deref(),
        Some("stdio")
    );

    let diff = mcp.ok("task_diff", json!({"task": "t"}));
    assert_eq!(diff["files"][0]["path"], "a.txt");
    assert!(diff["patch"].as_str().unwrap().contains("+a"), "{diff:#}");
    assert!(diff.get("truncated").is_none());
    let stat = mcp.ok("task_diff", json!({"task": "t", "stat": true}));
    assert_eq!(stat["files"], diff["files"]);
    assert!(stat.get("patch").is_none());
    let cut = mcp.ok("task_diff", json!({"task": "t", "max_bytes": 10}));
    assert_eq!(cut["patch"].as_str().unwrap().len(), 10);
    assert!(
        cut["truncated"].as_str().unwrap().contains("max_bytes"),
        "{cut:#}"
    );

    let merged = mcp.ok("task_merge", json!({"task": "t"}));
    assert_eq!(merged["status"], "merged");
    assert_eq!(merged["merge"]["removed"], true);
    assert_eq!(env.read("a.txt"), "a\n");
    let listed = mcp.ok("task_list", json!({}));
    assert_eq!(listed["tasks"], json!([]));
    let all = mcp.ok("task_list", json!({"all": true}));
    assert_eq!(all["tasks"][0]["name"], "t");
}

#[test]
fn a_task_waiting_on_a_permission_prompt_is_answered_through_task_answer() {
    let mut env = TestEnv::new();
    // A sandboxed `edit` task runs Bash without asking; `review` asks.
    env.set_env("CMS_PRESET", "review");
    env.steps(json!([{"ask": {"bash": "echo ok > ran.txt"}}]));
    let mcp = Mcp::start(&env);
    // wait=true returns when the task waits for an answer, as `cms wait` does.
    let waiting = mcp.ok(
        "task_start",
        json!({"prompt": "run it", "name": "w", "wait": true}),
    );
    assert_eq!(waiting["status"], "waiting", "{waiting:#}");
    assert_eq!(waiting["pending"]["tool_name"], "Bash");
    assert_eq!(waiting["pending"]["input"]["command"], "echo ok > ran.txt");
    let answered = mcp.ok("task_answer", json!({"task": "w", "allow": true}));
    assert_ne!(answered["status"], "waiting", "{answered:#}");
    let done = mcp.ok("task_wait", json!({"tasks": ["w"]}));
    assert_eq!(done["tasks"][0]["status"], "completed", "{done:#}");
    let worktree = done["tasks"][0]["worktree"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(Path::new(worktree).join("ran.txt")).unwrap(),
        "ok\n"
    );
    assert_eq!(done["tasks"][0]["safety"]["answered"][0]["allow"], true);
    // Nothing waits now: a second answer is the CLI's refusal, with its hint.
    let (text, _) = mcp.err("task_answer", json!({"task": "w", "allow": false}));
    assert!(
        text.contains("not waiting for a permission answer"),
        "{text}"
    );
}

#[test]
fn a_denial_through_task_answer_reaches_the_agent_with_its_message_and_is_audited() {
    let mut env = TestEnv::new();
    // A sandboxed `edit` task runs Bash without asking; `review` asks.
    env.set_env("CMS_PRESET", "review");
    env.steps(json!([{"ask": {"bash": "echo ok > ran.txt"}}]));
    let mcp = Mcp::start(&env);
    mcp.ok(
        "task_start",
        json!({"prompt": "run it", "name": "d", "wait": true}),
    );
    mcp.ok(
        "task_answer",
        json!({"task": "d", "allow": false, "message": "use the test script instead"}),
    );
    let done = &mcp.ok("task_wait", json!({"tasks": ["d"]}))["tasks"][0];
    // A denial someone answered is not a question left open.
    assert_eq!(done["status"], "completed", "{done:#}");
    let answered = &done["safety"]["answered"][0];
    assert_eq!(answered["allow"], false);
    assert_eq!(answered["message"], "use the test script instead");
    assert!(
        answered["by"]
            .as_str()
            .unwrap()
            .starts_with("cms mcp (pid "),
        "{answered}"
    );
    let worktree = Path::new(done["worktree"].as_str().unwrap());
    assert!(!worktree.join("ran.txt").exists());
    // The agent got the message as the tool's error.
    let transcript = std::fs::read_to_string(env.common_dir().join("cms/logs/d.jsonl")).unwrap();
    assert!(
        transcript
            .lines()
            .any(|l| l.contains("tool_result") && l.contains("use the test script instead")),
        "{transcript}"
    );
}

#[test]
fn bad_arguments_are_tool_errors_and_the_server_goes_on() {
    let env = TestEnv::new();
    let mcp = Mcp::start(&env);
    let cases = [
        (
            "task_start",
            json!({"prompt": "x", "max_cst": 1}),
            "unknown field `max_cst`",
        ),
        (
            "task_start",
            json!({"prompt": "x", "max_turns": "many"}),
            "invalid arguments",
        ),
        ("task_start", json!({"name": "x"}), "missing field `prompt`"),
        (
            "task_start",
            json!({"prompt": "x", "preset": "yolo"}),
            "unknown variant `yolo`",
        ),
        (
            "task_start",
            json!({"prompt": "x", "max_duration": "soon"}),
            "invalid max_duration",
        ),
        ("task_start", json!({"prompt": "  "}), "the prompt is empty"),
        (
            "task_start",
            json!({"prompt": "x", "model": "--verbose"}),
            "invalid model",
        ),
        ("task_wait", json!({"tasks": []}), "no tasks to wait for"),
        ("task_status", json!({"task": "nope"}), "nope"),
    ];
    for (tool, args, needle) in cases {
        let (text, json) = mcp.err(tool, args.clone());
        assert!(text.contains(needle), "{tool} {args}: {text}");
        assert!(json["error"]["message"].is_string(), "{json:#}");
    }
    // The empty prompt's error is the command line's, its hint naming the tool.
    let cli = env.cms(&["task", " ", "--json"]).json();
    let (_, json) = mcp.err("task_start", json!({"prompt": " "}));
    assert_eq!(json["error"]["message"], cli["error"]["message"]);
    assert_eq!(json["error"]["kind"], cli["error"]["kind"]);
    assert_eq!(
        json["error"]["hints"],
        json!([r#"say what the task should do: `task_start {"prompt":"fix the login bug"}`"#])
    );
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(mcp.ok("task_list", json!({}))["tasks"], json!([]));
}

#[test]
fn mcp_acts_only_on_its_own_repository_and_takes_names_never_paths() {
    let env = TestEnv::new();
    let other = TestEnv::new();
    other.steps(json!([{"write": {"path": "o.txt", "content": "o\n"}}]));
    other.cms(&["task", "x", "-n", "theirs"]).success();
    let mcp = Mcp::start(&env);
    let (text, _) = mcp.err("task_status", json!({"task": "theirs"}));
    assert!(text.contains("theirs"), "{text}");
    let (text, _) = mcp.err("task_discard", json!({"task": "theirs", "force": true}));
    assert!(text.contains("theirs"), "{text}");
    let record = other.common_dir().join("cms/tasks/theirs.json");
    for name in [
        record.display().to_string(),
        "../theirs".to_owned(),
        "a/b".to_owned(),
    ] {
        let (text, _) = mcp.err("task_merge", json!({"task": name}));
        assert!(text.contains("invalid task name"), "{text}");
    }
    assert!(other.branches().contains(&"cms/theirs".to_owned()));

    // Outside a repository there is nothing to serve: it says so and exits.
    let outside = env.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    env.cms_in(&outside, &["mcp"])
        .code(1)
        .one_line_error_with_hint("not in a git repository");
}

#[test]
fn task_discard_through_mcp_refuses_unmerged_work_without_force() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let mcp = Mcp::start(&env);
    mcp.ok(
        "task_start",
        json!({"prompt": "x", "name": "d", "wait": true}),
    );
    let (text, _) = mcp.err("task_discard", json!({"task": "d"}));
    assert!(text.contains("unmerged changes in 1 file(s)"), "{text}");
    assert!(env.branches().contains(&"cms/d".to_owned()));
    let discarded = mcp.ok("task_discard", json!({"task": "d", "force": true}));
    assert_eq!(discarded["status"], "discarded");
    assert_eq!(env.branches(), ["main"]);
}

/// The real Claude Code CLI as the parent agent: `--mcp-config` points it at `cms mcp`, the
/// fake API scripts it to call task_start (waiting) and task_status as the CLI names MCP
/// tools (`mcp__<server>__<tool>`), and the child task, a real claude too, started by cms
/// under a background supervisor, runs against the same fake API on its own route.
#[test]
fn real_claude_as_the_parent_starts_a_task_through_cms_mcp_and_reads_its_status() {
    use crate::common::fake_api::{FakeApi, Reply};
    use crate::common::real::{RUN_LIMIT, real_claude, real_env};
    use crate::common::{Background, CMS, wait_bounded};

    let Some(claude) =
        real_claude("real_claude_as_the_parent_starts_a_task_through_cms_mcp_and_reads_its_status")
    else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    api.route(
        "[mcp-parent]",
        vec![
            Reply::tool(
                "mcp__cms__task_start",
                json!({"prompt": "[mcp-child] write c.txt", "name": "child", "wait": true}),
            ),
            Reply::tool("mcp__cms__task_status", json!({"task": "child"})),
            Reply::text("the child is done"),
        ],
    );
    api.route(
        "[mcp-child]",
        vec![
            Reply::write("c.txt", "c\n"),
            Reply::text("c.txt is written"),
        ],
    );
    let config = json!({"mcpServers": {"cms": {"type": "stdio", "command": CMS, "args": ["mcp"]}}});
    let mut parent = env.command(
        &claude,
        &env.repo,
        &[
            // Before the options: --mcp-config and --allowedTools take several values.
            "-p",
            "[mcp-parent] start a task that writes c.txt",
            "--output-format",
            "stream-json",
            "--verbose",
            "--mcp-config",
            &config.to_string(),
            "--strict-mcp-config",
            "--allowedTools",
            "mcp__cms__task_start,mcp__cms__task_status",
        ],
    );
    let run = wait_bounded(Background::spawn(&mut parent), RUN_LIMIT * 2);
    run.success();
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let init = events
        .iter()
        .find(|e| e["type"] == "system" && e["subtype"] == "init")
        .unwrap();
    assert!(
        init["mcp_servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "cms" && s["status"] == "connected"),
        "{init:#}"
    );
    // The parent saw each call's result: the task as `--json` prints it.
    let results: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "user")
        .map(|e| e["message"]["content"][0]["content"].to_string())
        .collect();
    assert_eq!(results.len(), 2, "{}", run.stdout);
    for result in &results {
        assert!(result.contains(r#"\"name\":\"child\""#), "{result}");
        assert!(result.contains(r#"\"status\":\"completed\""#), "{result}");
    }
    let last = events.last().unwrap();
    assert_eq!(last["result"], "the child is done", "{last:#}");
    // The child ran as a task of this repository, on its own branch.
    assert_eq!(env.git(&["show", "cms/child:c.txt"]), "c");
    assert!(!api.requests_for("[mcp-child]").is_empty());
    let shown = env.cms(&["show", "child", "--json"]);
    shown.success();
    assert_eq!(shown.json()["status"], "completed");
}

#[test]
fn a_server_whose_client_leaves_mid_wait_exits_and_its_tasks_run_on() {
    use std::io::{BufRead, BufReader, Write};

    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(gated(&gate));
    // A bare JSON-RPC client: it must be able to leave while a call is still waiting.
    /// Killed if the test fails first, so that no server outlives it.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        env.cms_command(&env.repo, &["mcp"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = server.0.stdin.take().unwrap();
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut send = |message: Value| writeln!(stdin, "{message}").unwrap();
    // The next message the server sends; the test fails rather than hang if it ends early.
    let mut next = || {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the server ended early"
        );
        serde_json::from_str::<Value>(&line).unwrap()
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}}),
    );
    assert_eq!(next()["id"], 1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "task_start", "arguments": {"prompt": "x", "name": "t"}}}),
    );
    let started = next();
    assert_eq!(
        started["result"]["structuredContent"]["status"], "running",
        "{started}"
    );
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "task_wait", "arguments": {"tasks": ["t"]},
        "_meta": {"progressToken": "w"}}}),
    );
    // The wait is under way once it reports progress.
    let progress = next();
    assert_eq!(progress["method"], "notifications/progress", "{progress}");
    assert_eq!(progress["params"]["progressToken"], "w");
    drop(stdin);
    let status = eventually("cms mcp to exit after its client left", || {
        server.0.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
    // The task is detached: it runs on without the server, until stopped.
    let run = env.cms(&["show", "t", "--json"]);
    assert_eq!(run.json()["status"], "running");
    env.cms(&["abort", "t"]).success();
}
