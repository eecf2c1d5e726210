//! `[runners.NAME]` and `[task] runner`: where tasks may run off this machine. Only the user's
//! file sets them (a repository's file that tries is refused in `Config::apply`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::runner::{self, RunnerConfig, RunnerKind};

use super::{Config, ConfigError};

/// One `[runners.NAME]` table as the file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunnerLayer {
    kind: String,
    address: String,
    remote: String,
    #[serde(default)]
    env: Vec<String>,
    cpus: Option<f64>,
    memory: Option<Memory>,
    cms: Option<String>,
    claude: Option<String>,
}

/// `memory = 4294967296` or `memory = "4GiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Memory {
    Bytes(u64),
    Text(String),
}

impl Config {
    /// Takes the user's runners (replacing none: only one file may set them) and the default
    /// runner, which must be one of them.
    pub(super) fn apply_runners(
        &mut self,
        runners: BTreeMap<String, RunnerLayer>,
        default: Option<String>,
        source_name: &str,
    ) -> Result<(), ConfigError> {
        for (name, layer) in runners {
            let runner = parse_runner(&name, layer, source_name)?;
            self.runners.insert(name, runner);
        }
        if let Some(name) = default {
            let name = self
                .known_runner(&name)
                .map_err(|reason| ConfigError::Value {
                    key: "task.runner",
                    value: name,
                    source_name: source_name.to_owned(),
                    reason,
                })?;
            self.runner = Some(name);
        }
        Ok(())
    }

    /// `name` if it names a configured runner, else why not.
    pub(super) fn known_runner(&self, name: &str) -> Result<String, String> {
        if self.runners.contains_key(name) {
            return Ok(name.to_owned());
        }
        Err(if self.runners.is_empty() {
            "no runner is configured; add a [runners.NAME] table to your user configuration"
                .to_owned()
        } else {
            let names: Vec<&str> = self.runners.keys().map(String::as_str).collect();
            format!("not a configured runner (configured: {})", names.join(", "))
        })
    }
}

fn parse_runner(
    name: &str,
    layer: RunnerLayer,
    source_name: &str,
) -> Result<RunnerConfig, ConfigError> {
    let invalid = |key: &'static str, value: String, reason: String| ConfigError::Runner {
        runner: name.to_owned(),
        key,
        value,
        source_name: source_name.to_owned(),
        reason,
    };
    runner::validate_name(name).map_err(|r| ConfigError::Value {
        key: "runners",
        value: name.to_owned(),
        source_name: source_name.to_owned(),
        reason: r,
    })?;
    let kind = RunnerKind::parse(&layer.kind)
        .ok_or_else(|| invalid("kind", layer.kind.clone(), RunnerKind::EXPECTED.to_owned()))?;
    runner::validate_address(&layer.address)
        .map_err(|r| invalid("address", layer.address.clone(), r))?;
    if layer.remote.trim().is_empty() {
        let reason = "a git URL or path both this machine and the workers reach".to_owned();
        return Err(invalid("remote", layer.remote, reason));
    }
    let mut env: Vec<String> = Vec::new();
    for var in layer.env {
        runner::validate_env_name(&var).map_err(|r| invalid("env", var.clone(), r))?;
        if !env.contains(&var) {
            env.push(var);
        }
    }
    let cpus = layer.cpus.unwrap_or(RunnerConfig::DEFAULT_CPUS);
    if !(cpus.is_finite() && cpus > 0.0) {
        let reason = "a number of CPUs above 0, such as 1 or 0.5".to_owned();
        return Err(invalid("cpus", cpus.to_string(), reason));
    }
    let memory = match layer.memory {
        None => None,
        Some(Memory::Bytes(0)) => {
            let reason = "bytes above 0, or a number with a unit such as \"4GiB\"".to_owned();
            return Err(invalid("memory", "0".to_owned(), reason));
        }
        Some(Memory::Bytes(bytes)) => Some(bytes),
        Some(Memory::Text(text)) => {
            Some(runner::parse_memory(&text).map_err(|r| invalid("memory", text.clone(), r))?)
        }
    };
    let program = |key: &'static str, value: Option<String>| match value {
        Some(v) if v.trim().is_empty() => Err(invalid(
            key,
            v,
            "a name on the workers' PATH or a path".to_owned(),
        )),
        other => Ok(other),
    };
    Ok(RunnerConfig {
        kind,
        address: layer.address,
        remote: layer.remote,
        env,
        cpus,
        memory,
        cms: program("cms", layer.cms)?,
        claude: program("claude", layer.claude)?
            .unwrap_or_else(|| RunnerConfig::DEFAULT_CLAUDE.to_owned()),
    })
}

#[cfg(test)]
mod tests;
