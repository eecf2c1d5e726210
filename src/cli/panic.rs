//! What a panic does: one line on stderr saying what and where, and a documented exit code,
//! instead of Rust's multi-line report and exit 101.
//!
//! The hook exits the process itself, so a panic on any thread (a tokio task included) ends
//! cms with the same code. The PreToolUse hook command sets its own code first: claude lets a
//! tool run when its hook fails with anything but 2, so a panic there must block (exit 2, with
//! nothing on stdout).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::error::{CommandError, exit_code};

static EXIT_CODE: AtomicU8 = AtomicU8::new(exit_code::INTERNAL);
static JSON: AtomicBool = AtomicBool::new(false);

/// Replaces Rust's panic report with cms's one line and exit code.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        let what = what.split_whitespace().collect::<Vec<_>>().join(" ");
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message =
            format!("cms panicked{place}: {what} (this is a bug in cms; please report it)");
        let _ = writeln!(std::io::stderr().lock(), "error: {message}");
        let code = EXIT_CODE.load(Ordering::SeqCst);
        if JSON.load(Ordering::SeqCst) {
            // Scripts reading stdout get the error they expect, on a line of its own.
            let mut error = CommandError::internal(message);
            error
                .hints
                .push("please report it with the command that caused it".into());
            let mut json = error.to_json();
            json["exit_code"] = code.into();
            let _ = writeln!(std::io::stdout().lock(), "\n{json}");
        }
        std::process::exit(i32::from(code));
    }));
}

/// Makes a panic from now on exit with `code` instead of 255, printing nothing on stdout.
pub fn exit_code_on_panic(code: u8) {
    EXIT_CODE.store(code, Ordering::SeqCst);
    JSON.store(false, Ordering::SeqCst);
}

/// Makes a panic also print the JSON error on stdout (`--json`).
pub fn json_on_panic() {
    JSON.store(true, Ordering::SeqCst);
}
