//! What a task's steps read of the repository's settings, read once per process when the task
//! is started (or taken over by a background supervisor) and carried in [`super::Started`]:
//! the configuration, the user's trust it was read under, and the compiled protected paths.
//! The session, its sandbox, the project's Claude Code files, the asking and the checks at
//! the finish take them from there instead of reading and compiling them again.

use std::sync::Arc;

use super::error::TaskError;
use super::rules::{RuleScope, rules_for};
use crate::config::Config;
use crate::git::Oid;
use crate::safety::Rules;
use crate::store::TaskRecord;
use crate::trust::Trust;
use crate::workspace::{Workspace, WorkspaceError};

/// A started task's settings; see the module's documentation.
pub struct Settings {
    /// The configuration for the task's base, as [`Workspace::config`] gives it.
    pub config: Config,
    /// The user's trust in the repository: it decided what of `config` counts, and which of
    /// the base commit's Claude Code files claude gets.
    pub trust: Trust,
    /// The protected paths the session is judged by (the globs its record keeps), compiled.
    pub rules: Arc<Rules>,
}

impl Settings {
    /// For a new task based on `base`: the configured globs and `extra` (`--protect`).
    pub(super) fn for_start(
        ws: &Workspace,
        base: Oid,
        extra: &[String],
    ) -> Result<Settings, TaskError> {
        let (trust, config) = read(ws, base)?;
        let rules = rules_for(
            ws,
            RuleScope::Start {
                config: &config,
                extra,
            },
        )?;
        Ok(Settings {
            config,
            trust,
            rules: Arc::new(rules),
        })
    }

    /// For a session of an existing task (a follow-up, an attached session, a task handed to
    /// a background supervisor) that starts from `base`: the globs its record keeps.
    pub(super) fn for_session(
        ws: &Workspace,
        record: &TaskRecord,
        base: Oid,
    ) -> Result<Settings, TaskError> {
        let (trust, config) = read(ws, base)?;
        let rules = rules_for(ws, RuleScope::Session(record))?;
        Ok(Settings {
            config,
            trust,
            rules: Arc::new(rules),
        })
    }
}

/// The user's trust, then the configuration read under it.
fn read(ws: &Workspace, base: Oid) -> Result<(Trust, Config), TaskError> {
    let trust = crate::trust::load(&ws.repo).map_err(WorkspaceError::Trust)?;
    let config = ws.config_trusting(&trust, Some(base))?;
    Ok((trust, config))
}
