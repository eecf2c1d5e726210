//! What a PreToolUse hook's exit code and output decide, as the real CLI reads them.

use crate::script_error;
use serde_json::Value;

/// What a hook's run means for the tool call.
pub enum HookVerdict {
    Proceed,
    Deny(String),
}

/// What a hook that ran to its end decided, as the real CLI 2.1.197 reads it (checked against
/// it case by case). A JSON object on stdout counts whatever the exit code, and JSON that fails
/// the CLI's schema is a non-blocking error. Exit code 2 adds a blocking error with the hook's
/// stderr unless the JSON gave one. Then a `deny` wins, then a blocking error, then an `ask`
/// (which, with nobody to ask in -p mode, blocks too); otherwise the tool runs.
///
/// 2.1.332 differs twice (checked the same way): exit code 2 blocks even when the JSON fails
/// the schema, and a `deny`'s reason reaches the model as a hook error
/// (`PreToolUse:<tool> hook error: <reason>`).
pub fn hook_verdict(
    tool: &str,
    command: &str,
    code: i32,
    stdout: &str,
    stderr: &str,
) -> HookVerdict {
    let Some(HookOutput {
        behavior,
        mut blocking_error,
        decision_reason,
    }) = parse_hook_output(stdout)
        .or_else(|| (code == 2 && crate::since_2_1_332()).then(HookOutput::default))
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
        (Some(Behavior::Deny), _) => HookVerdict::Deny(match decision_reason {
            Some(reason) if crate::since_2_1_332() => {
                format!("PreToolUse:{tool} hook error: {reason}")
            }
            Some(reason) => reason,
            None => format!("Hook PreToolUse:{tool} denied this tool"),
        }),
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
