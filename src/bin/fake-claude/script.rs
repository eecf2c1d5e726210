//! The JSON script a test gives in `FAKE_CLAUDE_SCRIPT`: turns, steps and usage.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::script_error;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    pub ignore_sigterm: bool,
    pub ignore_sigint: bool,
    pub resume_offset: usize,
    pub usage: Usage,
    pub turns: Vec<Turn>,
}

/// Token usage reported for each API response.
#[derive(Deserialize, Clone, Copy)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Default for Usage {
    fn default() -> Usage {
        Usage {
            input_tokens: 1000,
            output_tokens: 100,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Turn {
    pub steps: Vec<Step>,
    pub result: Option<String>,
    pub replay: Option<PathBuf>,
    pub exit_after: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Text(String),
    Write {
        path: String,
        content: String,
    },
    Read {
        path: String,
    },
    Edit {
        path: String,
        old: String,
        new: String,
        #[serde(default)]
        replace_all: bool,
    },
    Bash(BashStep),
    Delete(String),
    Deny {
        tool: String,
        input: Value,
        message: Option<String>,
    },
    /// A tool step the session's permissions may not allow: see `permission.rs`.
    Ask(Box<Step>),
    SleepMs(u64),
    Garbage(String),
    Raw(Value),
    Stderr(String),
    Exit(i32),
    ApiError {
        status: Option<u16>,
        message: Option<String>,
        #[serde(default)]
        retries: u32,
    },
    SpawnGrandchild {
        pidfile: PathBuf,
        #[serde(default = "default_grandchild_sleep")]
        sleep_s: u64,
    },
}

fn default_grandchild_sleep() -> u64 {
    60
}

impl Step {
    /// Steps whose API response ends in a tool_use, which a preceding text block joins.
    pub fn is_tool(&self) -> bool {
        if let Step::Ask(inner) = self {
            return inner.is_tool();
        }
        matches!(
            self,
            Step::Write { .. }
                | Step::Read { .. }
                | Step::Edit { .. }
                | Step::Bash(_)
                | Step::Delete(_)
                | Step::Deny { .. }
        )
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum BashStep {
    Command(String),
    Detailed {
        command: String,
        description: Option<String>,
        #[serde(default)]
        run_in_background: bool,
    },
}

impl BashStep {
    pub fn in_background(&self) -> bool {
        matches!(
            self,
            BashStep::Detailed {
                run_in_background: true,
                ..
            }
        )
    }

    pub fn parts(&self) -> (&str, &str) {
        match self {
            BashStep::Command(command) => (command, "Run shell command"),
            BashStep::Detailed {
                command,
                description,
                ..
            } => (
                command,
                description.as_deref().unwrap_or("Run shell command"),
            ),
        }
    }
}

pub fn load_script() -> Script {
    let Some(path) = std::env::var_os("FAKE_CLAUDE_SCRIPT").map(PathBuf::from) else {
        return Script {
            turns: vec![Turn {
                result: Some("done".into()),
                ..Turn::default()
            }],
            ..Script::default()
        };
    };
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|err| script_error(&format!("cannot read {}: {err}", path.display())));
    let mut script: Script = serde_json::from_str(&text)
        .unwrap_or_else(|err| script_error(&format!("bad script {}: {err}", path.display())));
    // Samples named relative to the script stay findable whatever directory cms runs us in.
    let base = path.parent().unwrap_or(Path::new("."));
    for turn in &mut script.turns {
        if let Some(replay) = &mut turn.replay {
            *replay = base.join(&*replay);
        }
    }
    script
}
