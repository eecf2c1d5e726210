//! What `cms --version` says: the crate version, the commit it was built from (see build.rs)
//! and the Claude Code versions cms was tested with.

use std::sync::OnceLock;

/// `0.1.0 (commit abc1234, 2026-12-04)`, or the crate version alone when not built from a
/// git checkout.
pub fn short() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let version = env!("CARGO_PKG_VERSION");
        match (env!("CMS_GIT_COMMIT"), env!("CMS_GIT_DATE")) {
            ("", _) => version.to_owned(),
            (commit, "") => format!("{version} (commit {commit})"),
            (commit, date) => format!("{version} (commit {commit}, {date})"),
        }
    })
}

/// The short version and, on a line of its own, the Claude Code versions cms was tested with.
pub fn long() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{}\ntested with Claude Code {}",
            short(),
            super::doctor::TESTED_CLAUDE_VERSIONS.join(", ")
        )
    })
}
