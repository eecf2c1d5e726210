//! Permission presets: what a task's claude may do without asking, as claude flags.

use std::fmt;

/// Read-only tools: looking at the code and the web, never changing anything.
pub(crate) const READ_TOOLS: &[&str] = &["Read", "Glob", "Grep", "WebSearch", "WebFetch"];

/// Git commands a reviewer needs on top of reading files.
pub(crate) const REVIEW_TOOLS: &[&str] = &[
    "Bash(git diff:*)",
    "Bash(git log:*)",
    "Bash(git show:*)",
    "Bash(git status:*)",
    "Bash(git blame:*)",
];

/// The tools `edit` (`acceptEdits`) runs without asking: the file-editing ones, which cms's
/// write guard confines to the worktree whatever else allows them.
pub(crate) const EDIT_TOOLS: &[&str] = &["Edit", "MultiEdit", "Write", "NotebookEdit"];

/// Stored in records and configuration by its kebab-case name (`read-only`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Reads only; every other tool is denied and reported.
    ReadOnly,
    /// Reads, plus read-only git commands.
    Review,
    /// Edits files in the worktree without asking; other tools (Bash) are denied and reported.
    Edit,
    /// Everything, without permission prompts.
    Full,
    /// Explores and plans, changes nothing.
    Plan,
}

impl Preset {
    pub const NAMES: &[&str] = &["read-only", "review", "edit", "full", "plan"];

    pub fn parse(text: &str) -> Option<Preset> {
        Some(match text {
            "read-only" => Preset::ReadOnly,
            "review" => Preset::Review,
            "edit" => Preset::Edit,
            "full" => Preset::Full,
            "plan" => Preset::Plan,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::ReadOnly => "read-only",
            Preset::Review => "review",
            Preset::Edit => "edit",
            Preset::Full => "full",
            Preset::Plan => "plan",
        }
    }

    /// How much a preset lets claude do without asking, for `[mcp] max_preset`: read-only <
    /// plan = review (both change nothing; review also runs read-only git) < edit < full.
    pub fn rank(self) -> u8 {
        match self {
            Preset::ReadOnly => 0,
            Preset::Plan | Preset::Review => 1,
            Preset::Edit => 2,
            Preset::Full => 3,
        }
    }

    /// The claude flags that implement this preset, with `also_allowed` (tools the user
    /// granted the task with `cms continue --allow`) allowed on top.
    pub fn claude_args(self, also_allowed: &[String]) -> Vec<String> {
        let mode = match self {
            Preset::ReadOnly | Preset::Review => "default",
            Preset::Edit => "acceptEdits",
            Preset::Full => "bypassPermissions",
            Preset::Plan => "plan",
        };
        let mut args = vec!["--permission-mode".to_owned(), mode.to_owned()];
        let mut allowed: Vec<&str> = match self {
            Preset::ReadOnly => READ_TOOLS.to_vec(),
            Preset::Review => READ_TOOLS.iter().chain(REVIEW_TOOLS).copied().collect(),
            _ => Vec::new(),
        };
        allowed.extend(also_allowed.iter().map(String::as_str));
        if !allowed.is_empty() {
            args.push("--allowedTools".to_owned());
            args.push(allowed.join(","));
        }
        args
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Preset;

    #[test]
    fn every_preset_name_round_trips() {
        for name in Preset::NAMES {
            assert_eq!(Preset::parse(name).unwrap().as_str(), *name);
        }
        assert_eq!(Preset::parse("yolo"), None);
    }

    #[test]
    fn read_only_presets_allow_only_reading_tools() {
        let args = Preset::ReadOnly.claude_args(&[]);
        assert_eq!(args[..2], ["--permission-mode", "default"]);
        let allowed = &args[3];
        assert!(!allowed.contains("Write") && !allowed.contains("Bash"));
        assert!(Preset::Review.claude_args(&[])[3].contains("Bash(git diff:*)"));
        assert_eq!(
            Preset::Full.claude_args(&[]),
            ["--permission-mode", "bypassPermissions"]
        );
    }

    #[test]
    fn tools_the_user_allowed_join_the_presets_list() {
        let granted = ["Write".to_owned(), "Bash(npm test:*)".to_owned()];
        let args = Preset::ReadOnly.claude_args(&granted);
        assert!(args[3].starts_with("Read,"), "{args:?}");
        assert!(args[3].ends_with(",Write,Bash(npm test:*)"), "{args:?}");
        let args = Preset::Edit.claude_args(&granted);
        assert_eq!(args[2..], ["--allowedTools", "Write,Bash(npm test:*)"]);
    }
}
