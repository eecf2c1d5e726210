//! The effective settings as `(key, value)` pairs, each key as the files name it, for
//! `cms config` to show with where each value comes from.

use serde_json::{Value, json};

use super::Config;

impl Config {
    /// Every setting a file or variable can set, with its value (`null` when unset).
    pub fn entries(&self) -> Vec<(&'static str, Value)> {
        let w = &self.worktree;
        let secs = |d: std::time::Duration| json!(format!("{}s", d.as_secs_f64()));
        let paths = |paths: &[std::path::PathBuf]| {
            json!(
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
            )
        };
        vec![
            ("claude.bin", json!(self.claude_bin)),
            ("task.model", json!(self.model)),
            ("task.preset", json!(self.preset.as_str())),
            ("task.runner", json!(self.runner)),
            (
                "worktrees.root",
                json!(self.worktrees_root.display().to_string()),
            ),
            ("limits.max_cost", json!(self.limits.max_cost_usd)),
            ("limits.max_turns", json!(self.limits.max_turns)),
            ("limits.max_duration", secs(self.limits.max_duration)),
            ("mcp.max_cost", json!(self.mcp.limits.max_cost_usd)),
            ("mcp.max_turns", json!(self.mcp.limits.max_turns)),
            ("mcp.max_duration", secs(self.mcp.limits.max_duration)),
            ("mcp.max_running", json!(self.mcp.max_running)),
            ("mcp.max_preset", json!(self.mcp.max_preset.as_str())),
            ("safety.protected", json!(self.protected)),
            ("safety.sandbox", json!(self.sandbox.as_str())),
            ("safety.writable", paths(&self.writable)),
            ("safety.hosts", json!(self.hosts)),
            ("notify.command", json!(self.notify)),
            ("merge.check", json!(self.merge_checks)),
            ("pool.size", json!(self.pool_size)),
            ("worktree.copy", json!(w.copy)),
            ("worktree.link", json!(w.link)),
            ("worktree.setup", json!(w.setup)),
            ("worktree.setup_counts", json!(w.setup_counts)),
            ("worktree.ports", json!(w.ports)),
            ("runners", self.runners_entry()),
        ]
    }
}

impl Config {
    /// `[runners]` as one table of tables; `env` holds the variables' names, never values.
    fn runners_entry(&self) -> Value {
        let runners: serde_json::Map<String, Value> = self
            .runners
            .iter()
            .map(|(name, r)| {
                let entry = json!({
                    "kind": r.kind.as_str(),
                    "address": r.address,
                    "remote": r.remote,
                    "env": r.env,
                    "cpus": r.cpus,
                    "memory": r.memory,
                    "cms": r.cms,
                    "claude": r.claude,
                });
                (name.clone(), entry)
            })
            .collect();
        Value::Object(runners)
    }
}

/// A value as a TOML file would write it (`(not set)` for none).
pub fn toml_like(value: &Value) -> String {
    match value {
        Value::Null => "(not set)".to_owned(),
        Value::String(text) => format!("{text:?}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_like).collect();
            format!("[{}]", items.join(", "))
        }
        // An inline table, its unset keys left out.
        Value::Object(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k} = {}", toml_like(v)))
                .collect();
            if entries.is_empty() {
                "{}".to_owned()
            } else {
                format!("{{ {} }}", entries.join(", "))
            }
        }
        other => other.to_string(),
    }
}
