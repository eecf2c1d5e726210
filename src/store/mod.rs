//! Task records, transcripts and locks, kept per repository under `<git-common-dir>/cms/`.

mod files;
mod name;
mod record;

pub use files::{Store, StoreError, write_atomic};
pub use name::{InvalidName, TaskName};
pub use record::{
    Answered, Attempt, Blocked, MergeInfo, NewTask, NothingToMerge, PendingPermission,
    PermissionAnswer, PushInfo, Rebase, RemoteRun, TaskRecord, now_rfc3339,
};
