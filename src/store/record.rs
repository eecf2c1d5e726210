//! The task record: everything cms knows about one task, as stored on disk and shown as JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::git::{FileChange, Oid};
use crate::store::TaskName;
use crate::vocab::{
    Limits, PermissionDenial, Preset, Status, StoppedCommand, Supervisor, Violation,
};

/// Bumped whenever a change to [`TaskRecord`] would confuse an older cms (2: the `waiting`
/// status and its `pending` prompt).
pub const RECORD_VERSION: u32 = 2;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Safety {
    /// The limits in force, summed across every process of the task.
    pub limits: Option<Limits>,
    /// The protected-path globs in force, the always-protected ones included.
    #[serde(default)]
    pub protected: Vec<String>,
    /// Rules the task broke; any makes it `protected_path`.
    pub violations: Vec<Violation>,
    /// What changed while the task ran that it may not have done (outside its own surfaces
    /// while it ran unsandboxed; a new ref where its sandbox lets it make one): shown, never
    /// held against its merge.
    #[serde(default)]
    pub warnings: Vec<Violation>,
    /// Tools the user allowed the task on top of its preset (`cms continue --allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// Writes denied before they happened (the agent was told why); not violations.
    #[serde(default)]
    pub blocked: Vec<Blocked>,
    /// Whether the task's Bash ran in Claude Code's sandbox (records from before it say no).
    #[serde(default)]
    pub sandboxed: bool,
    /// Permission prompts answered while the task ran (`--ask`): by whom, and how.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answered: Vec<Answered>,
}

/// One answered permission prompt, kept as the task's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answered {
    pub tool_name: String,
    pub tool_use_id: Option<String>,
    pub allow: bool,
    #[serde(default)]
    pub always: bool,
    /// `cms allow (pid N)`, `the supervisor's terminal`, `cms policy`, ...
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A tool call cms's PreToolUse hook denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub tool_name: String,
    pub tool_use_id: Option<String>,
    #[serde(flatten)]
    pub violation: Violation,
}

/// Where a merged task went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeInfo {
    pub into: String,
    #[serde(with = "crate::git::oid_hex")]
    pub commit: Oid,
    pub kind: String,
    /// Set when the merge made no commit because the target already held the task's change
    /// (`commit` is then the target's tip, which did not move).
    #[serde(default)]
    pub nothing_to_merge: Option<NothingToMerge>,
}

/// Why a merge had nothing to bring into its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NothingToMerge {
    /// The task changed files, and the target has them as the merge would make them (the
    /// user merged or cherry-picked it already).
    AlreadyInTarget,
    /// The task's commits change nothing.
    NoChanges,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub version: u32,
    pub name: TaskName,
    pub status: Status,
    pub prompt: String,
    pub branch: String,
    pub worktree: PathBuf,
    /// The commit the task started from.
    #[serde(with = "crate::git::oid_hex")]
    pub base: Oid,
    /// The branch that commit was taken from, which `merge` targets; `None` when detached.
    pub base_branch: Option<String>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub preset: Preset,
    pub cost_usd: f64,
    pub turns: u32,
    pub duration_ms: u64,
    pub response: Option<String>,
    pub tools_used: Vec<String>,
    pub files_changed: Vec<FileChange>,
    pub permission_denials: Vec<PermissionDenial>,
    pub safety: Safety,
    pub error: Option<String>,
    /// The task branch's tip when the session last ended.
    #[serde(with = "crate::git::oid_hex::option", default)]
    pub head: Option<Oid>,
    pub merge: Option<MergeInfo>,
    pub supervisor: Option<Supervisor>,
    /// Set while the task's work is being moved onto its base branch's tip (`cms continue
    /// --rebase`) and conflicts are left to resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebase: Option<Rebase>,
    /// Paths in the worktree that are symlinks into the main checkout (`[worktree] link`);
    /// cms never commits them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Where `cms push` last sent the task's branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushInfo>,
    /// Which of `cms task --attempts N`'s attempts this task is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<Attempt>,
    /// The permission prompt a `waiting` task is paused on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingPermission>,
    /// Background commands the agent left running that its last session had to stop (or
    /// that died with it): their work was cut short, so the task ended `needs_input`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped_commands: Vec<StoppedCommand>,
    /// Where the task's sessions run when not on this machine (`cms task --on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRun>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a new task's record starts from; [`TaskRecord::starting`] fills in the rest.
pub struct NewTask {
    pub name: TaskName,
    pub prompt: String,
    pub branch: String,
    pub worktree: PathBuf,
    pub base: Oid,
    pub base_branch: Option<String>,
    pub model: Option<String>,
    pub preset: Preset,
    pub limits: Limits,
    pub protected: Vec<String>,
    pub sandboxed: bool,
    pub supervisor: Supervisor,
}

impl TaskRecord {
    /// The record of a task starting its first session now: running under `supervisor`, with
    /// nothing done yet.
    pub fn starting(new: NewTask) -> TaskRecord {
        let now = now_rfc3339();
        TaskRecord {
            version: RECORD_VERSION,
            name: new.name,
            status: Status::Running,
            prompt: new.prompt,
            branch: new.branch,
            worktree: new.worktree,
            base: new.base,
            base_branch: new.base_branch,
            session_id: None,
            model: new.model,
            preset: new.preset,
            cost_usd: 0.0,
            turns: 0,
            duration_ms: 0,
            response: None,
            tools_used: Vec::new(),
            files_changed: Vec::new(),
            permission_denials: Vec::new(),
            safety: Safety {
                limits: Some(new.limits),
                protected: new.protected,
                sandboxed: new.sandboxed,
                ..Safety::default()
            },
            error: None,
            head: None,
            merge: None,
            supervisor: Some(new.supervisor),
            attempt: None,
            rebase: None,
            push: None,
            links: Vec::new(),
            pending: None,
            stopped_commands: Vec::new(),
            remote: None,
            created_at: now.clone(),
            updated_at: now,
        }
    }
}

/// A task whose sessions run on a runner (`[runners.NAME]`): what its follower, `cms abort`
/// and the settling of a dead follower need, kept as it was when the session began so an
/// edit to the user's configuration cannot strand a running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRun {
    /// The runner's name in the user's configuration.
    pub runner: String,
    /// Its Jobs API.
    pub address: String,
    /// The git remote the task's commits and results travel through.
    pub remote: String,
    /// The job of the task's latest session, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// How long the task's transcript and stderr were when that session began: the worker's
    /// copies of the session's own take their place after them.
    #[serde(default)]
    pub log_from: u64,
    #[serde(default)]
    pub stderr_from: u64,
}

/// A task's branch as last pushed for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushInfo {
    pub remote: String,
    pub branch: String,
    /// What was pushed; the next push replaces only this.
    #[serde(with = "crate::git::oid_hex")]
    pub commit: Oid,
    /// The pull request opened for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<String>,
}

/// A task moved onto its base branch's tip by `cms continue --rebase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebase {
    /// The branch it was moved onto.
    pub onto: String,
    /// The task's tip before, kept under `refs/cms/rebased/<name>`.
    #[serde(with = "crate::git::oid_hex")]
    pub from: Oid,
    /// The files that conflicted.
    pub conflicts: Vec<String>,
    /// Of those, the ones still holding conflict markers when the session ended; the task
    /// cannot be merged while any is left.
    #[serde(default)]
    pub unresolved: Vec<String>,
}

/// One of several independent attempts at the same prompt, named `<group>-<number>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub group: String,
    pub number: u32,
    pub of: u32,
}

/// A tool call claude asked permission for, which only the user can answer (`cms allow`,
/// `cms deny`, or the prompt at the supervisor's terminal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPermission {
    /// claude's id for the prompt; an answer names it, so it can never answer a later one.
    pub request_id: String,
    pub tool_name: String,
    pub input: serde_json::Value,
    pub description: Option<String>,
    pub tool_use_id: Option<String>,
    pub blocked_path: Option<String>,
    pub since: String,
    /// Prompts waiting behind this one.
    #[serde(default)]
    pub queued: usize,
    /// Written by whoever answers; the supervisor passes it to claude and clears the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<PermissionAnswer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionAnswer {
    pub allow: bool,
    /// With `allow`: the tool is allowed for the rest of the task, without asking again.
    #[serde(default)]
    pub always: bool,
    /// With a denial: what the agent is told.
    #[serde(default)]
    pub message: Option<String>,
    /// Who answered (`cms allow` and its pid, or the terminal).
    pub by: String,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::{Preset, TaskRecord};
    use crate::vocab::ViolationKind;

    /// A record as cms wrote it before names, presets and ids were typed.
    const OLD_RECORD: &str = r#"{
      "version": 1,
      "name": "fix-auth",
      "status": "merged",
      "prompt": "fix auth",
      "branch": "cms/fix-auth",
      "worktree": "/w/fix-auth",
      "base": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
      "base_branch": "main",
      "session_id": "s-1",
      "model": "claude-sonnet-4-5",
      "preset": "read-only",
      "cost_usd": 0.25,
      "turns": 3,
      "duration_ms": 1200,
      "response": "done",
      "tools_used": ["Write"],
      "files_changed": [],
      "permission_denials": [],
      "safety": {
        "limits": {"max_cost_usd": 0.5, "max_turns": 10, "max_duration_ms": 300000},
        "protected": [".env"],
        "violations": [],
        "blocked": []
      },
      "error": null,
      "head": "1111111111111111111111111111111111111111",
      "merge": {"into": "main", "commit": "2222222222222222222222222222222222222222", "kind": "fast_forward"},
      "supervisor": null,
      "created_at": "2026-01-01T00:00:00.000Z",
      "updated_at": "2026-01-01T00:00:01.000Z"
    }"#;

    #[test]
    fn records_written_before_typed_fields_load_and_keep_their_shape() {
        let record: TaskRecord = serde_json::from_str(OLD_RECORD).unwrap();
        assert_eq!(record.name.as_str(), "fix-auth");
        assert_eq!(record.preset, Preset::ReadOnly);
        assert_eq!(record.head.unwrap().to_string(), "1".repeat(40));
        let original: serde_json::Value = serde_json::from_str(OLD_RECORD).unwrap();
        let mut saved = serde_json::to_value(&record).unwrap();
        // Records from before the sandbox say nothing of it: their tasks ran without one.
        let sandboxed = saved["safety"].as_object_mut().unwrap().remove("sandboxed");
        assert_eq!(sandboxed, Some(serde_json::Value::Bool(false)));
        // Nor of warnings, which came later still: none.
        let warnings = saved["safety"].as_object_mut().unwrap().remove("warnings");
        assert_eq!(warnings, Some(serde_json::json!([])));
        // Nor of a merge that had nothing to merge, which came last: theirs had something.
        let nothing = saved["merge"]
            .as_object_mut()
            .unwrap()
            .remove("nothing_to_merge");
        assert_eq!(nothing, Some(serde_json::Value::Null));
        assert_eq!(saved, original);
    }

    #[test]
    fn a_records_violations_and_limits_are_saved_back_byte_for_byte() {
        // As cms writes them: every field in order; the last warning's kind is one a newer cms
        // might write, kept as written.
        let safety = concat!(
            r#"{"limits":{"max_cost_usd":0.5,"max_turns":10,"max_duration_ms":300500},"#,
            r#""protected":[".env"],"#,
            r#""violations":[{"kind":"protected_path","path":".env","detail":"changed"},"#,
            r#"{"kind":"git_admin","path":"wt","detail":"renamed"}],"#,
            r#""warnings":[{"kind":"git_ref","path":"refs/heads/x","detail":"created"},"#,
            r#"{"kind":"future_rule","path":"p","detail":"d"}],"#,
            r#""blocked":[{"tool_name":"Write","tool_use_id":"t-1","kind":"outside_worktree","#,
            r#""path":"/etc/x","detail":"outside"}],"#,
            r#""sandboxed":true}"#
        );
        let start = OLD_RECORD.find(r#""safety": "#).unwrap();
        let end = OLD_RECORD.find(r#""error": "#).unwrap();
        let text = format!(
            r#"{}"safety": {safety}, {}"#,
            &OLD_RECORD[..start],
            &OLD_RECORD[end..]
        );
        let record: TaskRecord = serde_json::from_str(&text).unwrap();
        let kinds: Vec<_> = record.safety.violations.iter().map(|v| &v.kind).collect();
        assert_eq!(
            kinds,
            [&ViolationKind::ProtectedPath, &ViolationKind::GitAdmin]
        );
        assert_eq!(
            record.safety.warnings[1].kind,
            ViolationKind::Other("future_rule".to_owned())
        );
        let limits = record.safety.limits.unwrap();
        assert_eq!(
            limits.max_duration,
            std::time::Duration::from_millis(300_500)
        );
        assert_eq!(serde_json::to_string(&record.safety).unwrap(), safety);
    }

    #[test]
    fn a_record_naming_a_path_instead_of_a_task_is_refused() {
        for (field, bad) in [
            ("\"fix-auth\"", "\"../../x\""),
            ("\"read-only\"", "\"yolo\""),
            ("\"1111111111111111111111111111111111111111\"", "\"HEAD\""),
        ] {
            let text = OLD_RECORD.replacen(field, bad, 1);
            assert!(
                serde_json::from_str::<TaskRecord>(&text).is_err(),
                "{bad} accepted"
            );
        }
    }
}
