//! Layered settings: built-in defaults, the user's config, the repository's `.cms.toml`, `CMS_*`
//! environment variables, then flags (applied by the commands themselves).
//!
//! Unknown keys are errors that name their file: in a tool that enforces safety settings, a
//! misspelt key silently ignored is worse than a refusal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::runner::RunnerConfig;
use crate::safety::sandbox::SandboxMode;
use crate::vocab::{Limits, Preset};

mod entries;
mod mcp;
mod paths;
mod reach;
mod runners;
mod untrusted;
mod values;

pub use entries::toml_like;
pub use mcp::McpCaps;
pub use paths::data_dir;
use paths::{data_home, expand_home, user_config_path};
pub use untrusted::Untrusted;
pub use values::{env_timeouts, parse_cost, parse_duration, parse_preset, parse_turns};

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
    /// A `CMS_*` variable with a value its setting does not accept.
    #[error("invalid value '{value}' for {key} in the environment: {reason}")]
    Env {
        key: &'static str,
        value: String,
        reason: String,
    },
    /// A repository's file names where tasks run, which only the user's configuration may.
    #[error(
        "{source_name} sets {key}: only your user configuration may say where tasks run, since a \
         runner is where the repository's code and your credentials are sent"
    )]
    UserOnly {
        key: &'static str,
        source_name: String,
    },
    /// A `[runners.NAME]` setting the runner cannot use.
    #[error("invalid value '{value}' for runners.{runner}.{key} in {source_name}: {reason}")]
    Runner {
        runner: String,
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
    #[serde(default)]
    limits: LimitsLayer,
    #[serde(default)]
    mcp: McpLayer,
    #[serde(default)]
    safety: SafetyLayer,
    #[serde(default)]
    notify: NotifyLayer,
    #[serde(default)]
    merge: MergeLayer,
    #[serde(default)]
    worktree: WorktreeLayer,
    #[serde(default)]
    pool: PoolLayer,
    /// `[runners.NAME]`: where tasks may run off this machine (the user's file only).
    #[serde(default)]
    runners: BTreeMap<String, runners::RunnerLayer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolLayer {
    /// How many worktrees wait, ready, for new tasks.
    size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorktreeLayer {
    /// Gitignore-style globs of the main checkout's ignored files a new worktree gets a copy of.
    copy: Option<Vec<String>>,
    /// Paths of the main checkout a new worktree gets as symlinks.
    link: Option<Vec<String>>,
    /// Shell commands run in a new worktree before its agent starts.
    setup: Option<Vec<String>>,
    /// Whether the setup's time counts against the task's time limit.
    setup_counts: Option<bool>,
    /// How many ports each running task gets in `CMS_PORT` (0: none).
    ports: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeLayer {
    /// Shell commands run on a merge's result before the target branch moves.
    check: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyLayer {
    /// A program and its arguments, run when a task ends.
    command: Option<Vec<String>>,
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
    /// The runner `cms task` uses without `--on` (the user's file only).
    runner: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorktreesLayer {
    root: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsLayer {
    max_cost: Option<f64>,
    max_turns: Option<u32>,
    /// A duration such as `300s`, `10m` or `1h`.
    max_duration: Option<String>,
}

/// `[mcp]`: what a parent agent may ask of `cms mcp`. Caps, not defaults: a repository's file
/// can only lower them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpLayer {
    max_cost: Option<f64>,
    max_turns: Option<u32>,
    max_duration: Option<String>,
    max_running: Option<u32>,
    max_preset: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyLayer {
    protected: Option<Vec<String>>,
    sandbox: Option<String>,
    writable: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The claude executable: a name looked up on PATH, or a path.
    pub claude_bin: String,
    pub model: Option<String>,
    pub preset: Preset,
    /// Where task worktrees go; each repository gets a folder inside.
    pub worktrees_root: PathBuf,
    pub limits: Limits,
    /// `[mcp]`: the most a parent agent may ask of `cms mcp`.
    pub mcp: McpCaps,
    /// Protected-path globs from every layer: unlike other settings they add up, so a
    /// repository's rules cannot be dropped by a user's file or the other way round.
    pub protected: Vec<String>,
    /// Whether tasks' Bash runs in Claude Code's sandbox.
    pub sandbox: SandboxMode,
    /// `[safety] writable`: folders outside the worktree a sandboxed Bash may write too (a
    /// package cache), absolute, added up across layers.
    pub writable: Vec<PathBuf>,
    /// `[safety] hosts`: domains a sandboxed Bash may reach through the sandbox's proxy (a
    /// package registry), added up across layers.
    pub hosts: Vec<String>,
    /// Run when a task ends, the task's JSON on its stdin (`[notify] command`).
    pub notify: Option<Vec<String>>,
    /// `[merge] check`: shell commands that must pass on a merge's result.
    pub merge_checks: Vec<String>,
    /// `[worktree]`: how a new task's worktree is made ready to run.
    pub worktree: WorktreeSettings,
    /// `[pool] size`: how many worktrees wait, checked out, for new tasks (0: no pool).
    pub pool_size: usize,
    /// What an untrusted repository's settings asked for that cms did not apply.
    pub untrusted: Untrusted,
    /// `[runners.NAME]` of the user's file: where tasks may run off this machine.
    pub runners: BTreeMap<String, RunnerConfig>,
    /// `[task] runner` or `CMS_RUNNER`: the runner tasks use unless told otherwise; always a
    /// key of `runners`.
    pub runner: Option<String>,
}

/// `[worktree]`: what a new worktree gets before its agent starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorktreeSettings {
    /// Globs of the main checkout's ignored files to copy (added to `.worktreeinclude`'s).
    pub copy: Vec<String>,
    /// Whether the main checkout's `.worktreeinclude` may be used (it is trusted).
    pub include_file: bool,
    /// Paths of the main checkout a new worktree gets as symlinks (added up across layers).
    pub link: Vec<String>,
    pub setup: Vec<String>,
    pub setup_counts: bool,
    /// The size of each running task's block of ports (`CMS_PORT` is its first); 0 for none.
    pub ports: u16,
}

/// The configuration as one layer left it, and where that layer comes from.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    pub source: String,
    pub config: Config,
}

/// Where the repository's `.cms.toml` was found, for error messages.
pub struct RepoConfigSource<'a> {
    pub text: &'a str,
    pub name: String,
    /// Whether the user trusts this exact file (`cms trust`); an untrusted one can only
    /// tighten.
    pub trusted: bool,
}

impl Config {
    /// Builds the configuration from the environment, the user's file and an optional
    /// repository file.
    pub fn load(repo_file: Option<RepoConfigSource<'_>>) -> Result<Config, ConfigError> {
        let mut layers = Config::load_layers(repo_file)?;
        Ok(layers
            .pop()
            .expect("the built-in defaults are a layer")
            .config)
    }

    /// The configuration as each layer leaves it, lowest first (built-in defaults, the user's
    /// file, the repository's file, the environment), for `cms config` to say where each value
    /// comes from; the last is the effective configuration.
    pub fn load_layers(
        repo_file: Option<RepoConfigSource<'_>>,
    ) -> Result<Vec<LayerConfig>, ConfigError> {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let home = env("HOME").map(PathBuf::from);
        let mut config = Config {
            claude_bin: "claude".into(),
            model: None,
            preset: Preset::Edit,
            worktrees_root: data_home(env("XDG_DATA_HOME"), home.as_deref())
                .join("cms")
                .join("worktrees"),
            limits: Limits::default(),
            mcp: McpCaps::default(),
            protected: Vec::new(),
            sandbox: SandboxMode::default(),
            writable: Vec::new(),
            hosts: Vec::new(),
            notify: None,
            merge_checks: Vec::new(),
            worktree: WorktreeSettings::default(),
            pool_size: 0,
            untrusted: Untrusted::default(),
            runners: BTreeMap::new(),
            runner: None,
        };
        let mut layers = vec![LayerConfig {
            source: "built-in default".to_owned(),
            config: config.clone(),
        }];
        if let Some(path) = user_config_path(env("XDG_CONFIG_HOME"), home.as_deref())
            && let Some(text) = read_optional(&path)?
        {
            config.apply(&text, &path.display().to_string(), None)?;
            layers.push(LayerConfig {
                source: path.display().to_string(),
                config: config.clone(),
            });
        }
        if let Some(source) = repo_file {
            config.apply(source.text, &source.name, Some(source.trusted))?;
            layers.push(LayerConfig {
                source: if source.trusted {
                    source.name.clone()
                } else {
                    format!("{} (untrusted: only tightens)", source.name)
                },
                config: config.clone(),
            });
        }
        if let Some(bin) = env("CMS_CLAUDE_BIN") {
            config.claude_bin = bin;
        }
        if let Some(model) = env("CMS_MODEL") {
            config.model = Some(model);
        }
        let from_env = |key: &'static str, value: String, reason: String| ConfigError::Env {
            key,
            value,
            reason,
        };
        if let Some(preset) = env("CMS_PRESET") {
            config.preset = parse_preset(&preset).map_err(|r| from_env("CMS_PRESET", preset, r))?;
        }
        if let Some(root) = env("CMS_WORKTREES_ROOT") {
            config.worktrees_root = expand_home(&root, home.as_deref());
        }
        if let Some(cost) = env("CMS_MAX_COST") {
            config.limits.max_cost_usd =
                parse_cost(&cost).map_err(|r| from_env("CMS_MAX_COST", cost, r))?;
        }
        if let Some(turns) = env("CMS_MAX_TURNS") {
            config.limits.max_turns =
                parse_turns(&turns).map_err(|r| from_env("CMS_MAX_TURNS", turns, r))?;
        }
        if let Some(mode) = env("CMS_SANDBOX") {
            config.sandbox = SandboxMode::parse(&mode)
                .ok_or_else(|| from_env("CMS_SANDBOX", mode, SandboxMode::EXPECTED.into()))?;
        }
        if let Some(duration) = env("CMS_MAX_DURATION") {
            config.limits.max_duration =
                parse_duration(&duration).map_err(|r| from_env("CMS_MAX_DURATION", duration, r))?;
        }
        if let Some(runner) = env("CMS_RUNNER") {
            config.runner = Some(
                config
                    .known_runner(&runner)
                    .map_err(|r| from_env("CMS_RUNNER", runner, r))?,
            );
        }
        if config
            != layers
                .last()
                .expect("the built-in defaults are a layer")
                .config
        {
            layers.push(LayerConfig {
                source: "environment (CMS_*)".to_owned(),
                config,
            });
        }
        Ok(layers)
    }

    /// Merges one file over the settings so far. A repository's file (`repository` is
    /// whether the user trusts it) may not name programs for cms to run or where its worktrees
    /// go: cloning a repository and running cms in it must not run that repository's choice of
    /// program. An untrusted one can only tighten (see [`Config::restrict`]).
    fn apply(
        &mut self,
        text: &str,
        source_name: &str,
        repository: Option<bool>,
    ) -> Result<(), ConfigError> {
        let from_repository = repository.is_some();
        let mut layer: Layer = toml::from_str(text).map_err(|source| ConfigError::Parse {
            source_name: source_name.to_owned(),
            source,
        })?;
        if from_repository {
            // Trusted or not: a repository never says where its code and the user's
            // credentials go.
            let key = if !layer.runners.is_empty() {
                Some("[runners]")
            } else if layer.task.runner.is_some() {
                Some("task.runner")
            } else {
                None
            };
            if let Some(key) = key {
                return Err(ConfigError::UserOnly {
                    key,
                    source_name: source_name.to_owned(),
                });
            }
        } else {
            let runners = std::mem::take(&mut layer.runners);
            self.apply_runners(runners, layer.task.runner.take(), source_name)?;
        }
        if repository == Some(false) {
            self.restrict(&mut layer, source_name);
        }
        if from_repository {
            let user_only = [
                (
                    "claude.bin",
                    layer.claude.bin.as_ref().map(|b| format!("{b:?}")),
                ),
                (
                    "worktrees.root",
                    layer.worktrees.root.as_ref().map(|r| format!("{r:?}")),
                ),
                (
                    "notify.command",
                    layer.notify.command.as_ref().map(|c| format!("{c:?}")),
                ),
            ];
            if let Some((key, Some(value))) = user_only.into_iter().find(|(_, v)| v.is_some()) {
                return Err(ConfigError::Value {
                    key,
                    value,
                    source_name: source_name.to_owned(),
                    reason: "only your user configuration may set this, since it names what \
                             cms runs or where it writes"
                        .to_owned(),
                });
            }
        }
        if let Some(command) = layer.notify.command {
            if command.is_empty() {
                return Err(ConfigError::Value {
                    key: "notify.command",
                    value: "[]".to_owned(),
                    source_name: source_name.to_owned(),
                    reason: "give a program and its arguments, e.g. [\"notify-send\", \"cms\"]"
                        .to_owned(),
                });
            }
            self.notify = Some(command);
        }
        // The later layer (the repository's, whose checks are the project's own) replaces
        // the earlier one's list.
        if let Some(checks) = layer.merge.check {
            if let Some(empty) = checks.iter().find(|c| c.trim().is_empty()) {
                return Err(ConfigError::Value {
                    key: "merge.check",
                    value: format!("{empty:?}"),
                    source_name: source_name.to_owned(),
                    reason: "each check is a shell command, e.g. \"cargo test\"".to_owned(),
                });
            }
            self.merge_checks = checks;
        }
        if let Some(size) = layer.pool.size {
            if size > 64 {
                return Err(ConfigError::Value {
                    key: "pool.size",
                    value: size.to_string(),
                    source_name: source_name.to_owned(),
                    reason: "at most 64 waiting worktrees".to_owned(),
                });
            }
            self.pool_size = size;
        }
        // Copies add up across layers, like protected paths; the rest is the later layer's.
        self.worktree
            .copy
            .extend(layer.worktree.copy.unwrap_or_default());
        for link in layer.worktree.link.unwrap_or_default() {
            let clean =
                crate::safety::normalize(&link).filter(|p| !p.is_empty() && !p.starts_with(".git"));
            let Some(clean) = clean else {
                return Err(ConfigError::Value {
                    key: "worktree.link",
                    value: link,
                    source_name: source_name.to_owned(),
                    reason: "a path inside the checkout, such as \"node_modules\"".to_owned(),
                });
            };
            self.worktree.link.push(clean);
        }
        if let Some(setup) = layer.worktree.setup {
            self.worktree.setup = setup;
        }
        if let Some(counts) = layer.worktree.setup_counts {
            self.worktree.setup_counts = counts;
        }
        if let Some(ports) = layer.worktree.ports {
            if ports > 1000 {
                return Err(ConfigError::Value {
                    key: "worktree.ports",
                    value: ports.to_string(),
                    source_name: source_name.to_owned(),
                    reason: "at most 1000 ports a task".to_owned(),
                });
            }
            self.worktree.ports = ports;
        }
        if let Some(bin) = layer.claude.bin {
            self.claude_bin = bin;
        }
        if let Some(model) = layer.task.model {
            self.model = Some(model);
        }
        if let Some(preset) = layer.task.preset {
            self.preset = parse_preset(&preset).map_err(|reason| ConfigError::Value {
                key: "task.preset",
                value: preset,
                source_name: source_name.to_owned(),
                reason,
            })?;
        }
        if let Some(root) = layer.worktrees.root {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            self.worktrees_root = expand_home(&root, home.as_deref());
        }
        let invalid = |key: &'static str, value: String, reason: String| ConfigError::Value {
            key,
            value,
            source_name: source_name.to_owned(),
            reason,
        };
        // Which limits this layer sets, which the user's `[mcp]` caps follow.
        let limits_set = [
            layer.limits.max_cost.is_some(),
            layer.limits.max_turns.is_some(),
            layer.limits.max_duration.is_some(),
        ];
        if let Some(cost) = layer.limits.max_cost {
            self.limits.max_cost_usd = parse_cost(&cost.to_string())
                .map_err(|r| invalid("limits.max_cost", cost.to_string(), r))?;
        }
        if let Some(turns) = layer.limits.max_turns {
            self.limits.max_turns = parse_turns(&turns.to_string())
                .map_err(|r| invalid("limits.max_turns", turns.to_string(), r))?;
        }
        if let Some(duration) = layer.limits.max_duration {
            self.limits.max_duration = parse_duration(&duration)
                .map_err(|r| invalid("limits.max_duration", duration, r))?;
        }
        if let Some(mode) = layer.safety.sandbox {
            self.sandbox = SandboxMode::parse(&mode)
                .ok_or_else(|| invalid("safety.sandbox", mode, SandboxMode::EXPECTED.into()))?;
        }
        self.apply_mcp(layer.mcp, limits_set, from_repository, &invalid)?;
        self.apply_sandbox_reach(layer.safety.writable, layer.safety.hosts, &invalid)?;
        for glob in layer.safety.protected.unwrap_or_default() {
            crate::safety::validate_glob(&glob)
                .map_err(|r| invalid("safety.protected", glob.clone(), r))?;
            if !self.protected.contains(&glob) {
                self.protected.push(glob);
            }
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

#[cfg(test)]
mod tests;
