//! The ledger: what a task's sessions cost and did, summed across every claude process.
//!
//! claude reports `total_cost_usd` cumulatively per process, so the ledger adds each result's
//! increase over the previous result of the same process rather than the raw figure. A
//! `--resume` process of Claude Code 2.1.197 starts again from zero; one of 2.1.332 starts from
//! the session's earlier cost, but says what each result added
//! (`model_usage_since_last_result`), which the ledger then takes instead.
//!
//! Between results the ledger also keeps a live estimate, so limits can be enforced while a
//! turn runs: each new API message is priced from its token usage and the model's price (the
//! `usage` on assistant events is the snapshot from the start of the message, so the output
//! is estimated from the content), and each `result` replaces the estimate with the truth.

use std::collections::HashSet;

use serde_json::Value;

use super::pricing::{estimate_tokens, price_of};
use super::protocol::{AssistantEvent, ContentBlock, Event, ResultEvent, SystemEvent, Usage};
use crate::vocab::PermissionDenial;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub cost_usd: f64,
    pub turns: u32,
    /// Tool names in order of first use.
    pub tools_used: Vec<String>,
    /// The last result's text, or failing that the last assistant text.
    pub response: Option<String>,
    pub permission_denials: Vec<PermissionDenial>,
    pub last_result: Option<ResultEvent>,
    /// `total_cost_usd` of the current process's previous result.
    process_cost: f64,
    last_text: Option<String>,
    /// Estimated cost of the API messages since the last result.
    estimate_usd: f64,
    /// Main-conversation API messages since the last result: turns not yet in `turns`.
    pending_turns: u32,
    /// Whether the newest main-conversation message asked for a tool.
    awaiting_tool: bool,
    /// Message ids already priced: claude prints one event per content block.
    seen_messages: HashSet<String>,
    current_message: Option<String>,
}

impl Ledger {
    /// Starts a ledger that continues from earlier processes' totals.
    pub fn resume(cost_usd: f64, turns: u32, tools_used: Vec<String>) -> Ledger {
        Ledger {
            cost_usd,
            turns,
            tools_used,
            ..Ledger::default()
        }
    }

    /// Marks the start of a new claude process, whose cost counter starts at zero.
    pub fn start_process(&mut self) {
        self.process_cost = 0.0;
        self.last_result = None;
        self.permission_denials.clear();
        self.clear_estimate();
        self.seen_messages.clear();
    }

    /// The cost so far, including the estimate for the turn in progress.
    pub fn live_cost_usd(&self) -> f64 {
        self.cost_usd + self.estimate_usd
    }

    /// The turns so far, including those of the turn in progress.
    pub fn live_turns(&self) -> u32 {
        self.turns.saturating_add(self.pending_turns)
    }

    /// Whether the newest API message of the turn in progress asked for a tool, so the turn
    /// will need at least one more API message.
    pub fn awaiting_tool_result(&self) -> bool {
        self.awaiting_tool
    }

    /// Makes the live estimate the totals, for an interactive session: it prints no `result`
    /// whose figures could replace the estimate, so the estimate is all there is.
    pub fn settle_estimate(&mut self) {
        self.cost_usd += self.estimate_usd;
        self.turns = self.turns.saturating_add(self.pending_turns);
        if self.last_text.is_some() {
            self.response = self.last_text.clone();
        }
        self.clear_estimate();
    }

    fn clear_estimate(&mut self) {
        self.estimate_usd = 0.0;
        self.pending_turns = 0;
        self.awaiting_tool = false;
        self.current_message = None;
    }

    /// Takes in an assistant message from claude's session transcript (an interactive
    /// session's only record), whose `usage` is the message's final figure: it is priced
    /// as it is, with no estimate of the generated content on top.
    pub fn observe_transcript_message(&mut self, event: &AssistantEvent) {
        self.estimate(event, true);
        self.note_content(event);
    }

    /// The tools a message calls and its text, the response so far.
    fn note_content(&mut self, event: &AssistantEvent) {
        for block in &event.message.content {
            match block {
                ContentBlock::ToolUse { name, .. } => self.note_tool(name),
                ContentBlock::Text { text } if event.error.is_none() => {
                    self.last_text = Some(text.clone());
                }
                _ => {}
            }
        }
    }

    /// `final_usage`: the usage is the message's whole figure, not the snapshot from its
    /// start that stream-json carries.
    fn estimate(&mut self, event: &AssistantEvent, final_usage: bool) {
        // Synthetic messages (API errors) cost nothing.
        if event.error.is_some() {
            return;
        }
        let message = &event.message;
        let model = message.model.as_deref().unwrap_or_default();
        if model == "<synthetic>" {
            return;
        }
        let price = price_of(model);
        let main = event.parent_tool_use_id.is_none();
        let new = match &message.id {
            Some(id) => self.seen_messages.insert(id.clone()),
            None => true,
        };
        if new {
            let usage = message.usage.clone().unwrap_or_default();
            self.estimate_usd += price.cost(&usage, 0);
            if main {
                self.pending_turns = self.pending_turns.saturating_add(1);
                self.awaiting_tool = false;
                self.current_message = message.id.clone();
            }
        }
        for block in &message.content {
            let mut generated = match block {
                ContentBlock::Text { text } => estimate_tokens(text),
                ContentBlock::Thinking { thinking } => estimate_tokens(thinking),
                ContentBlock::ToolUse { input, .. } => {
                    if main {
                        self.awaiting_tool = true;
                    }
                    estimate_tokens(&input.to_string())
                }
                _ => 0,
            };
            if final_usage {
                generated = 0;
            }
            self.estimate_usd += price.cost(&Usage::default(), generated);
        }
    }

    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::System(SystemEvent::Init(init)) => {
                self.session_id = Some(init.session_id.clone());
                if let Some(model) = &init.model {
                    self.model = Some(model.clone());
                }
            }
            Event::Assistant(a) => {
                self.estimate(a, false);
                self.note_content(a);
            }
            Event::Result(result) => self.observe_result(result),
            _ => {}
        }
    }

    fn note_tool(&mut self, name: &str) {
        if !self.tools_used.iter().any(|t| t == name) {
            self.tools_used.push(name.to_owned());
        }
    }

    fn observe_result(&mut self, result: &ResultEvent) {
        // Guard against a process whose counter went backwards (it never should): count the
        // whole figure then, rather than a negative cost. A negative figure costs nothing.
        let total = result.total_cost_usd.max(0.0);
        let increase = match result.cost_since_last_result() {
            Some(added) => added.max(0.0),
            None if total >= self.process_cost => total - self.process_cost,
            None => total,
        };
        self.cost_usd += increase;
        self.process_cost = total;
        // The API messages the main conversation paid for: claude's `num_turns` adds its tool
        // turns, so it reads higher than the turns `--max-turns` and cms's limit count.
        // Saturating: a wrapped count would fall back below the turn limit.
        self.turns = self.turns.saturating_add(self.pending_turns);
        self.clear_estimate();
        if let Some(id) = &result.session_id {
            self.session_id = Some(id.clone());
        }
        self.response = result
            .result
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| self.last_text.clone());
        self.permission_denials
            .extend(result.permission_denials.iter().cloned());
        self.last_result = Some(result.clone());
    }
}

/// What a tool call acts on, whole: the path, command, pattern or URL of its input.
pub fn tool_input_text(name: &str, input: &Value) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str);
    let text = match name {
        "Bash" => field("command"),
        "Read" | "Write" | "Edit" | "MultiEdit" => field("file_path"),
        "NotebookEdit" => field("notebook_path"),
        "Glob" | "Grep" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "Task" | "Agent" => field("description"),
        _ => None,
    };
    text.unwrap_or_default().to_owned()
}

/// `text` (what a `name` call acts on, as `tool_input_text` gives it) on one line: a path
/// whole, since a path cut mid-name names another file; anything else its first line, cut
/// at a word if it is long.
pub fn shorten_tool_input(name: &str, text: &str) -> String {
    match name {
        "Read" | "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
            text.lines().next().unwrap_or_default().to_owned()
        }
        _ => first_line_at_word(text, 100),
    }
}

/// The first line of `text`, cut to `max_chars` with an ellipsis, for one-line displays.
pub fn first_line(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max_chars {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max_chars - 1).collect();
    format!("{cut}…")
}

/// Like `first_line`, but a long line is cut at the last space that keeps it within
/// `max_chars` (mid-word only when a single word is that long), so no word is half shown.
pub fn first_line_at_word(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max_chars {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max_chars - 1).collect();
    match cut.rfind(' ') {
        Some(space) if space > 0 => format!("{} …", cut[..space].trim_end()),
        _ => format!("{cut}…"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Event, Ledger, shorten_tool_input, tool_input_text};

    fn describe_tool_input(name: &str, input: &serde_json::Value) -> String {
        shorten_tool_input(name, &tool_input_text(name, input))
    }

    fn feed(ledger: &mut Ledger, sample: &str) {
        feed_from(ledger, "samples", sample);
    }

    /// `folder`: `samples` (Claude Code 2.1.197) or a later release's folder beside it.
    fn feed_from(ledger: &mut Ledger, folder: &str, sample: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-protocol")
            .join(folder)
            .join(sample);
        for line in std::fs::read_to_string(path).unwrap().lines() {
            ledger.observe(&Event::parse(line));
        }
    }

    #[test]
    fn ledger_reads_cost_turns_tools_and_response_from_a_session() {
        let mut ledger = Ledger::default();
        ledger.start_process();
        feed(&mut ledger, "tools_bypass.jsonl");
        assert!((ledger.cost_usd - 0.49706).abs() < 1e-9);
        assert_eq!(ledger.turns, 5);
        assert_eq!(ledger.tools_used, ["Write", "Read", "Edit", "Bash"]);
        assert_eq!(ledger.response.as_deref(), Some("done"));
        assert_eq!(
            ledger.session_id.as_deref(),
            Some("7d555fa1-7789-4e3e-a3e7-1ea72abd61f8")
        );
    }

    #[test]
    fn cumulative_process_cost_is_counted_once_and_resumes_add_up() {
        let mut ledger = Ledger::default();
        ledger.start_process();
        // Two turns in one live process: results say 0.196 then 0.394 (cumulative).
        feed(&mut ledger, "multiturn_live.jsonl");
        let last = ledger.last_result.clone().unwrap().total_cost_usd;
        assert!((ledger.cost_usd - last).abs() < 1e-9);
        // A --resume process counts from zero again, and its cost adds to the total.
        ledger.start_process();
        feed(&mut ledger, "resume_second.jsonl");
        let resumed = ledger.last_result.clone().unwrap().total_cost_usd;
        assert!((ledger.cost_usd - (last + resumed)).abs() < 1e-9);
    }

    #[test]
    fn a_2_1_332_resume_that_starts_from_the_sessions_earlier_cost_is_counted_once() {
        let mut ledger = Ledger::default();
        ledger.start_process();
        feed_from(&mut ledger, "2.1.332", "resume_first.jsonl");
        assert!((ledger.cost_usd - 0.012).abs() < 1e-9);
        // Two more replies at 0.006, though the resumed process's total_cost_usd says 0.024.
        ledger.start_process();
        feed_from(&mut ledger, "2.1.332", "resume_second.jsonl");
        assert_eq!(ledger.last_result.as_ref().unwrap().total_cost_usd, 0.024);
        assert!(
            (ledger.cost_usd - 0.024).abs() < 1e-9,
            "{}",
            ledger.cost_usd
        );
        // A live process's results each add what they say they added.
        let mut ledger = Ledger::default();
        ledger.start_process();
        feed_from(&mut ledger, "2.1.332", "multiturn_live.jsonl");
        assert!(
            (ledger.cost_usd - 0.012).abs() < 1e-9,
            "{}",
            ledger.cost_usd
        );
        assert_eq!(ledger.turns, 2);
    }

    #[test]
    fn permission_denials_and_api_errors_are_kept() {
        let mut ledger = Ledger::default();
        ledger.start_process();
        feed(&mut ledger, "permission_denied.jsonl");
        assert_eq!(ledger.permission_denials.len(), 2);
        let mut ledger = Ledger::default();
        ledger.start_process();
        feed(&mut ledger, "api_error_529.jsonl");
        let result = ledger.last_result.unwrap();
        assert!(result.is_error);
        assert_eq!(result.api_error_status, Some(529));
        assert_eq!(ledger.cost_usd, 0.0);
    }

    #[test]
    fn live_estimates_count_each_message_once_and_results_replace_them() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-protocol/samples/tools_bypass.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        let mut ledger = Ledger::default();
        ledger.start_process();
        let mut before_result = (0.0, 0, false);
        for line in text.lines() {
            let event = Event::parse(line);
            if matches!(event, Event::Result(_)) {
                before_result = (
                    ledger.live_cost_usd(),
                    ledger.live_turns(),
                    ledger.awaiting_tool_result(),
                );
            }
            ledger.observe(&event);
        }
        // Five API messages, the first in two events (text, then tool_use), the last text.
        let (estimate, turns, awaiting) = before_result;
        assert_eq!(turns, 5);
        assert!(!awaiting);
        // 98207 input tokens on opus are $0.491; the estimate must be in the right range.
        assert!(estimate > 0.49 && estimate < 0.55, "{estimate}");
        assert!((ledger.live_cost_usd() - 0.49706).abs() < 1e-9);
        assert_eq!(ledger.live_turns(), 5);
    }

    #[test]
    fn a_message_asking_for_a_tool_is_awaiting_its_result() {
        let mut ledger = Ledger::default();
        ledger.start_process();
        feed(&mut ledger, "max_turns.jsonl");
        // One API message was paid for (`--max-turns 1`); claude's `num_turns` says 2.
        assert_eq!(ledger.last_result.as_ref().unwrap().num_turns, 2);
        assert_eq!(ledger.turns, 1);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-protocol/samples/max_turns.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        let mut ledger = Ledger::default();
        ledger.start_process();
        for line in text
            .lines()
            .take_while(|l| !l.contains("\"type\":\"user\""))
        {
            ledger.observe(&Event::parse(line));
        }
        assert_eq!(ledger.live_turns(), 1);
        assert!(ledger.awaiting_tool_result());
    }

    fn result_line(total_cost_usd: f64, num_turns: u64) -> Event {
        Event::parse(
            &serde_json::json!({
                "type": "result", "subtype": "success", "is_error": false,
                "total_cost_usd": total_cost_usd, "num_turns": num_turns,
            })
            .to_string(),
        )
    }

    #[test]
    fn a_negative_total_cost_never_lowers_the_ledgers_cost() {
        let mut ledger = Ledger::default();
        ledger.start_process();
        ledger.observe(&result_line(0.25, 1));
        ledger.observe(&result_line(-1.0, 1));
        assert_eq!(ledger.cost_usd, 0.25);
        // The process's counter counts from the clamped figure on.
        ledger.observe(&result_line(0.5, 1));
        assert_eq!(ledger.cost_usd, 0.75);
    }

    #[test]
    fn turns_counted_beyond_u32_stay_at_the_maximum_instead_of_wrapping() {
        // A task resumed at the very top of the count, then one more paid message.
        let mut ledger = Ledger::resume(0.0, u32::MAX, Vec::new());
        ledger.start_process();
        feed(&mut ledger, "max_turns.jsonl");
        assert_eq!(ledger.turns, u32::MAX);
        assert_eq!(ledger.live_turns(), u32::MAX);
    }

    #[test]
    fn tool_descriptions_are_one_short_line() {
        let input = serde_json::json!({"command": "cargo test\n--all", "description": "x"});
        assert_eq!(describe_tool_input("Bash", &input), "cargo test");
        let long = serde_json::json!({"command": "a".repeat(300)});
        assert_eq!(describe_tool_input("Bash", &long).chars().count(), 100);
        let path = format!("/{}/file.rs", "dir/".repeat(60));
        let deep = serde_json::json!({"file_path": path});
        assert_eq!(describe_tool_input("Write", &deep), path);
        let words = serde_json::json!({"command": format!("{} tail", "word ".repeat(30))});
        let line = describe_tool_input("Bash", &words);
        assert!(
            line.ends_with("word …") && line.chars().count() <= 100,
            "{line}"
        );
        assert_eq!(describe_tool_input("Mystery", &input), "");
    }
}
