//! `[runners.NAME]` and `[task] runner`: what the user's file may say, and what no repository may.

use crate::config::tests::base;
use crate::config::{Config, ConfigError, toml_like};
use crate::runner::{RunnerConfig, RunnerKind};

const LAB: &str = r#"
[runners.lab]
kind = "ray"
address = "http://ray-head:8265"
remote = "git@example.com:team/app.git"
env = ["ANTHROPIC_API_KEY", "GH_TOKEN"]
cpus = 2
memory = "4GiB"
cms = "/usr/local/bin/cms"
claude = "/opt/claude/bin/claude"

[task]
runner = "lab"
"#;

fn user(text: &str) -> Result<Config, ConfigError> {
    let mut config = base();
    config.apply(text, "user.toml", None).map(|()| config)
}

#[test]
fn a_runner_of_the_users_file_is_read_whole() {
    let config = user(LAB).unwrap();
    assert_eq!(
        config.runners["lab"],
        RunnerConfig {
            kind: RunnerKind::Ray,
            address: "http://ray-head:8265".into(),
            remote: "git@example.com:team/app.git".into(),
            env: vec!["ANTHROPIC_API_KEY".into(), "GH_TOKEN".into()],
            cpus: 2.0,
            memory: Some(4 << 30),
            cms: Some("/usr/local/bin/cms".into()),
            claude: "/opt/claude/bin/claude".into(),
        }
    );
    assert_eq!(config.runner.as_deref(), Some("lab"));
}

#[test]
fn a_runner_needs_only_kind_address_and_remote() {
    let config = user(
        "[runners.small]\nkind = \"ray\"\naddress = \"https://ray.example.com/\"\nremote = \"/srv/git/app.git\"\n",
    )
    .unwrap();
    let small = &config.runners["small"];
    assert_eq!(small.cpus, 1.0);
    assert_eq!(small.memory, None);
    assert_eq!(
        small.cms, None,
        "no cms on the workers: this binary is uploaded"
    );
    assert_eq!(small.claude, "claude");
    assert!(small.env.is_empty());
    assert_eq!(config.runner, None, "no default runner unless one is named");
}

#[test]
fn a_repository_file_that_names_runners_is_refused_trusted_or_not() {
    for trusted in [true, false] {
        for (text, key) in [
            (LAB, "[runners]"),
            ("[task]\nrunner = \"lab\"\n", "task.runner"),
        ] {
            let mut config = user(LAB).unwrap();
            let err = config
                .apply(text, "/repo/.cms.toml", Some(trusted))
                .unwrap_err();
            assert!(
                matches!(&err, ConfigError::UserOnly { key: k, .. } if *k == key),
                "{err}"
            );
            let message = err.to_string();
            assert!(message.contains("/repo/.cms.toml"), "{message}");
            assert!(message.contains("user configuration"), "{message}");
        }
    }
}

#[test]
fn runner_settings_the_runner_cannot_use_are_refused_naming_the_key() {
    let table = |extra: &str| {
        format!(
            "[runners.lab]\nkind = \"ray\"\naddress = \"http://h:8265\"\nremote = \"/r.git\"\n{extra}"
        )
    };
    let cases = [
        (
            "[runners.lab]\nkind = \"k8s\"\naddress = \"http://h:8265\"\nremote = \"/r.git\"\n"
                .to_owned(),
            "kind",
        ),
        (
            "[runners.lab]\nkind = \"ray\"\naddress = \"ray-head:8265\"\nremote = \"/r.git\"\n"
                .to_owned(),
            "address",
        ),
        (
            "[runners.lab]\nkind = \"ray\"\naddress = \"http://h:8265\"\nremote = \" \"\n"
                .to_owned(),
            "remote",
        ),
        (table("env = [\"NOT-A-NAME\"]"), "env"),
        (table("cpus = 0"), "cpus"),
        (table("cpus = -1.5"), "cpus"),
        (table("memory = \"lots\""), "memory"),
        (table("memory = 0"), "memory"),
        (table("cms = \"\""), "cms"),
        (table("claude = \" \""), "claude"),
    ];
    for (text, key) in cases {
        let err = user(&text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Runner { runner, key: k, .. } if runner == "lab" && *k == key),
            "{text}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("runners.lab.{key}")),
            "{err}"
        );
    }
    let err = user(&table("secret = \"x\"")).unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { .. }),
        "unknown keys are refused: {err}"
    );
    let err =
        user("[runners.\"a b\"]\nkind = \"ray\"\naddress = \"http://h:1\"\nremote = \"/r\"\n")
            .unwrap_err();
    assert!(
        matches!(err, ConfigError::Value { key: "runners", .. }),
        "{err}"
    );
}

#[test]
fn the_default_runner_must_be_a_configured_one() {
    let err = user("[task]\nrunner = \"lab\"\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Value { key: "task.runner", reason, .. } if reason.contains("no runner is configured")),
        "{err}"
    );
    let text = LAB.replace("runner = \"lab\"", "runner = \"elsewhere\"");
    let err = user(&text).unwrap_err();
    assert!(err.to_string().contains("configured: lab"), "{err}");
}

#[test]
fn cms_config_shows_runners_with_the_names_of_their_variables() {
    let config = user(LAB).unwrap();
    let entries = config.entries();
    let value = |key: &str| entries.iter().find(|(k, _)| *k == key).unwrap().1.clone();
    assert_eq!(value("task.runner"), "lab");
    let runners = value("runners");
    assert_eq!(
        runners["lab"]["env"],
        serde_json::json!(["ANTHROPIC_API_KEY", "GH_TOKEN"])
    );
    assert_eq!(runners["lab"]["memory"], 4u64 << 30);
    let shown = toml_like(&runners);
    assert!(
        shown.starts_with("{ lab = { kind = \"ray\", address = \"http://ray-head:8265\""),
        "{shown}"
    );
    assert_eq!(toml_like(&value("runners")), toml_like(&runners));
    assert_eq!(
        toml_like(
            &base()
                .entries()
                .iter()
                .find(|(k, _)| *k == "runners")
                .unwrap()
                .1
        ),
        "{}"
    );
}
