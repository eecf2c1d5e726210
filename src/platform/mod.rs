//! The one place cms makes syscalls and handles signals; the rest of the crate denies
//! `unsafe_code`.
//!
//! Built on rustix (processes, pidfds, poll, the terminal, descriptors) and signal-hook
//! (handlers that set a flag). What they do not cover safely is the only `unsafe` left in the
//! crate, on the narrowest items, each with a `SAFETY:` note: code that runs in a child between
//! fork and exec, the keeper's signalfd and signal mask, a descriptor number inherited from the
//! parent, and handlers that must be put back as they were.

pub mod fds;
pub mod process;
pub mod signals;
pub mod spawn;
pub mod terminal;

pub use signals::Signal;
