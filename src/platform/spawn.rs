//! What a child does between fork and exec, the only place cms runs code there: its own
//! session, a descriptor kept open, the keeper's watch on its parent.
//!
//! Each closure below runs in the forked child, where only async-signal-safe calls are
//! allowed: rustix's calls are plain syscalls that neither allocate nor lock.

#[cfg(target_os = "linux")]
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Starts `cmd`'s child in a new session (setsid), with no controlling terminal: closing the
/// user's shell or terminal does not reach it.
#[allow(unsafe_code)]
pub fn in_new_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and only affects the child.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
}

/// Leaves `fd` open in `cmd`'s child (it is close-on-exec here, so no other child gets it).
#[allow(unsafe_code)]
pub fn keep_open(cmd: &mut Command, fd: RawFd) {
    // SAFETY: fcntl is async-signal-safe and changes only the child's copy of the fd, which
    // the caller keeps open until the child has been spawned.
    unsafe {
        cmd.pre_exec(move || {
            rustix::io::fcntl_setfd(
                std::os::fd::BorrowedFd::borrow_raw(fd),
                rustix::io::FdFlags::empty(),
            )?;
            Ok(())
        });
    }
}

/// Sets up the keeper's child: SIGKILLed when the keeper dies (it is single-threaded, so its
/// one thread is the parent thread `PR_SET_PDEATHSIG` watches), gone at once if the keeper
/// already died, with no signal blocked, and with `keep_fd` open as `at`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn as_keeper_child(cmd: &mut Command, keeper: u32, keep_fd: Option<RawFd>, at: RawFd) {
    // SAFETY: prctl, getppid, _exit, sigemptyset, pthread_sigmask, fcntl and dup2 are
    // async-signal-safe and touch only the child; `keep_fd` stays open in the keeper until
    // the child has been spawned.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid().map(|p| p.as_raw_pid() as u32) != Some(keeper) {
                libc::_exit(137);
            }
            // std already resets the mask in the child; this does not depend on it.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if let Some(fd) = keep_fd {
                let kept = if fd == at {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, at)
                };
                if kept < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
