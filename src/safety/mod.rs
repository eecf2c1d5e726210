//! The safety net: the limits a task may not cross and the paths it may not touch, enforced
//! before a write (the PreToolUse hook), on the task's diff, and on the user's checkouts.

pub mod boundary;
pub mod check;
pub mod guard;
pub mod limits;
pub mod paths;
pub mod sandbox;

pub use limits::LimitState;
pub use paths::{Rules, normalize, validate_glob};

/// What a task with these violations did, for a message: "touched protected paths" only when
/// each of them is about a path its change touched.
pub fn what_it_did(violations: &[crate::vocab::Violation]) -> &'static str {
    if violations.iter().all(|v| v.kind.is_path()) {
        "touched protected paths"
    } else {
        "broke the safety rules"
    }
}
