//! A task's life from start to end: making its worktree and record, supervising its claude
//! session, and committing and recording what it did.
//!
//! A start either completes or leaves nothing behind: every step that made something (the
//! worktree and branch, the record, the transcript) is undone if a later step of the start
//! fails, including claude failing before it ever began a session.

mod abort;
mod ask;
mod attach;
mod commit;
mod discard;
mod error;
mod finish;
mod gc;
mod merge;
mod notify;
mod open;
pub mod pool;
mod prepare;
mod project;
pub use prepare::WORKTREE_INCLUDE;
mod push;
mod resume;
mod rules;
mod run;
mod shell;
mod start;
mod wait;
mod watched;
mod worktrees;

use std::path::PathBuf;
use std::time::Duration;

use crate::safety::sandbox::SandboxMode;
use crate::session::Preset;
use crate::store::{TaskName, TaskRecord};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    pub prompt: String,
    pub name: Option<TaskName>,
    pub base: Option<String>,
    pub model: Option<String>,
    pub preset: Option<Preset>,
    pub max_cost_usd: Option<f64>,
    pub max_turns: Option<u32>,
    pub max_duration: Option<Duration>,
    /// Globs protected on top of the configured ones.
    pub protect: Vec<String>,
    /// Over `[safety] sandbox`.
    pub sandbox: Option<SandboxMode>,
    /// Set for each task of `--attempts N`.
    pub attempt: Option<crate::store::Attempt>,
}

/// A task whose worktree and record exist, ready for its session.
pub struct Started {
    pub record: TaskRecord,
    pub claude: PathBuf,
    /// Why the task's Bash runs unsandboxed under `sandbox = "auto"`, for a warning.
    pub sandbox_warning: Option<String>,
    /// What to send claude: the prompt, or a follow-up's message.
    pub message: String,
    /// For a follow-up (`cms continue`), the record as it was before, which a failed start
    /// puts back; a new task's failed start removes everything instead.
    pub resumed_from: Option<TaskRecord>,
}

pub use abort::{abort, running_tasks};
pub use ask::{AskOptions, DEFAULT_DENIAL, Delivered, answer_and_deliver, answer_prompt};
pub use attach::run_attached;
pub use commit::{Committed, commit_task};
pub use discard::{DiscardPlan, Discarded, discard, finish_pending_discards, plan_discard};
pub use error::TaskError;
pub use gc::{DEFAULT_KEEP, GcOptions, GcReport, gc};
pub use merge::{MergeOptions, Merged, merge, recover as recover_merges};
pub use notify::notify;
pub use open::{
    CheckoutRemoval, admin_violation, change_range, committed_unmerged_files, current_violations,
    ensure_not_running, ensure_on_branch, files_missing_from, is_tampered, open_for_change,
    plan_checkout_removal, remove_task_checkout, task_git, unmerged_files, violations_in,
};
pub use push::{PushOptions, push};
pub use resume::{ATTACH_MESSAGE, ContinueOptions, resume, resume_attached};
pub use rules::{RuleScope, rules_for};
pub use run::{RunOptions, abandon, run};
pub use start::start;
pub use wait::{settled, timed_out, wait_until_settled};

use finish::{describe_violations, finish};
use open::{delete_task_branch, remove_planned_worktree, remove_tampered_checkout};
use start::{lock_reason, sandbox_plan, undo_start};
use watched::Watched;

/// Settles what dead or killed cms processes left before a command looks at the repository:
/// tasks whose supervisor died (`interrupted`, their leftovers committed), discards and merges
/// a crash interrupted. Returns a line for each thing settled, for the user.
pub fn settle(ws: &crate::workspace::Workspace) -> Vec<String> {
    ws.reconcile_running();
    let mut lines = Vec::new();
    for (name, outcome) in finish_pending_discards(ws) {
        lines.push(match outcome {
            Ok(()) => {
                format!("finished discarding task '{name}', which an interrupted cms left halfway")
            }
            Err(err) => format!("could not finish the interrupted discard of task '{name}': {err}"),
        });
    }
    lines.extend(recover_merges(ws));
    lines
}
