//! The outer boundary: one bubblewrap around a sandboxed session's claude, so that claude and
//! everything it starts (Write and Edit, hooks, MCP servers, subagents, Bash and whatever they
//! spawn) can write only the task's worktree, its temp dir, the parts of the git common dir the
//! task's own commits need, and claude's own session state.
//!
//! Claude Code's own Bash sandbox (see [`super::sandbox`]) still starts inside it (nested user
//! namespaces, checked with the real CLI as root and as an unprivileged user) and keeps giving
//! Bash its network proxy; the boundary shares the host's network, since claude itself talks
//! to the API. It exists only on Linux: on macOS a process under a Seatbelt profile may not
//! apply another, so Claude Code's per-command `sandbox-exec` would fail inside an outer one
//! (see docs/architecture.md); [`command`] returns nothing there and only Bash is confined.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `CMS_BOUNDARY`: `off` leaves a sandboxed session with Claude Code's Bash sandbox alone
/// (for machines where bubblewrap cannot nest, and for the scripted fake claude, whose
/// escapes test what cms detects rather than what it prevents).
pub const ENV: &str = "CMS_BOUNDARY";

/// The folders of claude's config dir that it writes during a session: transcripts, session
/// markers, todos, shell snapshots, file history, backups of its config, debug logs. Made if
/// missing (claude makes them anyway) and bound writable; everything else there stays
/// read-only, in particular what would run code in the user's own sessions later
/// (`settings.json`, `agents/`, `commands/`, `skills/`, `hooks/`, `plugins/`, the user-scope
/// MCP servers in `.claude.json`).
pub const CLAUDE_STATE_DIRS: &[&str] = &[
    "backups",
    "debug",
    "file-history",
    "paste-cache",
    "plans",
    "projects",
    "session-env",
    "sessions",
    "shell-snapshots",
    "statsig",
    "todos",
];

/// The folder, inside the session's temp dir, where the write guard (a hook, so inside the
/// boundary, which keeps the store read-only) leaves what it blocked for the supervisor to
/// collect. Claude Code's Bash sandbox is denied it too.
pub const GUARD_DIR: &str = "cms-guard";

/// The file in [`GUARD_DIR`] that holds one blocked write per line.
pub const BLOCKED_FILE: &str = "blocked.jsonl";

/// Whether sandboxed sessions get the boundary: on unless `CMS_BOUNDARY=off`, Linux only.
pub fn enabled() -> bool {
    cfg!(target_os = "linux") && std::env::var(ENV).map_or(true, |v| v != "off")
}

/// claude's config dir: `CLAUDE_CONFIG_DIR`, else `~/.claude`.
pub fn claude_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".claude"))
}

/// What a session may write, besides the host's `/dev` and `/proc` views bubblewrap makes.
pub struct Writable {
    /// Bound read-write, in this order.
    pub paths: Vec<PathBuf>,
    /// Bound read-only over the writable ones (inside the git common dir).
    pub read_only: Vec<PathBuf>,
}

/// The writable places of a task's session: its worktree, its temp dir, the git common dir
/// less `git_deny` (the same list Claude Code's Bash sandbox gets), and claude's state folders
/// (made here if missing, so that they can be bound).
pub fn writable(worktree: &Path, temp: &Path, common_dir: &Path, git_deny: &[PathBuf]) -> Writable {
    let mut paths = vec![worktree.to_owned(), temp.to_owned(), common_dir.to_owned()];
    if let Some(config) = claude_config_dir() {
        for name in CLAUDE_STATE_DIRS {
            let dir = config.join(name);
            if std::fs::create_dir_all(&dir).is_ok() {
                paths.push(dir);
            }
        }
        // Logged-in users' tokens are refreshed in place.
        let credentials = config.join(".credentials.json");
        if credentials.is_file() {
            paths.push(credentials);
        }
    }
    Writable {
        paths,
        read_only: git_deny.to_vec(),
    }
}

/// The command that runs a program inside the boundary: `bwrap`, its arguments and `--`,
/// to be followed by the program and its arguments. Empty where there is no boundary.
pub fn command(writable: &Writable) -> Vec<OsString> {
    if !cfg!(target_os = "linux") {
        return Vec::new();
    }
    let mut argv: Vec<OsString> = [
        "bwrap",
        // Everything is visible and nothing is writable, unless bound again below.
        "--ro-bind",
        "/",
        "/",
        // A fresh /dev with only the harmless nodes (no disks), and /proc for claude and ps.
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        // claude goes with bwrap, whom the keeper kills first.
        "--die-with-parent",
        // Nothing inside sees, signals or ptraces the user's processes outside, which share
        // its uid; the keeper, outside, still sees every process inside by its host pid.
        "--unshare-pid",
    ]
    .map(OsString::from)
    .to_vec();
    argv.extend(unprivileged().iter().map(OsString::from));
    for path in &writable.paths {
        argv.extend(["--bind".into(), path.into(), path.into()]);
    }
    // A denied git path can vanish between listing and binding (another task's ref lock, a
    // ref being taken back), and a missing source would fail the whole session.
    for path in &writable.read_only {
        argv.extend(["--ro-bind-try".into(), path.into(), path.into()]);
    }
    argv.push("--".into());
    argv
}

/// What keeps the boundary from being undone from inside. Run by root, bubblewrap keeps
/// root's capabilities, and a process inside could remount `/` read-write (checked: it can);
/// so root is mapped to an ordinary uid in a user namespace of its own, without capabilities.
/// That also lets Claude Code's bwrap nest: as uid 0 without capabilities it takes the
/// privileged path and fails (`Creating new namespace failed: Operation not permitted`). The
/// files it makes still belong to root outside. Other users get a user namespace from
/// bubblewrap anyway, and no capabilities.
pub fn unprivileged() -> &'static [&'static str] {
    if is_root() {
        &[
            "--unshare-user",
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--cap-drop",
            "ALL",
        ]
    } else {
        &["--cap-drop", "ALL"]
    }
}

fn is_root() -> bool {
    crate::platform::process::is_root()
}

/// Whether Claude Code's Bash sandbox must be told it is nested (`enableWeakerNestedSandbox`):
/// under a boundary run by root, mounting a fresh /proc in the nested PID namespace is refused
/// (`bwrap: Can't mount proc on /newroot/proc: Operation not permitted`), and the weaker mode
/// binds the boundary's own /proc instead, which shows only the session's processes.
pub fn nested_bash_needs_weaker_sandbox() -> bool {
    enabled() && is_root()
}

/// Where the write guard of a session whose temp dir is `temp` records what it blocked.
pub fn blocked_file(temp: &Path) -> PathBuf {
    temp.join(GUARD_DIR).join(BLOCKED_FILE)
}

/// Makes the guard's folder, so the hook only appends.
pub fn prepare_guard_dir(temp: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(temp.join(GUARD_DIR))
}

/// What the guard recorded in `file`: one blocked write per line; lines that are not one (a
/// hook killed mid-write) are skipped.
pub fn read_blocked(file: &Path) -> Vec<crate::store::Blocked> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Writable, command};

    #[test]
    fn the_boundary_binds_the_task_writable_and_the_denied_git_paths_back_read_only() {
        let writable = Writable {
            paths: vec!["/w".into(), "/t".into(), "/g".into()],
            read_only: vec!["/g/cms".into()],
        };
        let argv: Vec<String> = command(&writable)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if !cfg!(target_os = "linux") {
            assert!(argv.is_empty());
            return;
        }
        let text = argv.join(" ");
        assert!(text.starts_with("bwrap --ro-bind / / "), "{text}");
        assert!(text.contains("--cap-drop ALL"), "{text}");
        assert!(
            text.ends_with("--bind /w /w --bind /t /t --bind /g /g --ro-bind-try /g/cms /g/cms --"),
            "{text}"
        );
        // No network namespace: claude reaches the API.
        assert!(!text.contains("--unshare-net"), "{text}");
    }
}
