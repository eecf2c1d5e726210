//! `[mcp]`: the caps on what a parent agent may ask of `cms mcp`, and how each layer sets them.

use crate::vocab::Preset;

use super::{
    Config, ConfigError, Limits, McpLayer, parse_cost, parse_duration, parse_preset, parse_turns,
};

/// The caps on tasks a parent agent starts through `cms mcp`: it may lower a task's limits,
/// never raise them past these, run at most `max_running` tasks at once, and use no preset
/// above `max_preset` (see [`Preset::rank`]).
#[derive(Debug, Clone, PartialEq)]
pub struct McpCaps {
    pub limits: Limits,
    pub max_running: u32,
    pub max_preset: Preset,
}

/// How many tasks one `cms mcp` server runs at once unless `[mcp] max_running` says.
pub const DEFAULT_MCP_MAX_RUNNING: u32 = 4;

impl Default for McpCaps {
    fn default() -> Self {
        McpCaps {
            limits: Limits::default(),
            max_running: DEFAULT_MCP_MAX_RUNNING,
            max_preset: Preset::Edit,
        }
    }
}

impl Config {
    /// `[mcp]` caps. In the user's file a cap not given follows the user's `[limits]`; a
    /// repository's file can only lower a cap (a higher value is ignored), since caps bound
    /// what an agent may spend and a cloned repository must not raise them, and its `[limits]`
    /// leave the caps alone. `CMS_MAX_*` variables move the limits, not the caps.
    pub(super) fn apply_mcp(
        &mut self,
        mcp: McpLayer,
        [cost_set, turns_set, duration_set]: [bool; 3],
        from_repository: bool,
        invalid: &dyn Fn(&'static str, String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let cost = match mcp.max_cost {
            Some(cost) => Some(
                parse_cost(&cost.to_string())
                    .map_err(|r| invalid("mcp.max_cost", cost.to_string(), r))?,
            ),
            None if !from_repository && cost_set => Some(self.limits.max_cost_usd),
            None => None,
        };
        let turns = match mcp.max_turns {
            Some(turns) => Some(
                parse_turns(&turns.to_string())
                    .map_err(|r| invalid("mcp.max_turns", turns.to_string(), r))?,
            ),
            None if !from_repository && turns_set => Some(self.limits.max_turns),
            None => None,
        };
        let duration = match mcp.max_duration {
            Some(duration) => Some(
                parse_duration(&duration).map_err(|r| invalid("mcp.max_duration", duration, r))?,
            ),
            None if !from_repository && duration_set => Some(self.limits.max_duration),
            None => None,
        };
        let running = match mcp.max_running {
            Some(0) => {
                return Err(invalid(
                    "mcp.max_running",
                    "0".into(),
                    "expected a whole number of tasks, at least 1".into(),
                ));
            }
            running => running,
        };
        let preset = match mcp.max_preset {
            Some(preset) => {
                Some(parse_preset(&preset).map_err(|r| invalid("mcp.max_preset", preset, r))?)
            }
            None => None,
        };
        let caps = &mut self.mcp;
        if from_repository {
            caps.limits.max_cost_usd = cost.map_or(caps.limits.max_cost_usd, |c| {
                c.min(caps.limits.max_cost_usd)
            });
            caps.limits.max_turns =
                turns.map_or(caps.limits.max_turns, |t| t.min(caps.limits.max_turns));
            caps.limits.max_duration = duration.map_or(caps.limits.max_duration, |d| {
                d.min(caps.limits.max_duration)
            });
            caps.max_running = running.map_or(caps.max_running, |r| r.min(caps.max_running));
            if let Some(preset) = preset.filter(|p| p.rank() < caps.max_preset.rank()) {
                caps.max_preset = preset;
            }
        } else {
            caps.limits.max_cost_usd = cost.unwrap_or(caps.limits.max_cost_usd);
            caps.limits.max_turns = turns.unwrap_or(caps.limits.max_turns);
            caps.limits.max_duration = duration.unwrap_or(caps.limits.max_duration);
            caps.max_running = running.unwrap_or(caps.max_running);
            caps.max_preset = preset.unwrap_or(caps.max_preset);
        }
        Ok(())
    }
}
