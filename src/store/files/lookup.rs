//! Finding the task a user meant from what they typed: a unique prefix of its name, or the
//! closest name for a "did you mean".

use std::fs;

use super::Store;
use crate::store::TaskName;

impl Store {
    /// The one task whose name starts with `typed`, when no task has that exact name and
    /// exactly one starts so; read from the records folder's file names only.
    pub fn unique_prefix_match(&self, typed: &TaskName) -> Option<TaskName> {
        if self.exists(typed) {
            return None;
        }
        let entries = fs::read_dir(self.tasks_dir()).ok()?;
        let mut matches = entries.flatten().filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let name = file.strip_suffix(".json")?;
            name.starts_with(typed.as_str())
                .then(|| TaskName::parse(name).ok())
                .flatten()
        });
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }

    /// The task name closest to `typed` (Jaro-Winkler, as clap suggests subcommands), if one
    /// is close enough to be what was meant; read from the records folder's file names only.
    pub(super) fn closest_name(&self, typed: &str) -> Option<String> {
        let entries = fs::read_dir(self.tasks_dir()).ok()?;
        entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                file.strip_suffix(".json").map(str::to_owned)
            })
            .map(|name| (strsim::jaro_winkler(typed, &name), name))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, name)| name)
    }
}
