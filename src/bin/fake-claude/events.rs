//! The stream-json events of a turn: init, assistant, user and result lines.

use serde_json::Value;

use crate::ids::{config_dir, millis, project_dir_name, timestamp, uuid_v4};
use crate::output::{Json, Obj, result_usage};
use crate::session::{ApiResponse, Outcome, Session, TurnState};
use crate::version;

/// There is no API behind the fake, so each response is said to have taken this long.
const NOMINAL_API_MS: u64 = 25;
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

impl Session {
    pub fn init_event(&self) -> Json {
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
            .field("claude_code_version", version())
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

    /// The keys every assistant and user line starts with, in the real CLI's order.
    pub fn message_event(&self, kind: &str, message: Json) -> Obj {
        Obj::new()
            .field("type", kind)
            .raw("message", message)
            .field("parent_tool_use_id", Value::Null)
            .field("session_id", &self.session_id)
            .field("uuid", uuid_v4())
    }

    pub fn assistant_event(&self, response: &ApiResponse, block: Json) -> Json {
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
        self.message_event("assistant", message)
            .field("request_id", &response.request_id)
            .end()
    }

    pub fn user_event(&self, block: Json, tool_use_result: Option<Json>) -> Json {
        let message = Obj::new()
            .field("role", "user")
            .raw("content", Json::array([block]))
            .end();
        let event = self
            .message_event("user", message)
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

    pub fn outcome_errors(&self, outcome: &Outcome) -> Vec<String> {
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

    pub fn result_event(&self, st: &TurnState, outcome: &Outcome) -> Json {
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
}
