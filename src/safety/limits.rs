//! Limits: the cost, turns and wall time a task may use, summed across every claude process
//! that serves it, and the moment a running session crosses one.

use std::time::Duration;

use crate::session::Ledger;
use crate::vocab::{LimitKind, Limits};

/// The smallest cost limit: claude's `--max-budget-usd` must be above zero, and a limit
/// smaller than a hundredth of a cent could not pay for one API message anyway.
pub const MIN_COST_USD: f64 = 0.0001;

/// The limits of one task and what it had used before the current process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitState {
    pub limits: Limits,
    /// Wall time of the task's earlier processes.
    pub used_before: Duration,
}

impl LimitState {
    pub fn new(limits: Limits, used_before: Duration) -> LimitState {
        LimitState {
            limits,
            used_before,
        }
    }

    /// The limits recorded for a task whose earlier processes ran for `duration_ms`.
    pub fn recorded(limits: Limits, duration_ms: u64) -> LimitState {
        LimitState::new(limits, Duration::from_millis(duration_ms))
    }

    /// The wall time the current process may still use.
    pub fn time_left(&self) -> Duration {
        self.limits.max_duration.saturating_sub(self.used_before)
    }

    /// The limit the session has crossed, judged on the ledger's live figures. A turn limit is
    /// crossed as soon as the last allowed turn asks for a tool: its result would need one
    /// more turn, and stopping now saves paying for it.
    pub fn crossed(&self, ledger: &Ledger) -> Option<LimitKind> {
        if ledger.live_cost_usd() >= self.limits.max_cost_usd {
            return Some(LimitKind::Cost);
        }
        let turns = ledger.live_turns();
        let max = self.limits.max_turns;
        if turns > max || (turns == max && ledger.awaiting_tool_result()) {
            return Some(LimitKind::Turns);
        }
        None
    }

    /// Flags that make claude enforce what is left of the limits itself, as a backstop to
    /// cms's own watch: `--max-budget-usd` and `--max-turns`.
    pub fn claude_args(&self, ledger: &Ledger) -> Vec<String> {
        // claude refuses a budget that is not above zero ("--max-budget-usd must be a
        // positive number greater than 0") and would not start; cms's own watch stops a
        // task whose budget is spent before claude's backstop matters.
        let cost_left = (self.limits.max_cost_usd - ledger.cost_usd).max(MIN_COST_USD);
        let turns_left = self.limits.max_turns.saturating_sub(ledger.turns).max(1);
        vec![
            "--max-budget-usd".to_owned(),
            // Every digit: a fixed precision would round a small budget down to zero.
            cost_left.to_string(),
            "--max-turns".to_owned(),
            turns_left.to_string(),
        ]
    }

    /// The limit a process's `result` reports claude itself enforced, if any.
    pub fn reported_by_claude(subtype: &str) -> Option<LimitKind> {
        match subtype {
            "error_max_turns" => Some(LimitKind::Turns),
            "error_max_budget_usd" => Some(LimitKind::Cost),
            _ => None,
        }
    }
}

/// A description of a crossed limit for the task's error.
pub fn describe(kind: LimitKind, state: &LimitState, ledger: &Ledger, elapsed: Duration) -> String {
    let limits = &state.limits;
    match kind {
        // The limit as the user gave it (`0.5` prints as $0.5), not rounded to cents.
        LimitKind::Cost => format!(
            "stopped at the cost limit: ${:.4} spent of ${}",
            ledger.live_cost_usd().max(ledger.cost_usd),
            limits.max_cost_usd
        ),
        // Not the count: claude's `num_turns` counts tool turns too, so it can read higher
        // than the API messages the limit counted.
        LimitKind::Turns => format!(
            "stopped at the turn limit of {} turns, before paying for another",
            limits.max_turns
        ),
        LimitKind::Duration => format!(
            "stopped at the time limit: {} of {}",
            humantime::format_duration(round_secs(state.used_before + elapsed)),
            humantime::format_duration(limits.max_duration)
        ),
    }
}

fn round_secs(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}
