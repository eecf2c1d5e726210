//! The project's own shell commands that cms runs for the user (`[merge] check`, `[worktree]
//! setup`): `sh -c` in a folder, output kept for the error when one fails.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::git;

/// How many of a failing command's last lines are shown.
const TAIL_LINES: usize = 20;

/// Runs `command` with `sh -c` in `dir` with `env` added; on failure, its exit code (none when
/// it could not run or was killed) and the tail of its output (stdout and stderr as they
/// interleaved).
pub fn run(dir: &Path, command: &str, env: &[(&str, String)]) -> Result<(), (Option<i32>, String)> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null());
    // The project's own command, not a git hook of ours: git's hook variables would point it
    // at another repository or index.
    for var in git::REPO_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let (mut reader, writer) = std::io::pipe().map_err(|err| (None, err.to_string()))?;
    let writer2 = writer.try_clone().map_err(|err| (None, err.to_string()))?;
    cmd.stdout(writer).stderr(writer2);
    let mut child = cmd.spawn().map_err(|err| (None, err.to_string()))?;
    // The parent's copies of the pipe's write end must close, or the read never ends.
    drop(cmd);
    let mut output = Vec::new();
    let _ = reader.read_to_end(&mut output);
    let status = child.wait().map_err(|err| (None, err.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err((status.code(), tail(&String::from_utf8_lossy(&output))))
    }
}

/// The last lines of `text`.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}
