//! Running the `git` executable: the one place that builds a `git` command line.
//!
//! Every call gets `-C <dir>`, a null stdin, no terminal prompts, and an environment cleaned
//! of the variables git sets for hooks (`GIT_DIR`, `GIT_INDEX_FILE`, ...): cms is meant to run
//! inside git hooks, and those variables would otherwise point our calls at the wrong repository
//! or index.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::GitError;

/// The oldest git whose `worktree add --lock --reason`, `commit --trailer` and
/// `read-tree -m -u -n` behave as cms expects.
pub const MIN_GIT_VERSION: (u32, u32) = (2, 35);
const MIN_GIT_VERSION_TEXT: &str = "2.35";

/// Variables git exports to hooks and aliases that redirect repository discovery.
pub const REPO_ENV_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_PREFIX",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
];

/// A `git` command rooted at `dir`, ready for arguments.
pub fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    cmd.stdin(Stdio::null());
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    for var in REPO_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a prepared command, returning stdout on success and the stderr in the error.
pub fn run(mut cmd: Command) -> Result<Vec<u8>, GitError> {
    check_version()?;
    let output = output(&mut cmd)?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(command_error(&cmd, &output))
    }
}

/// Runs `git -C dir args...` and returns its stdout as text, trimmed of the final newline.
pub fn run_text<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = git(dir);
    cmd.args(args);
    let out = run(cmd)?;
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

fn output(cmd: &mut Command) -> Result<Output, GitError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => GitError::GitNotFound,
        _ => GitError::Io(err),
    })
}

pub fn command_error(cmd: &Command, output: &Output) -> GitError {
    // Skip `-C <dir>` and the `-c` settings every task's command carries: noise in a
    // one-line error.
    let all: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut rest = &all[..];
    while let [flag, _, tail @ ..] = rest
        && (flag == "-C" || flag == "-c")
    {
        rest = tail;
    }
    let args = rest.to_vec();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    GitError::Command {
        args: args.join(" "),
        stderr: if stderr.is_empty() {
            format!("exit status {}", output.status)
        } else {
            stderr
        },
    }
}

/// Checks once per process that git is installed and new enough.
pub fn check_version() -> Result<(), GitError> {
    version().map(drop)
}

/// What `git --version` printed (`git version 2.47.3`), once git is known to be new enough.
pub fn version() -> Result<String, GitError> {
    static CHECKED: OnceLock<Result<String, (bool, String)>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let out = Command::new("git")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|_| (true, String::new()))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match parse_version(&text) {
            Some(v) if v >= MIN_GIT_VERSION => Ok(text),
            _ => Err((false, text)),
        }
    });
    match result {
        Ok(text) => Ok(text.clone()),
        Err((true, _)) => Err(GitError::GitNotFound),
        Err((false, found)) => Err(GitError::GitTooOld {
            found: found.clone(),
            required: MIN_GIT_VERSION_TEXT,
        }),
    }
}

/// Parses `git version 2.47.3` (and vendor suffixes such as `(Apple Git-146)`).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let version = text.strip_prefix("git version ")?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn version_parsing_handles_vendor_suffixes() {
        assert_eq!(parse_version("git version 2.47.3"), Some((2, 47)));
        assert_eq!(
            parse_version("git version 2.39.5 (Apple Git-154)"),
            Some((2, 39))
        );
        assert_eq!(parse_version("git version 2.45.1.windows.1"), Some((2, 45)));
        assert_eq!(parse_version("hg 6"), None);
    }
}
