//! `cms top`: a live full-screen dashboard of the repository's tasks, built only from the
//! store and the transcripts, so it sees tasks run by any cms process, detached ones included.

mod actions;
pub mod app;
mod log;
mod screen;
pub mod ui;

pub use screen::{ATTACH_ERRORS_ENV, Ended, run};

#[cfg(test)]
mod tests;
