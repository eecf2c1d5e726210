//! The lines cms writes on claude's stdin in a stream-json session: user messages, and the
//! control requests and responses of interrupts, background tasks and permission prompts.

use serde_json::json;

use super::{PermissionDecision, PermissionRequest};

/// The stdin line that sends one user message to a stream-json session.
pub fn user_message_line(text: &str) -> String {
    json!({
        "type": "user",
        "message": {"role": "user", "content": text},
        "parent_tool_use_id": null,
        "session_id": "",
    })
    .to_string()
}

/// The stdin line that asks claude to stop the running turn (it answers with a `result`).
pub fn interrupt_line(request_id: &str) -> String {
    json!({
        "type": "control_request",
        "request_id": request_id,
        "request": {"subtype": "interrupt"},
    })
    .to_string()
}

/// The stdin line that stops one of claude's background tasks (a Bash `run_in_background`
/// command) at once, by the `task_id` of its `system/task_started`.
pub fn stop_task_line(request_id: &str, task_id: &str) -> String {
    json!({
        "type": "control_request",
        "request_id": request_id,
        "request": {"subtype": "stop_task", "task_id": task_id},
    })
    .to_string()
}

/// The stdin line that answers a `can_use_tool` request. An allow repeats the tool's input
/// (`updatedInput` is required), so the call runs exactly as claude asked.
pub fn permission_response_line(
    request: &PermissionRequest,
    decision: &PermissionDecision,
) -> String {
    let response = match decision {
        PermissionDecision::Allow => json!({"behavior": "allow", "updatedInput": request.input}),
        PermissionDecision::Deny(message) => json!({"behavior": "deny", "message": message}),
    };
    json!({
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": request.request_id,
            "response": response,
        },
    })
    .to_string()
}

/// The stdin line that refuses a control request cms does not handle, so claude does not wait
/// for an answer that never comes.
pub fn control_error_line(request_id: &str, message: &str) -> String {
    json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": message},
    })
    .to_string()
}
