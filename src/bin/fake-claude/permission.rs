//! Permission prompts for `ask` steps: whether the session's permissions allow the call, and
//! otherwise the `can_use_tool` control request (`--permission-prompt-tool stdio`) or the
//! denial the real CLI gives in `-p` mode.

use serde_json::Value;

use crate::ids::uuid_v4;
use crate::inbox::POLL;
use crate::output::{Json, Obj, emit};
use crate::session::{Session, TurnEnd, TurnState};

const EDIT_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit"];

impl Session {
    /// For a call the hooks let through: true when permission was refused (the denial is then
    /// printed and recorded), false when the call may run.
    pub fn refused_permission(
        &mut self,
        st: &mut TurnState,
        tool: &str,
        input: &Json,
        tool_use_id: &str,
    ) -> Result<bool, TurnEnd> {
        let value: Value = serde_json::from_str(&input.0).unwrap_or(Value::Null);
        if self.allowed_without_asking(tool, &value) {
            return Ok(false);
        }
        if !self.prompt_stdio {
            let message = self.default_denial(tool, &value);
            self.deny(st, tool, tool_use_id, input.clone(), &message);
            return Ok(true);
        }
        let request_id = uuid_v4();
        emit(&self.can_use_tool(&request_id, tool, input, &value, tool_use_id));
        let response = loop {
            if let Some(response) = self.inbox.take_response(&request_id) {
                break response;
            }
            if self.inbox.is_closed() {
                // Nobody can answer any more.
                break Value::Null;
            }
            if let Some(abort) = self.inbox.poll(POLL) {
                return Err(self.interrupted(st, abort, Some(tool_use_id)));
            }
        };
        let answer = &response["response"];
        if response["subtype"] == "success" && answer["behavior"] == "allow" {
            return Ok(false);
        }
        let message = answer["message"]
            .as_str()
            .or_else(|| response["error"].as_str())
            .unwrap_or("Tool permission request failed: stream closed")
            .to_string();
        self.deny(st, tool, tool_use_id, input.clone(), &message);
        Ok(true)
    }

    /// The permission mode or an `--allowedTools` rule allows the call.
    fn allowed_without_asking(&self, tool: &str, input: &Value) -> bool {
        match self.permission_mode.as_str() {
            "bypassPermissions" => return true,
            "acceptEdits" if EDIT_TOOLS.contains(&tool) => return true,
            _ => {}
        }
        self.allowed_tools.iter().any(|rule| {
            let Some((name, content)) = rule.strip_suffix(')').and_then(|r| r.split_once('('))
            else {
                return rule == tool;
            };
            if name != tool {
                return false;
            }
            let subject = input["command"]
                .as_str()
                .or_else(|| input["file_path"].as_str())
                .unwrap_or_default();
            match content.strip_suffix(":*") {
                Some(prefix) => subject.starts_with(prefix),
                None => subject == content,
            }
        })
    }

    /// The prompt as the real CLI sends it (`samples/permission_prompt.jsonl`).
    fn can_use_tool(
        &self,
        request_id: &str,
        tool: &str,
        input: &Json,
        value: &Value,
        tool_use_id: &str,
    ) -> Json {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        let accept_edits = Obj::new()
            .field("type", "setMode")
            .field("mode", "acceptEdits")
            .field("destination", "session")
            .end();
        let cwd = self.cwd.display().to_string();
        let (description, suggestions, blocked_path) = match tool {
            "Bash" => {
                let command = text("command");
                let rule = Obj::new()
                    .field("toolName", "Bash")
                    .field("ruleContent", &command)
                    .end();
                let add_rules = Obj::new()
                    .field("type", "addRules")
                    .raw("rules", Json::array([rule]))
                    .field("behavior", "allow")
                    .field("destination", "localSettings")
                    .end();
                let add_dirs = Obj::new()
                    .field("type", "addDirectories")
                    .field("directories", [&cwd])
                    .field("destination", "session")
                    .end();
                let target = command.split_whitespace().last().unwrap_or_default();
                (
                    text("description"),
                    vec![add_rules, add_dirs, accept_edits],
                    Some(self.cwd.join(target).display().to_string()),
                )
            }
            _ if EDIT_TOOLS.contains(&tool) => {
                let path = text("file_path");
                let name = path.rsplit('/').next().unwrap_or_default().to_string();
                (name, vec![accept_edits], None)
            }
            _ => (tool.to_string(), Vec::new(), None),
        };
        let mut request = Obj::new()
            .field("subtype", "can_use_tool")
            .field("tool_name", tool)
            .field("display_name", tool)
            .raw("input", input.clone())
            .field("description", &description)
            .raw("permission_suggestions", Json::array(suggestions));
        if let Some(path) = blocked_path {
            request = request.field("blocked_path", path);
        }
        let request = request.field("tool_use_id", tool_use_id).end();
        Obj::new()
            .field("type", "control_request")
            .field("request_id", request_id)
            .raw("request", request)
            .end()
    }
}
