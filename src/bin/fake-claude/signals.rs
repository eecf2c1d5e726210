//! SIGINT and SIGTERM: an interrupt flag, or an immediate exit as the real CLI does.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::script::Script;

pub static SIGINT_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINT_SEEN.store(true, Ordering::SeqCst);
}

extern "C" fn on_sigterm(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe. The real CLI also dies at once with 143, printing no
    // result and leaving its tool processes running.
    unsafe { libc::_exit(143) }
}

/// A handler that does nothing, rather than SIG_IGN, so that commands we run still get the
/// default disposition (exec resets handlers but keeps SIG_IGN).
extern "C" fn ignore_signal(_: libc::c_int) {}

pub fn install_signal_handlers(script: &Script) {
    type Handler = extern "C" fn(libc::c_int);
    let sigint: Handler = if script.ignore_sigint {
        ignore_signal
    } else {
        on_sigint
    };
    let sigterm: Handler = if script.ignore_sigterm {
        ignore_signal
    } else {
        on_sigterm
    };
    for (signal, handler) in [(libc::SIGINT, sigint), (libc::SIGTERM, sigterm)] {
        // SAFETY: the handlers only store to an atomic or call _exit, both async-signal-safe, and
        // the sigaction struct is fully initialised before use.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}
