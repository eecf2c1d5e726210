//! `cms config`: the effective configuration, each value with the layer it comes from.

use serde_json::Value;

use crate::common::{Run, TestEnv};

/// The `source` of `key` in `cms config --json`, and its value.
fn setting(run: &Run, key: &str) -> (Value, String) {
    let json = run.json();
    let entry = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("{key} not in {json}"))
        .clone();
    (
        entry["value"].clone(),
        entry["source"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn config_names_the_layer_each_value_comes_from() {
    let env = TestEnv::new();
    env.user_config("[limits]\nmax_cost = 5.0\n[safety]\nprotected = [\"secrets/**\"]\n");
    env.write(
        ".cms.toml",
        "[limits]\nmax_cost = 1.0\n[safety]\nprotected = [\"infra/**\"]\n",
    );
    env.git(&["add", ".cms.toml"]);
    env.git(&["commit", "-qm", "settings"]);
    env.trust();
    let mut command = env.cms_command(&env.repo, &["config", "--json"]);
    command.env("CMS_MAX_TURNS", "7");
    let run = Run::from(command.output().unwrap());
    run.success();
    assert_eq!(setting(&run, "limits.max_cost").0, 1.0);
    assert!(
        setting(&run, "limits.max_cost").1.ends_with(".cms.toml"),
        "{}",
        run.stdout
    );
    assert_eq!(
        setting(&run, "limits.max_turns"),
        (Value::from(7), "environment (CMS_*)".to_owned())
    );
    assert_eq!(setting(&run, "task.preset").1, "built-in default");
    // Protected paths add up: both files are named.
    let (protected, source) = setting(&run, "safety.protected");
    assert_eq!(protected, serde_json::json!(["secrets/**", "infra/**"]));
    assert!(
        source.contains("config.toml") && source.contains(".cms.toml"),
        "{source}"
    );
}

#[test]
fn config_says_an_untrusted_repository_file_only_tightens() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[limits]\nmax_cost = 9.0\nmax_turns = 3\n");
    let run = env.cms(&["config"]);
    run.success();
    // Raising the cost limit is ignored, lowering the turns is kept, and the line says why.
    assert!(run.stdout.contains("limits.max_cost"), "{}", run.stdout);
    let turns = run
        .stdout
        .lines()
        .find(|l| l.starts_with("limits.max_turns"))
        .unwrap();
    assert!(
        turns.contains("= 3") && turns.contains("untrusted: only tightens"),
        "{turns}"
    );
    let cost = run
        .stdout
        .lines()
        .find(|l| l.starts_with("limits.max_cost "))
        .unwrap();
    assert!(
        cost.contains("= 2.0") && cost.contains("built-in default"),
        "{cost}"
    );
    assert!(
        run.stderr.contains("max_cost"),
        "the ignored key is named: {}",
        run.stderr
    );
}
