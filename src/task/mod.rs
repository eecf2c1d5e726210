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
mod fanout;
mod finish;
mod foreground;
mod gc;
mod handoff;
mod include;
mod merge;
mod notify;
mod open;
pub mod pool;
mod prepare;
mod project;
mod push;
mod resume;
mod rules;
mod run;
mod settings;
mod settle;
mod shell;
mod start;
mod started;
mod wait;
mod watched;
mod worktrees;

pub use abort::{abort, running_tasks};
pub use ask::{AskOptions, DEFAULT_DENIAL, Delivered, answer_and_deliver, answer_prompt};
pub use commit::{Committed, commit_task};
pub use discard::{DiscardPlan, Discarded, discard, finish_pending_discards, plan_discard};
pub use error::TaskError;
pub use fanout::{FanOut, attempts, each, run_many};
pub use foreground::{Foreground, Observer, Quiet, Stopping, run_foreground};
pub use gc::{DEFAULT_KEEP, GcOptions, GcReport, gc};
pub use handoff::{hand_off, remember_stop_signals, take_over};
pub use merge::{MergeOptions, Merged, merge};
pub use notify::notify;
pub use open::{
    CheckoutRemoval, admin_violation, change_range, committed_unmerged_files, current_violations,
    ensure_not_running, ensure_on_branch, files_missing_from, is_tampered, open_for_change,
    plan_checkout_removal, remove_task_checkout, task_git, unmerged_files, violations_in,
};
pub use push::{PushOptions, push};
pub use resume::{ATTACH_MESSAGE, ContinueOptions, resume, resume_attached};
pub use rules::{RuleScope, rules_for};
pub use run::{RunOptions, abandon};
pub use settings::Settings;
pub use settle::settle;
pub use start::start;
pub use started::{Started, TaskOptions};
pub use wait::{settled, timed_out, wait_until_settled};
