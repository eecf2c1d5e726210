//! The values settings take, as the configuration files, `CMS_*` variables and flags write
//! them: durations, costs, turn counts, presets and milliseconds.

use std::time::Duration;

use super::ConfigError;
use crate::session::Timeouts;
use crate::vocab::Preset;

/// Parses a duration as the configuration and flags accept it: `300s`, `10m`, `1h30m`, or
/// a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|err| format!("expected a duration such as 300s, 10m or 1h ({err})"))?,
    };
    if duration.is_zero() {
        return Err("the duration must be longer than zero".into());
    }
    Ok(duration)
}

use crate::safety::limits::MIN_COST_USD;

/// Parses a cost in US dollars: a positive number, with or without a leading `$`.
pub fn parse_cost(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let number = text.strip_prefix('$').unwrap_or(text);
    match number.parse::<f64>() {
        Ok(cost) if cost.is_finite() && cost >= MIN_COST_USD => Ok(cost),
        Ok(cost) if cost.is_finite() && cost > 0.0 => {
            Err(format!("the smallest cost limit is ${MIN_COST_USD}"))
        }
        _ => Err("expected a positive amount of US dollars, such as 2 or 0.50".into()),
    }
}

/// Parses a turn limit: a whole number of at least 1.
pub fn parse_turns(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(turns) if turns > 0 => Ok(turns),
        _ => Err("expected a whole number of turns, at least 1".into()),
    }
}

/// Parses a preset name.
pub fn parse_preset(text: &str) -> Result<Preset, String> {
    Preset::parse(text.trim())
        .ok_or_else(|| format!("expected one of {}", Preset::NAMES.join(", ")))
}

/// A `CMS_*_MS` variable: a whole number of milliseconds, or `None` when unset or empty.
pub fn env_millis(key: &'static str) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = std::env::var(key).ok().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(ConfigError::Env {
            key,
            value,
            reason: "expected a whole number of milliseconds, such as 2000".into(),
        }),
    }
}

/// A session's grace periods, as `CMS_INTERRUPT_GRACE_MS` and `CMS_EXIT_GRACE_MS` shorten them
/// (documented for tests and CI).
pub fn env_timeouts() -> Result<Timeouts, ConfigError> {
    let mut timeouts = Timeouts::default();
    if let Some(grace) = env_millis("CMS_INTERRUPT_GRACE_MS")? {
        timeouts.interrupt_grace = grace;
    }
    if let Some(grace) = env_millis("CMS_EXIT_GRACE_MS")? {
        timeouts.exit_grace = grace;
    }
    Ok(timeouts)
}
