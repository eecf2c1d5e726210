//! The one place that decides which protected-path rules apply to a task, for its start, its
//! session's end, its merge and `cms check`.

use crate::config::Config;
use crate::safety::Rules;
use crate::store::{TaskName, TaskRecord};
use crate::workspace::Workspace;

use super::TaskError;

/// Whose changes are being judged.
pub enum RuleScope<'a> {
    /// A task being started: the configuration at its base plus the command line's globs.
    /// What this gives is recorded, and is all its session is ever judged by.
    Start {
        config: &'a Config,
        extra: &'a [String],
    },
    /// A session that just ended: exactly the globs recorded when its task started, so the
    /// same session is judged the same way whatever the configuration became meanwhile.
    Session(&'a TaskRecord),
    /// A finished task's change about to be merged (or checked with `check --task`): its
    /// recorded globs and the repository's configuration as it is now (`config`, read at the
    /// task's base), since what lands in the branch must satisfy both.
    Change {
        record: &'a TaskRecord,
        config: &'a Config,
    },
    /// Changes made in the current checkout (`cms check` from a git hook): the configuration
    /// at HEAD, plus the task's own globs when the checkout is a task's worktree.
    Checkout,
}

/// The rules in force for `scope`.
pub fn rules_for(ws: &Workspace, scope: RuleScope<'_>) -> Result<Rules, TaskError> {
    // Rules drop repeated globs, so the layers can simply be joined.
    let globs: Vec<String> = match scope {
        RuleScope::Start { config, extra } => {
            config.protected.iter().chain(extra).cloned().collect()
        }
        RuleScope::Session(record) => record.safety.protected.clone(),
        RuleScope::Change { record, config } => {
            let mut globs = record.safety.protected.clone();
            globs.extend(config.protected.iter().cloned());
            globs
        }
        RuleScope::Checkout => {
            let head = ws.repo.head().ok();
            let config = ws.config(head.as_ref().map(|h| h.oid()))?;
            let mut globs = config.protected;
            let task = head
                .as_ref()
                .and_then(|h| h.branch())
                .and_then(|b| b.strip_prefix("cms/"))
                .and_then(|name| TaskName::parse(name).ok())
                .and_then(|name| ws.store.load(&name).ok())
                .filter(|record| record.worktree == crate::git::canonical(&ws.repo.checkout));
            if let Some(record) = task {
                globs.extend(record.safety.protected);
            }
            globs
        }
    };
    compile(&globs)
}

/// Compiles protected-path globs (the always-protected ones are added).
fn compile(globs: &[String]) -> Result<Rules, TaskError> {
    Rules::new(globs).map_err(TaskError::InvalidGlob)
}
