//! A scripted fake Anthropic Messages API on 127.0.0.1, so the real claude CLI can run offline
//! with replies, token usage and failures the test chooses.
//!
//! Replies are picked statelessly, the way tests/fixtures/claude-protocol/PROTOCOL.md
//! describes: a request belongs to the route whose key occurs in its conversation's first user
//! message (the task's prompt, or a subagent's prompt), and gets that route's reply number N,
//! where N counts the assistant messages already in the request. A retried request therefore
//! gets the same reply again, and conversations of parallel processes (or of a subagent inside
//! one) never take each other's replies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

/// Token usage reported for every scripted reply, so every reply costs the same.
pub const INPUT_TOKENS: u64 = 1000;
pub const OUTPUT_TOKENS: u64 = 100;

/// What claude charges for one reply at that usage with `model`, at the prices the CLI itself
/// applied when run against this API (tests/fixtures/claude-protocol/PROTOCOL.md, "Cost"):
/// these are claude's figures, not cms's pricing table, so they check that table.
pub fn cost_per_reply(model: &str) -> f64 {
    // US dollars per million input and output tokens.
    let (input, output) = match model {
        // The default model of Claude Code 2.1.197.
        "claude-opus-4-8" => (5.0, 25.0),
        // The default model of Claude Code 2.1.332.
        "claude-opus-5-5" => (4.0, 20.0),
        other => panic!(
            "fake API: no known price for {other}; run the CLI against this API and read \
             its total_cost_usd (PROTOCOL.md, Cost)"
        ),
    };
    (INPUT_TOKENS as f64 * input + OUTPUT_TOKENS as f64 * output) / 1_000_000.0
}

/// Stands for the conversation's working directory in scripted tool inputs: tools want
/// absolute paths, and only the request's system prompt knows the worktree claude runs in.
pub const CWD: &str = "{cwd}";

/// One scripted answer to a `/v1/messages` request.
#[derive(Debug, Clone)]
pub struct Reply {
    kind: ReplyKind,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum ReplyKind {
    Message(Vec<Block>),
    Error {
        status: u16,
        error_type: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone)]
enum Block {
    Text(String),
    ToolUse { name: String, input: Value },
}

impl Reply {
    /// A final answer: one text block, `end_turn`.
    pub fn text(text: &str) -> Reply {
        Reply::message(vec![Block::Text(text.to_owned())])
    }

    /// One tool call, `stop_reason: tool_use`. `{cwd}` in any string of `input` becomes the
    /// conversation's working directory.
    pub fn tool(name: &str, input: Value) -> Reply {
        Reply::message(vec![Block::ToolUse {
            name: name.to_owned(),
            input,
        }])
    }

    /// A Write of `content` to `path` in the conversation's working directory.
    pub fn write(path: &str, content: &str) -> Reply {
        Reply::tool(
            "Write",
            json!({"file_path": format!("{CWD}/{path}"), "content": content}),
        )
    }

    /// An HTTP error with the API's JSON error body. The CLI retries it unless told otherwise
    /// (`CLAUDE_CODE_MAX_RETRIES`), and each retry gets this same reply.
    pub fn error(status: u16, message: &str) -> Reply {
        let error_type = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        Reply {
            kind: ReplyKind::Error {
                status,
                error_type,
                message: message.to_owned(),
            },
            delay: Duration::ZERO,
        }
    }

    /// Puts a text block before the reply's other blocks, as a model explaining itself would.
    pub fn preceded_by_text(mut self, text: &str) -> Reply {
        if let ReplyKind::Message(blocks) = &mut self.kind {
            blocks.insert(0, Block::Text(text.to_owned()));
        }
        self
    }

    /// Holds the reply back, like a slow model.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    fn message(blocks: Vec<Block>) -> Reply {
        Reply {
            kind: ReplyKind::Message(blocks),
            delay: Duration::ZERO,
        }
    }
}

/// What the fake API saw of one `/v1/messages` request.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The key of the route it was served from; `None` for unrouted and side requests.
    pub route: Option<String>,
    /// The number of assistant messages in the request: which reply it got.
    pub reply_index: usize,
    /// The working directory named in the system prompt.
    pub cwd: Option<String>,
    /// Whether a subagent (the `Agent` tool) made the request.
    pub subagent: bool,
    pub model: String,
    /// The HTTP status the fake API answered with.
    pub status: u16,
    /// The text of the request's last user message that has text (a follow-up's message).
    pub last_user_text: String,
}

struct Route {
    key: String,
    replies: Vec<Reply>,
}

#[derive(Default)]
struct Script {
    routes: Vec<Route>,
    seen: Vec<SeenRequest>,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<Script>>,
    ids: Arc<AtomicU64>,
}

/// A running fake API. Dropping it stops the server.
pub struct FakeApi {
    pub url: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    /// Starts the server on a free port of 127.0.0.1, in a thread of its own.
    pub fn start() -> FakeApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared {
            script: Arc::default(),
            ids: Arc::default(),
        };
        let app = Router::new()
            .route("/", any(|| async { StatusCode::OK }))
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .route("/v1/models", get(models))
            .route("/v1/models/{id}", get(model))
            .fallback(not_found)
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-anthropic-api".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    // Not a graceful shutdown: a claude still connected when the test ends
                    // must not keep the test waiting. Dropping the runtime ends every
                    // connection.
                    tokio::select! {
                        served = axum::serve(listener, app) => served.unwrap(),
                        _ = stopped => {}
                    }
                });
            })
            .unwrap();
        FakeApi {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Scripts the conversations whose first user message contains `key`. Routes are tried in
    /// the order they were added.
    pub fn route(&self, key: &str, replies: Vec<Reply>) {
        self.shared.script.lock().unwrap().routes.push(Route {
            key: key.to_owned(),
            replies,
        });
    }

    /// Every `/v1/messages` request answered so far, in the order the answers went out.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.script.lock().unwrap().seen.clone()
    }

    /// The requests served from one route.
    pub fn requests_for(&self, key: &str) -> Vec<SeenRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.route.as_deref() == Some(key))
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the server decided for one request, computed under the script's lock.
enum Decision {
    Reply(Reply),
    /// No route matches, or the route has no reply at this index: a scripting mistake, told
    /// to the CLI as a non-retryable error so the test fails with this text.
    Unscripted(String),
    /// A request without tools (a title or summary the CLI makes on the side): answered
    /// without using up the script.
    Side,
}

async fn messages(State(shared): State<Shared>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => {
            return error_response(400, "invalid_request_error", &format!("bad JSON: {err}"));
        }
    };
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-opus-4-8")
        .to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    let system = system_text(&request);
    let cwd = working_directory(&system).or_else(|| working_directory(&message_texts(&request)));
    // The CLI marks a subagent's requests in the billing line at the top of the system prompt.
    let subagent = system.contains("cc_is_subagent=true");
    let reply_index = request["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
    let has_tools = request["tools"].as_array().is_some_and(|t| !t.is_empty());
    let conversation = first_user_text(&request);

    let (decision, route) = {
        let script = shared.script.lock().unwrap();
        let route = script.routes.iter().find(|r| conversation.contains(&r.key));
        let decision = match route {
            _ if !has_tools => Decision::Side,
            Some(route) => match route.replies.get(reply_index) {
                Some(reply) => Decision::Reply(reply.clone()),
                None => Decision::Unscripted(format!(
                    "fake API: route '{}' has no reply number {reply_index}",
                    route.key
                )),
            },
            None => Decision::Unscripted(format!(
                "fake API: no route matches the conversation starting {:?}",
                conversation.chars().take(120).collect::<String>()
            )),
        };
        (decision, route.map(|r| r.key.clone()))
    };

    let (response, status) = match decision {
        Decision::Reply(reply) => {
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            match reply.kind {
                ReplyKind::Message(blocks) => {
                    let blocks = blocks
                        .into_iter()
                        .map(|b| with_cwd(b, cwd.as_deref()))
                        .collect();
                    (message_response(&shared, &model, blocks, stream), 200)
                }
                ReplyKind::Error {
                    status,
                    error_type,
                    message,
                } => (error_response(status, error_type, &message), status),
            }
        }
        Decision::Side => {
            let blocks = vec![Block::Text("Fake side reply".into())];
            (message_response(&shared, &model, blocks, stream), 200)
        }
        Decision::Unscripted(message) => {
            let mut response = error_response(500, "api_error", &message);
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
            (response, 500)
        }
    };
    shared.script.lock().unwrap().seen.push(SeenRequest {
        route: route.filter(|_| has_tools),
        reply_index,
        cwd,
        subagent,
        model,
        status,
        last_user_text: user_text(request.get("messages").and_then(Value::as_array).and_then(
            |m| {
                m.iter()
                    .rev()
                    .find(|m| m["role"] == "user" && !user_text(Some(m)).is_empty())
            },
        )),
    });
    response
}

fn system_text(request: &Value) -> String {
    match &request["system"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The working directory the system prompt names: on a ` - Primary working directory: <path>`
/// line for the main conversation, a `Working directory: <path>` line for a subagent. Claude
/// Code 2.1.197 puts it in the request's `system`; 2.1.332 moved that environment section into
/// a `role: "system"` message, so the messages are searched when `system` has none; there, a
/// resumed conversation holds its earlier sessions' messages too, so the last one named is
/// the session's own (a follow-up on a runner's worker runs in another worktree, which
/// 2.1.332 names as `<new> (was <old>)`).
fn working_directory(system: &str) -> Option<String> {
    system.lines().rev().find_map(|line| {
        let line = line.trim_start();
        line.strip_prefix("- Primary working directory: ")
            .or_else(|| line.strip_prefix("Working directory: "))
            // 2.1.332 resuming a session in another directory says `<new> (was <old>)`.
            .map(|path| {
                path.split(" (was ")
                    .next()
                    .unwrap_or(path)
                    .trim()
                    .to_owned()
            })
    })
}

/// The text of every message's text blocks, in order, joined by lines.
fn message_texts(request: &Value) -> String {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| user_text(Some(m)))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The text of the conversation's first user message: what identifies the conversation.
fn first_user_text(request: &Value) -> String {
    user_text(
        request["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user")),
    )
}

/// A message's text blocks (or its string content), joined by lines.
fn user_text(message: Option<&Value>) -> String {
    let Some(first) = message else {
        return String::new();
    };
    match &first["content"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn with_cwd(block: Block, cwd: Option<&str>) -> Block {
    fn substitute(value: Value, cwd: &str) -> Value {
        match value {
            Value::String(text) => Value::String(text.replace(CWD, cwd)),
            Value::Array(items) => items.into_iter().map(|v| substitute(v, cwd)).collect(),
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (k, substitute(v, cwd)))
                .collect(),
            other => other,
        }
    }
    match (block, cwd) {
        (Block::ToolUse { name, input }, Some(cwd)) => Block::ToolUse {
            name,
            input: substitute(input, cwd),
        },
        (block, _) => block,
    }
}

fn usage(output_tokens: u64) -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    })
}

/// The reply as the Messages API sends it: an SSE stream for `stream: true`, else one JSON
/// message. The stream is sent whole; the CLI reads it event by event either way.
fn message_response(shared: &Shared, model: &str, blocks: Vec<Block>, stream: bool) -> Response {
    let n = shared.ids.fetch_add(1, Ordering::Relaxed);
    let message_id = format!("msg_fake_{n:08}");
    let stop_reason = if blocks.iter().any(|b| matches!(b, Block::ToolUse { .. })) {
        "tool_use"
    } else {
        "end_turn"
    };
    let content: Vec<Value> = blocks
        .iter()
        .enumerate()
        .map(|(i, block)| match block {
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { name, input } => json!({
                "type": "tool_use",
                "id": format!("toolu_fake_{n:08}_{i}"),
                "name": name,
                "input": input,
            }),
        })
        .collect();
    let headers = [(
        header::HeaderName::from_static("request-id"),
        format!("req_fake_{n:08}"),
    )];
    if !stream {
        let body = json!({
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage(OUTPUT_TOKENS),
        });
        return (headers, axum::Json(body)).into_response();
    }

    let mut sse = String::new();
    let mut event = |name: &str, data: Value| {
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(1),
        }}),
    );
    for (index, block) in content.iter().enumerate() {
        let (start, delta) = match block["type"].as_str() {
            Some("tool_use") => (
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
            ),
            _ => (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": block["text"]}),
            ),
        };
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": OUTPUT_TOKENS}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    (
        headers,
        [(header::CONTENT_TYPE, "text/event-stream")],
        [(header::CACHE_CONTROL, "no-cache")],
        sse,
    )
        .into_response()
}

fn error_response(status: u16, error_type: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid HTTP status");
    let body = json!({"type": "error", "error": {"type": error_type, "message": message}});
    (status, axum::Json(body)).into_response()
}

async fn count_tokens() -> Response {
    axum::Json(json!({"input_tokens": INPUT_TOKENS})).into_response()
}

fn model_json(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": "2026-01-01T00:00:00Z"})
}

async fn models() -> Response {
    let ids = [
        "claude-opus-4-8",
        "claude-sonnet-5",
        "claude-haiku-4-5-20251001",
    ];
    axum::Json(json!({
        "data": ids.iter().map(|id| model_json(id)).collect::<Vec<_>>(),
        "has_more": false,
        "first_id": ids[0],
        "last_id": ids[ids.len() - 1],
    }))
    .into_response()
}

async fn model(axum::extract::Path(id): axum::extract::Path<String>) -> Response {
    axum::Json(model_json(&id)).into_response()
}

async fn not_found() -> Response {
    error_response(404, "not_found_error", "fake API: no such endpoint")
}
