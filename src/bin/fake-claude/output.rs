//! JSON text in the real CLI's key order, and printing it in the chosen output format.

use std::io::{self, Write};
use std::process;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

pub static OUTPUT: OnceLock<OutputFormat> = OnceLock::new();

/// Rendered JSON text. Events are assembled as text because serde_json's map (built here without
/// `preserve_order`) sorts its keys, and the real CLI's key order is part of what we imitate.
#[derive(Clone)]
pub struct Json(pub String);

impl Json {
    pub fn of(value: impl Serialize) -> Json {
        Json(serde_json::to_string(&value).expect("plain data always serializes"))
    }

    pub fn array(items: impl IntoIterator<Item = Json>) -> Json {
        let items: Vec<String> = items.into_iter().map(|item| item.0).collect();
        Json(format!("[{}]", items.join(",")))
    }

    /// JavaScript prints integral numbers without a fraction (`"total_cost_usd":0`).
    pub fn number(x: f64) -> Json {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            Json(format!("{}", x as i64))
        } else {
            Json::of(x)
        }
    }
}

/// A JSON object under construction that keeps its keys in insertion order.
pub struct Obj(String);

impl Obj {
    pub fn new() -> Obj {
        Obj(String::from("{"))
    }

    pub fn raw(mut self, key: &str, value: Json) -> Obj {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&Json::of(key).0);
        self.0.push(':');
        self.0.push_str(&value.0);
        self
    }

    pub fn field(self, key: &str, value: impl Serialize) -> Obj {
        self.raw(key, Json::of(value))
    }

    pub fn end(mut self) -> Json {
        self.0.push('}');
        Json(self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    StreamJson,
    /// No `-p`: a person at a terminal reads what the session does (see `interactive.rs`).
    Interactive,
}

pub fn output_format() -> OutputFormat {
    OUTPUT.get().copied().unwrap_or(OutputFormat::StreamJson)
}

pub fn write_line(line: &str) {
    let mut out = io::stdout().lock();
    // Whoever read our stdout has gone away; there is nobody left to tell anything.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        process::exit(1);
    }
}

/// Prints an event; only stream-json shows anything but the result, and the interactive
/// mode a rendering for people. The session transcript keeps it in every mode.
pub fn emit(event: &Json) {
    crate::transcript::record(&event.0);
    match output_format() {
        OutputFormat::StreamJson => write_line(&event.0),
        OutputFormat::Interactive => crate::interactive::render(&event.0),
        OutputFormat::Text | OutputFormat::Json => {}
    }
}

pub fn emit_result(event: &Json, text: &str) {
    match output_format() {
        OutputFormat::Text => write_line(text),
        OutputFormat::Json | OutputFormat::StreamJson => write_line(&event.0),
        // The interactive CLI shows no result: the turn's last text was its answer.
        OutputFormat::Interactive => {}
    }
}

pub fn text_block(text: &str) -> Json {
    Obj::new().field("type", "text").field("text", text).end()
}

/// Successful tool results put `tool_use_id` first and failed ones last, as the real CLI does.
pub fn tool_result_ok(tool_use_id: &str, content: &str) -> Obj {
    Obj::new()
        .field("tool_use_id", tool_use_id)
        .field("type", "tool_result")
        .field("content", content)
}

pub fn tool_result_error(tool_use_id: &str, content: &str) -> Json {
    Obj::new()
        .field("type", "tool_result")
        .field("content", content)
        .field("is_error", true)
        .field("tool_use_id", tool_use_id)
        .end()
}

pub fn server_tool_use() -> Json {
    Obj::new()
        .field("web_search_requests", 0)
        .field("web_fetch_requests", 0)
        .end()
}

pub fn cache_creation() -> Json {
    Obj::new()
        .field("ephemeral_1h_input_tokens", 0)
        .field("ephemeral_5m_input_tokens", 0)
        .end()
}

pub fn result_usage(input_tokens: u64, output_tokens: u64) -> Json {
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
pub fn tool_input_json(tool: &str, input: &Value) -> Json {
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

/// How `text` looks inside a JSON string, so that raw sample lines can be rewritten as text.
pub fn json_string_body(text: &str) -> String {
    let quoted = Json::of(text).0;
    quoted[1..quoted.len() - 1].to_string()
}
