//! Layered settings: built-in defaults, the user's config, the repository's `.cms.toml`, `CMS_*`
//! environment variables, then flags (applied by the commands themselves).
//!
//! Unknown keys are errors that name their file: in a tool that enforces safety settings, a
//! misspelt key silently ignored is worse than a refusal.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration in {source_name}")]
    Parse {
        source_name: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid value '{value}' for {key} in {source_name}: {reason}")]
    Value {
        key: &'static str,
        value: String,
        source_name: String,
        reason: String,
    },
}

/// One configuration file's contents; every field optional so layers can be merged.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    #[serde(default)]
    claude: ClaudeLayer,
    #[serde(default)]
    task: TaskLayer,
    #[serde(default)]
    worktrees: WorktreesLayer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaudeLayer {
    bin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskLayer {
    model: Option<String>,
    preset: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorktreesLayer {
    root: Option<String>,
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The claude executable: a name looked up on PATH, or a path.
    pub claude_bin: String,
    pub model: Option<String>,
    pub preset: String,
    /// Where task worktrees go; each repository gets a folder inside.
    pub worktrees_root: PathBuf,
}

/// Where the repository's `.cms.toml` was found, for error messages.
pub struct RepoConfigSource<'a> {
    pub text: &'a str,
    pub name: String,
}

impl Config {
    /// Builds the configuration from the environment, the user's file and an optional
    /// repository file.
    pub fn load(repo_file: Option<RepoConfigSource<'_>>) -> Result<Config, ConfigError> {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let home = env("HOME").map(PathBuf::from);
        let mut config = Config {
            claude_bin: "claude".into(),
            model: None,
            preset: "edit".into(),
            worktrees_root: data_home(env("XDG_DATA_HOME"), home.as_deref())
                .join("cms")
                .join("worktrees"),
        };
        if let Some(path) = user_config_path(env("XDG_CONFIG_HOME"), home.as_deref())
            && let Some(text) = read_optional(&path)?
        {
            config.apply(&text, &path.display().to_string())?;
        }
        if let Some(source) = repo_file {
            config.apply(source.text, &source.name)?;
        }
        if let Some(bin) = env("CMS_CLAUDE_BIN") {
            config.claude_bin = bin;
        }
        if let Some(model) = env("CMS_MODEL") {
            config.model = Some(model);
        }
        if let Some(preset) = env("CMS_PRESET") {
            config.preset = preset;
        }
        if let Some(root) = env("CMS_WORKTREES_ROOT") {
            config.worktrees_root = expand_home(&root, home.as_deref());
        }
        Ok(config)
    }

    fn apply(&mut self, text: &str, source_name: &str) -> Result<(), ConfigError> {
        let layer: Layer = toml::from_str(text).map_err(|source| ConfigError::Parse {
            source_name: source_name.to_owned(),
            source,
        })?;
        if let Some(bin) = layer.claude.bin {
            self.claude_bin = bin;
        }
        if let Some(model) = layer.task.model {
            self.model = Some(model);
        }
        if let Some(preset) = layer.task.preset {
            if crate::session::Preset::parse(&preset).is_none() {
                return Err(ConfigError::Value {
                    key: "task.preset",
                    value: preset,
                    source_name: source_name.to_owned(),
                    reason: "expected read-only, review, edit, full or plan".into(),
                });
            }
            self.preset = preset;
        }
        if let Some(root) = layer.worktrees.root {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            self.worktrees_root = expand_home(&root, home.as_deref());
        }
        Ok(())
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn data_home(xdg: Option<String>, home: Option<&Path>) -> PathBuf {
    match (xdg, home) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => home.join(".local").join("share"),
        (None, None) => std::env::temp_dir(),
    }
}

fn user_config_path(xdg: Option<String>, home: Option<&Path>) -> Option<PathBuf> {
    let base = match (xdg, home) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => home.join(".config"),
        (None, None) => return None,
    };
    Some(base.join("cms").join("config.toml"))
}

fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config {
            claude_bin: "claude".into(),
            model: None,
            preset: "edit".into(),
            worktrees_root: "/data".into(),
        }
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let mut config = base();
        config
            .apply(
                "[claude]\nbin = \"/opt/claude\"\n[task]\npreset = \"full\"",
                "user",
            )
            .unwrap();
        config
            .apply("[task]\nmodel = \"sonnet\"", ".cms.toml")
            .unwrap();
        assert_eq!(config.claude_bin, "/opt/claude");
        assert_eq!(config.preset, "full");
        assert_eq!(config.model.as_deref(), Some("sonnet"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_source() {
        let err = base()
            .apply("[task]\nmodle = \"x\"", ".cms.toml")
            .unwrap_err();
        assert!(err.to_string().contains(".cms.toml"), "{err}");
        let err = base()
            .apply("[task]\npreset = \"yolo\"", "user config")
            .unwrap_err();
        assert!(err.to_string().contains("user config"), "{err}");
        assert!(err.to_string().contains("yolo"), "{err}");
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
}
