//! Turns that end early: interrupts and API errors.

use serde_json::Value;

use crate::ids::{inference_gateway, random_fraction, random_hex, uuid_v4};
use crate::inbox::Abort;
use crate::output::{
    Json, Obj, cache_creation, emit, emit_result, server_tool_use, text_block, tool_result_error,
};
use crate::session::{Outcome, Session, TurnEnd, TurnState};

const REJECTED_TOOL_USE: &str = "The user doesn't want to proceed with this tool use. The tool use \
     was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP \
     what you are doing and wait for the user to tell you how to proceed.";

impl Session {
    pub fn interrupted(
        &mut self,
        st: &TurnState,
        abort: Abort,
        tool_use_id: Option<&str>,
    ) -> TurnEnd {
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

    pub fn api_error(
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
        let mut event = self
            .message_event("assistant", synthetic)
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
}
