//! Claude Code's Bash sandbox for a task: whether this machine can run it, and the settings
//! that confine a task's Bash to its worktree and its own temp dir.
//!
//! Claude Code (2.1.197) runs each Bash command under bubblewrap on Linux and Seatbelt on
//! macOS. It lets the command write its cwd (the worktree), its `$TMPDIR` and, because git needs
//! it, the repository's whole git common dir; everything else is a read-only file system. cms
//! takes the common dir back with `filesystem.denyWrite` wherever the task's own commits do not
//! need it (see [`git_deny_write`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::vocab::Preset;

/// `[safety] sandbox`, `CMS_SANDBOX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Sandboxed where the machine can, with a warning where it cannot.
    #[default]
    Auto,
    /// Refuse to start a task that could not be sandboxed.
    Required,
    /// Never sandboxed.
    Off,
}

impl SandboxMode {
    pub const EXPECTED: &str = "expected auto, required or off";

    pub fn parse(text: &str) -> Option<SandboxMode> {
        Some(match text {
            "auto" => SandboxMode::Auto,
            "required" => SandboxMode::Required,
            "off" => SandboxMode::Off,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Auto => "auto",
            SandboxMode::Required => "required",
            SandboxMode::Off => "off",
        }
    }
}

/// What to do about a machine without the sandbox.
pub const INSTALL_HINT: &str = "install bubblewrap and socat (apt-get install bubblewrap socat)";

/// Whether Claude Code's sandbox can run here; `Err` says why not, in one line.
pub fn availability() -> Result<(), String> {
    if cfg!(target_os = "macos") {
        // Seatbelt ships with macOS; Claude Code drives it through sandbox-exec.
        return match Path::new("/usr/bin/sandbox-exec").is_file() {
            true => Ok(()),
            false => Err("/usr/bin/sandbox-exec (Seatbelt) is missing".into()),
        };
    }
    if !cfg!(target_os = "linux") {
        return Err("Claude Code's sandbox runs only on Linux and macOS".into());
    }
    let bwrap =
        which::which("bwrap").map_err(|_| "bwrap (bubblewrap) is not on PATH".to_owned())?;
    which::which("socat").map_err(|_| "socat is not on PATH".to_owned())?;
    // bwrap on PATH is not enough: without user namespaces (some containers, hardened
    // kernels) it exists but cannot build a sandbox, and every Bash call would then fail.
    // With the outer boundary, Bash's sandbox is built inside another one, which needs
    // unprivileged user namespaces even as root (see `boundary::unprivileged`).
    let mut probe = Command::new(&bwrap);
    if super::boundary::enabled() {
        probe
            .args(super::boundary::unprivileged())
            // bwrap writes the nested namespace's uid map through a /proc of its own.
            .args([
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "--",
            ])
            .arg(&bwrap);
    }
    let probe = probe
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--unshare-net",
            "--unshare-pid",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|err| format!("{} cannot be run: {err}", bwrap.display()))?;
    if !probe.status.success() {
        let stderr = String::from_utf8_lossy(&probe.stderr);
        let why = stderr.lines().next().unwrap_or("no message").trim();
        let hint = match super::boundary::enabled() {
            true => " (inside the outer boundary; CMS_BOUNDARY=off runs without it)",
            false => "",
        };
        return Err(format!("bwrap cannot create a sandbox here{hint}: {why}"));
    }
    Ok(())
}

/// Dotfiles and folders Claude Code's sandbox mounts (as `/dev/null` or read-only) at the
/// top of the worktree so Bash cannot plant them. Inside the sandbox they exist and are not
/// regular files, so `git add -A` refuses them; the agent's git excludes them (see
/// [`agent_excludes`]). Outside the sandbox the CLI creates empty mount points for the ones
/// that do not exist while a Bash command runs and deletes them after; a session killed
/// meanwhile leaves them, which [`remove_leftover_placeholders`] takes away before cms
/// commits.
pub const PLACEHOLDERS: &[&str] = &[
    ".bash_profile",
    ".bashrc",
    ".claude",
    ".gitconfig",
    ".gitmodules",
    ".idea",
    ".mcp.json",
    ".profile",
    ".ripgreprc",
    ".vscode",
    ".zprofile",
    ".zshrc",
];

/// The placeholders inside `.claude/`: Claude Code 2.1.332 guards these one by one rather than
/// the whole folder (and keeps its own scratch folder `.cc-writes` there, left empty after
/// every run). Removed before `.claude` itself, which is then empty.
pub const CLAUDE_DIR_PLACEHOLDERS: &[&str] = &[
    ".claude/.cc-writes",
    ".claude/agents",
    ".claude/commands",
    ".claude/hooks",
    ".claude/launch.json",
    ".claude/loop.md",
    ".claude/output-styles",
    ".claude/routines",
    ".claude/scheduled_tasks.json",
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".claude/skills",
    ".claude/workflows",
];

/// Removes the empty mount points a killed sandboxed session left in `worktree`: the
/// placeholders that are empty files or folders and that git does not track (a real
/// `.vscode/` of the project, or one the agent wrote something into, stays).
pub fn remove_leftover_placeholders(task: &crate::git::TaskGit) {
    for name in CLAUDE_DIR_PLACEHOLDERS.iter().chain(PLACEHOLDERS) {
        let path = task.worktree().join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let empty = if meta.is_file() {
            meta.len() == 0
        } else if meta.is_dir() {
            std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_none())
        } else {
            false
        };
        if empty && !crate::git::state::is_tracked(task, name) {
            let _ = if meta.is_dir() {
                std::fs::remove_dir(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// The excludes file for the agent's own git commands: the user's global excludes (which
/// `core.excludesFile` would otherwise replace) plus the sandbox's placeholders, anchored at
/// the worktree's top.
pub fn agent_excludes(user_excludes: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(user) = user_excludes {
        text.push_str(user);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    text.push_str("# Claude Code's sandbox placeholders (cms)\n");
    for name in PLACEHOLDERS {
        text.push('/');
        text.push_str(name);
        text.push('\n');
    }
    text
}

/// The paths in the git common dir that a sandboxed task's Bash must not write, all existing
/// (Claude Code makes a denied path that does not exist unreadable, which would break git).
///
/// Left writable, because the task's own `git add`/`git commit` need them: the loose-object
/// folders of `objects/`, the folders of `refs/` and `logs/refs/` that lead to the task's branch
/// (a new ref is a new file there), the task's branch and its reflog, and the task's own
/// `worktrees/<admin>/`. Denied: cms's store, `config`, `hooks/`, `info/`, the main checkout's
/// `HEAD`, `index` and HEAD reflog, `packed-refs`, the packs (most of the history), every
/// other `worktrees/` entry, and every existing ref and reflog but the task's own (a read-only
/// mount cannot be unlinked or renamed over, so those can be neither moved nor deleted).
pub fn git_deny_write(common_dir: &Path, own_admin: Option<&Path>, branch: &str) -> Vec<PathBuf> {
    let mut deny: Vec<PathBuf> = [
        "cms",
        "config",
        "hooks",
        "info",
        "HEAD",
        "index",
        "packed-refs",
        "logs/HEAD",
        "objects/pack",
        "objects/info",
        // Submodules' git dirs are shared by every checkout, the user's included.
        "modules",
    ]
    .iter()
    .map(|name| common_dir.join(name))
    .collect();
    let own_admin = own_admin.map(crate::git::canonical);
    deny.extend(
        entries(&common_dir.join("worktrees"))
            .into_iter()
            .filter(|p| own_admin.as_ref() != Some(&crate::git::canonical(p))),
    );
    for root in ["refs", "logs/refs"] {
        deny.extend(beside(&common_dir.join(root), &format!("heads/{branch}")));
    }
    deny.retain(|p| p.symlink_metadata().is_ok());
    deny.sort();
    deny
}

/// Everything under `root` except `own` (a path relative to it) and the folders leading to it:
/// walks down only those folders and collects what sits beside them.
fn beside(root: &Path, own: &str) -> Vec<PathBuf> {
    let own = root.join(own);
    let leads: Vec<&Path> = own
        .ancestors()
        .take_while(|p| p.starts_with(root))
        .collect();
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in entries(&dir) {
            if entry == own {
                continue;
            }
            if leads.contains(&entry.as_path()) && entry.is_dir() {
                dirs.push(entry);
            } else {
                out.push(entry);
            }
        }
    }
    out
}

/// Makes the task's empty `config.worktree` exist for the whole task. While any task's Bash
/// runs, Claude Code's sandbox guards every worktree's missing `config.worktree` by creating an
/// empty file on the host as a mount point and deleting it afterwards, so other tasks would see
/// their git metadata appear and vanish; an existing file is only mounted read-only. Empty, it
/// means nothing to git. Best effort: without it the task still runs, only less quietly.
pub fn prepare_private_dir(private_dir: &Path) {
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(private_dir.join("config.worktree"));
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Claude Code's `sandbox` settings for a task. Off is said explicitly, so a user's own
/// settings cannot make a task sandboxed that cms records as unsandboxed.
///
/// `own_admin`, the task's admin dir, is named in `allowWrite` although it is writable anyway:
/// the CLI (2.1.197) bind-mounts each `allowWrite` path onto itself, and a mount point cannot
/// be renamed or removed (`EBUSY`), so the session cannot swap it for a look-alike or a
/// symlink. `denyWrite` on `<common>/worktrees` itself would stop new entries there too, but
/// the CLI mounts denials after allowances, which would make the admin dir read-only and the
/// task's own commits fail.
pub fn settings(
    sandboxed: bool,
    preset: Preset,
    deny_write: &[PathBuf],
    own_admin: Option<&Path>,
) -> Value {
    if !sandboxed {
        return json!({"enabled": false});
    }
    let deny: Vec<String> = deny_write.iter().map(|p| p.display().to_string()).collect();
    let allow: Vec<String> = own_admin.iter().map(|p| p.display().to_string()).collect();
    json!({
        "enabled": true,
        // A sandbox that cannot start fails the Bash call instead of running it unconfined.
        "failIfUnavailable": true,
        // Otherwise a Bash call with `dangerouslyDisableSandbox: true` runs unconfined.
        "allowUnsandboxedCommands": false,
        "autoAllowBashIfSandboxed": bash_auto_allowed(preset),
        "filesystem": {"denyWrite": deny, "allowWrite": allow},
        "enableWeakerNestedSandbox": super::boundary::nested_bash_needs_weaker_sandbox(),
    })
}

/// Widens a task's `sandbox` settings by the user's `[safety] writable` folders
/// (`filesystem.allowWrite`) and `hosts` (`network.allowedDomains`, which the CLI's proxy
/// lets Bash reach). cms's `denyWrite` still wins inside an allowed folder, and the callers
/// have already refused a folder overlapping the repository or its worktrees
/// (`Workspace::sandbox_writable`). A folder that does not exist is left out: the CLI would
/// make it a mount point.
pub fn widen(settings: &mut Value, writable: &[PathBuf], hosts: &[String]) {
    if settings["enabled"] != Value::Bool(true) {
        return;
    }
    let writable: Vec<String> = writable
        .iter()
        .filter(|p| p.is_dir())
        .map(|p| p.display().to_string())
        .collect();
    if !writable.is_empty() {
        // Added to what cms names there already (the task's own admin dir).
        let allow = &mut settings["filesystem"]["allowWrite"];
        if !allow.is_array() {
            *allow = json!([]);
        }
        let allow = allow.as_array_mut().expect("made an array above");
        allow.extend(writable.into_iter().map(Value::String));
    }
    if !hosts.is_empty() {
        settings["network"] = json!({"allowedDomains": hosts});
    }
}

/// Whether `host` is a domain the CLI's proxy can match: a name or a `*.` wildcard, no
/// scheme, port or path.
pub fn validate_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !name.starts_with('.')
        && !name.ends_with('.');
    match valid {
        true => Ok(()),
        false => Err(
            "expected a domain such as crates.io or *.npmjs.org (no scheme, port or path)".into(),
        ),
    }
}

/// Whether a sandboxed Bash runs without asking. Claude Code's default is yes, which would
/// hand Bash to the presets that must not change anything.
pub fn bash_auto_allowed(preset: Preset) -> bool {
    match preset {
        Preset::ReadOnly | Preset::Review | Preset::Plan => false,
        // Confined to the worktree and its temp dir, Bash can change no more than Edit and
        // Write can, which `edit` allows without asking.
        Preset::Edit | Preset::Full => true,
    }
}

/// The tool rule that lets a sandboxed task's Bash run without asking, when its preset gives
/// it Bash. `autoAllowBashIfSandboxed` alone is not enough: Claude Code still asks about a
/// command it cannot fully parse (a subshell, `$(...)`, some redirections), which without a
/// terminal ends the task `needs_input`. A rule naming the whole tool answers those too; the
/// command still runs inside the sandbox, and `allowUnsandboxedCommands: false` keeps
/// `dangerouslyDisableSandbox` from taking it out.
pub fn bash_rule(sandboxed: bool, preset: Preset) -> Option<&'static str> {
    // `full` needs no rule: it bypasses every prompt already.
    (sandboxed && preset == Preset::Edit).then_some("Bash")
}

/// Whether cms's policy lets this Bash call of a task run without asking the user: any
/// command of an `edit` task whose Bash is sandboxed, unless it asks to leave the sandbox.
/// `Err` is the reason a call is refused outright.
pub fn bash_policy(sandboxed: bool, preset: Preset, input: &Value) -> Option<Result<(), String>> {
    bash_rule(sandboxed, preset)?;
    if input["dangerouslyDisableSandbox"] == Value::Bool(true) {
        return Some(Err(UNSANDBOXED_REFUSAL.to_owned()));
    }
    Some(Ok(()))
}

/// What the agent is told when a Bash call asks to run outside the sandbox.
pub const UNSANDBOXED_REFUSAL: &str = "cms runs this task's Bash only inside the sandbox; \
     run the command without dangerouslyDisableSandbox, or tell the user what it needs";

/// The per-task temp dir a session's Bash writes to, named after the task and its session
/// token so that whoever finds the supervisor dead (the next cms command) can remove it
/// without trusting a path read from the record: only a `cms-<task>-<token>` folder in the
/// temp dir can ever be removed this way.
pub fn temp_dir_for(task: &str, token: u64) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cms-{task}-{token:016x}"))
}

#[cfg(test)]
mod tests {
    use super::{
        Preset, SandboxMode, UNSANDBOXED_REFUSAL, agent_excludes, bash_policy, bash_rule,
        git_deny_write, settings, validate_host, widen,
    };
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn modes_round_trip() {
        for name in ["auto", "required", "off"] {
            assert_eq!(SandboxMode::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(SandboxMode::parse("on"), None);
    }

    #[test]
    fn only_editing_presets_get_bash_without_asking() {
        for preset in [Preset::ReadOnly, Preset::Review, Preset::Plan] {
            assert_eq!(
                settings(true, preset, &[], None)["autoAllowBashIfSandboxed"],
                false
            );
        }
        for preset in [Preset::Edit, Preset::Full] {
            assert_eq!(
                settings(true, preset, &[], None)["autoAllowBashIfSandboxed"],
                true
            );
        }
        assert_eq!(
            settings(false, Preset::Full, &[], None),
            json!({"enabled": false})
        );
    }

    #[test]
    fn only_a_sandboxed_edit_task_runs_any_bash_command_and_never_outside_the_sandbox() {
        let command = json!({"command": "echo $(date) > out.txt"});
        let escape = json!({"command": "ls", "dangerouslyDisableSandbox": true});
        assert_eq!(bash_rule(true, Preset::Edit), Some("Bash"));
        assert_eq!(bash_policy(true, Preset::Edit, &command), Some(Ok(())));
        assert_eq!(
            bash_policy(true, Preset::Edit, &escape),
            Some(Err(UNSANDBOXED_REFUSAL.to_owned()))
        );
        // The others keep asking: the presets that change nothing, `edit` without the
        // sandbox, and `full`, which never asks anyway.
        for (sandboxed, preset) in [
            (true, Preset::ReadOnly),
            (true, Preset::Review),
            (true, Preset::Plan),
            (true, Preset::Full),
            (false, Preset::Edit),
        ] {
            assert_eq!(bash_rule(sandboxed, preset), None, "{preset}");
            assert_eq!(bash_policy(sandboxed, preset, &command), None, "{preset}");
        }
    }

    #[test]
    fn writable_folders_and_hosts_widen_only_a_sandbox_that_is_on() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().to_path_buf();
        let missing = dir.path().join("missing");
        let hosts = ["crates.io".to_owned()];
        let admin = Path::new("/repo/.git/worktrees/t");
        let mut on = settings(true, Preset::Edit, &[], Some(admin));
        widen(&mut on, &[cache.clone(), missing], &hosts);
        assert_eq!(
            on["filesystem"]["allowWrite"],
            json!([admin.display().to_string(), cache.display().to_string()])
        );
        assert_eq!(on["filesystem"]["denyWrite"], json!([]));
        assert_eq!(on["network"], json!({"allowedDomains": ["crates.io"]}));
        let mut off = settings(false, Preset::Edit, &[], None);
        widen(&mut off, &[cache], &hosts);
        assert_eq!(off, json!({"enabled": false}));
        for host in ["crates.io", "*.npmjs.org", "pypi.org"] {
            assert_eq!(validate_host(host), Ok(()), "{host}");
        }
        for host in [
            "",
            "https://pypi.org",
            "pypi.org:443",
            "pypi.org/simple",
            "*",
            "a b",
        ] {
            assert!(validate_host(host).is_err(), "{host}");
        }
    }

    #[test]
    fn the_task_keeps_its_branch_and_admin_dir_and_loses_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path();
        for file in [
            "config",
            "HEAD",
            "refs/heads/main",
            "refs/heads/cms/mine",
            "refs/heads/cms/other",
            "refs/heads/feature/x",
            "refs/tags/v1",
            "worktrees/mine/HEAD",
            "worktrees/other/HEAD",
            "objects/ab/cdef",
            "objects/pack/p.pack",
            "logs/HEAD",
            "logs/refs/heads/main",
            "logs/refs/heads/cms/mine",
        ] {
            let path = common.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "x").unwrap();
        }
        let deny = git_deny_write(common, Some(&common.join("worktrees/mine")), "cms/mine");
        let deny: Vec<String> = deny
            .iter()
            .map(|p| p.strip_prefix(common).unwrap().display().to_string())
            .collect();
        assert_eq!(
            deny,
            [
                "HEAD",
                "config",
                "logs/HEAD",
                "logs/refs/heads/main",
                "objects/pack",
                "refs/heads/cms/other",
                "refs/heads/feature",
                "refs/heads/main",
                "refs/tags",
                "worktrees/other",
            ]
        );
        let excludes = agent_excludes(Some("*.swp"));
        assert!(excludes.starts_with("*.swp\n") && excludes.contains("\n/.bashrc\n"));
    }
}
