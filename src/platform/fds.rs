//! The keeper's descriptors: the lifeline it was handed by number, the stdio it lets go of,
//! and the wait for either the lifeline or a signal.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The read end of the lifeline pipe, adopted from the descriptor number the supervisor
/// passed on the command line.
pub struct Lifeline(OwnedFd);

impl Lifeline {
    /// Takes ownership of `fd` and makes it close-on-exec, so that nothing the keeper starts
    /// holds it.
    #[allow(unsafe_code)]
    pub fn adopt(fd: RawFd) -> io::Result<Lifeline> {
        if fd < 0 {
            return Err(rustix::io::Errno::BADF.into());
        }
        // SAFETY: borrowed for one fcntl that only asks whether `fd` is open; the borrow ends
        // with the call.
        rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) })?;
        // SAFETY: `cms keeper` is started only by the supervisor (session::process), with the
        // lifeline open at this number and left open across exec for it; it is open (checked
        // above), and nothing else in this process knows it, so this is its only owner.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
        Ok(Lifeline(owned))
    }

    /// True when the supervisor's end is gone (end of file or an error); data is ignored.
    pub fn closed(&self) -> bool {
        let mut buf = [0u8; 64];
        match rustix::io::read(&self.0, &mut buf) {
            Ok(n) => n == 0,
            Err(err) => err != rustix::io::Errno::INTR,
        }
    }
}

impl AsFd for Lifeline {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Waits until `first` or `second` is readable (or hung up); which of them is.
pub fn wait_readable(first: &impl AsFd, second: &impl AsFd) -> io::Result<(bool, bool)> {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [
        PollFd::new(first, PollFlags::IN),
        PollFd::new(second, PollFlags::IN),
    ];
    rustix::event::poll(&mut fds, None)?;
    Ok((!fds[0].revents().is_empty(), !fds[1].revents().is_empty()))
}

/// Points this process's stdin and stdout at `/dev/null`; stderr stays.
pub fn release_stdio() {
    use rustix::fs::{Mode, OFlags};
    if let Ok(null) = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}
