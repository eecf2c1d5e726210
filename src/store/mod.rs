//! Task records, transcripts and locks, kept per repository under `<git-common-dir>/cms/`.

mod files;
mod name;
mod record;

pub use files::{Store, StoreError, write_atomic};
pub use name::{InvalidName, TaskName};
pub use record::{
    Answered, Attempt, Blocked, MergeInfo, NothingToMerge, PendingPermission, PermissionAnswer,
    PushInfo, RECORD_VERSION, Rebase, RemoteRun, Safety, TaskRecord, now_rfc3339,
};
