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

const RUNNER: &str = "[runners.lab]\nkind = \"ray\"\naddress = \"http://ray-head:8265\"\n\
                      remote = \"/srv/git/app.git\"\nenv = [\"LAB_TOKEN\"]\ncpus = 2\n";

#[test]
fn config_shows_runners_with_the_names_of_their_variables_never_the_values() {
    let mut env = TestEnv::new();
    env.user_config(RUNNER);
    env.set_env("LAB_TOKEN", "sk-value-never-shown");
    for args in [&["config"][..], &["config", "--json"]] {
        let run = env.cms(args);
        run.success();
        assert!(run.stdout.contains("LAB_TOKEN"), "{}", run.stdout);
        assert!(
            run.stdout.contains("http://ray-head:8265"),
            "{}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("sk-value-never-shown") && !run.stderr.contains("sk-value"),
            "{}{}",
            run.stdout,
            run.stderr
        );
    }
    let run = env.cms(&["config", "--json"]);
    let (runners, source) = setting(&run, "runners");
    assert_eq!(runners["lab"]["cpus"], 2.0);
    assert_eq!(runners["lab"]["claude"], "claude");
    assert!(source.ends_with("config.toml"), "{source}");
    let line = run_line(&env.cms(&["config"]), "runners");
    assert!(
        line.contains("{ lab = { kind = \"ray\"") && line.contains("env = [\"LAB_TOKEN\"]"),
        "{line}"
    );
}

fn run_line(run: &Run, key: &str) -> String {
    run.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in {}", run.stdout))
        .to_owned()
}

#[test]
fn the_default_runner_comes_from_the_users_file_or_cms_runner() {
    let mut env = TestEnv::new();
    env.user_config(&format!(
        "{RUNNER}[runners.big]\nkind = \"ray\"\naddress = \"http://big:8265\"\nremote = \"/r.git\"\n\
         [task]\nrunner = \"lab\"\n"
    ));
    let (runner, source) = setting(&env.cms(&["config", "--json"]), "task.runner");
    assert_eq!(runner, "lab");
    assert!(source.ends_with("config.toml"), "{source}");
    env.set_env("CMS_RUNNER", "big");
    assert_eq!(
        setting(&env.cms(&["config", "--json"]), "task.runner"),
        (Value::from("big"), "environment (CMS_*)".to_owned())
    );
    env.set_env("CMS_RUNNER", "nowhere");
    env.cms(&["config"])
        .code(2)
        .one_line_error_with_hint("CMS_RUNNER");
}

#[test]
fn a_repository_that_names_a_runner_is_refused_naming_its_file() {
    let env = TestEnv::new();
    env.user_config(RUNNER);
    for text in [RUNNER, "[task]\nrunner = \"lab\"\n"] {
        env.write(".cms.toml", text);
        env.git(&["add", ".cms.toml"]);
        env.git(&["commit", "-qm", "settings"]);
        env.trust();
        let run = env.cms(&["config"]);
        run.code(1).one_line_error_with_hint(".cms.toml");
        assert!(run.stderr.contains("user configuration"), "{}", run.stderr);
    }
}
