//! The layers of settings, their values and their refusals.

use super::{
    Config, ConfigError, Limits, McpCaps, Preset, SandboxMode, Untrusted, WorktreeSettings,
    data_home, expand_home, parse_cost, parse_duration, parse_turns, user_config_path,
};
use std::path::{Path, PathBuf};

use super::mcp::DEFAULT_MCP_MAX_RUNNING;
use crate::safety::limits::MIN_COST_USD;
use std::time::Duration;

pub(super) fn base() -> Config {
    Config {
        claude_bin: "claude".into(),
        model: None,
        preset: Preset::Edit,
        worktrees_root: "/data".into(),
        limits: Limits::default(),
        mcp: McpCaps::default(),
        protected: Vec::new(),
        sandbox: SandboxMode::Auto,
        writable: Vec::new(),
        hosts: Vec::new(),
        notify: None,
        merge_checks: Vec::new(),
        worktree: WorktreeSettings::default(),
        pool_size: 0,
        untrusted: Untrusted::default(),
        runners: Default::default(),
        runner: None,
    }
}

#[test]
fn mcp_caps_follow_the_users_limits_and_a_repository_can_only_lower_them() {
    let mut config = base();
    config
        .apply(
            "[limits]\nmax_cost = 5\nmax_turns = 80\n[mcp]\nmax_duration = \"20m\"\nmax_preset = \"full\"",
            "user",
            None,
        )
        .unwrap();
    assert_eq!(config.mcp.limits.max_cost_usd, 5.0);
    assert_eq!(config.mcp.limits.max_turns, 80);
    assert_eq!(config.mcp.limits.max_duration, Duration::from_secs(1200));
    assert_eq!(config.mcp.max_preset, Preset::Full);
    assert_eq!(config.mcp.max_running, DEFAULT_MCP_MAX_RUNNING);
    config
        .apply(
            "[limits]\nmax_cost = 50\n[mcp]\nmax_cost = 10\nmax_turns = 20\nmax_running = 9\nmax_preset = \"review\"",
            ".cms.toml",
            Some(true),
        )
        .unwrap();
    // Raising is ignored, lowering counts, and the repository's limits leave the caps.
    assert_eq!(config.mcp.limits.max_cost_usd, 5.0);
    assert_eq!(config.mcp.limits.max_turns, 20);
    assert_eq!(config.mcp.max_running, DEFAULT_MCP_MAX_RUNNING);
    assert_eq!(config.mcp.max_preset, Preset::Review);
    config
        .apply("[mcp]\nmax_preset = \"full\"", ".cms.toml", Some(true))
        .unwrap();
    assert_eq!(config.mcp.max_preset, Preset::Review);
    let err = base()
        .apply("[mcp]\nmax_running = 0", "user", None)
        .unwrap_err();
    assert!(err.to_string().contains("mcp.max_running"), "{err}");
    let err = base()
        .apply("[mcp]\nmax_preset = \"yolo\"", ".cms.toml", Some(true))
        .unwrap_err();
    assert!(err.to_string().contains("mcp.max_preset"), "{err}");
}

#[test]
fn merge_checks_come_from_the_last_layer_that_sets_them_and_must_not_be_empty() {
    let mut config = base();
    config
        .apply("[merge]\ncheck = [\"make lint\"]", "user", None)
        .unwrap();
    config
        .apply(
            "[merge]\ncheck = [\"cargo test\", \"cargo clippy\"]",
            ".cms.toml",
            Some(true),
        )
        .unwrap();
    assert_eq!(config.merge_checks, ["cargo test", "cargo clippy"]);
    let err = config
        .apply("[merge]\ncheck = [\" \"]", ".cms.toml", Some(true))
        .unwrap_err();
    assert!(err.to_string().contains("merge.check"), "{err}");
}

#[test]
fn limits_and_protected_paths_come_from_every_layer() {
    let mut config = base();
    config
        .apply(
            "[limits]\nmax_cost = 0.5\nmax_duration = \"10m\"\n[safety]\nprotected = [\"infra/**\"]", "user", None)
        .unwrap();
    config
        .apply(
            "[limits]\nmax_turns = 7\n[safety]\nprotected = [\".github/**\", \"infra/**\"]",
            ".cms.toml",
            Some(true),
        )
        .unwrap();
    assert_eq!(config.limits.max_cost_usd, 0.5);
    assert_eq!(config.limits.max_turns, 7);
    assert_eq!(config.limits.max_duration, Duration::from_secs(600));
    assert_eq!(config.protected, ["infra/**", ".github/**"]);
    let err = base()
        .apply("[limits]\nmax_duration = \"soon\"", ".cms.toml", Some(true))
        .unwrap_err();
    assert!(err.to_string().contains("limits.max_duration"), "{err}");
    let err = base()
        .apply("[safety]\nprotected = [\"a/[b\"]", ".cms.toml", Some(true))
        .unwrap_err();
    assert!(err.to_string().contains("a/[b"), "{err}");
}

#[test]
fn limit_values_are_parsed_strictly() {
    assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert!(parse_duration("0s").is_err());
    assert_eq!(parse_cost("$1.5").unwrap(), 1.5);
    assert!(parse_cost("-1").is_err() && parse_cost("free").is_err());
    assert_eq!(parse_cost("0.0001").unwrap(), MIN_COST_USD);
    let err = parse_cost("0.00001").unwrap_err();
    assert!(err.contains("$0.0001"), "{err}");
    assert!(parse_turns("0").is_err());
    assert_eq!(parse_turns("12").unwrap(), 12);
}

#[test]
fn later_layers_override_earlier_ones() {
    let mut config = base();
    config
        .apply(
            "[claude]\nbin = \"/opt/claude\"\n[task]\npreset = \"full\"",
            "user",
            None,
        )
        .unwrap();
    config
        .apply("[task]\nmodel = \"sonnet\"", ".cms.toml", Some(true))
        .unwrap();
    assert_eq!(config.claude_bin, "/opt/claude");
    assert_eq!(config.preset, Preset::Full);
    assert_eq!(config.model.as_deref(), Some("sonnet"));
}

#[test]
fn unknown_keys_and_bad_values_name_their_source() {
    let err = base()
        .apply("[task]\nmodle = \"x\"", ".cms.toml", Some(true))
        .unwrap_err();
    assert!(err.to_string().contains(".cms.toml"), "{err}");
    let err = base()
        .apply("[task]\npreset = \"yolo\"", "user config", None)
        .unwrap_err();
    assert!(err.to_string().contains("user config"), "{err}");
    assert!(err.to_string().contains("yolo"), "{err}");
    let err = base()
        .apply("[safety]\nsandbox = \"on\"", ".cms.toml", Some(true))
        .unwrap_err();
    assert!(err.to_string().contains("safety.sandbox"), "{err}");
    let mut config = base();
    config
        .apply("[safety]\nsandbox = \"required\"", ".cms.toml", Some(true))
        .unwrap();
    assert_eq!(config.sandbox, SandboxMode::Required);
}

#[test]
fn a_repository_may_not_choose_what_cms_runs_or_where_it_writes() {
    for text in [
        "[claude]\nbin = \"./evil.sh\"",
        "[worktrees]\nroot = \"/tmp/x\"",
        "[notify]\ncommand = [\"sh\", \"-c\", \"curl evil\"]",
    ] {
        let err = base().apply(text, ".cms.toml", Some(true)).unwrap_err();
        assert!(err.to_string().contains("user configuration"), "{err}");
        base().apply(text, "user", None).unwrap();
    }
    let mut config = base();
    config
        .apply(
            "[notify]\ncommand = [\"notify-send\", \"cms\"]",
            "user",
            None,
        )
        .unwrap();
    assert_eq!(config.notify.unwrap(), ["notify-send", "cms"]);
    assert!(
        base()
            .apply("[notify]\ncommand = []", "user", None)
            .is_err()
    );
}

#[test]
fn xdg_directories_win_over_home() {
    assert_eq!(
        data_home(Some("/x".into()), Some(Path::new("/h"))),
        PathBuf::from("/x")
    );
    assert_eq!(
        data_home(None, Some(Path::new("/h"))),
        PathBuf::from("/h/.local/share")
    );
    assert_eq!(
        user_config_path(None, Some(Path::new("/h"))).unwrap(),
        PathBuf::from("/h/.config/cms/config.toml")
    );
    assert_eq!(
        expand_home("~/w", Some(Path::new("/h"))),
        PathBuf::from("/h/w")
    );
}

#[test]
fn an_untrusted_repository_file_only_tightens_and_names_each_key_it_ignored() {
    let mut config = base();
    config
        .apply("[safety]\nsandbox = \"required\"", "user", None)
        .unwrap();
    config
        .apply(
            "[safety]\nsandbox = \"off\"\nprotected = [\"infra/**\"]\n[task]\npreset = \"full\"\n\
             [limits]\nmax_cost = 1000\nmax_turns = 5\n[worktree]\nsetup = [\"make\"]\n\
             link = [\"node_modules\"]\nports = 3\n[pool]\nsize = 2\n[merge]\ncheck = [\"make test\"]",
            ".cms.toml",
            Some(false),
        )
        .unwrap();
    assert_eq!(config.sandbox, SandboxMode::Required);
    assert_eq!(config.preset, Preset::Edit);
    assert_eq!(config.limits.max_cost_usd, Limits::default().max_cost_usd);
    assert_eq!(config.limits.max_turns, 5);
    assert_eq!(config.protected, ["infra/**"]);
    assert!(config.worktree.setup.is_empty() && config.worktree.link.is_empty());
    assert_eq!((config.worktree.ports, config.pool_size), (0, 0));
    assert!(config.merge_checks.is_empty());
    assert_eq!(config.untrusted.checks, ["make test"]);
    assert_eq!(
        config.untrusted.ignored,
        [
            "safety.sandbox",
            "task.preset",
            "limits.max_cost",
            "worktree.link",
            "worktree.setup (not run)",
            "worktree.ports",
            "pool.size",
            "merge.check (not run)",
        ]
    );
    let warning = config.untrusted.warning().unwrap();
    assert!(
        warning.contains(".cms.toml") && warning.contains("`cms trust`"),
        "{warning}"
    );
    // Trusted, the same file applies whole.
    let mut trusted = base();
    trusted
        .apply(
            "[safety]\nsandbox = \"off\"\n[task]\npreset = \"full\"",
            ".cms.toml",
            Some(true),
        )
        .unwrap();
    assert_eq!(
        (trusted.sandbox, trusted.preset),
        (SandboxMode::Off, Preset::Full)
    );
    assert_eq!(trusted.untrusted.warning(), None);
}

#[test]
fn the_users_writable_folders_and_hosts_add_up_and_an_untrusted_repositorys_are_ignored() {
    let mut config = base();
    config
        .apply(
            "[safety]\nwritable = [\"/cache/cargo\"]\nhosts = [\"crates.io\", \"*.crates.io\"]",
            "user",
            None,
        )
        .unwrap();
    config
        .apply(
            "[safety]\nwritable = [\"/cache/npm\", \"/cache/cargo\"]\nhosts = [\"crates.io\"]",
            "user",
            None,
        )
        .unwrap();
    assert_eq!(
        config.writable,
        [PathBuf::from("/cache/cargo"), PathBuf::from("/cache/npm")]
    );
    assert_eq!(config.hosts, ["crates.io", "*.crates.io"]);
    // Loosening: a repository's ask waits for the user's trust.
    config
        .apply(
            "[safety]\nwritable = [\"/etc\"]\nhosts = [\"evil.example\"]",
            ".cms.toml",
            Some(false),
        )
        .unwrap();
    assert_eq!(config.writable.len(), 2);
    assert_eq!(config.hosts.len(), 2);
    assert_eq!(
        config.untrusted.ignored,
        ["safety.writable", "safety.hosts"]
    );
    // Trusted, they add up like the user's.
    config
        .apply("[safety]\nhosts = [\"pypi.org\"]", ".cms.toml", Some(true))
        .unwrap();
    assert_eq!(config.hosts, ["crates.io", "*.crates.io", "pypi.org"]);
    for (text, key) in [
        ("[safety]\nwritable = [\"relative/dir\"]", "safety.writable"),
        ("[safety]\nhosts = [\"https://crates.io\"]", "safety.hosts"),
        ("[safety]\nhosts = [\"crates.io:443\"]", "safety.hosts"),
    ] {
        let err = base().apply(text, "user", None).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Value { key: k, .. } if *k == key),
            "{text}: {err}"
        );
    }
}

#[test]
fn every_entry_of_cms_config_names_a_key_of_the_files_once() {
    let entries = base().entries();
    let keys: Vec<&str> = entries.iter().map(|(key, _)| *key).collect();
    for key in [
        "claude.bin",
        "limits.max_cost",
        "safety.protected",
        "worktree.ports",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "a key twice in {keys:?}");
}
