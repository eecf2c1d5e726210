//! Scripted stand-in for the Claude Code CLI (`claude` 2.1.197), built only for the test suite:
//! it owns the fake's argument checks, stream-json event shapes, cost accounting, interrupt and
//! signal handling and exit codes, all driven by a JSON script (see `docs/fake-claude.md`).
//!
//! It shares no code with cms on purpose: its shapes are transcribed from recordings of the real
//! CLI (`tests/fixtures/claude-protocol/samples`, copied from `../shared/claude-protocol`), so a mistake in cms's parser cannot be mirrored
//! here and go unnoticed.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{self, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

const VERSION: &str = "2.1.197";
const DEFAULT_MODEL: &str = "claude-opus-4-8";
const NO_MORE_TURNS: &str = "no more scripted turns";
const FRESH_STATE: &str = "(file state is current in your context — no need to Read it back)";
const REJECTED_TOOL_USE: &str = "The user doesn't want to proceed with this tool use. The tool use \
     was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP \
     what you are doing and wait for the user to tell you how to proceed.";

/// How long a waiting step sleeps between looks at stdin and the signal flags.
const POLL: Duration = Duration::from_millis(10);
/// There is no API behind the fake, so each response is said to have taken this long.
const NOMINAL_API_MS: u64 = 25;
/// Lines of unchanged context around each hunk of a `structuredPatch`, as in the real CLI.
const CONTEXT: usize = 3;
/// Above this many cells the quadratic line diff gives way to one replace-everything hunk.
const MAX_DIFF_CELLS: usize = 4_000_000;

const TOOLS: &[&str] = &[
    "Task",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "Skill",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "TaskUpdate",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
];
const SKILLS: &[&str] = &[
    "deep-research",
    "update-config",
    "verify",
    "debug",
    "code-review",
    "simplify",
    "batch",
    "fewer-permission-prompts",
    "loop",
    "claude-api",
    "run",
    "run-skill-generator",
];
/// Built-in commands that `slash_commands` lists after the skills.
const BUILTIN_COMMANDS: &[&str] = &[
    "clear",
    "compact",
    "config",
    "context",
    "heapdump",
    "init",
    "reload-skills",
    "review",
    "security-review",
    "usage",
    "insights",
    "goal",
    "team-onboarding",
];
const AGENTS: &[&str] = &[
    "claude",
    "Explore",
    "general-purpose",
    "Plan",
    "statusline-setup",
];

/// Flags that take exactly one value; listing them keeps a value from being read as the prompt.
const VALUE_FLAGS: &[&str] = &[
    "--output-format",
    "--input-format",
    "--model",
    "--permission-mode",
    "--session-id",
    "--max-turns",
    "--max-budget-usd",
    "--append-system-prompt",
    "--append-system-prompt-file",
    "--system-prompt",
    "--system-prompt-file",
    "--settings",
    "--setting-sources",
    "--permission-prompt-tool",
    "--fallback-model",
    "--effort",
    "--agent",
    "--agents",
    "--json-schema",
    "--debug-file",
    "--name",
    "-n",
    "--max-thinking-tokens",
    "--thinking",
    "--task-budget",
    "--resume-session-at",
    "--rewind-files",
];
/// Variadic flags swallow every following argument up to the next flag, as the real CLI's do.
const VARIADIC_FLAGS: &[&str] = &[
    "--allowedTools",
    "--allowed-tools",
    "--disallowedTools",
    "--disallowed-tools",
    "--tools",
    "--add-dir",
    "--mcp-config",
    "--betas",
    "--plugin-dir",
];

static SIGINT_SEEN: AtomicBool = AtomicBool::new(false);
static OUTPUT: OnceLock<OutputFormat> = OnceLock::new();

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    log_invocation(&args);
    let opts = Options::parse(args.get(1..).unwrap_or_default());
    if opts.version {
        println!("{VERSION} (Claude Code)");
        return;
    }

    let output = opts.output_format.as_deref().unwrap_or("text");
    let stream_input = opts.input_format.as_deref() == Some("stream-json");
    if !opts.print {
        usage_error("fake-claude fakes only the --print mode of claude");
    }
    if output == "stream-json" && !opts.verbose {
        usage_error("Error: When using --print, --output-format=stream-json requires --verbose");
    }
    if stream_input && output != "stream-json" {
        usage_error("Error: --input-format=stream-json requires output-format=stream-json.");
    }
    if opts.session_id.as_deref().is_some_and(|id| !is_uuid(id)) {
        usage_error("Error: Invalid session ID. Must be a valid UUID.");
    }
    let format = match output {
        "json" => OutputFormat::Json,
        "stream-json" => OutputFormat::StreamJson,
        _ => OutputFormat::Text,
    };
    let _ = OUTPUT.set(format);

    let hooks = load_hooks(opts.settings.as_deref());
    let script = load_script();
    install_signal_handlers(&script);

    if stream_input {
        // The real CLI reads nothing from a redirected regular file and quietly exits 0.
        if stdin_is_regular_file() {
            return;
        }
        Session::new(&opts, &script, hooks, Inbox::from_stdin()).serve(&script);
    }

    if opts.prompt.is_none() && !read_stdin_prompt() {
        usage_error(
            "Error: Input must be provided either through stdin or as a prompt argument when using --print",
        );
    }
    let mut session = Session::new(&opts, &script, hooks, Inbox::closed());
    let code = match session.run_turn(&script, script.resume_offset) {
        TurnEnd::Exit(code) => code,
        TurnEnd::Continue { is_error } => i32::from(is_error),
    };
    process::exit(code);
}

fn usage_error(message: &str) -> ! {
    eprintln!("{message}");
    process::exit(1);
}

/// A broken script is the test author's mistake, so it fails loudly and distinctly (exit 2).
fn script_error(message: &str) -> ! {
    eprintln!("fake-claude: {message}");
    process::exit(2);
}

/// Tests assert on the flags and environment cms passed, so every start is recorded.
fn log_invocation(args: &[String]) {
    let Some(path) = std::env::var_os("FAKE_CLAUDE_LOG") else {
        return;
    };
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .filter(|(name, _)| name.starts_with("CMS_") || name.starts_with("FAKE_CLAUDE_"))
        .collect();
    let cwd = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let line = Obj::new()
        .field("argv", args)
        .field("cwd", cwd)
        .field("env", env)
        .field("pid", process::id())
        .end();
    // One write of a whole line keeps concurrent fakes from interleaving their records.
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{}\n", line.0).as_bytes()));
    if let Err(err) = written {
        eprintln!("fake-claude: cannot append to {}: {err}", path.display());
    }
}

fn read_stdin_prompt() -> bool {
    let mut stdin = io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    let mut prompt = String::new();
    stdin.read_to_string(&mut prompt).is_ok() && !prompt.trim().is_empty()
}

fn stdin_is_regular_file() -> bool {
    // SAFETY: fstat only writes into the zeroed stat buffer owned by this frame.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(0, &mut stat) == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFREG
    }
}

// ---------------------------------------------------------------------------------------------
// Command line

#[derive(Default)]
struct Options {
    print: bool,
    verbose: bool,
    version: bool,
    skip_permissions: bool,
    output_format: Option<String>,
    input_format: Option<String>,
    model: Option<String>,
    permission_mode: Option<String>,
    resume: Option<String>,
    session_id: Option<String>,
    max_turns: Option<u64>,
    max_budget_usd: Option<f64>,
    settings: Option<String>,
    effort: Option<String>,
    prompt: Option<String>,
}

impl Options {
    /// Never fails: unknown flags are taken as switches, because a newer cms may pass flags
    /// this fake has no use for.
    fn parse(args: &[String]) -> Options {
        let mut opts = Options::default();
        let mut positional = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg == "--" {
                positional.extend(args[i..].iter().cloned());
                break;
            }
            if !arg.starts_with('-') || arg == "-" {
                positional.push(arg.clone());
                continue;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            if VARIADIC_FLAGS.contains(&flag) {
                if inline.is_none() {
                    while i < args.len() && !args[i].starts_with('-') {
                        i += 1;
                    }
                }
                continue;
            }
            if VALUE_FLAGS.contains(&flag) {
                let value = inline.or_else(|| {
                    i += 1;
                    args.get(i - 1).cloned()
                });
                match flag {
                    "--output-format" => opts.output_format = value,
                    "--input-format" => opts.input_format = value,
                    "--model" => opts.model = value,
                    "--permission-mode" => opts.permission_mode = value,
                    "--session-id" => opts.session_id = value,
                    "--max-turns" => opts.max_turns = value.and_then(|v| v.parse().ok()),
                    "--max-budget-usd" => opts.max_budget_usd = value.and_then(|v| v.parse().ok()),
                    "--settings" => opts.settings = value,
                    "--effort" => opts.effort = value,
                    _ => {}
                }
                continue;
            }
            match flag {
                "-p" | "--print" => opts.print = true,
                "--verbose" => opts.verbose = true,
                "-v" | "--version" => opts.version = true,
                "--dangerously-skip-permissions" => opts.skip_permissions = true,
                // The id is optional in the real CLI too: a following non-flag is taken as it.
                "-r" | "--resume" => {
                    opts.resume = inline.or_else(|| {
                        let next = args.get(i).filter(|next| !next.starts_with('-')).cloned();
                        i += usize::from(next.is_some());
                        next
                    });
                }
                _ => {}
            }
        }
        opts.prompt = positional.into_iter().next();
        opts
    }
}

// ---------------------------------------------------------------------------------------------
// Script

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Script {
    ignore_sigterm: bool,
    ignore_sigint: bool,
    resume_offset: usize,
    usage: Usage,
    turns: Vec<Turn>,
}

/// Token usage reported for each API response.
#[derive(Deserialize, Clone, Copy)]
#[serde(default, deny_unknown_fields)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
}

impl Default for Usage {
    fn default() -> Usage {
        Usage {
            input_tokens: 1000,
            output_tokens: 100,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Turn {
    steps: Vec<Step>,
    result: Option<String>,
    replay: Option<PathBuf>,
    exit_after: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    Text(String),
    Write {
        path: String,
        content: String,
    },
    Read {
        path: String,
    },
    Edit {
        path: String,
        old: String,
        new: String,
        #[serde(default)]
        replace_all: bool,
    },
    Bash(BashStep),
    Delete(String),
    Deny {
        tool: String,
        input: Value,
        message: Option<String>,
    },
    SleepMs(u64),
    Garbage(String),
    Raw(Value),
    Stderr(String),
    Exit(i32),
    ApiError {
        status: Option<u16>,
        message: Option<String>,
        #[serde(default)]
        retries: u32,
    },
    SpawnGrandchild {
        pidfile: PathBuf,
        #[serde(default = "default_grandchild_sleep")]
        sleep_s: u64,
    },
}

fn default_grandchild_sleep() -> u64 {
    60
}

impl Step {
    /// Steps whose API response ends in a tool_use, which a preceding text block joins.
    fn is_tool(&self) -> bool {
        matches!(
            self,
            Step::Write { .. }
                | Step::Read { .. }
                | Step::Edit { .. }
                | Step::Bash(_)
                | Step::Delete(_)
                | Step::Deny { .. }
        )
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BashStep {
    Command(String),
    Detailed {
        command: String,
        description: Option<String>,
    },
}

impl BashStep {
    fn parts(&self) -> (&str, &str) {
        match self {
            BashStep::Command(command) => (command, "Run shell command"),
            BashStep::Detailed {
                command,
                description,
            } => (
                command,
                description.as_deref().unwrap_or("Run shell command"),
            ),
        }
    }
}

fn load_script() -> Script {
    let Some(path) = std::env::var_os("FAKE_CLAUDE_SCRIPT").map(PathBuf::from) else {
        return Script {
            turns: vec![Turn {
                result: Some("done".into()),
                ..Turn::default()
            }],
            ..Script::default()
        };
    };
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|err| script_error(&format!("cannot read {}: {err}", path.display())));
    let mut script: Script = serde_json::from_str(&text)
        .unwrap_or_else(|err| script_error(&format!("bad script {}: {err}", path.display())));
    // Samples named relative to the script stay findable whatever directory cms runs us in.
    let base = path.parent().unwrap_or(Path::new("."));
    for turn in &mut script.turns {
        if let Some(replay) = &mut turn.replay {
            *replay = base.join(&*replay);
        }
    }
    script
}

// ---------------------------------------------------------------------------------------------
// Settings and PreToolUse hooks

/// The real CLI's default hook timeout.
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The part of a `--settings` document the fake acts on; its other keys are ignored.
#[derive(Deserialize, Default)]
struct Settings {
    #[serde(default)]
    hooks: HookSettings,
}

#[derive(Deserialize, Default)]
struct HookSettings {
    #[serde(rename = "PreToolUse", default)]
    pre_tool_use: Vec<HookGroupSettings>,
}

#[derive(Deserialize)]
struct HookGroupSettings {
    matcher: Option<String>,
    hooks: Vec<HookSettingsEntry>,
}

#[derive(Deserialize)]
struct HookSettingsEntry {
    #[serde(rename = "type")]
    kind: String,
    command: Option<String>,
    /// Seconds, as in the real settings.
    timeout: Option<f64>,
}

/// One `PreToolUse` entry: the commands it runs for the tools its matcher takes.
struct HookGroup {
    matcher: Matcher,
    commands: Vec<HookCommand>,
}

#[derive(Clone)]
struct HookCommand {
    command: String,
    timeout: Duration,
}

/// What a hook's run means for the tool call.
enum HookVerdict {
    Proceed,
    Deny(String),
}

enum HookRun {
    Exited {
        code: i32,
        stdout: String,
        stderr: String,
    },
    TimedOut,
    Aborted(Abort),
}

/// What a hook that ran to its end decided, as the real CLI 2.1.197 reads it (checked against
/// it case by case). A JSON object on stdout counts whatever the exit code, and JSON that fails
/// the CLI's schema is a non-blocking error. Exit code 2 adds a blocking error with the hook's
/// stderr unless the JSON gave one. Then a `deny` wins, then a blocking error, then an `ask`
/// (which, with nobody to ask in -p mode, blocks too); otherwise the tool runs.
fn hook_verdict(tool: &str, command: &str, code: i32, stdout: &str, stderr: &str) -> HookVerdict {
    let Some(HookOutput {
        behavior,
        mut blocking_error,
        decision_reason,
    }) = parse_hook_output(stdout)
    else {
        return HookVerdict::Proceed;
    };
    if code == 2 && blocking_error.is_none() {
        let stderr = if stderr.is_empty() {
            "No stderr output"
        } else {
            stderr
        };
        blocking_error = Some(format!("[{command}]: {stderr}"));
    }
    match (behavior, blocking_error) {
        (Some(Behavior::Deny), _) => HookVerdict::Deny(
            decision_reason.unwrap_or_else(|| format!("Hook PreToolUse:{tool} denied this tool")),
        ),
        (_, Some(error)) => HookVerdict::Deny(format!("PreToolUse:{tool} hook error: {error}")),
        (Some(Behavior::Ask), None) => HookVerdict::Deny(decision_reason.unwrap_or_else(|| {
            format!("Hook PreToolUse:{tool} asked for confirmation for this tool")
        })),
        // The real CLI ends the turn with a `deferred_tool_use` result, which is not faked.
        (Some(Behavior::Defer), None) => {
            script_error("a PreToolUse hook answered \"defer\", which this fake does not fake")
        }
        (Some(Behavior::Allow) | None, None) => HookVerdict::Proceed,
    }
}

#[derive(Clone, Copy)]
enum Behavior {
    Allow,
    Deny,
    Ask,
    Defer,
}

/// A hook's stdout as the real CLI's `processHookJSONOutput` leaves it.
#[derive(Default)]
struct HookOutput {
    behavior: Option<Behavior>,
    blocking_error: Option<String>,
    /// The text a `deny` or `ask` shows; JavaScript's `||` takes an empty one for none.
    decision_reason: Option<String>,
}

/// `None` when the output makes the hook a non-blocking error (JSON the CLI's schema rejects,
/// or an async hook's first line): the tool then runs, whatever the exit code.
fn parse_hook_output(stdout: &str) -> Option<HookOutput> {
    // Plain text, and text that only looks like JSON, decide nothing.
    let Ok(Value::Object(output)) = serde_json::from_str::<Value>(stdout.trim()) else {
        return Some(HookOutput::default());
    };
    if output.get("async") == Some(&Value::Bool(true)) || !hook_output_is_valid(&output) {
        return None;
    }
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
    let non_empty = |text: Option<String>| text.filter(|text| !text.is_empty());
    let reason = text(output.get("reason"));
    let mut parsed = HookOutput::default();
    // The older top-level decision, which the PreToolUse one below overrides.
    match output.get("decision").and_then(Value::as_str) {
        Some("approve") => parsed.behavior = Some(Behavior::Allow),
        Some("block") => {
            parsed.behavior = Some(Behavior::Deny);
            parsed.blocking_error =
                Some(non_empty(reason.clone()).unwrap_or_else(|| "Blocked by hook".to_string()));
        }
        _ => {}
    }
    if parsed.behavior.is_some() {
        parsed.decision_reason = reason.clone();
    }
    if let Some(specific) = output.get("hookSpecificOutput") {
        match specific["permissionDecision"].as_str() {
            Some("allow") => parsed.behavior = Some(Behavior::Allow),
            Some("deny") => parsed.behavior = Some(Behavior::Deny),
            Some("ask") => parsed.behavior = Some(Behavior::Ask),
            Some("defer") => parsed.behavior = Some(Behavior::Defer),
            _ => {}
        }
        // Set even when absent, dropping a top-level `reason`, as the real CLI does.
        parsed.decision_reason = text(specific.get("permissionDecisionReason"));
    }
    parsed.decision_reason = non_empty(parsed.decision_reason);
    Some(parsed)
}

/// The real CLI's output schema, as far as a `PreToolUse` hook's output goes. Unknown keys are
/// allowed, as zod allows them; output meant for another event is an error.
fn hook_output_is_valid(output: &serde_json::Map<String, Value>) -> bool {
    let is = |map: &serde_json::Map<String, Value>, key: &str, test: fn(&Value) -> bool| {
        map.get(key).is_none_or(test)
    };
    let top_level_ok = is(output, "continue", Value::is_boolean)
        && is(output, "suppressOutput", Value::is_boolean)
        && ["stopReason", "reason", "systemMessage", "terminalSequence"]
            .iter()
            .all(|key| is(output, key, Value::is_string))
        && is(output, "decision", |d| d == "approve" || d == "block");
    let specific_ok = match output.get("hookSpecificOutput") {
        None => true,
        Some(Value::Object(specific)) => {
            specific.get("hookEventName") == Some(&Value::from("PreToolUse"))
                && is(specific, "permissionDecision", |d| {
                    ["allow", "deny", "ask", "defer"]
                        .iter()
                        .any(|known| d == known)
                })
                && is(specific, "permissionDecisionReason", Value::is_string)
                && is(specific, "additionalContext", Value::is_string)
                && is(specific, "updatedInput", Value::is_object)
        }
        Some(_) => false,
    };
    top_level_ok && specific_ok
}

/// A settings problem the real CLI would not report the way we could fake is the test author's
/// mistake, so it fails like a broken script.
fn settings_error(message: &str) -> ! {
    script_error(&format!("--settings: {message}"))
}

/// Reads `--settings` as the real CLI does: inline JSON when it looks like an object, else the
/// path of a file (relative to the cwd).
fn load_hooks(settings: Option<&str>) -> Vec<HookGroup> {
    let Some(value) = settings else {
        return Vec::new();
    };
    let trimmed = value.trim();
    let text = if trimmed.starts_with('{') && trimmed.ends_with('}') {
        if serde_json::from_str::<Value>(trimmed).is_err() {
            usage_error("Error: Invalid JSON provided to --settings");
        }
        trimmed.to_string()
    } else {
        let path = std::path::absolute(value).unwrap_or_else(|_| PathBuf::from(value));
        fs::read_to_string(&path).unwrap_or_else(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                usage_error(&format!(
                    "Error: Settings file not found: {}",
                    path.display()
                ));
            }
            settings_error(&format!("cannot read {}: {err}", path.display()))
        })
    };
    let settings: Settings = serde_json::from_str(&text).unwrap_or_else(|err| {
        settings_error(&format!("not settings this fake understands: {err}"))
    });
    settings
        .hooks
        .pre_tool_use
        .into_iter()
        .map(|group| {
            let matcher = Matcher::new(group.matcher.as_deref()).unwrap_or_else(|err| {
                settings_error(&format!(
                    "hook matcher {:?}: {err}",
                    group.matcher.unwrap_or_default()
                ))
            });
            let commands = group
                .hooks
                .into_iter()
                .map(|hook| match (hook.kind.as_str(), hook.command) {
                    ("command", Some(command)) => HookCommand {
                        command,
                        timeout: hook
                            .timeout
                            .filter(|secs| *secs > 0.0)
                            .map_or(DEFAULT_HOOK_TIMEOUT, Duration::from_secs_f64),
                    },
                    (kind, _) => settings_error(&format!(
                        "only hooks of type \"command\" with a command are faked, not {kind:?}"
                    )),
                })
                .collect();
            HookGroup { matcher, commands }
        })
        .collect()
}

/// How a hook's `matcher` picks tools, as in the real CLI: empty or `*` takes every tool, a
/// plain `A|B` list takes exactly those names, anything else is a regex searched in the name.
enum Matcher {
    All,
    Names(Vec<String>),
    Regex(Regex),
}

impl Matcher {
    fn new(matcher: Option<&str>) -> Result<Matcher, String> {
        Ok(match matcher {
            None | Some("" | "*") => Matcher::All,
            Some(list)
                if list
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|') =>
            {
                Matcher::Names(
                    list.split('|')
                        .filter(|name| !name.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            Some(pattern) => Matcher::Regex(Regex::parse(pattern)?),
        })
    }

    fn matches(&self, tool: &str) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Names(names) => names.iter().any(|name| name == tool),
            Matcher::Regex(regex) => regex.is_match(tool),
        }
    }
}

/// The part of JavaScript's regex syntax a tool-name matcher needs: literals, `.`, classes
/// (with `\d`, `\w`, `\s`), groups, `|`, anchors and greedy or lazy quantifiers. Anything else
/// (lookaround, backreferences, `\b`) is refused rather than matched differently.
struct Regex(Node);

enum Node {
    Char(char),
    /// `.`: anything but a line terminator.
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Start,
    End,
    /// Alternatives, each a sequence.
    Group(Vec<Vec<Node>>),
    Repeat {
        node: Box<Node>,
        min: usize,
        max: Option<usize>,
        greedy: bool,
    },
}

const DIGITS: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
const SPACE: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{a0}', '\u{a0}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{feff}', '\u{feff}'),
];

struct RegexParser {
    chars: Vec<char>,
    pos: usize,
}

impl Regex {
    fn parse(pattern: &str) -> Result<Regex, String> {
        let mut parser = RegexParser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let alternatives = parser.alternatives()?;
        if parser.pos < parser.chars.len() {
            return Err("unmatched ')'".into());
        }
        Ok(Regex(Node::Group(alternatives)))
    }

    /// `RegExp.prototype.test`: a match anywhere in the text.
    fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        (0..=chars.len()).any(|start| match_node(&self.0, &chars, start, &|_| true))
    }
}

impl RegexParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        self.pos += usize::from(found);
        found
    }

    fn alternatives(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alternatives = vec![self.sequence()?];
        while self.eat('|') {
            alternatives.push(self.sequence()?);
        }
        Ok(alternatives)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, String> {
        let mut sequence = Vec::new();
        while let Some(c) = self.peek().filter(|c| !matches!(c, '|' | ')')) {
            self.pos += 1;
            let atom = match c {
                '.' => Node::Any,
                '^' => Node::Start,
                '$' => Node::End,
                '(' => {
                    if self.eat('?') && !self.eat(':') {
                        return Err("lookaround and named groups are not supported".into());
                    }
                    let alternatives = self.alternatives()?;
                    if !self.eat(')') {
                        return Err("unterminated group".into());
                    }
                    Node::Group(alternatives)
                }
                '[' => self.class()?,
                '\\' => self.escape()?,
                '*' | '+' | '?' => return Err("nothing to repeat".into()),
                c => Node::Char(c),
            };
            let repeatable = !matches!(atom, Node::Start | Node::End);
            sequence.push(self.quantified(atom, repeatable)?);
        }
        Ok(sequence)
    }

    fn quantified(&mut self, atom: Node, repeatable: bool) -> Result<Node, String> {
        let start = self.pos;
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => match self.braces() {
                Some(bounds) => bounds,
                // Annex B: a `{` that does not start a quantifier is a literal.
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        if !repeatable {
            return Err("nothing to repeat".into());
        }
        if self.pos == start {
            self.pos += 1;
        }
        if max.is_some_and(|max| max < min) {
            return Err("numbers out of order in {} quantifier".into());
        }
        let greedy = !self.eat('?');
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
            greedy,
        })
    }

    /// `{n}`, `{n,}` or `{n,m}`, consumed only when it is one of those.
    fn braces(&mut self) -> Option<(usize, Option<usize>)> {
        let rest: String = self.chars[self.pos..].iter().collect();
        let end = rest.find('}')?;
        let body = &rest[1..end];
        let number = |text: &str| -> Option<usize> {
            (!text.is_empty() && text.chars().all(|c| c.is_ascii_digit()))
                .then(|| text.parse().ok())
                .flatten()
        };
        let bounds = match body.split_once(',') {
            None => number(body).map(|n| (n, Some(n))),
            Some((min, "")) => number(min).map(|n| (n, None)),
            Some((min, max)) => number(min).zip(number(max)).map(|(a, b)| (a, Some(b))),
        }?;
        self.pos += rest[..=end].chars().count();
        Some(bounds)
    }

    fn escape(&mut self) -> Result<Node, String> {
        let c = self.peek().ok_or("\\ at end of pattern")?;
        self.pos += 1;
        let class = |negated: bool, ranges: &[(char, char)]| Node::Class {
            negated,
            ranges: ranges.to_vec(),
        };
        Ok(match c {
            'd' => class(false, DIGITS),
            'D' => class(true, DIGITS),
            'w' => class(false, WORD),
            'W' => class(true, WORD),
            's' => class(false, SPACE),
            'S' => class(true, SPACE),
            c => Node::Char(escaped_char(c)?),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        loop {
            let c = self.peek().ok_or("unterminated character class")?;
            self.pos += 1;
            let low = match c {
                ']' => break,
                '\\' => {
                    let c = self.peek().ok_or("unterminated character class")?;
                    self.pos += 1;
                    match c {
                        'd' => {
                            ranges.extend_from_slice(DIGITS);
                            continue;
                        }
                        'w' => {
                            ranges.extend_from_slice(WORD);
                            continue;
                        }
                        's' => {
                            ranges.extend_from_slice(SPACE);
                            continue;
                        }
                        'D' | 'W' | 'S' => {
                            return Err(format!("\\{c} inside a class is not supported"));
                        }
                        c => escaped_char(c)?,
                    }
                }
                c => c,
            };
            let is_range = self.peek() == Some('-')
                && self
                    .chars
                    .get(self.pos + 1)
                    .is_some_and(|next| *next != ']');
            if !is_range {
                ranges.push((low, low));
                continue;
            }
            self.pos += 1;
            let high = match self.peek().ok_or("unterminated character class")? {
                '\\' => {
                    self.pos += 1;
                    let c = self.peek().ok_or("unterminated character class")?;
                    escaped_char(c)?
                }
                c => c,
            };
            self.pos += 1;
            if high < low {
                return Err("range out of order in character class".into());
            }
            ranges.push((low, high));
        }
        Ok(Node::Class { negated, ranges })
    }
}

/// The character an escape stands for; letters and digits with other meanings are refused.
fn escaped_char(c: char) -> Result<char, String> {
    match c {
        'n' => Ok('\n'),
        'r' => Ok('\r'),
        't' => Ok('\t'),
        'f' => Ok('\u{c}'),
        'v' => Ok('\u{b}'),
        '0' => Ok('\0'),
        c if c.is_ascii_alphanumeric() => Err(format!("\\{c} is not supported")),
        c => Ok(c),
    }
}

/// Backtracking match of `node` at `pos`; `then` matches whatever follows it.
fn match_node(node: &Node, text: &[char], pos: usize, then: &dyn Fn(usize) -> bool) -> bool {
    let one =
        |test: &dyn Fn(char) -> bool| text.get(pos).is_some_and(|c| test(*c)) && then(pos + 1);
    match node {
        Node::Char(expected) => one(&|c| c == *expected),
        Node::Any => one(&|c| !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')),
        Node::Class { negated, ranges } => {
            one(&|c| ranges.iter().any(|(low, high)| (*low..=*high).contains(&c)) != *negated)
        }
        Node::Start => pos == 0 && then(pos),
        Node::End => pos == text.len() && then(pos),
        Node::Group(alternatives) => alternatives
            .iter()
            .any(|sequence| match_sequence(sequence, text, pos, then)),
        Node::Repeat {
            node,
            min,
            max,
            greedy,
        } => match_repeat(node, (*min, *max, *greedy), text, pos, 0, then),
    }
}

fn match_sequence(
    sequence: &[Node],
    text: &[char],
    pos: usize,
    then: &dyn Fn(usize) -> bool,
) -> bool {
    match sequence.split_first() {
        None => then(pos),
        Some((first, rest)) => match_node(first, text, pos, &|next| {
            match_sequence(rest, text, next, then)
        }),
    }
}

fn match_repeat(
    node: &Node,
    (min, max, greedy): (usize, Option<usize>, bool),
    text: &[char],
    pos: usize,
    count: usize,
    then: &dyn Fn(usize) -> bool,
) -> bool {
    let again = || {
        max.is_none_or(|max| count < max)
            && match_node(node, text, pos, &|next| {
                // As in JavaScript, an iteration past the minimum must consume something.
                (next != pos || count < min)
                    && match_repeat(node, (min, max, greedy), text, next, count + 1, then)
            })
    };
    let stop = || count >= min && then(pos);
    let (first, second): (&dyn Fn() -> bool, &dyn Fn() -> bool) = if greedy {
        (&again, &stop)
    } else {
        (&stop, &again)
    };
    first() || second()
}

// ---------------------------------------------------------------------------------------------
// Signals

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINT_SEEN.store(true, Ordering::SeqCst);
}

extern "C" fn on_sigterm(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe. The real CLI also dies at once with 143, printing no
    // result and leaving its tool processes running.
    unsafe { libc::_exit(143) }
}

/// A handler that does nothing, rather than SIG_IGN, so that commands we run still get the
/// default disposition (exec resets handlers but keeps SIG_IGN).
extern "C" fn ignore_signal(_: libc::c_int) {}

fn install_signal_handlers(script: &Script) {
    type Handler = extern "C" fn(libc::c_int);
    let sigint: Handler = if script.ignore_sigint {
        ignore_signal
    } else {
        on_sigint
    };
    let sigterm: Handler = if script.ignore_sigterm {
        ignore_signal
    } else {
        on_sigterm
    };
    for (signal, handler) in [(libc::SIGINT, sigint), (libc::SIGTERM, sigterm)] {
        // SAFETY: the handlers only store to an atomic or call _exit, both async-signal-safe, and
        // the sigaction struct is fully initialised before use.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON text and output

/// Rendered JSON text. Events are assembled as text because serde_json's map (built here without
/// `preserve_order`) sorts its keys, and the real CLI's key order is part of what we imitate.
#[derive(Clone)]
struct Json(String);

impl Json {
    fn of(value: impl Serialize) -> Json {
        Json(serde_json::to_string(&value).expect("plain data always serializes"))
    }

    fn array(items: impl IntoIterator<Item = Json>) -> Json {
        let items: Vec<String> = items.into_iter().map(|item| item.0).collect();
        Json(format!("[{}]", items.join(",")))
    }

    /// JavaScript prints integral numbers without a fraction (`"total_cost_usd":0`).
    fn number(x: f64) -> Json {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            Json(format!("{}", x as i64))
        } else {
            Json::of(x)
        }
    }
}

/// A JSON object under construction that keeps its keys in insertion order.
struct Obj(String);

impl Obj {
    fn new() -> Obj {
        Obj(String::from("{"))
    }

    fn raw(mut self, key: &str, value: Json) -> Obj {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&Json::of(key).0);
        self.0.push(':');
        self.0.push_str(&value.0);
        self
    }

    fn field(self, key: &str, value: impl Serialize) -> Obj {
        self.raw(key, Json::of(value))
    }

    fn end(mut self) -> Json {
        self.0.push('}');
        Json(self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
    StreamJson,
}

fn output_format() -> OutputFormat {
    OUTPUT.get().copied().unwrap_or(OutputFormat::StreamJson)
}

fn write_line(line: &str) {
    let mut out = io::stdout().lock();
    // Whoever read our stdout has gone away; there is nobody left to tell anything.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        process::exit(1);
    }
}

/// Prints an event; only stream-json shows anything but the result.
fn emit(event: &Json) {
    if output_format() == OutputFormat::StreamJson {
        write_line(&event.0);
    }
}

fn emit_result(event: &Json, text: &str) {
    match output_format() {
        OutputFormat::Text => write_line(text),
        OutputFormat::Json | OutputFormat::StreamJson => write_line(&event.0),
    }
}

fn text_block(text: &str) -> Json {
    Obj::new().field("type", "text").field("text", text).end()
}

/// Successful tool results put `tool_use_id` first and failed ones last, as the real CLI does.
fn tool_result_ok(tool_use_id: &str, content: &str) -> Obj {
    Obj::new()
        .field("tool_use_id", tool_use_id)
        .field("type", "tool_result")
        .field("content", content)
}

fn tool_result_error(tool_use_id: &str, content: &str) -> Json {
    Obj::new()
        .field("type", "tool_result")
        .field("content", content)
        .field("is_error", true)
        .field("tool_use_id", tool_use_id)
        .end()
}

fn server_tool_use() -> Json {
    Obj::new()
        .field("web_search_requests", 0)
        .field("web_fetch_requests", 0)
        .end()
}

fn cache_creation() -> Json {
    Obj::new()
        .field("ephemeral_1h_input_tokens", 0)
        .field("ephemeral_5m_input_tokens", 0)
        .end()
}

fn result_usage(input_tokens: u64, output_tokens: u64) -> Json {
    Obj::new()
        .field("input_tokens", input_tokens)
        .field("cache_creation_input_tokens", 0)
        .field("cache_read_input_tokens", 0)
        .field("output_tokens", output_tokens)
        .raw("server_tool_use", server_tool_use())
        .field("service_tier", "standard")
        .raw("cache_creation", cache_creation())
        .field("inference_geo", "")
        .raw("iterations", Json::array(Vec::new()))
        .field("speed", "standard")
        .end()
}

/// Tool inputs from the script come as a sorted map; the well-known tools get the key order
/// the model uses, the rest keep the map's order.
fn tool_input_json(tool: &str, input: &Value) -> Json {
    let Value::Object(map) = input else {
        return Json::of(input);
    };
    let order: &[&str] = match tool {
        "Write" => &["file_path", "content"],
        "Edit" => &["replace_all", "file_path", "old_string", "new_string"],
        "Read" => &["file_path", "offset", "limit"],
        "Bash" => &["command", "description", "timeout", "run_in_background"],
        _ => &[],
    };
    let mut obj = Obj::new();
    for key in order {
        if let Some(value) = map.get(*key) {
            obj = obj.field(key, value);
        }
    }
    for (key, value) in map {
        if !order.contains(&key.as_str()) {
            obj = obj.field(key, value);
        }
    }
    obj.end()
}

// ---------------------------------------------------------------------------------------------
// Ids and clocks

fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0; count];
    File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes
}

fn random_hex(chars: usize) -> String {
    let mut hex: String = random_bytes(chars.div_ceil(2))
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    hex.truncate(chars);
    hex
}

fn random_fraction() -> f64 {
    let bytes = random_bytes(4);
    f64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])) / f64::from(u32::MAX)
}

fn uuid_v4() -> String {
    let mut bytes = random_bytes(16);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The real CLI names a project directory after its path with every other character made `-`.
fn project_dir_name(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn config_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".claude"),
    }
}

/// The `host:port` that API error texts blame.
fn inference_gateway() -> String {
    let base = std::env::var("ANTHROPIC_BASE_URL").unwrap_or_default();
    let host = base.split("://").nth(1).unwrap_or(&base);
    match host.split('/').next().filter(|host| !host.is_empty()) {
        Some(host) => host.to_string(),
        None => "api.anthropic.com".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Model and price table

struct Model {
    /// As shown in `init` and as the `modelUsage` key.
    name: String,
    /// As sent to the API and shown in assistant messages.
    api_name: String,
    input_price: f64,
    output_price: f64,
    context_window: u64,
    max_output_tokens: u64,
}

impl Model {
    fn resolve(arg: Option<&str>) -> Model {
        let (api_name, one_million) = match arg {
            // The API-key default is the 1M-context Opus.
            None => (DEFAULT_MODEL.to_string(), true),
            Some(arg) => {
                let (base, one_million) = match arg.strip_suffix("[1m]") {
                    Some(base) => (base, true),
                    None => (arg, false),
                };
                let api_name = match base {
                    "opus" => DEFAULT_MODEL,
                    "sonnet" => "claude-sonnet-5",
                    "haiku" => "claude-haiku-4-5-20251001",
                    other => other,
                };
                (api_name.to_string(), one_million)
            }
        };
        // Any model the price table does not know is billed like Opus.
        let (input_price, output_price) = if api_name.starts_with("claude-sonnet-5")
            || api_name.starts_with("claude-sonnet-4-5")
        {
            (3.0, 15.0)
        } else if api_name.starts_with("claude-haiku-4-5") {
            (1.0, 5.0)
        } else {
            (5.0, 25.0)
        };
        let max_output_tokens = if api_name.starts_with("claude-sonnet-4-5")
            || api_name.starts_with("claude-haiku-4-5")
        {
            32_000
        } else {
            64_000
        };
        Model {
            name: if one_million {
                format!("{api_name}[1m]")
            } else {
                api_name.clone()
            },
            api_name,
            input_price,
            output_price,
            context_window: if one_million { 1_000_000 } else { 200_000 },
            max_output_tokens,
        }
    }

    /// Per million tokens first, then times the price: the real CLI's rounding
    /// (samples/max_budget reports 0.6300000000000001, not 0.63).
    fn cost(&self, usage: Usage) -> f64 {
        usage.input_tokens as f64 / 1_000_000.0 * self.input_price
            + usage.output_tokens as f64 / 1_000_000.0 * self.output_price
    }
}

// ---------------------------------------------------------------------------------------------
// Stdin

/// Why a running step stopped early.
enum Abort {
    /// A `control_request` interrupt; the process carries on afterwards.
    Interrupt,
    /// SIGINT; the process exits after the turn's result.
    Sigint,
}

struct Inbox {
    /// Messages from the stdin reader thread; `None` once stdin has closed, or in prompt mode.
    messages: Option<Receiver<Value>>,
    /// User messages received but not yet answered by a turn.
    pending_turns: usize,
}

impl Inbox {
    fn from_stdin() -> Inbox {
        let (sender, receiver) = mpsc::channel();
        // A thread of its own, so that an interrupt is seen while a step sleeps or a command runs.
        thread::spawn(move || {
            for line in io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&line) {
                    Ok(message) => {
                        if sender.send(message).is_err() {
                            break;
                        }
                    }
                    Err(err) => {
                        eprintln!("fake-claude: ignoring a stdin line that is not JSON: {err}")
                    }
                }
            }
        });
        Inbox {
            messages: Some(receiver),
            pending_turns: 0,
        }
    }

    fn closed() -> Inbox {
        Inbox {
            messages: None,
            pending_turns: 0,
        }
    }

    fn is_closed(&self) -> bool {
        self.messages.is_none()
    }

    /// Waits up to `wait` for one stdin message and reports an interrupt or SIGINT, if any.
    fn poll(&mut self, wait: Duration) -> Option<Abort> {
        let received = match &self.messages {
            Some(messages) if wait.is_zero() => messages
                .try_recv()
                .map_err(|err| err == TryRecvError::Disconnected),
            Some(messages) => messages
                .recv_timeout(wait)
                .map_err(|err| err == RecvTimeoutError::Disconnected),
            None => {
                thread::sleep(wait);
                Err(false)
            }
        };
        let interrupted = match received {
            Ok(message) => self.accept(&message),
            Err(closed) => {
                if closed {
                    self.messages = None;
                }
                false
            }
        };
        if SIGINT_SEEN.load(Ordering::SeqCst) {
            Some(Abort::Sigint)
        } else if interrupted {
            Some(Abort::Interrupt)
        } else {
            None
        }
    }

    /// Files a message; true if it asks to interrupt the running turn.
    fn accept(&mut self, message: &Value) -> bool {
        match message["type"].as_str() {
            // Messages sent while a turn runs simply wait for their own turn.
            Some("user") => {
                self.pending_turns += 1;
                false
            }
            Some("control_request") => {
                let response = Obj::new()
                    .field("subtype", "success")
                    .field("request_id", &message["request_id"])
                    .end();
                emit(
                    &Obj::new()
                        .field("type", "control_response")
                        .raw("response", response)
                        .end(),
                );
                message["request"]["subtype"] == "interrupt"
            }
            // Answers to control requests we never send, and unknown types, need nothing.
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Turns

/// How a turn ended, once its `result` line (if any) is out.
enum TurnEnd {
    Continue { is_error: bool },
    Exit(i32),
}

/// What a `result` line reports.
enum Outcome<'a> {
    Success(&'a str),
    ApiError { status: Option<u16>, text: &'a str },
    MaxTurns,
    MaxBudget,
    Interrupted { tool: bool },
}

/// One assistant API response; its content blocks share the message and request ids.
struct ApiResponse {
    message_id: String,
    request_id: String,
    /// Position among the process's responses; it numbers tool ids like the recording's API did.
    index: u64,
}

struct TurnState {
    started: Instant,
    first_response: Option<Duration>,
    responses: u64,
    input_tokens: u64,
    output_tokens: u64,
    denials: Vec<Json>,
    /// A text block's response that the next step's tool_use continues.
    open_response: Option<ApiResponse>,
    /// Names the user message the turn answers, in hook inputs.
    prompt_id: String,
}

impl TurnState {
    fn new() -> TurnState {
        TurnState {
            started: Instant::now(),
            first_response: None,
            responses: 0,
            input_tokens: 0,
            output_tokens: 0,
            denials: Vec::new(),
            open_response: None,
            prompt_id: uuid_v4(),
        }
    }
}

/// Cumulative for the process, like the real CLI's `total_cost_usd` and `modelUsage`.
#[derive(Default)]
struct Totals {
    responses: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost: f64,
}

struct BashOutput {
    code: i32,
    stdout: String,
    stderr: String,
}

enum BashError {
    Io(io::Error),
    Aborted(Abort),
}

impl From<io::Error> for BashError {
    fn from(err: io::Error) -> BashError {
        BashError::Io(err)
    }
}

struct Session {
    cwd: PathBuf,
    session_id: String,
    model: Model,
    permission_mode: String,
    usage: Usage,
    max_turns: Option<u64>,
    max_budget_usd: Option<f64>,
    effort: String,
    pre_tool_use: Vec<HookGroup>,
    totals: Totals,
    inbox: Inbox,
}

impl Session {
    fn new(opts: &Options, script: &Script, pre_tool_use: Vec<HookGroup>, inbox: Inbox) -> Session {
        let cwd = std::env::current_dir().unwrap_or_else(|err| {
            usage_error(&format!("fake-claude: no working directory: {err}"))
        });
        let default_mode = if opts.skip_permissions {
            "bypassPermissions"
        } else {
            "default"
        };
        Session {
            cwd,
            session_id: opts
                .resume
                .clone()
                .or_else(|| opts.session_id.clone())
                .unwrap_or_else(uuid_v4),
            model: Model::resolve(opts.model.as_deref()),
            permission_mode: opts
                .permission_mode
                .clone()
                .unwrap_or_else(|| default_mode.to_string()),
            usage: script.usage,
            max_turns: opts.max_turns,
            max_budget_usd: opts.max_budget_usd,
            effort: opts.effort.clone().unwrap_or_else(|| "high".to_string()),
            pre_tool_use,
            totals: Totals::default(),
            inbox,
        }
    }

    /// The stream-json loop: one turn per user message, until stdin closes.
    fn serve(mut self, script: &Script) -> ! {
        let mut answered = 0;
        loop {
            if self.inbox.pending_turns > 0 {
                self.inbox.pending_turns -= 1;
                if let TurnEnd::Exit(code) = self.run_turn(script, script.resume_offset + answered)
                {
                    process::exit(code);
                }
                answered += 1;
                continue;
            }
            if self.inbox.is_closed() {
                process::exit(0);
            }
            if let Some(Abort::Sigint) = self.inbox.poll(POLL * 5) {
                process::exit(1);
            }
        }
    }

    fn run_turn(&mut self, script: &Script, index: usize) -> TurnEnd {
        let fallback;
        let turn = match script.turns.get(index) {
            Some(turn) => turn,
            None => {
                fallback = Turn {
                    result: Some(NO_MORE_TURNS.into()),
                    ..Turn::default()
                };
                &fallback
            }
        };
        let end = match &turn.replay {
            Some(path) => {
                // Earlier turns replaying the same file used up its earlier turns; counting them
                // in the script (not in this process) keeps `resume_offset` processes in step.
                let section = script.turns[..index]
                    .iter()
                    .filter(|earlier| earlier.replay.as_ref() == Some(path))
                    .count();
                self.replay(path, section)
            }
            None => self.scripted_turn(turn),
        };
        match turn.exit_after {
            Some(code) => TurnEnd::Exit(code),
            None => end,
        }
    }

    fn scripted_turn(&mut self, turn: &Turn) -> TurnEnd {
        emit(&self.init_event());
        let mut st = TurnState::new();
        for (i, step) in turn.steps.iter().enumerate() {
            let next_is_tool = turn.steps.get(i + 1).is_some_and(Step::is_tool);
            if let Err(end) = self.run_step(&mut st, step, next_is_tool) {
                return end;
            }
        }
        self.final_answer(&mut st, turn.result.as_deref().unwrap_or("done"))
    }

    fn run_step(
        &mut self,
        st: &mut TurnState,
        step: &Step,
        next_is_tool: bool,
    ) -> Result<(), TurnEnd> {
        if let Some(abort) = self.inbox.poll(Duration::ZERO) {
            return Err(self.interrupted(st, abort, None));
        }
        match step {
            Step::Text(text) => self.text_step(st, text, next_is_tool),
            Step::Write { path, content } => self.write_step(st, path, content),
            Step::Read { path } => self.read_step(st, path),
            Step::Edit {
                path,
                old,
                new,
                replace_all,
            } => self.edit_step(st, path, old, new, *replace_all),
            Step::Bash(bash) => {
                let (command, description) = bash.parts();
                self.bash_step(st, command, description)
            }
            Step::Delete(path) => {
                let command = format!("rm -f -- '{}'", path.replace('\'', r"'\''"));
                self.bash_step(st, &command, &format!("Delete {path}"))
            }
            Step::Deny {
                tool,
                input,
                message,
            } => self.deny_step(st, tool, input, message.as_deref()),
            Step::SleepMs(ms) => self.sleep_step(st, *ms),
            Step::Garbage(line) => {
                write_line(line);
                Ok(())
            }
            Step::Raw(value) => {
                write_line(&Json::of(value).0);
                Ok(())
            }
            Step::Stderr(text) => {
                eprintln!("{text}");
                Ok(())
            }
            Step::Exit(code) => process::exit(*code),
            Step::ApiError {
                status,
                message,
                retries,
            } => Err(self.api_error(st, *status, message.as_deref(), *retries)),
            Step::SpawnGrandchild { pidfile, sleep_s } => {
                if let Err(err) = self.spawn_grandchild(pidfile, *sleep_s) {
                    eprintln!("fake-claude: spawn_grandchild failed: {err}");
                }
                Ok(())
            }
        }
    }

    // --- API responses --------------------------------------------------------------------

    fn begin_response(&mut self, st: &mut TurnState) -> Result<ApiResponse, TurnEnd> {
        if self.max_turns.is_some_and(|max| st.responses >= max) {
            return Err(self.limit_reached(st, &Outcome::MaxTurns));
        }
        st.first_response
            .get_or_insert_with(|| st.started.elapsed());
        st.responses += 1;
        st.input_tokens += self.usage.input_tokens;
        st.output_tokens += self.usage.output_tokens;
        let index = self.totals.responses;
        self.totals.responses += 1;
        self.totals.input_tokens += self.usage.input_tokens;
        self.totals.output_tokens += self.usage.output_tokens;
        self.totals.cost += self.model.cost(self.usage);
        Ok(ApiResponse {
            message_id: format!("msg_fake_{}", random_hex(20)),
            request_id: format!("req_fake_{}", random_hex(12)),
            index,
        })
    }

    fn text_step(
        &mut self,
        st: &mut TurnState,
        text: &str,
        next_is_tool: bool,
    ) -> Result<(), TurnEnd> {
        let response = self.begin_response(st)?;
        emit(&self.assistant_event(&response, text_block(text)));
        if next_is_tool {
            st.open_response = Some(response);
        }
        Ok(())
    }

    /// Prints a tool_use (in the open text response, if any) and returns its id.
    fn tool_use(&mut self, st: &mut TurnState, name: &str, input: Json) -> Result<String, TurnEnd> {
        let response = match st.open_response.take() {
            Some(response) => response,
            None => self.begin_response(st)?,
        };
        let id = format!("toolu_fake_{}_0_{}", response.index, random_hex(8));
        let block = Obj::new()
            .field("type", "tool_use")
            .field("id", &id)
            .field("name", name)
            .raw("input", input)
            .end();
        emit(&self.assistant_event(&response, block));
        // The real CLI checks the budget after each API response, before running its tools.
        if self
            .max_budget_usd
            .is_some_and(|budget| self.totals.cost >= budget)
        {
            return Err(self.limit_reached(st, &Outcome::MaxBudget));
        }
        Ok(id)
    }

    fn final_answer(&mut self, st: &mut TurnState, text: &str) -> TurnEnd {
        if let Some(abort) = self.inbox.poll(Duration::ZERO) {
            return self.interrupted(st, abort, None);
        }
        let response = match self.begin_response(st) {
            Ok(response) => response,
            Err(end) => return end,
        };
        emit(&self.assistant_event(&response, text_block(text)));
        emit_result(&self.result_event(st, &Outcome::Success(text)), text);
        TurnEnd::Continue { is_error: false }
    }

    /// `--max-turns` and `--max-budget-usd` end the turn, and in -p mode the process.
    fn limit_reached(&mut self, st: &TurnState, outcome: &Outcome) -> TurnEnd {
        let event = self.result_event(st, outcome);
        emit_result(&event, &self.outcome_errors(outcome).join("\n"));
        TurnEnd::Exit(1)
    }

    // --- Tools ------------------------------------------------------------------------------

    fn write_step(&mut self, st: &mut TurnState, path: &str, content: &str) -> Result<(), TurnEnd> {
        let file = self.cwd.join(path);
        let file_path = file.display().to_string();
        let input = Obj::new()
            .field("file_path", &file_path)
            .field("content", content)
            .end();
        let id = self.tool_use(st, "Write", input.clone())?;
        if self.blocked_by_hooks(st, "Write", &input, &id)? {
            return Ok(());
        }
        let original = fs::read_to_string(&file).ok();
        if let Err(err) = write_file(&file, content) {
            self.tool_use_error(&id, &err.to_string());
            return Ok(());
        }
        let (kind, message, patch) = match &original {
            None => (
                "create",
                format!("File created successfully at: {file_path} {FRESH_STATE}"),
                Json::array(Vec::new()),
            ),
            Some(old) => (
                "update",
                format!("The file {file_path} has been updated successfully. {FRESH_STATE}"),
                structured_patch(old, content),
            ),
        };
        let result = Obj::new()
            .field("type", kind)
            .field("filePath", &file_path)
            .field("content", content)
            .raw("structuredPatch", patch)
            .field("originalFile", &original)
            .field("userModified", false)
            .end();
        emit(&self.user_event(tool_result_ok(&id, &message).end(), Some(result)));
        Ok(())
    }

    fn read_step(&mut self, st: &mut TurnState, path: &str) -> Result<(), TurnEnd> {
        let file = self.cwd.join(path);
        let file_path = file.display().to_string();
        let input = Obj::new().field("file_path", &file_path).end();
        let id = self.tool_use(st, "Read", input.clone())?;
        // Read finds a missing file only when it runs, after the hooks.
        if self.blocked_by_hooks(st, "Read", &input, &id)? {
            return Ok(());
        }
        let Ok(text) = fs::read_to_string(&file) else {
            let message = format!(
                "File does not exist. Note: your current working directory is {}.",
                self.cwd.display()
            );
            self.tool_use_error(&id, &message);
            return Ok(());
        };
        // Like the real Read tool, the empty string after a final newline counts as a line.
        let lines: Vec<&str> = text.split('\n').collect();
        let numbered: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("{}\t{line}", i + 1))
            .collect();
        let details = Obj::new()
            .field("filePath", &file_path)
            .field("content", &text)
            .field("numLines", lines.len())
            .field("startLine", 1)
            .field("totalLines", lines.len())
            .end();
        let result = Obj::new().field("type", "text").raw("file", details).end();
        let block = tool_result_ok(&id, &numbered.join("\n")).end();
        emit(&self.user_event(block, Some(result)));
        Ok(())
    }

    fn edit_step(
        &mut self,
        st: &mut TurnState,
        path: &str,
        old: &str,
        new: &str,
        replace_all: bool,
    ) -> Result<(), TurnEnd> {
        let file = self.cwd.join(path);
        let file_path = file.display().to_string();
        let input = Obj::new()
            .field("replace_all", replace_all)
            .field("file_path", &file_path)
            .field("old_string", old)
            .field("new_string", new)
            .end();
        let id = self.tool_use(st, "Edit", input.clone())?;
        let Ok(original) = fs::read_to_string(&file) else {
            self.tool_use_error(&id, "File does not exist.");
            return Ok(());
        };
        let matches = if old.is_empty() {
            0
        } else {
            original.matches(old).count()
        };
        if matches == 0 {
            self.tool_use_error(
                &id,
                &format!("String to replace not found in file.\nString: {old}"),
            );
            return Ok(());
        }
        if matches > 1 && !replace_all {
            self.tool_use_error(
                &id,
                &format!(
                    "Found {matches} matches of the string to replace, but replace_all is false. \
                     To replace all occurrences, set replace_all to true. To replace only one \
                     occurrence, please provide more context to uniquely identify the instance.\n\
                     String: {old}"
                ),
            );
            return Ok(());
        }
        // The checks above are Edit's input validation, which the real CLI does before hooks.
        if self.blocked_by_hooks(st, "Edit", &input, &id)? {
            return Ok(());
        }
        let updated = if replace_all {
            original.replace(old, new)
        } else {
            original.replacen(old, new, 1)
        };
        if let Err(err) = fs::write(&file, &updated) {
            self.tool_use_error(&id, &err.to_string());
            return Ok(());
        }
        let message = format!("The file {file_path} has been updated successfully. {FRESH_STATE}");
        let result = Obj::new()
            .field("filePath", &file_path)
            .field("oldString", old)
            .field("newString", new)
            .field("originalFile", &original)
            .raw("structuredPatch", structured_patch(&original, &updated))
            .field("userModified", false)
            .field("replaceAll", replace_all)
            .end();
        emit(&self.user_event(tool_result_ok(&id, &message).end(), Some(result)));
        Ok(())
    }

    fn bash_step(
        &mut self,
        st: &mut TurnState,
        command: &str,
        description: &str,
    ) -> Result<(), TurnEnd> {
        let input = Obj::new()
            .field("command", command)
            .field("description", description)
            .end();
        let id = self.tool_use(st, "Bash", input.clone())?;
        if self.blocked_by_hooks(st, "Bash", &input, &id)? {
            return Ok(());
        }
        let output = match self.run_command(command) {
            Ok(output) => output,
            Err(BashError::Aborted(abort)) => return Err(self.interrupted(st, abort, Some(&id))),
            Err(BashError::Io(err)) => {
                self.tool_use_error(&id, &err.to_string());
                return Ok(());
            }
        };
        // The real Bash tool drops trailing newlines before reporting output.
        let stdout = output.stdout.trim_end_matches('\n');
        let stderr = output.stderr.trim_end_matches('\n');
        let printed = [stdout, stderr].into_iter().filter(|text| !text.is_empty());
        if output.code != 0 {
            let content = std::iter::once(format!("Exit code {}", output.code))
                .chain(printed.map(str::to_string))
                .collect::<Vec<_>>()
                .join("\n");
            self.emit_tool_error(&id, &content, &format!("Error: {content}"));
            return Ok(());
        }
        let mut content = printed.collect::<Vec<_>>().join("\n");
        if content.is_empty() {
            content = "(Bash completed with no output)".to_string();
        }
        let block = tool_result_ok(&id, &content).field("is_error", false).end();
        let result = Obj::new()
            .field("stdout", stdout)
            .field("stderr", stderr)
            .field("interrupted", false)
            .field("isImage", false)
            .field("noOutputExpected", false)
            .end();
        emit(&self.user_event(block, Some(result)));
        Ok(())
    }

    fn run_command(&mut self, command: &str) -> Result<BashOutput, BashError> {
        // Files rather than pipes: a command that leaves a background process behind would keep
        // a pipe open and hang us.
        let mut stdout = tempfile::tempfile()?;
        let mut stderr = tempfile::tempfile()?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone()?)
            .stderr(stderr.try_clone()?);
        let mut child = in_own_session(&mut cmd).spawn()?;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Some(abort) = self.inbox.poll(POLL) {
                // Like the real CLI, an interrupt kills the tool's whole process group.
                kill_group(child.id());
                child.wait()?;
                return Err(BashError::Aborted(abort));
            }
        };
        Ok(BashOutput {
            code: exit_code(status),
            stdout: read_back(&mut stdout)?,
            stderr: read_back(&mut stderr)?,
        })
    }

    fn deny_step(
        &mut self,
        st: &mut TurnState,
        tool: &str,
        input: &Value,
        message: Option<&str>,
    ) -> Result<(), TurnEnd> {
        let mut input = input.clone();
        // Models always send absolute paths; scripts may say `hello.txt`.
        if let Some(path) = input.get_mut("file_path")
            && let Some(relative) = path.as_str().filter(|p| !p.starts_with('/'))
        {
            *path = Value::from(self.cwd.join(relative).display().to_string());
        }
        let input_json = tool_input_json(tool, &input);
        let id = self.tool_use(st, tool, input_json.clone())?;
        let message = message.map_or_else(|| self.default_denial(tool, &input), str::to_string);
        self.deny(st, tool, &id, input_json, &message);
        Ok(())
    }

    /// A refused tool call: its error result, and its entry in the result's `permission_denials`.
    fn deny(&self, st: &mut TurnState, tool: &str, tool_use_id: &str, input: Json, message: &str) {
        self.emit_tool_error(tool_use_id, message, &format!("Error: {message}"));
        st.denials.push(
            Obj::new()
                .field("tool_name", tool)
                .field("tool_use_id", tool_use_id)
                .raw("tool_input", input)
                .end(),
        );
    }

    // --- Hooks ------------------------------------------------------------------------------

    /// Runs the `PreToolUse` hooks whose matcher takes `tool`, in order, for a tool_use already
    /// printed. True when one of them blocked the call; its denial is then printed and recorded.
    fn blocked_by_hooks(
        &mut self,
        st: &mut TurnState,
        tool: &str,
        input: &Json,
        tool_use_id: &str,
    ) -> Result<bool, TurnEnd> {
        let commands: Vec<HookCommand> = self
            .pre_tool_use
            .iter()
            .filter(|group| group.matcher.matches(tool))
            .flat_map(|group| group.commands.iter().cloned())
            .collect();
        if commands.is_empty() {
            return Ok(false);
        }
        let hook_input = self.hook_input(st, tool, input, tool_use_id);
        for hook in &commands {
            match self.run_hook(hook, tool, &hook_input) {
                Ok(HookVerdict::Proceed) => {}
                Ok(HookVerdict::Deny(reason)) => {
                    self.deny(st, tool, tool_use_id, input.clone(), &reason);
                    return Ok(true);
                }
                Err(abort) => return Err(self.interrupted(st, abort, Some(tool_use_id))),
            }
        }
        Ok(false)
    }

    fn hook_input(&self, st: &TurnState, tool: &str, input: &Json, tool_use_id: &str) -> Json {
        let cwd = self.cwd.display().to_string();
        let transcript = config_dir()
            .join("projects")
            .join(project_dir_name(&cwd))
            .join(format!("{}.jsonl", self.session_id));
        Obj::new()
            .field("session_id", &self.session_id)
            .field("transcript_path", transcript.display().to_string())
            .field("cwd", &cwd)
            .field("prompt_id", &st.prompt_id)
            .field("permission_mode", &self.permission_mode)
            .raw("effort", Obj::new().field("level", &self.effort).end())
            .field("hook_event_name", "PreToolUse")
            .field("tool_name", tool)
            .raw("tool_input", input.clone())
            .field("tool_use_id", tool_use_id)
            .end()
    }

    /// One hook command, the real CLI's way: `sh -c` in the cwd, in a process group of its own,
    /// the input as one line on stdin. A hook that cannot be started or outlives its timeout is
    /// a non-blocking error, after which the tool runs; one that exits is judged by
    /// `hook_verdict`.
    fn run_hook(
        &mut self,
        hook: &HookCommand,
        tool: &str,
        input: &Json,
    ) -> Result<HookVerdict, Abort> {
        match self.run_hook_process(hook, input) {
            Ok(HookRun::Exited {
                code,
                stdout,
                stderr,
            }) => Ok(hook_verdict(tool, &hook.command, code, &stdout, &stderr)),
            Ok(HookRun::Aborted(abort)) => Err(abort),
            Ok(HookRun::TimedOut) | Err(_) => Ok(HookVerdict::Proceed),
        }
    }

    fn run_hook_process(&mut self, hook: &HookCommand, input: &Json) -> io::Result<HookRun> {
        // Files rather than pipes, for the same reason as in run_command.
        let mut stdout = tempfile::tempfile()?;
        let mut stderr = tempfile::tempfile()?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&hook.command)
            .current_dir(&self.cwd)
            .env("CLAUDE_PROJECT_DIR", &self.cwd)
            .stdin(Stdio::piped())
            .stdout(stdout.try_clone()?)
            .stderr(stderr.try_clone()?);
        let mut child = in_own_session(&mut cmd).spawn()?;
        // A thread, so that a hook that never reads its stdin cannot block us; a hook that
        // exits without reading it is fine, as in the real CLI.
        if let Some(mut stdin) = child.stdin.take() {
            let line = format!("{}\n", input.0);
            thread::spawn(move || stdin.write_all(line.as_bytes()));
        }
        let deadline = Instant::now() + hook.timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            let abort = self.inbox.poll(POLL);
            if abort.is_some() || Instant::now() >= deadline {
                kill_group(child.id());
                child.wait()?;
                return Ok(abort.map_or(HookRun::TimedOut, HookRun::Aborted));
            }
        };
        Ok(HookRun::Exited {
            code: exit_code(status),
            stdout: read_back(&mut stdout)?,
            stderr: read_back(&mut stderr)?,
        })
    }

    fn default_denial(&self, tool: &str, input: &Value) -> String {
        let text = |key: &str| input[key].as_str().unwrap_or_default().to_string();
        match tool {
            "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => format!(
                "Claude requested permissions to write to {}, but you haven't granted it yet.",
                text("file_path")
            ),
            "Bash" => {
                let command = text("command");
                let words: Vec<&str> = command.split_whitespace().collect();
                let program = words.first().copied().unwrap_or_default();
                let target = self.cwd.join(words.last().copied().unwrap_or_default());
                format!(
                    "{program} in '{}' was blocked. For security, Claude Code may only create or \
                     modify files in the allowed working directories for this session: '{}'.",
                    target.display(),
                    self.cwd.display()
                )
            }
            _ => format!(
                "Claude requested permissions to use {tool}, but you haven't granted it yet."
            ),
        }
    }

    fn sleep_step(&mut self, st: &mut TurnState, ms: u64) -> Result<(), TurnEnd> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            // A sleep stands for a slow API call, so an interrupt here aborts "streaming".
            if let Some(abort) = self.inbox.poll(left.min(POLL)) {
                return Err(self.interrupted(st, abort, None));
            }
        }
    }

    fn spawn_grandchild(&self, pidfile: &Path, sleep_s: u64) -> io::Result<()> {
        let mut cmd = Command::new("sleep");
        cmd.arg(sleep_s.to_string())
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = in_own_session(&mut cmd).spawn()?;
        fs::write(self.cwd.join(pidfile), format!("{}\n", child.id()))?;
        // Reaped in the background so that a killed sleeper does not linger as our zombie;
        // when we exit first it is adopted by init and outlives us, like the tool processes
        // the real CLI leaves behind.
        thread::spawn(move || child.wait());
        Ok(())
    }

    fn tool_use_error(&self, tool_use_id: &str, message: &str) {
        self.emit_tool_error(
            tool_use_id,
            &format!("<tool_use_error>{message}</tool_use_error>"),
            &format!("Error: {message}"),
        );
    }

    fn emit_tool_error(&self, tool_use_id: &str, content: &str, tool_use_result: &str) {
        let block = tool_result_error(tool_use_id, content);
        emit(&self.user_event(block, Some(Json::of(tool_use_result))));
    }

    // --- Abnormal ends ----------------------------------------------------------------------

    fn interrupted(&mut self, st: &TurnState, abort: Abort, tool_use_id: Option<&str>) -> TurnEnd {
        if let Some(id) = tool_use_id {
            let block = tool_result_error(id, REJECTED_TOOL_USE);
            emit(&self.user_event(block, Some(Json::of("User rejected tool use"))));
        }
        let marker = if tool_use_id.is_some() {
            "[Request interrupted by user for tool use]"
        } else {
            "[Request interrupted by user]"
        };
        emit(&self.user_event(text_block(marker), None));
        let outcome = Outcome::Interrupted {
            tool: tool_use_id.is_some(),
        };
        emit_result(&self.result_event(st, &outcome), marker);
        match abort {
            Abort::Interrupt => TurnEnd::Continue { is_error: true },
            Abort::Sigint => TurnEnd::Exit(1),
        }
    }

    fn api_error(
        &mut self,
        st: &TurnState,
        status: Option<u16>,
        message: Option<&str>,
        retries: u32,
    ) -> TurnEnd {
        let retry_error = match status {
            Some(401) => "authentication_failed",
            Some(529) => "overloaded",
            Some(500..=599) => "server_error",
            _ => "unknown",
        };
        for attempt in 1..=retries {
            // The real CLI's jittered exponential backoff, reported but not waited for.
            let delay = 500.0 * 2f64.powi(attempt as i32 - 1) * (1.0 + 0.25 * random_fraction());
            let event = Obj::new()
                .field("type", "system")
                .field("subtype", "api_retry")
                .field("attempt", attempt)
                .field("max_retries", retries)
                .raw("retry_delay_ms", Json::number(delay))
                .field("error_status", status)
                .field("error", retry_error)
                .field("session_id", &self.session_id)
                .field("uuid", uuid_v4())
                .end();
            emit(&event);
        }
        let text = match status {
            Some(401) => "Invalid API key · Fix external API key".to_string(),
            None => "API Error: Unable to connect to API (ConnectionRefused)".to_string(),
            Some(code @ 500..=599) => {
                let default = if code == 529 {
                    "Overloaded"
                } else {
                    "Internal server error"
                };
                format!(
                    "API Error: {code} {}. This is a server-side issue, usually temporary — try \
                     again in a moment. If it persists, check your inference gateway ({}).",
                    message.unwrap_or(default),
                    inference_gateway()
                )
            }
            Some(code) => format!("API Error: {code} {}", message.unwrap_or("Bad request")),
        };
        // The synthetic message calls a 529 a plain server error although its retries said
        // "overloaded" (samples/api_error_529).
        let message_error = match status {
            Some(401) => "authentication_failed",
            Some(500..=599) | None => "server_error",
            Some(_) => "unknown",
        };
        let usage = Obj::new()
            .field("input_tokens", 0)
            .field("output_tokens", 0)
            .field("cache_creation_input_tokens", 0)
            .field("cache_read_input_tokens", 0)
            .raw("server_tool_use", server_tool_use())
            .field("service_tier", Value::Null)
            .raw("cache_creation", cache_creation())
            .field("inference_geo", Value::Null)
            .field("iterations", Value::Null)
            .field("speed", Value::Null)
            .end();
        let synthetic = Obj::new()
            .field("id", uuid_v4())
            .field("container", Value::Null)
            .field("model", "<synthetic>")
            .field("role", "assistant")
            .field("stop_details", Value::Null)
            .field("stop_reason", "stop_sequence")
            .field("stop_sequence", "")
            .field("type", "message")
            .raw("usage", usage)
            .raw("content", Json::array([text_block(&text)]))
            .field("context_management", Value::Null)
            .end();
        let mut event = Obj::new()
            .field("type", "assistant")
            .raw("message", synthetic)
            .field("parent_tool_use_id", Value::Null)
            .field("session_id", &self.session_id)
            .field("uuid", uuid_v4())
            .field("error", message_error);
        // Only an HTTP response carries a request id; a refused connection has none.
        if status.is_some() {
            event = event.field("request_id", format!("req_fake_{}", random_hex(12)));
        }
        emit(&event.end());
        let outcome = Outcome::ApiError {
            status,
            text: &text,
        };
        emit_result(&self.result_event(st, &outcome), &text);
        // In -p mode the real CLI exits 1 once an API call has failed for good.
        TurnEnd::Exit(1)
    }

    // --- Events -----------------------------------------------------------------------------

    fn init_event(&self) -> Json {
        let cwd = self.cwd.display().to_string();
        let memory = format!(
            "{}/projects/{}/memory/",
            config_dir().display(),
            project_dir_name(&cwd)
        );
        let slash_commands: Vec<&str> = SKILLS.iter().chain(BUILTIN_COMMANDS).copied().collect();
        Obj::new()
            .field("type", "system")
            .field("subtype", "init")
            .field("cwd", &cwd)
            .field("session_id", &self.session_id)
            .field("tools", TOOLS)
            .raw("mcp_servers", Json::array(Vec::new()))
            .field("model", &self.model.name)
            .field("permissionMode", &self.permission_mode)
            .field("slash_commands", slash_commands)
            .field("apiKeySource", "ANTHROPIC_API_KEY")
            .field("claude_code_version", VERSION)
            .field("output_style", "default")
            .field("agents", AGENTS)
            .field("skills", SKILLS)
            .raw("plugins", Json::array(Vec::new()))
            .field("analytics_disabled", true)
            .field("product_feedback_disabled", true)
            .field("uuid", uuid_v4())
            .raw("memory_paths", Obj::new().field("auto", memory).end())
            .field("fast_mode_state", "off")
            .end()
    }

    fn assistant_event(&self, response: &ApiResponse, block: Json) -> Json {
        // The real CLI copies the message_start usage snapshot, where output_tokens is always 1.
        let usage = Obj::new()
            .field("input_tokens", self.usage.input_tokens)
            .field("output_tokens", 1)
            .field("cache_creation_input_tokens", 0)
            .field("cache_read_input_tokens", 0)
            .end();
        let message = Obj::new()
            .field("id", &response.message_id)
            .field("type", "message")
            .field("role", "assistant")
            .field("model", &self.model.api_name)
            .raw("content", Json::array([block]))
            .field("stop_reason", Value::Null)
            .field("stop_sequence", Value::Null)
            .raw("usage", usage)
            .field("context_management", Value::Null)
            .end();
        Obj::new()
            .field("type", "assistant")
            .raw("message", message)
            .field("parent_tool_use_id", Value::Null)
            .field("session_id", &self.session_id)
            .field("uuid", uuid_v4())
            .field("request_id", &response.request_id)
            .end()
    }

    fn user_event(&self, block: Json, tool_use_result: Option<Json>) -> Json {
        let message = Obj::new()
            .field("role", "user")
            .raw("content", Json::array([block]))
            .end();
        let event = Obj::new()
            .field("type", "user")
            .raw("message", message)
            .field("parent_tool_use_id", Value::Null)
            .field("session_id", &self.session_id)
            .field("uuid", uuid_v4())
            .field("timestamp", timestamp());
        match tool_use_result {
            Some(result) => event.raw("tool_use_result", result).end(),
            None => event.end(),
        }
    }

    fn model_usage_json(&self) -> Json {
        // Only models that were actually billed are listed.
        if self.totals.responses == 0 {
            return Obj::new().end();
        }
        let entry = Obj::new()
            .field("inputTokens", self.totals.input_tokens)
            .field("outputTokens", self.totals.output_tokens)
            .field("cacheReadInputTokens", 0)
            .field("cacheCreationInputTokens", 0)
            .field("webSearchRequests", 0)
            .raw("costUSD", Json::number(self.totals.cost))
            .field("contextWindow", self.model.context_window)
            .field("maxOutputTokens", self.model.max_output_tokens)
            .end();
        Obj::new().raw(&self.model.name, entry).end()
    }

    fn outcome_errors(&self, outcome: &Outcome) -> Vec<String> {
        match outcome {
            Outcome::Success(_) | Outcome::ApiError { .. } => Vec::new(),
            Outcome::MaxTurns => vec![format!(
                "Reached maximum number of turns ({})",
                self.max_turns.unwrap_or_default()
            )],
            Outcome::MaxBudget => vec![format!(
                "Reached maximum budget (${})",
                self.max_budget_usd.unwrap_or_default()
            )],
            Outcome::Interrupted { tool } => vec![format!(
                "[ede_diagnostic] result_type=user last_content_type=n/a stop_reason={}",
                if *tool { "tool_use" } else { "null" }
            )],
        }
    }

    fn result_event(&self, st: &TurnState, outcome: &Outcome) -> Json {
        let duration_ms = millis(st.started.elapsed());
        let api_ms = (st.responses * NOMINAL_API_MS).min(duration_ms);
        let (mut input_tokens, mut output_tokens) = (st.input_tokens, st.output_tokens);
        if let Outcome::MaxBudget = outcome {
            // The real CLI stops before adding the response that broke the budget to the turn's
            // usage (its cost is counted all the same).
            input_tokens = input_tokens.saturating_sub(self.usage.input_tokens);
            output_tokens = output_tokens.saturating_sub(self.usage.output_tokens);
        }
        let error_head = |head: Obj, subtype: &str, num_turns: u64, stop_reason: Option<&str>| {
            head.field("subtype", subtype)
                .field("duration_ms", duration_ms)
                .field("duration_api_ms", api_ms)
                .field("is_error", true)
                .field("num_turns", num_turns)
                .field("stop_reason", stop_reason)
        };
        let head = Obj::new().field("type", "result");
        let head = match outcome {
            Outcome::Success(text) => {
                let ttft = st.first_response.map_or(0, millis);
                head.field("subtype", "success")
                    .field("is_error", false)
                    .field("api_error_status", Value::Null)
                    .field("duration_ms", duration_ms)
                    .field("duration_api_ms", api_ms)
                    .field("ttft_ms", ttft)
                    .field("ttft_stream_ms", ttft)
                    .field("time_to_request_ms", ttft)
                    .field("num_turns", st.responses)
                    .field("result", text)
                    .field("stop_reason", "end_turn")
            }
            Outcome::ApiError { status, text } => head
                .field("subtype", "success")
                .field("is_error", true)
                .field("api_error_status", status)
                .field("duration_ms", duration_ms)
                .field("duration_api_ms", 0)
                .field("num_turns", st.responses + 1)
                .field("result", text)
                .field("stop_reason", "stop_sequence"),
            // The real CLI's counts: one more than the responses for the call max-turns refused,
            // two more for an interrupt.
            Outcome::MaxTurns => {
                error_head(head, "error_max_turns", st.responses + 1, Some("tool_use"))
            }
            Outcome::MaxBudget => {
                error_head(head, "error_max_budget_usd", st.responses, Some("tool_use"))
            }
            Outcome::Interrupted { tool } => error_head(
                head,
                "error_during_execution",
                st.responses + 2,
                tool.then_some("tool_use"),
            ),
        };
        let event = head
            .field("session_id", &self.session_id)
            .raw("total_cost_usd", Json::number(self.totals.cost))
            .raw("usage", result_usage(input_tokens, output_tokens))
            .raw("modelUsage", self.model_usage_json())
            .raw(
                "permission_denials",
                Json::array(st.denials.iter().cloned()),
            );
        let terminal_reason = match outcome {
            Outcome::Success(_) | Outcome::ApiError { .. } => Some("completed"),
            Outcome::MaxTurns => Some("max_turns"),
            Outcome::MaxBudget => None,
            Outcome::Interrupted { tool: true } => Some("aborted_tools"),
            Outcome::Interrupted { tool: false } => Some("aborted_streaming"),
        };
        let event = match terminal_reason {
            Some(reason) => event.field("terminal_reason", reason),
            None => event,
        };
        let event = event
            .field("fast_mode_state", "off")
            .field("uuid", uuid_v4());
        let errors = self.outcome_errors(outcome);
        if errors.is_empty() {
            event.end()
        } else {
            event.field("errors", errors).end()
        }
    }

    // --- Replay -----------------------------------------------------------------------------

    /// Prints turn `section` of a recorded sample, moved to our cwd, doing its file effects.
    fn replay(&mut self, path: &Path, section: usize) -> TurnEnd {
        let text = fs::read_to_string(path).unwrap_or_else(|err| {
            script_error(&format!(
                "cannot read replay sample {}: {err}",
                path.display()
            ))
        });
        let events: Vec<(&str, Value)> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| (line, serde_json::from_str(line).unwrap_or(Value::Null)))
            .collect();
        let sample_cwd = events
            .iter()
            .find(|(_, event)| event["subtype"] == "init")
            .and_then(|(_, event)| event["cwd"].as_str())
            .map(str::to_string);
        let mut sections = events
            .split_inclusive(|(_, event)| event["type"] == "result")
            .filter(|lines| {
                lines
                    .last()
                    .is_some_and(|(_, event)| event["type"] == "result")
            });
        let Some(lines) = sections.nth(section) else {
            eprintln!(
                "fake-claude: {} has no turn {}; answering as if the script ran out",
                path.display(),
                section + 1
            );
            return self.scripted_turn(&Turn {
                result: Some(NO_MORE_TURNS.into()),
                ..Turn::default()
            });
        };

        let cwd = self.cwd.display().to_string();
        let relocate = |line: &str| match &sample_cwd {
            Some(from) => line
                .replace(&json_string_body(from), &json_string_body(&cwd))
                .replace(&project_dir_name(from), &project_dir_name(&cwd)),
            None => line.to_string(),
        };
        // Tool uses wait for their tool_result: a denied or interrupted call has no effect.
        let mut pending_tools: HashMap<String, Value> = HashMap::new();
        let mut end = TurnEnd::Continue { is_error: false };
        for (line, _) in lines {
            let line = relocate(line);
            let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            let blocks = event["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match event["type"].as_str() {
                // The recording host's own interrupt was answered here; nobody asked us.
                Some("control_response") => continue,
                Some("assistant") => {
                    for block in blocks.into_iter().filter(|b| b["type"] == "tool_use") {
                        if let Some(id) = block["id"].as_str() {
                            pending_tools.insert(id.to_string(), block.clone());
                        }
                    }
                }
                Some("user") => {
                    for block in &blocks {
                        let succeeded = block["type"] == "tool_result" && block["is_error"] != true;
                        let tool_use = block["tool_use_id"]
                            .as_str()
                            .and_then(|id| pending_tools.remove(id));
                        if let (true, Some(tool_use)) = (succeeded, tool_use) {
                            self.replay_effect(&tool_use);
                        }
                    }
                }
                Some("result") => {
                    end = TurnEnd::Continue {
                        is_error: event["is_error"] == true,
                    };
                    emit_result(&Json(line), event["result"].as_str().unwrap_or_default());
                    continue;
                }
                _ => {}
            }
            emit(&Json(line));
        }
        end
    }

    fn replay_effect(&self, tool_use: &Value) {
        let input = &tool_use["input"];
        let text = |key: &str| input[key].as_str();
        let done = match (tool_use["name"].as_str(), text("file_path")) {
            (Some("Write"), Some(file)) => {
                write_file(Path::new(file), text("content").unwrap_or_default())
            }
            (Some("Edit"), Some(file)) => fs::read_to_string(file).and_then(|original| {
                let (old, new) = (
                    text("old_string").unwrap_or_default(),
                    text("new_string").unwrap_or_default(),
                );
                let updated = if input["replace_all"] == true {
                    original.replace(old, new)
                } else {
                    original.replacen(old, new, 1)
                };
                fs::write(file, updated)
            }),
            (Some("Bash"), _) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(text("command").unwrap_or_default())
                    .current_dir(&self.cwd)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                in_own_session(&mut cmd).status().map(drop)
            }
            _ => Ok(()),
        };
        if let Err(err) = done {
            eprintln!("fake-claude: replaying {tool_use}: {err}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes and files

/// The real CLI starts tool commands with setsid, so killing its process group misses them.
fn in_own_session(cmd: &mut Command) -> &mut Command {
    // SAFETY: setsid is async-signal-safe and only changes the forked child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    }
}

fn kill_group(leader: u32) {
    let Ok(pgid) = libc::pid_t::try_from(leader) else {
        return;
    };
    // SAFETY: kill has no memory effects; the group is the session our child leads.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or_default())
}

fn read_back(file: &mut File) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn write_file(path: &Path, content: &str) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content)
}

/// How `text` looks inside a JSON string, so that raw sample lines can be rewritten as text.
fn json_string_body(text: &str) -> String {
    let quoted = Json::of(text).0;
    quoted[1..quoted.len() - 1].to_string()
}

// ---------------------------------------------------------------------------------------------
// structuredPatch

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Keep,
    Remove,
    Add,
}

/// Line diff with removals before additions, the order jsdiff (used by the real CLI) prints.
fn diff_lines<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(Change, &'a str)> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let a = &old[prefix..old.len() - suffix];
    let b = &new[prefix..new.len() - suffix];
    let mut changes: Vec<(Change, &str)> =
        old[..prefix].iter().map(|l| (Change::Keep, *l)).collect();
    if a.len().saturating_mul(b.len()) > MAX_DIFF_CELLS {
        changes.extend(a.iter().map(|l| (Change::Remove, *l)));
        changes.extend(b.iter().map(|l| (Change::Add, *l)));
    } else {
        // common[i][j]: length of the longest common subsequence of a[i..] and b[j..].
        let mut common = vec![vec![0u32; b.len() + 1]; a.len() + 1];
        for (i, line_a) in a.iter().enumerate().rev() {
            for (j, line_b) in b.iter().enumerate().rev() {
                common[i][j] = if line_a == line_b {
                    common[i + 1][j + 1] + 1
                } else {
                    common[i + 1][j].max(common[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                changes.push((Change::Keep, a[i]));
                i += 1;
                j += 1;
            } else if j == b.len() || (i < a.len() && common[i + 1][j] >= common[i][j + 1]) {
                changes.push((Change::Remove, a[i]));
                i += 1;
            } else {
                changes.push((Change::Add, b[j]));
                j += 1;
            }
        }
    }
    changes.extend(old[old.len() - suffix..].iter().map(|l| (Change::Keep, *l)));
    changes
}

fn structured_patch(old: &str, new: &str) -> Json {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let changes = diff_lines(&old_lines, &new_lines);
    // Changes separated by at most 2 * CONTEXT unchanged lines share a hunk.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (i, _) in changes
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != Change::Keep)
    {
        let start = i.saturating_sub(CONTEXT);
        let end = (i + 1 + CONTEXT).min(changes.len());
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    let counts =
        |slice: &[(Change, &str)], skip: Change| slice.iter().filter(|(c, _)| *c != skip).count();
    Json::array(ranges.into_iter().map(|(start, end)| {
        let body = &changes[start..end];
        let lines: Vec<String> = body
            .iter()
            .map(|(change, line)| {
                let mark = match change {
                    Change::Keep => ' ',
                    Change::Remove => '-',
                    Change::Add => '+',
                };
                format!("{mark}{line}")
            })
            .collect();
        Obj::new()
            .field("oldStart", counts(&changes[..start], Change::Add) + 1)
            .field("oldLines", counts(body, Change::Add))
            .field("newStart", counts(&changes[..start], Change::Remove) + 1)
            .field("newLines", counts(body, Change::Remove))
            .field("lines", lines)
            .end()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(matcher: Option<&str>, tool: &str) -> bool {
        Matcher::new(matcher).unwrap().matches(tool)
    }

    #[test]
    fn hook_matchers_take_every_tool_when_empty_missing_or_star() {
        for matcher in [None, Some(""), Some("*")] {
            assert!(matches(matcher, "Write"));
            assert!(matches(matcher, "Bash"));
        }
    }

    #[test]
    fn a_plain_hook_matcher_list_takes_exactly_the_names_it_lists() {
        let list = Some("Write|Edit|MultiEdit|NotebookEdit");
        for tool in ["Write", "Edit", "MultiEdit", "NotebookEdit"] {
            assert!(matches(list, tool), "{tool}");
        }
        // A regex search would take these; the real CLI compares plain lists exactly.
        for tool in ["Read", "Writer", "NotebookEditor", "write"] {
            assert!(!matches(list, tool), "{tool}");
        }
        assert!(matches(Some("Bash"), "Bash"));
        assert!(!matches(Some("Bash"), "BashOutput"));
    }

    #[test]
    fn other_hook_matchers_are_javascript_regexes_searched_in_the_tool_name() {
        let cases: &[(&str, &str, bool)] = &[
            ("Write|Ed.t", "Edit", true),
            ("Ed.t", "MultiEdit", true),
            ("^Ed.t$", "MultiEdit", false),
            ("^(Write|Edit)$", "Edit", true),
            ("^(?:Write|Edit)$", "Editor", false),
            ("Notebook.*", "NotebookEdit", true),
            ("mcp__.*__write", "mcp__fs__write", true),
            ("mcp__.*__write", "mcp__fs__read", false),
            ("^[A-Z][a-z]+$", "Bash", true),
            ("^[^B]", "Bash", false),
            ("^\\w+Edit$", "MultiEdit", true),
            ("^\\d", "Bash", false),
            ("^Bas?h$", "Bah", true),
            ("^(ab)+$", "ababab", true),
            ("^a{2,3}$", "aaaa", false),
            ("^a{2,}$", "aaaa", true),
            ("^a{2}$", "aa", true),
            ("^a+?b$", "aaab", true),
            ("^Edit\\.$", "Edit.", true),
            ("^Edit\\.$", "Edits", false),
            ("^$|x", "", true),
            ("^(a*)*b$", "aab", true),
        ];
        for (pattern, tool, expected) in cases {
            assert_eq!(
                matches(Some(pattern), tool),
                *expected,
                "/{pattern}/ on {tool}"
            );
        }
    }

    #[test]
    fn hook_matchers_this_fake_cannot_match_faithfully_are_refused() {
        for pattern in [
            "(?=Write)",
            "(a)\\1",
            "\\bWrite",
            "(Write",
            "Write)",
            "a|*",
            "a{3,2}",
        ] {
            assert!(Matcher::new(Some(pattern)).is_err(), "/{pattern}/");
        }
    }
}
