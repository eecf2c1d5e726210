//! Fault injection for the tests: `CMS_TEST_KILL_AT=N` kills this process (SIGKILL, no
//! unwinding, no cleanup) at the N-th step point it passes, so a test can kill a command at
//! each of its steps in turn and check that the repository is left before or after it, never
//! between; `CMS_TEST_PANIC=<point>` panics at a named point. Only in builds with the
//! `test-fakes` feature, which only the test suite enables.

#[cfg(feature = "test-fakes")]
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(feature = "test-fakes")]
static PASSED: AtomicU32 = AtomicU32::new(0);

/// Marks a step of a command that changes the repository: a place where a crash must leave
/// everything consistent. `name` is for the message a killed test prints.
pub fn step(name: &str) {
    #[cfg(feature = "test-fakes")]
    {
        let Some(kill_at) = std::env::var("CMS_TEST_KILL_AT")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            return;
        };
        let passed = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
        if passed == kill_at {
            eprintln!("cms: CMS_TEST_KILL_AT={kill_at}: killed at step '{name}'");
            crate::platform::process::kill_self();
        }
    }
    #[cfg(not(feature = "test-fakes"))]
    let _ = name;
}

/// Panics when the test suite asks for a panic at `point` (`CMS_TEST_PANIC=<point>`), so the
/// tests can show what a panic does there. Only in builds with the `test-fakes` feature, which
/// only the test suite enables: an installed cms cannot be made to panic this way.
pub fn test_panic_point(point: &str) {
    #[cfg(feature = "test-fakes")]
    if std::env::var("CMS_TEST_PANIC").is_ok_and(|p| p == point) {
        panic!("CMS_TEST_PANIC asked for a panic at '{point}'");
    }
    #[cfg(not(feature = "test-fakes"))]
    let _ = point;
}
