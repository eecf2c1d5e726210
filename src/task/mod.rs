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
mod remote;
mod resume;
mod rules;
mod run;
mod session;
mod settings;
mod settle;
mod shell;
mod start;
mod started;
mod wait;
mod watched;
mod worker;
mod worktrees;

pub use abort::{abort, running_tasks};
pub use ask::{AskOptions, Delivered, answer_and_deliver, answer_prompt};
pub use commit::commit_task;
pub use discard::{DiscardPlan, discard, plan_discard};
pub use error::TaskError;
pub use fanout::{attempts, each, run_many};
pub use foreground::{Foreground, Observer, Quiet, Stopping, run_foreground};
pub use gc::{DEFAULT_KEEP, GcOptions, GcReport, gc};
pub use handoff::{hand_off, remember_stop_signals, take_over};
pub use merge::{MergeOptions, Merged, merge};
pub use notify::notify;
pub use open::{change_range, current_violations, remove_task_checkout, violations_in};
pub use push::{PushOptions, push};
pub use resume::{ContinueOptions, resume, resume_attached};
pub use rules::{RuleScope, rules_for};
pub use run::RunOptions;
pub use settle::settle;
pub use start::start;
pub use started::{Started, TaskOptions};
pub use wait::{settled, timed_out, wait_until_settled};
pub use worker::{WorkerError, run_worker};
