//! The shared vocabulary: the plain types that the store, sessions, safety checks and front
//! ends all speak (a task's status, its supervisor, a violation, limits, a preset, a permission
//! denial, a trust record). It imports no other cms module, so every module can depend on it without a circle.

mod background;
mod limits;
mod permission;
mod preset;
mod status;
mod trust_record;
mod violation;

pub use background::StoppedCommand;
pub use limits::{LimitKind, Limits};
pub use permission::PermissionDenial;
pub use preset::Preset;
pub(crate) use preset::{EDIT_TOOLS, READ_TOOLS, REVIEW_TOOLS};
pub use status::{Status, Supervisor};
pub use trust_record::TrustRecord;
pub use violation::{Violation, ViolationKind};
