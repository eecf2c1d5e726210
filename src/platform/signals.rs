//! Signals: the few cms sends or handles, by name; async handlers for tokio code; flags that a
//! handler sets; a guard that
//! keeps the terminal's interrupts off cms while a child has them; the keeper's signalfd; and
//! dying of the signal a child died of.

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use signal_hook::consts as raw;

/// The signals cms sends or handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Term,
    Chld,
}

impl Signal {
    const ALL: [Signal; 7] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Kill,
        Signal::Usr1,
        Signal::Term,
        Signal::Chld,
    ];

    /// The signal's number, as an exit status reports it.
    pub const fn raw(self) -> i32 {
        match self {
            Signal::Hup => raw::SIGHUP,
            Signal::Int => raw::SIGINT,
            Signal::Quit => raw::SIGQUIT,
            Signal::Kill => raw::SIGKILL,
            Signal::Usr1 => raw::SIGUSR1,
            Signal::Term => raw::SIGTERM,
            Signal::Chld => raw::SIGCHLD,
        }
    }

    /// The signal with this number, if it is one of these.
    pub fn from_raw(number: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.raw() == number)
    }

    pub(super) fn rustix(self) -> rustix::process::Signal {
        use rustix::process::Signal as R;
        match self {
            Signal::Hup => R::HUP,
            Signal::Int => R::INT,
            Signal::Quit => R::QUIT,
            Signal::Kill => R::KILL,
            Signal::Usr1 => R::USR1,
            Signal::Term => R::TERM,
            Signal::Chld => R::CHILD,
        }
    }
}

/// Async handlers for some signals, for code running in a tokio runtime: in place from the
/// moment [`Listener::new`] returns, so no signal can fall between two handlers, and for the
/// rest of the process (tokio never puts the default action back).
pub struct Listener {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Listener {
    /// Handles `signals` from now on. Call it inside a tokio runtime.
    pub fn new(signals: &[Signal]) -> io::Result<Listener> {
        let streams = signals
            .iter()
            .map(|signal| {
                let kind = tokio::signal::unix::SignalKind::from_raw(signal.raw());
                Ok((*signal, tokio::signal::unix::signal(kind)?))
            })
            .collect::<io::Result<_>>()?;
        Ok(Listener { streams })
    }

    /// The next of the signals to come.
    pub async fn recv(&mut self) -> Signal {
        std::future::poll_fn(|cx| {
            for (signal, stream) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*signal);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// From now on each of `signals` sets `flag` instead of its default action. The handler is
/// reset at exec, so the commands cms starts keep the default.
pub fn set_flag_on(signals: &[Signal], flag: &Arc<AtomicBool>) -> io::Result<()> {
    for signal in signals {
        signal_hook::flag::register(signal.raw(), Arc::clone(flag))?;
    }
    Ok(())
}

/// Set by a stop signal once [`remember_stop_signals`] ran.
static STOP_REQUESTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// From now on a stop signal (SIGTERM, SIGINT, SIGHUP) is remembered (see [`stop_requested`]),
/// not fatal: in a background supervisor, one that comes before the session's own handlers;
/// in a fan-out, the user's Ctrl-C.
pub fn remember_stop_signals() {
    // Registering a handler for these three cannot fail.
    let _ = set_flag_on(&[Signal::Term, Signal::Int, Signal::Hup], &STOP_REQUESTED);
}

/// Whether a stop signal came since [`remember_stop_signals`].
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// While alive, SIGINT and SIGQUIT reach a handler that does nothing, and on drop the handlers
/// they had come back. A handler (unlike ignoring them) is reset at exec, so a child cms waits
/// for still gets the signals as usual. (signal-hook cannot put back a default action, so this
/// uses signal(2).)
pub struct IgnoreInterrupts {
    old: [libc::sighandler_t; 2],
}

extern "C" fn do_nothing(_: libc::c_int) {}

#[allow(unsafe_code)]
impl IgnoreInterrupts {
    pub fn start() -> IgnoreInterrupts {
        let handler = do_nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: installs a handler that does nothing (async-signal-safe); the old ones are
        // put back on drop.
        let old = unsafe {
            [
                libc::signal(libc::SIGINT, handler),
                libc::signal(libc::SIGQUIT, handler),
            ]
        };
        IgnoreInterrupts { old }
    }
}

#[allow(unsafe_code)]
impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        // SAFETY: puts back the handlers `new` replaced.
        unsafe {
            libc::signal(libc::SIGINT, self.old[0]);
            libc::signal(libc::SIGQUIT, self.old[1]);
        }
    }
}

/// Ends this process by `signal` (a child's, reported by its exit status) as if it had
/// received it, with core dumps off: the child's crash is not this process's. Exits with
/// 128 + `signal` if the signal does not end a process.
pub fn die_by(signal: i32) -> ! {
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, none);
    // Puts back the default action, unblocks the signal and raises it.
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    std::process::exit(128 + signal);
}

/// Blocked signals delivered through a file descriptor (the keeper's), so that none is lost
/// between two polls.
#[cfg(target_os = "linux")]
pub struct SignalFd(OwnedFd);

#[cfg(target_os = "linux")]
impl SignalFd {
    /// Blocks `signals` in this thread and opens a signalfd for them (close-on-exec,
    /// non-blocking).
    #[allow(unsafe_code)]
    pub fn block(signals: &[Signal]) -> io::Result<SignalFd> {
        // SAFETY: a sigset filled in place, then handed to sigprocmask and signalfd; the
        // descriptor signalfd returns is new, so the OwnedFd is its only owner.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in signals {
                libc::sigaddset(&mut set, signal.raw());
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd(OwnedFd::from_raw_fd(fd)))
        }
    }

    /// The signals pending on the descriptor (numbers, so that none is dropped unseen).
    pub fn drain(&self) -> Vec<i32> {
        const SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();
        let mut out = Vec::new();
        loop {
            let mut info = [0u8; SIZE];
            match rustix::io::read(&self.0, &mut info) {
                // `ssi_signo`, a u32, comes first.
                Ok(SIZE) => {
                    out.push(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32)
                }
                _ => return out,
            }
        }
    }
}

#[cfg(target_os = "linux")]
impl AsFd for SignalFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn every_signal_round_trips_through_its_number() {
        for signal in Signal::ALL {
            assert_eq!(Signal::from_raw(signal.raw()), Some(signal));
            assert_eq!(signal.rustix().as_raw(), signal.raw());
        }
        assert_eq!(Signal::from_raw(0), None);
    }
}
