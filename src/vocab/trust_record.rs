//! What the user trusted of one repository's settings files (`cms trust`), as recorded: shared
//! by `trust`, which keeps it, and a runner's job spec, which carries it to a worker.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the user trusted of one repository, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustRecord {
    pub version: u32,
    /// The repository's git common dir.
    pub repository: PathBuf,
    pub trusted_at: String,
    /// Each trusted file's path and the git blob id of its bytes.
    pub files: BTreeMap<String, String>,
}
