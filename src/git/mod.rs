//! All access to git: libgit2 for read-only queries and in-memory merges, the `git` CLI for
//! everything that changes a working tree or moves a ref. Nothing outside this module touches
//! git, so what cms does to a repository can be audited here.

mod cmd;
mod error;
pub mod hooks;
pub mod merge;
pub mod objects;
pub mod oid_hex;
pub mod probe;
pub mod remote;
mod repo;
pub mod scratch;
pub mod snapshot;
pub mod state;
mod task_git;
#[cfg(test)]
mod test_support;
pub mod worktree;

pub use cmd::{MIN_GIT_VERSION, REPO_ENV_VARS, version};
pub use error::GitError;
pub use git2::Oid;
pub use repo::{Repo, blob_id, canonical};
pub use snapshot::{DiffFormat, FileChange, TreeChange};
pub use task_git::TaskGit;
