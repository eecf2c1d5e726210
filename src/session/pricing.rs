//! claude's per-model prices, for estimating what a session has spent before its `result`
//! says what it really cost.

use super::protocol::Usage;

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

const OPUS: Price = Price {
    input: 5.0,
    output: 25.0,
    cache_read: 0.5,
    cache_write: 6.25,
};
const SONNET: Price = Price {
    input: 3.0,
    output: 15.0,
    cache_read: 0.3,
    cache_write: 3.75,
};
const HAIKU: Price = Price {
    input: 1.0,
    output: 5.0,
    cache_read: 0.1,
    cache_write: 1.25,
};

// The 5.5 family, the default of Claude Code 2.1.332 on (as that CLI charged them, per million
// tokens of each kind, against a fake API: PROTOCOL.md, "Cost").
const OPUS_5_5: Price = Price {
    input: 4.0,
    output: 20.0,
    cache_read: 0.2,
    cache_write: 5.0,
};
const SONNET_5_5: Price = Price {
    input: 2.0,
    output: 10.0,
    cache_read: 0.1,
    cache_write: 2.5,
};
const HAIKU_5_5: Price = Price {
    input: 0.5,
    output: 0.5,
    cache_read: 0.05,
    cache_write: 0.625,
};

/// The price claude charges for `model`. Where the tested Claude Code versions disagree (2.1.332
/// charges `claude-sonnet-5` less than 2.1.197 does, and an unknown model as Opus 5.5 rather
/// than Opus 4.8), the dearer price holds: an estimate that errs high stops a task early rather
/// than late. So an unknown model is priced as Opus, the dearest.
pub fn price_of(model: &str) -> Price {
    let model = model.to_ascii_lowercase();
    if model.contains("opus-5-5") {
        OPUS_5_5
    } else if model.contains("sonnet-5-5") {
        SONNET_5_5
    } else if model.contains("haiku-5-5") {
        HAIKU_5_5
    } else if model.contains("haiku") {
        HAIKU
    } else if model.contains("sonnet") {
        SONNET
    } else {
        OPUS
    }
}

impl Price {
    /// The cost of `usage` plus `extra_output` tokens not yet counted in it.
    pub fn cost(&self, usage: &Usage, extra_output: u64) -> f64 {
        let per_token = |tokens: u64, per_million: f64| tokens as f64 * per_million / 1_000_000.0;
        per_token(usage.input_tokens, self.input)
            + per_token(
                usage.output_tokens.saturating_add(extra_output),
                self.output,
            )
            + per_token(usage.cache_read_input_tokens, self.cache_read)
            + per_token(usage.cache_creation_input_tokens, self.cache_write)
    }
}

/// Roughly how many tokens `text` took to generate: about four characters a token.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::{HAIKU, HAIKU_5_5, OPUS, OPUS_5_5, SONNET, SONNET_5_5, Usage, price_of};

    #[test]
    fn output_counts_at_the_edge_of_u64_are_priced_without_overflowing() {
        let usage = Usage {
            output_tokens: u64::MAX,
            ..Usage::default()
        };
        assert!(OPUS.cost(&usage, 1).is_finite());
    }

    #[test]
    fn prices_match_the_table_claude_uses() {
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            ..Usage::default()
        };
        // PROTOCOL.md: 1000 in / 100 out on opus costs 0.0075.
        assert!((price_of("claude-opus-4-8[1m]").cost(&usage, 0) - 0.0075).abs() < 1e-12);
        assert_eq!(price_of("claude-sonnet-5"), SONNET);
        assert_eq!(price_of("claude-sonnet-4-5-20250929"), SONNET);
        assert_eq!(price_of("claude-haiku-4-5-20251001"), HAIKU);
        assert_eq!(price_of("my-custom-model"), OPUS);
    }

    #[test]
    fn the_5_5_models_are_priced_as_claude_2_1_332_charges_them() {
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            ..Usage::default()
        };
        // PROTOCOL.md: 1000 in / 100 out on claude-opus-5-5, 2.1.332's default, costs 0.006.
        assert!((price_of("claude-opus-5-5").cost(&usage, 0) - 0.006).abs() < 1e-12);
        assert!((price_of("claude-opus-5-5[1m]").cost(&usage, 0) - 0.006).abs() < 1e-12);
        assert_eq!(price_of("claude-sonnet-5-5"), SONNET_5_5);
        assert_eq!(price_of("claude-haiku-5-5"), HAIKU_5_5);
        // A million tokens of each kind, as the CLI's total_cost_usd gave them.
        let million = |kind: fn(&mut Usage)| {
            let mut usage = Usage::default();
            kind(&mut usage);
            price_of("claude-opus-5-5").cost(&usage, 0)
        };
        assert_eq!(million(|u| u.input_tokens = 1_000_000), 4.0);
        assert_eq!(million(|u| u.output_tokens = 1_000_000), 20.0);
        assert_eq!(million(|u| u.cache_read_input_tokens = 1_000_000), 0.2);
        assert_eq!(million(|u| u.cache_creation_input_tokens = 1_000_000), 5.0);
        // The older Opus keeps its own price.
        assert_eq!(price_of("claude-opus-4-8"), OPUS);
        assert_ne!(OPUS_5_5, OPUS);
    }
}
