//! A rule a task broke (or came close to): its kind, the path, and what happened.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub path: String,
    pub detail: String,
}

/// What kind of rule a violation broke. Stored and shown by its snake_case name, which is part
/// of the JSON contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// A protected path was added, changed, deleted, renamed or had its mode changed.
    ProtectedPath,
    /// A write aimed outside the task's worktree.
    OutsideWorktree,
    /// A symlink that points at a protected path or out of the worktree.
    Symlink,
    /// A submodule pointer change over protected paths.
    Submodule,
    /// Git metadata (hooks, config, the worktree's `.git`) that would run code in the user's
    /// repository or redirect it.
    GitMetadata,
    /// A change in one of the user's checkouts while the task ran.
    MainCheckout,
    /// A ref other than the task's own branch was created, moved or deleted.
    GitRef,
    /// The task's worktree left its branch (`git checkout -b`, `--detach`).
    TaskHead,
    /// Another task's worktree or branch changed while this task ran.
    OtherTask,
    /// A git object (a commit, tree or file of any branch) was deleted; cms put it back.
    GitObject,
    /// The task's record (its limits, protected paths, ...) was changed by its session.
    TaskRecord,
    /// The task's git admin dir (`<common>/worktrees/<admin>`) was renamed, replaced, made a
    /// symlink, or its `commondir`/`gitdir` or the worktree's `.git` link changed: cms runs
    /// no git in that worktree again.
    GitAdmin,
    /// A kind this cms does not know (a record written by a newer one), kept as written so
    /// it is still shown and saved back unchanged.
    Other(String),
}

impl ViolationKind {
    /// Every kind this cms reports.
    pub const KNOWN: [ViolationKind; 12] = [
        ViolationKind::ProtectedPath,
        ViolationKind::OutsideWorktree,
        ViolationKind::Symlink,
        ViolationKind::Submodule,
        ViolationKind::GitMetadata,
        ViolationKind::MainCheckout,
        ViolationKind::GitRef,
        ViolationKind::TaskHead,
        ViolationKind::OtherTask,
        ViolationKind::GitObject,
        ViolationKind::TaskRecord,
        ViolationKind::GitAdmin,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            ViolationKind::ProtectedPath => "protected_path",
            ViolationKind::OutsideWorktree => "outside_worktree",
            ViolationKind::Symlink => "symlink",
            ViolationKind::Submodule => "submodule",
            ViolationKind::GitMetadata => "git_metadata",
            ViolationKind::MainCheckout => "main_checkout",
            ViolationKind::GitRef => "git_ref",
            ViolationKind::TaskHead => "task_head",
            ViolationKind::OtherTask => "other_task",
            ViolationKind::GitObject => "git_object",
            ViolationKind::TaskRecord => "task_record",
            ViolationKind::GitAdmin => "git_admin",
            ViolationKind::Other(name) => name,
        }
    }

    /// The kind named `name`; a name this cms does not know is kept as [`ViolationKind::Other`].
    pub fn parse(name: &str) -> ViolationKind {
        Self::KNOWN
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .unwrap_or_else(|| ViolationKind::Other(name.to_owned()))
    }

    /// Whether the violation is about a path the task's change touched (its diff), rather than
    /// something that moved around its session.
    pub fn is_path(&self) -> bool {
        matches!(
            self,
            ViolationKind::ProtectedPath
                | ViolationKind::OutsideWorktree
                | ViolationKind::Symlink
                | ViolationKind::Submodule
        )
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ViolationKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ViolationKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(ViolationKind::parse(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::{Violation, ViolationKind};

    #[test]
    fn every_kind_is_stored_as_its_snake_case_name_and_read_back() {
        let names = [
            "protected_path",
            "outside_worktree",
            "symlink",
            "submodule",
            "git_metadata",
            "main_checkout",
            "git_ref",
            "task_head",
            "other_task",
            "git_object",
            "task_record",
            "git_admin",
        ];
        for (kind, name) in ViolationKind::KNOWN.into_iter().zip(names) {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::from_str::<ViolationKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn a_kind_from_a_newer_cms_is_kept_as_written() {
        let text = r#"{"kind":"future_rule","path":"a","detail":"b"}"#;
        let violation: Violation = serde_json::from_str(text).unwrap();
        assert_eq!(violation.kind, ViolationKind::Other("future_rule".into()));
        assert_eq!(violation.kind.to_string(), "future_rule");
        assert!(!violation.kind.is_path());
        assert_eq!(serde_json::to_string(&violation).unwrap(), text);
    }
}
