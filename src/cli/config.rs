//! `cms config`: the effective configuration here, each value with the layer it comes from.

use clap::Args;
use serde_json::{Value, json};

use super::CommandContext;
use crate::config::{LayerConfig, toml_like};
use crate::error::{CommandError, exit_code};
use crate::report::JSON_VERSION;

/// Show the effective configuration, each value with where it comes from
///
/// Layers, lowest first: built-in defaults, your file (~/.config/cms/config.toml), the
/// repository's .cms.toml (only tightening until `cms trust`), CMS_* variables. Flags of a
/// command override all of them for that command. Lists such as safety.protected add up
/// across layers: each layer that added to one is named.
#[derive(Debug, Args)]
pub struct ConfigArgs {}

/// Where `key`'s value comes from: the layer that set it last (for lists that add up, every
/// layer that changed it). `entries` holds each layer's entries, in the layers' order.
fn source_of(key: &str, layers: &[LayerConfig], entries: &[Vec<(&str, Value)>]) -> String {
    let value_in = |i: usize| entries[i].iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    let changed: Vec<&str> = (1..layers.len())
        .filter(|&i| value_in(i) != value_in(i - 1))
        .map(|i| layers[i].source.as_str())
        .collect();
    let adds_up = matches!(
        key,
        "safety.protected" | "safety.writable" | "safety.hosts" | "worktree.copy" | "worktree.link"
    );
    match changed.as_slice() {
        [] => layers[0].source.clone(),
        several if adds_up => several.join(" + "),
        [.., last] => (*last).to_owned(),
    }
}

pub fn cmd_config(ctx: &CommandContext, _args: ConfigArgs) -> Result<u8, CommandError> {
    let ws = ctx.workspace()?;
    let trust = crate::trust::load(&ws.repo)?;
    let head = ws.repo.head().ok().map(|h| h.oid());
    let layers = ws.config_layers(&trust, head)?;
    let effective = &layers
        .last()
        .expect("the built-in defaults are a layer")
        .config;
    // Each layer's entries once, not once for every key.
    let entries: Vec<Vec<(&str, Value)>> = layers.iter().map(|l| l.config.entries()).collect();
    let rows: Vec<(&str, Value, String)> = effective
        .entries()
        .into_iter()
        .map(|(key, value)| (key, value, source_of(key, &layers, &entries)))
        .collect();
    let ui = &ctx.ui;
    if ui.json {
        let settings: Vec<_> = rows
            .iter()
            .map(|(key, value, source)| json!({"key": key, "value": value, "source": source}))
            .collect();
        ui.print_json(&json!({
            "version": JSON_VERSION,
            "settings": settings,
            "untrusted": effective.untrusted.warning(),
        }));
        return Ok(exit_code::OK);
    }
    let width = rows.iter().map(|(key, ..)| key.len()).max().unwrap_or(0);
    for (key, value, source) in &rows {
        ui.println(&format!(
            "{key:width$} = {}  {}",
            toml_like(value),
            ui.out.dim.apply_to(format!("# {source}"))
        ));
    }
    if let Some(warning) = effective.untrusted.warning() {
        ui.warn(&warning);
    }
    Ok(exit_code::OK)
}
