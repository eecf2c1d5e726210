//! The one way the tests wait: poll a condition another process makes true, every 20 ms, up to
//! one time limit, and fail naming what never happened; never a sleep that hopes it was long
//! enough.

use std::time::{Duration, Instant};

/// How long a test waits for anything another process does. Generous: CI machines have two
/// cores and run the tests side by side.
pub const LIMIT: Duration = Duration::from_secs(60);

/// How often a condition is checked.
const INTERVAL: Duration = Duration::from_millis(20);

/// What a condition answers on each poll: done (with what it found), or not yet.
pub trait Poll<T> {
    /// `Ok` when done; `Err` with what was seen instead, if the condition says, for the
    /// failure message.
    fn done(self) -> Result<T, Option<String>>;
}

impl Poll<()> for bool {
    fn done(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Poll<T> for Option<T> {
    fn done(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Err` carries what the condition saw, which the failure shows.
impl<T> Poll<T> for Result<T, String> {
    fn done(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Polls `condition` until it holds (`true`, `Some(value)` or `Ok(value)`) and returns what it
/// found; fails the test with "timed out waiting for `what`" (and what the condition saw last,
/// when it says) after [`LIMIT`].
#[track_caller]
pub fn eventually<T, P: Poll<T>>(what: &str, condition: impl FnMut() -> P) -> T {
    match within(LIMIT, condition) {
        Ok(value) => value,
        Err(Some(seen)) => {
            panic!("timed out after {LIMIT:?} waiting for {what}; last seen:\n{seen}")
        }
        Err(None) => panic!("timed out after {LIMIT:?} waiting for {what}"),
    }
}

/// Polls `condition` until it holds or `limit` has passed; `Err` holds what it saw last. For
/// the helpers that bound something other than a wait (a whole run) and clean up on failure.
pub fn within<T, P: Poll<T>>(
    limit: Duration,
    mut condition: impl FnMut() -> P,
) -> Result<T, Option<String>> {
    let start = Instant::now();
    loop {
        let seen = match condition().done() {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if start.elapsed() >= limit {
            return Err(seen);
        }
        std::thread::sleep(INTERVAL);
    }
}
