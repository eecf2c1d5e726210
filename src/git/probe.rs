//! Whether a remote answers: `git ls-remote` bounded in time, for `cms doctor`'s runner
//! checks (a remote behind an ssh host that never answers must not hang doctor).

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::cmd::git;

/// Runs `git ls-remote URL refs/cms/` from `dir` (only cms's refs, so a large remote sends
/// little): `Ok` when the remote answered within `limit`, else git's last line of complaint.
/// It uses the user's ssh configuration and credential helpers, as every transfer does; git
/// prompts nobody (no terminal prompt, no stdin).
pub fn remote_answers(dir: &Path, url: &str, limit: Duration) -> Result<(), String> {
    let mut cmd = git(dir);
    cmd.args(["ls-remote", "--", url, "refs/cms/"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(25)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} seconds", limit.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Err(stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map_or_else(
            || format!("git ls-remote exited with {status}"),
            str::to_owned,
        ))
}
