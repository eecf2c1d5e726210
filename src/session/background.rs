//! The commands an agent left running in the background (Bash `run_in_background`, or a
//! subagent or workflow claude runs in the background), followed through claude's `task_*`
//! events, so a session is never ended as if its work were done while one still runs unseen.
//!
//! claude 2.1.197 (`tests/fixtures/claude-protocol/PROTOCOL.md`, "Background commands")
//! prints `system/task_started` when one starts and `system/task_updated` with a final status,
//! `system/task_notification`, or both, when it ends. One that ends between turns is reported
//! to the model in a turn claude starts by itself; one that ends during a turn is told to the
//! model inside that turn.

use serde_json::Value;

use super::protocol::{ContentBlock, Event, SystemEvent};
use crate::vocab::StoppedCommand;

/// One background command of the current process.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundCommand {
    pub id: String,
    pub tool_use_id: Option<String>,
    pub description: String,
    pub command: Option<String>,
    /// claude's final status (`completed`, `failed`, `killed`, `stopped`); `None` while it runs.
    pub ended: Option<String>,
}

impl BackgroundCommand {
    pub fn stopped(&self) -> StoppedCommand {
        StoppedCommand {
            id: self.id.clone(),
            description: self.description.clone(),
            command: self.command.clone(),
        }
    }
}

/// What became of a background command with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Started,
    /// It ended; `reported` when the model is told of it in a turn of its own (it ended on its
    /// own, not killed).
    Ended {
        reported: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Background {
    commands: Vec<BackgroundCommand>,
    /// Bash command lines by tool_use id, for the `task_started` that names only the call.
    calls: Vec<(String, String)>,
}

impl Background {
    /// Follows one event; says what changed for which command, if anything.
    pub fn observe(&mut self, event: &Event) -> Option<(String, Change)> {
        match event {
            Event::Assistant(a) => {
                for block in &a.message.content {
                    if let ContentBlock::ToolUse { id, input, .. } = block
                        && input.get("run_in_background").and_then(Value::as_bool) == Some(true)
                        && let Some(command) = input.get("command").and_then(Value::as_str)
                    {
                        self.calls.push((id.clone(), command.to_owned()));
                    }
                }
                None
            }
            Event::System(SystemEvent::Other {
                subtype: Some(subtype),
                raw,
            }) => self.observe_task(subtype, raw),
            _ => None,
        }
    }

    fn observe_task(&mut self, subtype: &str, raw: &Value) -> Option<(String, Change)> {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let id = text(raw, "task_id")?;
        match subtype {
            "task_started" => {
                // Work of this session on this machine, which its end cuts: not a remote
                // session's, nor a teammate's.
                let local = text(raw, "task_type").is_none_or(|t| {
                    matches!(t.as_str(), "local_bash" | "local_agent" | "local_workflow")
                });
                if !local || self.commands.iter().any(|c| c.id == id) {
                    return None;
                }
                let tool_use_id = text(raw, "tool_use_id");
                let command = tool_use_id.as_ref().and_then(|t| {
                    self.calls
                        .iter()
                        .find(|(call, _)| call == t)
                        .map(|(_, command)| command.clone())
                });
                self.commands.push(BackgroundCommand {
                    id: id.clone(),
                    tool_use_id,
                    description: text(raw, "description").unwrap_or_default(),
                    command,
                    ended: None,
                });
                Some((id, Change::Started))
            }
            "task_updated" | "task_notification" => {
                let status = match subtype {
                    "task_updated" => raw.get("patch").and_then(|p| text(p, "status")),
                    _ => text(raw, "status"),
                }?;
                if !is_final(&status) {
                    return None;
                }
                let command = self
                    .commands
                    .iter_mut()
                    .find(|c| c.id == id && c.ended.is_none())?;
                let reported = matches!(status.as_str(), "completed" | "failed");
                command.ended = Some(status);
                Some((id, Change::Ended { reported }))
            }
            _ => None,
        }
    }

    /// The commands still running, oldest first.
    pub fn running(&self) -> impl Iterator<Item = &BackgroundCommand> {
        self.commands.iter().filter(|c| c.ended.is_none())
    }

    pub fn any_running(&self) -> bool {
        self.running().next().is_some()
    }

    pub fn get(&self, id: &str) -> Option<&BackgroundCommand> {
        self.commands.iter().find(|c| c.id == id)
    }
}

fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "killed" | "stopped")
}

#[cfg(test)]
mod tests {
    use super::{Background, Change};
    use crate::session::protocol::Event;

    fn follow(sample: &str) -> (Background, Vec<(String, Change)>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-protocol")
            .join(sample);
        let mut background = Background::default();
        let changes = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter_map(|line| background.observe(&Event::parse(line)))
            .collect();
        (background, changes)
    }

    #[test]
    fn a_command_that_ends_between_turns_is_followed_from_start_to_report() {
        let (background, changes) = follow("samples/background_reported.jsonl");
        let kinds: Vec<_> = changes.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(kinds, [Change::Started, Change::Ended { reported: true }]);
        let command = background.get(&changes[0].0).unwrap();
        assert_eq!(command.description, "slow build");
        assert!(
            command
                .command
                .as_deref()
                .unwrap()
                .starts_with("sleep 8 && ")
        );
        assert!(!background.any_running());
    }

    #[test]
    fn a_command_that_ends_during_a_turn_is_seen_ending_by_its_update_alone() {
        let (background, changes) = follow("samples/background_mid_turn.jsonl");
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[1].1, Change::Ended { reported: true });
        assert!(!background.any_running());
    }

    #[test]
    fn a_command_killed_at_the_wind_down_or_stopped_is_not_reported_to_the_model() {
        for sample in [
            "samples/background_cut_at_exit.jsonl",
            "samples/background_stop_task.jsonl",
            "2.1.332/background_stop_task.jsonl",
        ] {
            let (background, changes) = follow(sample);
            assert_eq!(changes[1].1, Change::Ended { reported: false }, "{sample}");
            assert_eq!(
                background.get(&changes[0].0).unwrap().ended.as_deref(),
                Some("killed")
            );
        }
    }

    #[test]
    fn claude_2_1_332_reports_a_command_alike_whether_or_not_its_stdin_closed() {
        for sample in [
            "2.1.332/background_reported.jsonl",
            "2.1.332/background_waited_after_close.jsonl",
        ] {
            let (background, changes) = follow(sample);
            let kinds: Vec<_> = changes.iter().map(|(_, c)| c.clone()).collect();
            assert_eq!(
                kinds,
                [Change::Started, Change::Ended { reported: true }],
                "{sample}"
            );
            assert!(!background.any_running());
        }
    }

    #[test]
    fn a_failing_command_is_reported_too() {
        let (_, changes) = follow("samples/background_failed.jsonl");
        assert_eq!(changes[1].1, Change::Ended { reported: true });
    }
}
