//! Tool and hook commands: run in sessions of their own, stopped by an interrupt or a
//! timeout as a whole process group, their output read back.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::inbox::{Abort, Inbox, POLL};

/// `sh -c command` in `cwd`, in a session of its own, as the real CLI runs tool and hook
/// commands; its stdin, stdout and stderr are null unless the caller says otherwise.
pub fn shell(command: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    in_own_session(&mut cmd);
    cmd
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub enum Ended {
    Exited(Output),
    TimedOut,
    Aborted(Abort),
}

/// Runs `cmd` to its end with `input` on its stdin, unless an interrupt or SIGINT arrives in
/// `inbox` or `timeout` passes first: then its whole process group is killed, as the real CLI
/// kills a tool's or a hook's.
pub fn run_to_end(
    mut cmd: Command,
    input: Option<String>,
    timeout: Option<Duration>,
    inbox: &mut Inbox,
) -> io::Result<Ended> {
    // Files rather than pipes: a command that leaves a background process behind would keep a
    // pipe open and hang us.
    let mut stdout = tempfile::tempfile()?;
    let mut stderr = tempfile::tempfile()?;
    cmd.stdout(stdout.try_clone()?).stderr(stderr.try_clone()?);
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn()?;
    // A thread, so that a command that never reads its stdin cannot block us; one that exits
    // without reading it is fine, as in the real CLI.
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        thread::spawn(move || stdin.write_all(input.as_bytes()));
    }
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let abort = inbox.poll(POLL);
        if abort.is_some() || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            kill_group(child.id());
            child.wait()?;
            return Ok(abort.map_or(Ended::TimedOut, Ended::Aborted));
        }
    };
    Ok(Ended::Exited(Output {
        code: exit_code(status),
        stdout: read_back(&mut stdout)?,
        stderr: read_back(&mut stderr)?,
    }))
}

/// The real CLI starts tool commands with setsid, so killing its process group misses them.
pub fn in_own_session(cmd: &mut Command) -> &mut Command {
    // SAFETY: setsid is async-signal-safe and only changes the forked child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    }
}

pub fn kill_group(leader: u32) {
    let Ok(pgid) = libc::pid_t::try_from(leader) else {
        return;
    };
    // SAFETY: kill has no memory effects; the group is the session our child leads.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or_default())
}

fn read_back(file: &mut File) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn write_file(path: &Path, content: &str) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content)
}
