//! A command the agent left running in the background (Bash `run_in_background`) that cms
//! stopped when the session had to end, as the task's record keeps it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedCommand {
    /// claude's id for it (the `task_id` the agent was told as "running in background with ID").
    pub id: String,
    /// The agent's description of it.
    #[serde(default)]
    pub description: String,
    /// The command line the agent gave Bash, when claude's events carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl StoppedCommand {
    /// The command for people: its command line (or else its description) on one line.
    pub fn label(&self) -> String {
        let text = self.command.as_deref().unwrap_or(&self.description);
        let line = text.lines().next().unwrap_or_default();
        if self.command.is_some() && !self.description.is_empty() {
            format!("{line} ({})", self.description)
        } else {
            line.to_owned()
        }
    }
}
