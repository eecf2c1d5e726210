//! Where cms's files are: the user's configuration file, cms's data folder, `~/` in a
//! configured path.

use std::path::{Path, PathBuf};

/// cms's folder in the user's data dir (`$XDG_DATA_HOME/cms`, `~/.local/share/cms`).
pub fn data_dir() -> PathBuf {
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    data_home(
        env("XDG_DATA_HOME"),
        env("HOME").map(PathBuf::from).as_deref(),
    )
    .join("cms")
}

pub(super) fn data_home(xdg: Option<String>, home: Option<&Path>) -> PathBuf {
    match (xdg, home) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => home.join(".local").join("share"),
        (None, None) => std::env::temp_dir(),
    }
}

pub(super) fn user_config_path(xdg: Option<String>, home: Option<&Path>) -> Option<PathBuf> {
    let base = match (xdg, home) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => home.join(".config"),
        (None, None) => return None,
    };
    Some(base.join("cms").join("config.toml"))
}

pub(super) fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}
