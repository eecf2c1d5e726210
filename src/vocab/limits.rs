//! The cost, turns and wall time a task may use, and which of them a session crossed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Status;

/// What a task may spend, summed across every claude process that serves it. Stored in its
/// record (`safety.limits`) with the wall time in milliseconds (`max_duration_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub max_cost_usd: f64,
    pub max_turns: u32,
    #[serde(rename = "max_duration_ms", with = "millis")]
    pub max_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cost_usd: 2.0,
            max_turns: 50,
            max_duration: Duration::from_secs(300),
        }
    }
}

/// A [`Duration`] as a whole number of milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        // Saturating: no limit a user can set comes near u64::MAX milliseconds.
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Cost,
    Turns,
    Duration,
}

impl LimitKind {
    /// The status a task ends in when it crosses this limit.
    pub fn status(self) -> Status {
        match self {
            LimitKind::Cost => Status::CostExceeded,
            LimitKind::Turns => Status::TurnsExceeded,
            LimitKind::Duration => Status::DurationExceeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Limits;
    use std::time::Duration;

    #[test]
    fn limits_are_stored_with_the_wall_time_in_milliseconds() {
        let limits = Limits {
            max_cost_usd: 0.5,
            max_turns: 10,
            max_duration: Duration::from_millis(300_500),
        };
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(
            json,
            r#"{"max_cost_usd":0.5,"max_turns":10,"max_duration_ms":300500}"#
        );
        assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), limits);
    }
}
