//! Starting claude as a child process, and ending it with every process it started.
//!
//! claude runs in its own process group so the terminal's Ctrl-C reaches only cms, which then
//! interrupts the session through the protocol. Bash tool commands run in sessions of their
//! own (setsid), so killing claude's group does not reach them: ending a session walks the
//! process tree by parent pid and kills every descendant.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::SessionError;
use crate::store::Supervisor;

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
}

pub fn spawn(spec: Spawn<'_>) -> Result<Child, SessionError> {
    let mut cmd = Command::new(spec.bin);
    cmd.args(&spec.args)
        .current_dir(spec.cwd)
        // A pipe, never a file or /dev/null: stream-json input from a regular file makes claude
        // print nothing and exit 0.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // Hook-exported git variables would send the agent's git commands to the user's repository
    // instead of the task's worktree.
    for var in crate::git::REPO_ENV_VARS {
        cmd.env_remove(var);
    }
    for (key, value) in spec.env {
        cmd.env(key, value);
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        cmd.pre_exec(|| {
            // If cms dies, so does claude: a session never runs unsupervised.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| SessionError::Spawn {
        bin: spec.bin.to_owned(),
        source,
    })
}

/// Kills `pid` and every process descending from it, children first seen first killed, so no
/// tool command survives its session.
pub fn kill_tree(pid: u32) {
    let mut victims = vec![pid];
    let mut i = 0;
    while i < victims.len() {
        let parent = victims[i];
        victims.extend(children_of(parent));
        i += 1;
    }
    for victim in victims {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(victim as libc::pid_t, libc::SIGKILL);
        }
    }
}

#[cfg(target_os = "linux")]
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| proc_stat(*candidate).is_some_and(|s| s.ppid == pid))
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn children_of(_pid: u32) -> Vec<u32> {
    Vec::new()
}

struct ProcStat {
    ppid: u32,
    start_time: u64,
}

/// Reads `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so fields
/// are counted from the last `)`.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... starttime is field 22 of the line, index 19 here.
    Some(ProcStat {
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Identifies this process as a task's supervisor.
pub fn current_supervisor() -> Supervisor {
    let pid = std::process::id();
    Supervisor {
        pid,
        start_time: proc_stat(pid).map_or(0, |s| s.start_time),
    }
}

/// Whether a recorded supervisor is still running (and is the same process, not a reused pid).
pub fn supervisor_alive(supervisor: &Supervisor) -> bool {
    match proc_stat(supervisor.pid) {
        Some(stat) => supervisor.start_time == 0 || stat.start_time == supervisor.start_time,
        // Where /proc is missing, fall back to asking the kernel whether the pid exists.
        None if !Path::new("/proc/self/stat").exists() => {
            // SAFETY: signal 0 only checks for existence.
            unsafe { libc::kill(supervisor.pid as libc::pid_t, 0) == 0 }
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
