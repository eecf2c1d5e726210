//! Starting claude as a child process, and ending it with every process it started.
//!
//! On Linux claude runs under a keeper (`cms keeper`, see [`super::keeper`]): a child
//! subreaper that kills and reaps everything the session started when claude exits, when the
//! supervisor closes the lifeline pipe (its way to kill the session), or when the supervisor
//! dies. Every process of the session also carries `CMS_SESSION_TOKEN`, stored in the task's
//! record, so that whatever escaped a keeper that was itself killed is found by that token:
//! by the supervisor once the keeper is gone, or by the next cms command that finds the
//! supervisor dead. Elsewhere claude is started directly and only its process group can be
//! killed.
//!
//! claude (and the keeper) run in their own process group so the terminal's Ctrl-C reaches
//! only cms, which then interrupts the session through the protocol. An interactive session
//! (`cms attach`, [`spawn_interactive`]) is the exception: claude reads the terminal, so it
//! must be in the terminal's foreground process group, and the keeper and claude stay in
//! cms's own group, with the terminal as their stdio.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::SessionError;
use super::pids;
use crate::platform::{self, Signal};
use crate::vocab::Supervisor;

/// The variable that marks every process of one supervisor's session.
pub const TOKEN_VAR: &str = "CMS_SESSION_TOKEN";

/// Finds the claude executable: a path, or a name looked up on PATH.
pub fn find_claude(bin: &str) -> Result<PathBuf, SessionError> {
    let not_found = || SessionError::ClaudeNotFound {
        bin: bin.to_owned(),
    };
    if bin.contains('/') {
        let path = PathBuf::from(bin);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(not_found())
        };
    }
    which::which(bin).map_err(|_| not_found())
}

/// Everything needed to start one claude process.
pub struct Spawn<'a> {
    pub bin: &'a Path,
    pub args: Vec<String>,
    pub cwd: &'a Path,
    /// Extra `CMS_*` variables for claude and its tools.
    pub env: Vec<(&'static str, String)>,
    /// Marks every process of the session (see [`new_token`]).
    pub token: u64,
    /// The command claude runs inside (the outer boundary, see
    /// [`crate::safety::boundary::command`]), or empty.
    pub boundary: Vec<std::ffi::OsString>,
}

/// A started session: the process cms waits for (the keeper on Linux, claude elsewhere) and
/// the means to end it with everything it started.
pub struct Claude {
    pub child: Child,
    /// The write end of the keeper's lifeline: dropping it kills the session.
    #[cfg(target_os = "linux")]
    lifeline: Option<std::io::PipeWriter>,
    token: u64,
}

impl Claude {
    /// Kills claude and every process of its session, now. Idempotent.
    pub fn kill_tree(&mut self) {
        #[cfg(target_os = "linux")]
        {
            // The keeper sees the end of file, kills the whole tree, reaps it, and exits.
            self.lifeline = None;
        }
        #[cfg(not(target_os = "linux"))]
        if let Some(pid) = self.child.id() {
            // claude is not reaped yet (tokio forgets the pid when it reaps), so its process
            // group still exists and its id cannot name anyone else's group.
            platform::process::kill_group(pid, Signal::Kill);
            let _ = self.child.start_kill();
        }
    }

    /// Asks claude to interrupt what it is doing, as a Ctrl-C at its terminal would: SIGINT,
    /// through the keeper (which ignores the terminal's own Ctrl-C, see [`super::keeper`]).
    pub fn interrupt(&self) {
        let Some(pid) = self.child.id() else {
            return;
        };
        // The keeper on Linux, claude itself elsewhere: our own unreaped child either way
        // (tokio forgets the pid once it reaps), so the pid cannot name another process.
        #[cfg(target_os = "linux")]
        let signal = Signal::Usr1;
        #[cfg(not(target_os = "linux"))]
        let signal = Signal::Int;
        platform::process::kill(pid, signal);
    }

    /// Once the waited-for process has exited: kills any process still carrying the session's
    /// token (they escaped a keeper that was killed). Returns how many.
    pub fn sweep(&self) -> usize {
        kill_session(self.token)
    }
}

pub fn spawn(spec: Spawn<'_>) -> Result<Claude, SessionError> {
    spawn_with(spec, false)
}

/// Starts claude at the terminal: the terminal as its stdin, stdout and stderr, in the
/// terminal's foreground process group (cms's own), so it can read keys and draw without
/// SIGTTIN or SIGTTOU. Still under the keeper, which then leaves the terminal's Ctrl-C to
/// claude.
pub fn spawn_interactive(spec: Spawn<'_>) -> Result<Claude, SessionError> {
    spawn_with(spec, true)
}

fn spawn_with(spec: Spawn<'_>, interactive: bool) -> Result<Claude, SessionError> {
    let spawn_error = |source| SessionError::Spawn {
        bin: spec.bin.to_owned(),
        source,
    };
    #[cfg(target_os = "linux")]
    let (mut cmd, lifeline) = {
        use std::os::fd::AsRawFd;
        let exe = std::env::current_exe().map_err(spawn_error)?;
        // Both ends are close-on-exec: only the keeper gets the read end (below), and no
        // other process cms starts ever holds the write end, so its end of file means exactly
        // "the supervisor let go or died".
        let (low, writer) = std::io::pipe().map_err(spawn_error)?;
        // A duplicate is numbered 3 or above: if cms was started with stdin closed, the pipe
        // may be fd 0, which the child's stdio setup would replace.
        let reader = low.try_clone().map_err(spawn_error)?;
        drop(low);
        let fd = reader.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg("keeper").arg("--lifeline-fd").arg(fd.to_string());
        if interactive {
            cmd.arg("--interactive");
        }
        // The keeper stays outside the boundary, so that it sees and kills every process of
        // the session (the boundary shares its PID namespace).
        cmd.arg("--")
            .args(&spec.boundary)
            .arg(spec.bin)
            .args(&spec.args);
        platform::spawn::keep_open(cmd.as_std_mut(), fd);
        // The reader stays open here until the keeper has been spawned with it.
        (cmd, (reader, writer))
    };
    #[cfg(not(target_os = "linux"))]
    let mut cmd = {
        let mut cmd = match spec.boundary.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(spec.bin);
                cmd
            }
            None => Command::new(spec.bin),
        };
        cmd.args(&spec.args).kill_on_drop(true);
        cmd
    };
    cmd.current_dir(spec.cwd)
        .env(TOKEN_VAR, token_value(spec.token));
    if interactive {
        cmd.stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
    } else {
        // A pipe, never a file or /dev/null: stream-json input from a regular file makes
        // claude print nothing and exit 0.
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
    }
    // Hook-exported git variables would send the agent's git commands to the user's repository
    // instead of the task's worktree.
    for var in crate::git::REPO_ENV_VARS {
        cmd.env_remove(var);
    }
    for (key, value) in spec.env {
        cmd.env(key, value);
    }
    let child = cmd.spawn().map_err(spawn_error)?;
    #[cfg(target_os = "linux")]
    {
        let (reader, writer) = lifeline;
        drop(reader);
        Ok(Claude {
            child,
            lifeline: Some(writer),
            token: spec.token,
        })
    }
    #[cfg(not(target_os = "linux"))]
    Ok(Claude {
        child,
        token: spec.token,
    })
}

/// A fresh token for one supervisor's session: random, never 0 (0 means "none" in records
/// written before tokens existed).
pub fn new_token() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let token = match random {
        Ok(()) => u64::from_le_bytes(bytes),
        // Unique enough to tell sessions apart, which is all a token is for.
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    };
    token.max(1)
}

fn token_value(token: u64) -> String {
    format!("{token:016x}")
}

/// Kills every process still carrying this session token (none for token 0). Signals go
/// through pidfds after checking the token again, so a reused pid is never hit; without
/// pidfds (not Linux, or Linux before 5.3) nothing is killed.
pub fn kill_session(token: u64) -> usize {
    if token == 0 {
        return 0;
    }
    pids::kill_tagged(&format!("{TOKEN_VAR}={}", token_value(token)))
}

/// Identifies this process as a task's supervisor, with a fresh token for its session.
pub fn current_supervisor() -> Supervisor {
    let pid = std::process::id();
    Supervisor {
        pid,
        start_time: pids::stat(pid).map_or(0, |s| s.start_time),
        token: new_token(),
    }
}

/// Sends `signal` to a task's supervisor, pinned by a pidfd and checked by its start time so a
/// reused pid is never signalled. False when the supervisor is gone (or is not that process).
pub fn signal_supervisor(supervisor: &Supervisor, signal: Signal) -> bool {
    #[cfg(target_os = "linux")]
    {
        let same =
            |pid: u32| pids::stat(pid).is_some_and(|s| s.start_time == supervisor.start_time);
        match pids::pin(supervisor.pid, same) {
            Ok(Some(pinned)) => return pinned.signal(signal),
            Ok(None) => return false,
            // No pidfds (Linux before 5.3): the start-time check below is the best there is.
            Err(_) => {}
        }
    }
    supervisor_alive(supervisor) && platform::process::kill(supervisor.pid, signal)
}

/// Whether a recorded supervisor is still running (and is the same process, not a reused pid).
pub fn supervisor_alive(supervisor: &Supervisor) -> bool {
    match pids::stat(supervisor.pid) {
        // A zombie has ended: a killed detached supervisor waits there until PID 1 reaps it.
        Some(stat) => {
            !stat.zombie && (supervisor.start_time == 0 || stat.start_time == supervisor.start_time)
        }
        // Where /proc is missing, fall back to asking the kernel whether the pid exists.
        None if !Path::new("/proc/self/stat").exists() => platform::process::exists(supervisor.pid),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{Supervisor, current_supervisor, find_claude, pids, supervisor_alive};

    #[test]
    fn a_supervisor_that_exited_but_was_not_reaped_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not waited for yet: once it has exited it stays a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !pids::stat(pid).is_some_and(|s| s.zombie) {
            assert!(std::time::Instant::now() < deadline, "true never exited");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let zombie = Supervisor {
            pid,
            start_time: pids::stat(pid).unwrap().start_time,
            token: 1,
        };
        assert!(!supervisor_alive(&zombie));
        child.wait().unwrap();
    }

    #[test]
    fn this_process_is_a_live_supervisor_and_a_reused_pid_is_not() {
        let me = current_supervisor();
        assert!(supervisor_alive(&me));
        let impostor = Supervisor {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!supervisor_alive(&impostor));
    }

    #[test]
    fn missing_claude_is_reported_by_name() {
        let err = find_claude("definitely-not-a-claude-binary").unwrap_err();
        assert!(err.to_string().contains("definitely-not-a-claude-binary"));
        assert!(find_claude("/nonexistent/claude").is_err());
    }
}
