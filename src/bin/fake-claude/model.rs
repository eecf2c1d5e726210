//! The model a `--model` names, and the price table its costs come from.

use crate::script::Usage;

const DEFAULT_MODEL: &str = "claude-opus-4-8";

pub struct Model {
    /// As shown in `init` and as the `modelUsage` key.
    pub name: String,
    /// As sent to the API and shown in assistant messages.
    pub api_name: String,
    pub input_price: f64,
    pub output_price: f64,
    pub context_window: u64,
    pub max_output_tokens: u64,
}

impl Model {
    pub fn resolve(arg: Option<&str>) -> Model {
        let (api_name, one_million) = match arg {
            // The API-key default is the 1M-context Opus.
            None => (DEFAULT_MODEL.to_string(), true),
            Some(arg) => {
                let (base, one_million) = match arg.strip_suffix("[1m]") {
                    Some(base) => (base, true),
                    None => (arg, false),
                };
                let api_name = match base {
                    "opus" => DEFAULT_MODEL,
                    "sonnet" => "claude-sonnet-5",
                    "haiku" => "claude-haiku-4-5-20251001",
                    other => other,
                };
                (api_name.to_string(), one_million)
            }
        };
        // Any model the price table does not know is billed like Opus.
        let (input_price, output_price) = if api_name.starts_with("claude-sonnet-5")
            || api_name.starts_with("claude-sonnet-4-5")
        {
            (3.0, 15.0)
        } else if api_name.starts_with("claude-haiku-4-5") {
            (1.0, 5.0)
        } else {
            (5.0, 25.0)
        };
        let max_output_tokens = if api_name.starts_with("claude-sonnet-4-5")
            || api_name.starts_with("claude-haiku-4-5")
        {
            32_000
        } else {
            64_000
        };
        Model {
            name: if one_million {
                format!("{api_name}[1m]")
            } else {
                api_name.clone()
            },
            api_name,
            input_price,
            output_price,
            context_window: if one_million { 1_000_000 } else { 200_000 },
            max_output_tokens,
        }
    }

    /// Per million tokens first, then times the price: the real CLI's rounding
    /// (samples/max_budget reports 0.6300000000000001, not 0.63).
    pub fn cost(&self, usage: Usage) -> f64 {
        usage.input_tokens as f64 / 1_000_000.0 * self.input_price
            + usage.output_tokens as f64 / 1_000_000.0 * self.output_price
    }
}
