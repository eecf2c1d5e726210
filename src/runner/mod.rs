//! Running tasks elsewhere than this machine: what a runner is and how the two sides talk.

pub(crate) mod wire;
