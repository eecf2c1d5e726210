//! Replaying one turn of a recorded real-CLI sample, with its file effects.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::child::{shell, write_file};
use crate::ids::project_dir_name;
use crate::output::{Json, emit, emit_result, json_string_body};
use crate::script::Turn;
use crate::script_error;
use crate::session::{NO_MORE_TURNS, Session, TurnEnd};
use crate::tools::edited;

impl Session {
    /// Prints turn `section` of a recorded sample, moved to our cwd, doing its file effects.
    pub fn replay(&mut self, path: &Path, section: usize) -> TurnEnd {
        let text = fs::read_to_string(path).unwrap_or_else(|err| {
            script_error(&format!(
                "cannot read replay sample {}: {err}",
                path.display()
            ))
        });
        let events: Vec<(&str, Value)> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| (line, serde_json::from_str(line).unwrap_or(Value::Null)))
            .collect();
        let sample_cwd = events
            .iter()
            .find(|(_, event)| event["subtype"] == "init")
            .and_then(|(_, event)| event["cwd"].as_str())
            .map(str::to_string);
        let mut sections = events
            .split_inclusive(|(_, event)| event["type"] == "result")
            .filter(|lines| {
                lines
                    .last()
                    .is_some_and(|(_, event)| event["type"] == "result")
            });
        let Some(lines) = sections.nth(section) else {
            eprintln!(
                "fake-claude: {} has no turn {}; answering as if the script ran out",
                path.display(),
                section + 1
            );
            return self.scripted_turn(&Turn {
                result: Some(NO_MORE_TURNS.into()),
                ..Turn::default()
            });
        };

        let cwd = self.cwd.display().to_string();
        let relocate = |line: &str| match &sample_cwd {
            Some(from) => line
                .replace(&json_string_body(from), &json_string_body(&cwd))
                .replace(&project_dir_name(from), &project_dir_name(&cwd)),
            None => line.to_string(),
        };
        // Tool uses wait for their tool_result: a denied or interrupted call has no effect.
        let mut pending_tools: HashMap<String, Value> = HashMap::new();
        let mut end = TurnEnd::Continue { is_error: false };
        for (line, _) in lines {
            let line = relocate(line);
            let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            let blocks = event["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match event["type"].as_str() {
                // The recording host's own interrupt was answered here; nobody asked us.
                Some("control_response") => continue,
                Some("assistant") => {
                    for block in blocks.into_iter().filter(|b| b["type"] == "tool_use") {
                        if let Some(id) = block["id"].as_str() {
                            pending_tools.insert(id.to_string(), block.clone());
                        }
                    }
                }
                Some("user") => {
                    for block in &blocks {
                        let succeeded = block["type"] == "tool_result" && block["is_error"] != true;
                        let tool_use = block["tool_use_id"]
                            .as_str()
                            .and_then(|id| pending_tools.remove(id));
                        if let (true, Some(tool_use)) = (succeeded, tool_use) {
                            self.replay_effect(&tool_use);
                        }
                    }
                }
                Some("result") => {
                    end = TurnEnd::Continue {
                        is_error: event["is_error"] == true,
                    };
                    emit_result(&Json(line), event["result"].as_str().unwrap_or_default());
                    continue;
                }
                _ => {}
            }
            emit(&Json(line));
        }
        end
    }

    fn replay_effect(&self, tool_use: &Value) {
        let input = &tool_use["input"];
        let text = |key: &str| input[key].as_str();
        let done = match (tool_use["name"].as_str(), text("file_path")) {
            (Some("Write"), Some(file)) => {
                write_file(Path::new(file), text("content").unwrap_or_default())
            }
            (Some("Edit"), Some(file)) => fs::read_to_string(file).and_then(|original| {
                let (old, new) = (
                    text("old_string").unwrap_or_default(),
                    text("new_string").unwrap_or_default(),
                );
                fs::write(
                    file,
                    edited(&original, old, new, input["replace_all"] == true),
                )
            }),
            (Some("Bash"), _) => shell(text("command").unwrap_or_default(), &self.cwd)
                .status()
                .map(drop),
            _ => Ok(()),
        };
        if let Err(err) = done {
            eprintln!("fake-claude: replaying {tool_use}: {err}");
        }
    }
}
