//! The one integration-test binary: every CLI test runs real `cms` against real temporary git
//! repositories with the scripted fake claude.

mod common;
mod test_doctor;
mod test_errors;
mod test_inspect;
mod test_merge;
mod test_task;
