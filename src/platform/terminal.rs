//! The terminal on stdin: its settings saved and put back, and whether it hung up.

use rustix::termios::{OptionalActions, Termios};

/// The terminal's settings as they were when saved; none if stdin is no terminal.
pub struct SavedTerminal(Option<Termios>);

impl SavedTerminal {
    pub fn save() -> SavedTerminal {
        SavedTerminal(rustix::termios::tcgetattr(std::io::stdin()).ok())
    }

    /// Puts the saved settings back, once output written so far has drained. From outside
    /// the terminal's foreground process group this raises SIGTTOU.
    pub fn restore(&self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(std::io::stdin(), OptionalActions::Drain, saved);
        }
    }
}

/// Whether the terminal on stdin hung up (its window closed, its tmux server killed), asked
/// without waiting and without consuming input.
pub fn stdin_hung_up() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stdin = std::io::stdin();
    // With no events asked for, poll reports only a hangup or an error.
    let mut fds = [PollFd::new(&stdin, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now)).is_ok_and(|ready| ready > 0)
        && fds[0]
            .revents()
            .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
}
