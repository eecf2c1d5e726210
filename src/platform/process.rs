//! Processes: who cms runs as, signals sent by pid or through a pidfd, and the keeper's
//! subreaping and waiting.

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::OwnedFd;
#[cfg(target_os = "linux")]
use std::time::Duration;

use rustix::process::Pid;

use super::Signal;

/// The real user id.
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Whether cms runs as root (by effective user id).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn pid(pid: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(pid).ok()?)
}

/// Sends `signal` to `pid` with kill(2). Only for a pid that cannot have been reused: an
/// unreaped child of this process; anything else goes through [`Pidfd`]. False if it failed.
pub fn kill(target: u32, signal: Signal) -> bool {
    pid(target).is_some_and(|p| rustix::process::kill_process(p, signal.rustix()).is_ok())
}

/// Sends `signal` to the process group `group` (killpg(2)); false if it failed.
#[cfg(not(target_os = "linux"))]
pub fn kill_group(group: u32, signal: Signal) -> bool {
    pid(group).is_some_and(|p| rustix::process::kill_process_group(p, signal.rustix()).is_ok())
}

/// Whether a process with this pid exists (kill(2) with signal 0), for where `/proc` is missing.
pub fn exists(target: u32) -> bool {
    pid(target).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// Kills this process at once: SIGKILL, no unwinding, no cleanup (the tests' fault points).
#[cfg(feature = "test-fakes")]
pub fn kill_self() {
    let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::Kill.rustix());
}

/// A pidfd: it names one process for as long as it is open, so a signal sent through it
/// reaches that process or, once it has been reaped, nobody.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

#[cfg(target_os = "linux")]
impl Pidfd {
    /// Opens a pidfd on `pid`. `Ok(None)`: no such process. `Err` with `ENOSYS`: the kernel
    /// has no pidfds (before Linux 5.3).
    pub fn open(target: u32) -> io::Result<Option<Pidfd>> {
        let Some(p) = pid(target) else {
            return Ok(None);
        };
        match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => Ok(Some(Pidfd(fd))),
            Err(rustix::io::Errno::SRCH) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Sends `signal`; false when the process has already been reaped.
    pub fn signal(&self, signal: Signal) -> bool {
        rustix::process::pidfd_send_signal(&self.0, signal.rustix()).is_ok()
    }

    /// Waits up to `timeout` for the process to exit (a pidfd becomes readable then).
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        let timeout = Timespec::try_from(timeout).ok();
        rustix::event::poll(&mut fds, timeout.as_ref()).is_ok_and(|ready| ready > 0)
    }
}

/// Makes this process a child subreaper: orphans among its descendants become its children
/// instead of init's.
#[cfg(target_os = "linux")]
pub fn become_subreaper() -> io::Result<()> {
    // prctl(2) takes a flag; rustix takes it as an optional pid, any pid meaning "on".
    Ok(rustix::process::set_child_subreaper(Some(
        rustix::process::getpid(),
    ))?)
}

/// Waits for `child` to end and reaps it.
pub fn reap(child: u32) {
    if let Some(p) = pid(child) {
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    }
}

/// Reaps one child that has ended, if any has, without waiting: its pid and raw wait status.
pub fn reap_any_ended() -> Option<(u32, i32)> {
    let (p, status) = rustix::process::wait(rustix::process::WaitOptions::NOHANG).ok()??;
    Some((p.as_raw_pid() as u32, status.as_raw()))
}

/// Waits for any child to end and reaps it: its pid and raw wait status. `ECHILD`: there is
/// none left.
pub fn reap_any() -> io::Result<(u32, i32)> {
    match rustix::process::wait(rustix::process::WaitOptions::empty())? {
        Some((p, status)) => Ok((p.as_raw_pid() as u32, status.as_raw())),
        None => Err(io::Error::from(io::ErrorKind::WouldBlock)),
    }
}
