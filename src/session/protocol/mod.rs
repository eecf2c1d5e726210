//! Claude Code's stream-json protocol: typed events parsed leniently, and the lines cms writes.
//!
//! Every line claude prints is parsed into an [`Event`]. The parse is two-step (first into a
//! `serde_json::Value`, then into the typed variant) so that an unknown `type`, a known type
//! with an unexpected shape, and a line that is not JSON at all each land in their own
//! fallback variant instead of failing the session: claude changes weekly and a new field or
//! event must never stop a task.

use serde::Deserialize;
use serde_json::Value;

use crate::vocab::PermissionDenial;

mod lines;

pub use lines::{
    control_error_line, interrupt_line, permission_response_line, stop_task_line, user_message_line,
};

/// One line of claude's stdout.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::enum_variant_names,
    reason = "each variant is named after claude's own `type`, `stream_event` included"
)]
pub enum Event {
    System(SystemEvent),
    Assistant(AssistantEvent),
    User(UserEvent),
    Result(ResultEvent),
    ControlRequest(ControlRequest),
    ControlResponse(Value),
    /// `--include-partial-messages` SSE wrappers; cms does not ask for them but tolerates them.
    StreamEvent(Value),
    /// Valid JSON with an unknown `type`, or a known `type` whose shape did not match.
    Other(Value),
    /// Not JSON at all (or not an object).
    Malformed(String),
}

/// `type: "system"` events; `init` and `api_retry` are the ones cms acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemEvent {
    Init(InitEvent),
    ApiRetry(ApiRetryEvent),
    Other { subtype: Option<String>, raw: Value },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InitEvent {
    pub session_id: String,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default, rename = "permissionMode")]
    pub permission_mode: Option<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub claude_code_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiRetryEvent {
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub error_status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AssistantEvent {
    pub message: AssistantMessage,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
    /// Set on the synthetic message claude makes from an API error (`server_error`, ...).
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AssistantMessage {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// A content block of an assistant or user message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Value,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserEvent {
    pub message: UserMessage,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserMessage {
    /// A string for plain prompts, blocks for tool results and interrupt markers.
    #[serde(default)]
    pub content: UserContent,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl Default for UserContent {
    fn default() -> Self {
        UserContent::Blocks(Vec::new())
    }
}

/// The last line of every turn. Cost is cumulative for the process; `usage` is this turn's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultEvent {
    pub subtype: String,
    /// API failures come as `subtype: "success"` with `is_error: true`, so this is the truth.
    pub is_error: bool,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub num_turns: u32,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub total_cost_usd: f64,
    #[serde(default)]
    pub api_error_status: Option<u16>,
    #[serde(default)]
    pub permission_denials: Vec<PermissionDenial>,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub terminal_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// What the API calls since the previous result cost, per model (Claude Code 2.1.332 on).
    #[serde(default)]
    pub model_usage_since_last_result: Option<std::collections::BTreeMap<String, ModelCost>>,
}

/// One model's figures in a result's per-model usage; only the cost matters to cms.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelCost {
    #[serde(rename = "costUSD", default)]
    pub cost_usd: f64,
}

impl ResultEvent {
    /// The cost of this process's API calls since its previous result, where claude says it
    /// (2.1.332 on). Needed because 2.1.332's `total_cost_usd` in a `--resume` process starts
    /// from the session's earlier cost, where 2.1.197's starts from zero.
    pub fn cost_since_last_result(&self) -> Option<f64> {
        self.model_usage_since_last_result
            .as_ref()
            .map(|models| models.values().map(|m| m.cost_usd).sum())
    }
}

/// A request from claude to the host (with `--permission-prompt-tool stdio`).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlRequest {
    pub request_id: String,
    pub subtype: String,
    pub raw: Value,
}

/// What a `can_use_tool` request asks: may this tool call run? claude waits for the answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PermissionRequest {
    #[serde(skip)]
    pub request_id: String,
    pub tool_name: String,
    #[serde(default)]
    pub input: Value,
    /// claude's own one-line summary of the call (a Bash command's description, a file name).
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tool_use_id: Option<String>,
    /// The path outside the allowed folders that made claude ask, when there is one.
    #[serde(default)]
    pub blocked_path: Option<String>,
}

/// The host's answer to a [`PermissionRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum PermissionDecision {
    Allow,
    /// The message reaches the agent as the tool's error result.
    Deny(String),
}

impl ControlRequest {
    /// The permission request this is, if it is one.
    pub fn permission(&self) -> Option<PermissionRequest> {
        if self.subtype != "can_use_tool" {
            return None;
        }
        let mut request: PermissionRequest = from_value(self.raw.get("request")?)?;
        request.request_id.clone_from(&self.request_id);
        Some(request)
    }
}

impl ResultEvent {
    /// The text that explains this result: the final response, or the errors claude listed.
    pub fn message(&self) -> Option<String> {
        match &self.result {
            Some(text) if !text.is_empty() => Some(text.clone()),
            _ if !self.errors.is_empty() => Some(self.errors.join("; ")),
            _ => None,
        }
    }
}

impl Event {
    /// Parses one stdout line. Never fails: see [`Event::Other`] and [`Event::Malformed`].
    pub fn parse(line: &str) -> Event {
        let value: Value = match serde_json::from_str(line) {
            Ok(value @ Value::Object(_)) => value,
            _ => return Event::Malformed(line.to_owned()),
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let typed = match kind {
            "system" => parse_system(&value),
            "assistant" => from_value(&value).map(Event::Assistant),
            "user" => from_value(&value).map(Event::User),
            "result" => from_value(&value).map(Event::Result),
            "control_request" => parse_control_request(&value),
            "control_response" => Some(Event::ControlResponse(value.clone())),
            "stream_event" => Some(Event::StreamEvent(value.clone())),
            _ => None,
        };
        typed.unwrap_or(Event::Other(value))
    }
}

fn from_value<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    T::deserialize(value).ok()
}

fn parse_system(value: &Value) -> Option<Event> {
    let subtype = value.get("subtype").and_then(Value::as_str);
    let event = match subtype {
        Some("init") => SystemEvent::Init(from_value(value)?),
        Some("api_retry") => SystemEvent::ApiRetry(from_value(value)?),
        _ => SystemEvent::Other {
            subtype: subtype.map(str::to_owned),
            raw: value.clone(),
        },
    };
    Some(Event::System(event))
}

fn parse_control_request(value: &Value) -> Option<Event> {
    let request_id = value.get("request_id")?.as_str()?.to_owned();
    let subtype = value.pointer("/request/subtype")?.as_str()?.to_owned();
    Some(Event::ControlRequest(ControlRequest {
        request_id,
        subtype,
        raw: value.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::{
        ContentBlock, Event, PermissionDecision, PermissionRequest, ResultEvent, SystemEvent,
        interrupt_line, permission_response_line, user_message_line,
    };
    use serde_json::Value;
    use std::path::Path;

    fn samples_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-protocol/samples")
    }

    /// Every recorded sample: 2.1.197's in `samples/`, and those of each later release in a
    /// folder named after it beside that one.
    fn sample_files() -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(samples_dir().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .flat_map(|dir| {
                std::fs::read_dir(dir)
                    .expect("the protocol samples are copied into tests/fixtures")
                    .map(|e| e.unwrap().path())
            })
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn the_samples_of_the_newest_tested_release_are_among_those_parsed() {
        let files = sample_files();
        for sample in ["plain", "tools_bypass", "resume_first", "resume_second"] {
            let name = format!("2.1.332/{sample}.jsonl");
            assert!(files.iter().any(|f| f.ends_with(&name)), "{name}");
        }
    }

    #[test]
    fn parser_accepts_every_sample_line_as_a_typed_event() {
        let files = sample_files();
        assert!(
            files.len() >= 20,
            "expected the full sample set, got {files:?}"
        );
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
                let event = Event::parse(line);
                let where_ = format!("{}:{}", file.display(), n + 1);
                match &event {
                    Event::Other(_) | Event::Malformed(_) => {
                        panic!("{where_}: fell back to {event:?}")
                    }
                    Event::Assistant(a) => {
                        for block in &a.message.content {
                            assert_ne!(block, &ContentBlock::Unknown, "{where_}");
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// After the last turn's `result` only a background command's end (`system/task_*`) or
    /// the answer to a `stop_task` may come (`samples/background_*`).
    #[test]
    fn every_sample_turn_ends_with_a_result_carrying_its_session() {
        for file in sample_files() {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut lines = text.lines().filter(|l| !l.is_empty()).rev();
            let last = lines
                .find(|l| {
                    !matches!(
                        Event::parse(l),
                        Event::System(SystemEvent::Other { .. }) | Event::ControlResponse(_)
                    )
                })
                .unwrap();
            match Event::parse(last) {
                Event::Result(r) => assert!(r.session_id.is_some(), "{}", file.display()),
                other => panic!("{}: last line is {other:?}", file.display()),
            }
        }
    }

    fn last_result(sample: &str) -> ResultEvent {
        let text = std::fs::read_to_string(samples_dir().join(sample)).unwrap();
        text.lines()
            .filter_map(|l| match Event::parse(l) {
                Event::Result(r) => Some(r),
                _ => None,
            })
            .next_back()
            .unwrap()
    }

    /// The fixtures are a copy of `../shared/claude-protocol/samples` so the crate tests alone;
    /// where the shared folder is present, the copy must not have drifted from it.
    #[test]
    fn fixture_samples_match_the_shared_protocol_samples() {
        let shared =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/claude-protocol/samples");
        let Ok(entries) = std::fs::read_dir(&shared) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let copy = samples_dir().join(path.file_name().unwrap());
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(&copy).unwrap_or_default(),
                "{} differs from the shared sample; copy it again",
                copy.display()
            );
        }
    }

    #[test]
    fn api_error_is_an_error_even_though_subtype_says_success() {
        let r = last_result("api_error_500.jsonl");
        assert_eq!(r.subtype, "success");
        assert!(r.is_error);
        assert_eq!(r.api_error_status, Some(500));
        assert!(r.message().unwrap().starts_with("API Error: 500"));
        assert_eq!(r.total_cost_usd, 0.0);
    }

    #[test]
    fn permission_denials_are_listed() {
        let r = last_result("permission_denied.jsonl");
        let tools: Vec<_> = r
            .permission_denials
            .iter()
            .map(|d| d.tool_name.as_str())
            .collect();
        assert_eq!(tools, ["Write", "Bash"]);
        assert!(!r.is_error);
    }

    #[test]
    fn startup_errors_explain_themselves_through_errors() {
        let r = last_result("resume_wrong_cwd.jsonl");
        assert!(r.is_error);
        assert!(r.result.is_none());
        assert!(r.message().unwrap().contains("No conversation found"));
    }

    #[test]
    fn unknown_and_malformed_lines_fall_back_without_failing() {
        assert!(matches!(Event::parse("not json"), Event::Malformed(_)));
        assert!(matches!(Event::parse("[1,2]"), Event::Malformed(_)));
        assert!(matches!(
            Event::parse(r#"{"type":"brand_new","x":1}"#),
            Event::Other(_)
        ));
        // A known type with a broken shape is kept, not dropped.
        assert!(matches!(
            Event::parse(r#"{"type":"result","subtype":3}"#),
            Event::Other(_)
        ));
        assert!(matches!(
            Event::parse(r#"{"type":"system","subtype":"compact_boundary"}"#),
            Event::System(SystemEvent::Other { .. })
        ));
    }

    #[test]
    fn control_lines_round_trip_through_the_parser() {
        let v: Value = serde_json::from_str(&user_message_line("fix \"auth\"")).unwrap();
        assert_eq!(v["message"]["content"], "fix \"auth\"");
        assert_eq!(v["type"], "user");
        let v: Value = serde_json::from_str(&interrupt_line("req_1")).unwrap();
        assert_eq!(v["request"]["subtype"], "interrupt");
    }

    #[test]
    fn permission_prompts_of_the_sample_parse_and_answer_in_the_documented_shape() {
        let text = std::fs::read_to_string(samples_dir().join("permission_prompt.jsonl")).unwrap();
        let requests: Vec<PermissionRequest> = text
            .lines()
            .filter_map(|line| match Event::parse(line) {
                Event::ControlRequest(request) => request.permission(),
                _ => None,
            })
            .collect();
        assert_eq!(requests.len(), 2);
        let bash = &requests[1];
        assert_eq!(bash.tool_name, "Bash");
        assert_eq!(bash.input["command"], "touch denied.txt");
        assert_eq!(bash.description.as_deref(), Some("Create denied.txt"));
        assert!(bash.tool_use_id.as_deref().unwrap().starts_with("toolu_"));
        assert!(
            bash.blocked_path
                .as_deref()
                .unwrap()
                .ends_with("denied.txt")
        );
        assert!(!bash.request_id.is_empty());

        let allow: Value = serde_json::from_str(&permission_response_line(
            &requests[0],
            &PermissionDecision::Allow,
        ))
        .unwrap();
        assert_eq!(allow["type"], "control_response");
        assert_eq!(
            allow["response"]["request_id"],
            requests[0].request_id.as_str()
        );
        assert_eq!(allow["response"]["response"]["behavior"], "allow");
        assert_eq!(
            allow["response"]["response"]["updatedInput"],
            requests[0].input
        );
        let deny: Value = serde_json::from_str(&permission_response_line(
            bash,
            &PermissionDecision::Deny("no".into()),
        ))
        .unwrap();
        assert_eq!(deny["response"]["response"]["behavior"], "deny");
        assert_eq!(deny["response"]["response"]["message"], "no");
    }
}
