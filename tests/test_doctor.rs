//! `cms doctor`: each check's verdict, hint and exit code, as text and as JSON.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::{FAKE_CLAUDE, Run, TestEnv};

/// A stand-in `claude` that is a shell script, for versions and failures the fake cannot show.
fn script_claude(env: &TestEnv, body: &str) -> PathBuf {
    let path = env.root.join("claude-script");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[track_caller]
fn checks_of(run: &Run) -> Value {
    run.json()["checks"].clone()
}

#[test]
fn doctor_passes_with_the_tested_claude_in_a_repository() {
    let env = TestEnv::new();
    let run = env.cms(&["doctor"]);
    run.success();
    let claude = run.stdout.lines().find(|l| l.contains("claude")).unwrap();
    assert!(claude.starts_with("ok"), "{}", run.stdout);
    assert!(
        claude.contains(&format!(
            "2.1.197 (Claude Code) at {FAKE_CLAUDE} (from CMS_CLAUDE_BIN)"
        )),
        "{claude}"
    );
    assert!(!run.stdout.contains("hint:"), "{}", run.stdout);

    let run = env.cms(&["doctor", "--json"]);
    run.success();
    let json = run.json();
    assert_eq!(json["ok"], true);
    let checks = &json["checks"];
    for name in ["claude", "git", "config", "repository"] {
        assert_eq!(checks[name]["status"], "ok", "{name}: {json:#}");
        assert_eq!(checks[name]["hint"], Value::Null, "{name}");
    }
    assert_eq!(checks["claude"]["version"], "2.1.197");
    assert_eq!(checks["claude"]["path"], FAKE_CLAUDE);
    assert_eq!(checks["repository"]["path"], env.repo.display().to_string());
    assert_eq!(checks["repository"]["branch"], "main");
}

#[test]
fn doctor_fails_with_a_hint_when_claude_is_missing_or_broken() {
    let mut env = TestEnv::new();
    env.set_env("CMS_CLAUDE_BIN", "/nonexistent/claude");
    let run = env.cms(&["doctor"]);
    run.code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines.iter().position(|l| l.contains("claude")).unwrap();
    assert!(lines[at].starts_with("failed"), "{}", run.stdout);
    assert!(lines[at].contains("/nonexistent/claude"), "{}", run.stdout);
    assert!(
        lines[at + 1].trim_start().starts_with("hint:"),
        "{}",
        run.stdout
    );
    let checks = checks_of(&env.cms(&["doctor", "--json"]));
    assert_eq!(checks["claude"]["status"], "failed");
    assert!(checks["claude"]["hint"].is_string());
    // The other checks do not depend on claude.
    assert_eq!(checks["git"]["status"], "ok");

    let mut env = TestEnv::new();
    let broken = script_claude(&env, "echo 'claude: cannot start' >&2\nexit 2");
    env.set_env("CMS_CLAUDE_BIN", broken.to_str().unwrap());
    let run = env.cms(&["doctor", "--json"]);
    run.code(1);
    let json = run.json();
    assert_eq!(json["ok"], false);
    let claude = &json["checks"]["claude"];
    assert_eq!(claude["status"], "failed");
    let message = claude["message"].as_str().unwrap();
    assert!(message.contains("claude: cannot start"), "{message}");
    assert!(claude["hint"].as_str().unwrap().contains("Claude Code"));
}

#[test]
fn doctor_warns_about_an_untested_claude_version_without_failing() {
    let mut env = TestEnv::new();
    let newer = script_claude(&env, "echo '9.9.9 (Claude Code)'");
    env.set_env("CMS_CLAUDE_BIN", newer.to_str().unwrap());
    let run = env.cms(&["doctor", "--json"]);
    run.success();
    let json = run.json();
    assert_eq!(json["ok"], true);
    let claude = &json["checks"]["claude"];
    assert_eq!(claude["status"], "warning");
    assert_eq!(claude["version"], "9.9.9");
    assert_eq!(
        claude["tested_versions"],
        serde_json::json!(["2.1.197", "2.1.332"])
    );
    assert!(claude["message"].as_str().unwrap().contains("not tested"));
    // The hint names the newest tested version, the one a user would install.
    assert!(claude["hint"].as_str().unwrap().contains("2.1.332"));
}

#[test]
fn doctor_accepts_both_the_pinned_and_the_newest_tested_claude_version() {
    for version in ["2.1.197", "2.1.332"] {
        let mut env = TestEnv::new();
        let claude = script_claude(&env, &format!("echo '{version} (Claude Code)'"));
        env.set_env("CMS_CLAUDE_BIN", claude.to_str().unwrap());
        let run = env.cms(&["doctor", "--json"]);
        run.success();
        let check = &run.json()["checks"]["claude"];
        assert_eq!(check["status"], "ok", "{version}: {check:#}");
        assert_eq!(check["version"], version);
        assert!(check["hint"].is_null(), "{version}: {check:#}");
        assert!(
            !check["message"].as_str().unwrap().contains("not tested"),
            "{version}: {check:#}"
        );
    }
}

#[test]
fn doctor_checks_the_configuration_and_the_repository() {
    // A misspelt key fails the configuration check and names the file.
    let env = TestEnv::new();
    env.write(".cms.toml", "[task]\nmodle = \"sonnet\"\n");
    let run = env.cms(&["doctor", "--json"]);
    run.code(1);
    let checks = checks_of(&run);
    assert_eq!(checks["config"]["status"], "failed");
    let message = checks["config"]["message"].as_str().unwrap();
    assert!(message.contains(".cms.toml"), "{message}");
    assert!(checks["config"]["hint"].is_string());
    assert_eq!(checks["claude"]["status"], "ok");

    // Outside a repository cms cannot run tasks, but the installation is fine.
    let env = TestEnv::empty();
    let plain = env.root.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let run = env.cms_in(&plain, &["doctor", "--json"]);
    run.success();
    let checks = checks_of(&run);
    assert_eq!(checks["repository"]["status"], "warning");
    assert!(checks["repository"]["hint"].is_string());
    assert_eq!(checks["config"]["status"], "ok");

    // A bare repository has no work tree for cms to branch from.
    let bare = env.root.join("bare.git");
    std::fs::create_dir_all(&bare).unwrap();
    env.git_in(&bare, &["init", "-q", "--bare"]);
    let run = env.cms_in(&bare, &["doctor", "--json"]);
    run.code(1);
    assert_eq!(checks_of(&run)["repository"]["status"], "failed");

    // A repository without commits cannot give a task a base.
    std::fs::create_dir_all(&env.repo).unwrap();
    env.git(&["init", "-q", "-b", "main"]);
    let run = env.cms(&["doctor", "--json"]);
    run.code(1);
    let checks = checks_of(&run);
    assert_eq!(checks["repository"]["status"], "failed");
    assert!(
        checks["repository"]["message"]
            .as_str()
            .unwrap()
            .contains("no commits")
    );
}

#[test]
fn doctor_prints_the_version_git_reports() {
    let env = TestEnv::new();
    let out = std::process::Command::new("git")
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(version.starts_with("git version "), "{version}");
    let run = env.cms(&["doctor"]);
    let line = run.stdout.lines().find(|l| l.contains(" git")).unwrap();
    assert!(line.contains(&version), "{line}");
    let checks = checks_of(&env.cms(&["doctor", "--json"]));
    assert_eq!(checks["git"]["version"], version.as_str());
    assert!(
        checks["git"]["message"]
            .as_str()
            .unwrap()
            .contains(&version)
    );
}

#[test]
fn ray_doctor_checks_each_runners_api_ray_version_and_remote() {
    let Some(head) =
        crate::common::ray::ray_head("ray_doctor_checks_each_runners_api_ray_version_and_remote")
    else {
        return;
    };
    let mut env = TestEnv::new();
    let remote = env.root.join("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    env.user_config(&format!(
        "{}[task]\nrunner = \"lab\"\n",
        head.runner_toml(
            "lab",
            &remote,
            "env = [\"CMS_TEST_RUNNER_TOKEN\"]\ncpus = 0.5"
        )
    ));
    env.set_env("CMS_TEST_RUNNER_TOKEN", "sk-doctor-never-shown");
    let run = env.cms(&["doctor"]);
    run.success();
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("runner.lab"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.starts_with("ok"), "{head}: {}", run.stdout);
    assert!(
        line.contains(&format!(
            "Ray {} at {}",
            crate::common::ray::PINNED_VERSION,
            head.address
        )),
        "{line}"
    );
    assert!(line.contains("answers"), "{line}");
    let run = env.cms(&["doctor", "--json"]);
    run.success();
    let lab = &checks_of(&run)["runner.lab"];
    assert_eq!(lab["status"], "ok", "{lab:#}");
    assert_eq!(lab["ray_version"], crate::common::ray::PINNED_VERSION);
    assert_eq!(lab["remote_reachable"], true);
    assert_eq!(lab["default"], true);
    assert_eq!(lab["env"], serde_json::json!(["CMS_TEST_RUNNER_TOKEN"]));
    assert_eq!(lab["env_missing"], serde_json::json!([]));
    assert_eq!(
        lab["cms"],
        Value::Null,
        "no cms on the workers: this one is uploaded"
    );
    assert_eq!(lab["cpus"], 0.5);
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains("sk-doctor-never-shown"), "{output}");
    }
}

#[test]
fn doctor_fails_a_runner_it_cannot_reach_naming_what_and_how_to_fix_it() {
    let env = TestEnv::new();
    // A port nothing listens on: refused at once, no time spent waiting.
    let port = crate::common::ray::free_port();
    env.user_config(&format!(
        "[runners.far]\nkind = \"ray\"\naddress = \"http://127.0.0.1:{port}\"\n\
         remote = \"{}\"\nenv = [\"CMS_TEST_UNSET_TOKEN\"]\ncms = \"/usr/local/bin/cms\"\n",
        env.root.join("no-such-remote.git").display()
    ));
    let run = env.cms(&["doctor"]);
    run.code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines.iter().position(|l| l.contains("runner.far")).unwrap();
    assert!(lines[at].starts_with("failed"), "{}", run.stdout);
    assert!(
        lines[at].contains(&format!("127.0.0.1:{port}")),
        "{}",
        lines[at]
    );
    assert!(lines[at + 1].contains("hint:"), "{}", run.stdout);
    let run = env.cms(&["doctor", "--json"]);
    run.code(1);
    let far = &checks_of(&run)["runner.far"];
    assert_eq!(far["status"], "failed", "{far:#}");
    assert_eq!(far["api_reachable"], false);
    assert_eq!(far["ray_version"], Value::Null);
    assert_eq!(far["remote_reachable"], false);
    assert_eq!(
        far["env_missing"],
        serde_json::json!(["CMS_TEST_UNSET_TOKEN"])
    );
    assert_eq!(far["cms"], "/usr/local/bin/cms");
    assert!(
        far["hint"].as_str().unwrap().contains("[runners.far]"),
        "{far:#}"
    );
}
