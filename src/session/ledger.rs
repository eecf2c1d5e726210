//! The ledger: what a task's sessions cost and did, summed across every claude process.
//!
//! claude reports `total_cost_usd` cumulatively per process (a `--resume` process starts again
//! from zero), so the ledger adds each result's increase over the previous result of the same
//! process rather than the raw figure.

use serde_json::Value;

use super::protocol::{ContentBlock, Event, PermissionDenial, ResultEvent, SystemEvent};

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
                for block in &a.message.content {
                    match block {
                        ContentBlock::ToolUse { name, .. } => self.note_tool(name),
                        ContentBlock::Text { text } if a.error.is_none() => {
                            self.last_text = Some(text.clone());
                        }
                        _ => {}
                    }
                }
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
        // whole figure then, rather than a negative cost.
        let increase = if result.total_cost_usd >= self.process_cost {
            result.total_cost_usd - self.process_cost
        } else {
            result.total_cost_usd
        };
        self.cost_usd += increase;
        self.process_cost = result.total_cost_usd;
        self.turns += result.num_turns;
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

/// A one-line description of a tool call for progress output: the path or command it acts on.
pub fn describe_tool_input(name: &str, input: &Value) -> String {
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
    first_line(text.unwrap_or_default(), 100)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ledger: &mut Ledger, sample: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-protocol/samples")
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
    fn tool_descriptions_are_one_short_line() {
        let input = serde_json::json!({"command": "cargo test\n--all", "description": "x"});
        assert_eq!(describe_tool_input("Bash", &input), "cargo test");
        let long = serde_json::json!({"file_path": "a".repeat(300)});
        assert_eq!(describe_tool_input("Write", &long).chars().count(), 100);
        assert_eq!(describe_tool_input("Mystery", &input), "");
    }
}
