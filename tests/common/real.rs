//! The real Claude Code CLI for the `real_claude_` tests: where the pinned release is, a
//! repository whose cms runs it offline against the fake Anthropic API of [`super::fake_api`],
//! and what its tasks left (JSON, transcript, tool results).
//!
//! `.ci/run` installs the CLI and names it in `CMS_REAL_CLAUDE_BIN`; without that variable the
//! tests look in the folder `.ci/run` installs into. A missing CLI fails the tests, unless a
//! developer outside CI sets `CMS_SKIP_REAL_CLAUDE=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::fake_api::{FakeApi, Reply};
use super::{Run, TestEnv};

/// The release `.ci/run` installs; keep in step with it and with `cms doctor`'s tested versions.
pub const PINNED_VERSION: &str = "2.1.197";

/// The default model of each Claude Code release the tests know (the one `.ci/run` pins and the
/// newest one it verifies): what a task runs on when it names no model, and so what its
/// replies cost ([`super::fake_api::cost_per_reply`]).
const DEFAULT_MODELS: &[(&str, &str)] = &[
    ("2.1.197", "claude-opus-4-8"),
    ("2.1.332", "claude-opus-5-5"),
];

/// A run of about a second gets the one generous limit of the tests' waits.
pub const RUN_LIMIT: Duration = crate::common::LIMIT;

/// Prints past the test harness's output capture, so the line shows even for passing tests.
pub fn say(line: &str) {
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
pub fn real_claude(test: &str) -> Option<PathBuf> {
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

/// The version of the claude the tests run (`2.1.197`), asked of the binary once.
pub fn claude_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let claude = locate_claude().unwrap_or_else(|why| panic!("{why}"));
        let output = std::process::Command::new(&claude)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", claude.display()));
        let text = String::from_utf8_lossy(&output.stdout);
        text.split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("`{} --version` printed {text:?}", claude.display()))
            .to_owned()
    })
}

/// The model the claude under test uses when none is named.
pub fn default_model() -> &'static str {
    let version = claude_version();
    DEFAULT_MODELS
        .iter()
        .find(|(known, _)| *known == version)
        .map(|(_, model)| *model)
        .unwrap_or_else(|| {
            panic!(
                "the tests do not know Claude Code {version}'s default model: add it to \
                 DEFAULT_MODELS in tests/common/real.rs (system/init's `model` names it)"
            )
        })
}

/// What one scripted reply costs on the default model of the claude under test.
pub fn reply_cost() -> f64 {
    super::fake_api::cost_per_reply(default_model())
}

/// A repository whose cms runs the real claude against `api`, offline and out of the real home.
pub fn real_env(claude: &Path, api: &FakeApi) -> TestEnv {
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
pub fn claude_env(api: &FakeApi, config_dir: &Path) -> [(&'static str, String); 10] {
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
pub fn task_json(run: &Run) -> Value {
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
pub fn transcript(env: &TestEnv, task: &str) -> Vec<Value> {
    let path = env.common_dir().join(format!("cms/logs/{task}.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The text of every tool result in a task's transcript, in order.
pub fn tool_results(env: &TestEnv, task: &str) -> Vec<String> {
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

pub fn bash(command: String) -> Reply {
    Reply::tool("Bash", json!({"command": command, "description": "Run"}))
}

/// The real CLI against a fake API of its own, in a fresh repository ([`real_env`]): where most
/// `real_claude_` tests start. `None` when the test is skipped ([`real_claude`]).
pub fn real_scenario(test: &str) -> Option<(FakeApi, TestEnv)> {
    let claude = real_claude(test)?;
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    Some((api, env))
}

/// Runs `cms task --json <args>` within [`RUN_LIMIT`] and returns the run and the task it
/// printed (which must be there, whatever the exit code).
#[track_caller]
pub fn real_task(env: &TestEnv, args: &[&str]) -> (Run, Value) {
    let mut full = vec!["task", "--json"];
    full.extend_from_slice(args);
    let run = env.cms_bounded(&full, RUN_LIMIT);
    let task = task_json(&run);
    (run, task)
}

/// The result event that ends a transcript's last turn.
pub fn last_result(events: &[Value]) -> &Value {
    events
        .iter()
        .rfind(|e| e["type"] == "result")
        .expect("the transcript ends its turn with a result")
}

/// `key` of each object in the array `values`.
pub fn names(values: &Value, key: &str) -> Vec<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

/// A cost in USD, to within rounding.
#[track_caller]
pub fn assert_cost(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap();
    assert!(
        (actual - expected).abs() < 1e-9,
        "cost {actual} != {expected}"
    );
}
