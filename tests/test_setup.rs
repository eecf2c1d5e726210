//! `cms setup` registers cms's MCP server with Claude Code without disturbing anything else,
//! and `cms completions` gives shells cms's commands and task names.

use serde_json::{Value, json};

use crate::common::TestEnv;

fn mcp_json(env: &TestEnv) -> Value {
    serde_json::from_str(&env.read(".mcp.json")).unwrap()
}

#[test]
fn setup_project_twice_leaves_one_entry_and_keeps_the_others() {
    let env = TestEnv::new();
    env.write(
        ".mcp.json",
        "{\n  \"mcpServers\": {\n    \"db\": {\"command\": \"db-mcp\", \"args\": []}\n  },\n  \"extra\": 1\n}\n",
    );
    let first = env.cms(&["setup", "--json"]);
    first.success();
    assert_eq!(first.json()["changed"], true);
    let second = env.cms(&["setup", "--json"]);
    second.success();
    assert_eq!(second.json()["changed"], false);
    let config = mcp_json(&env);
    let servers = config["mcpServers"].as_object().unwrap();
    // The user's keys keep their order; cms's entry is added after them.
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["db", "cms"]);
    assert_eq!(servers["db"], json!({"command": "db-mcp", "args": []}));
    assert_eq!(servers["cms"]["args"], json!(["mcp"]));
    assert_eq!(servers["cms"]["type"], "stdio");
    let command = servers["cms"]["command"].as_str().unwrap();
    assert!(command == "cms" || command.ends_with("/cms"), "{command}");
    assert_eq!(config["extra"], 1);
}

#[test]
fn setup_uninstall_removes_only_its_entry() {
    let env = TestEnv::new();
    env.write(
        ".mcp.json",
        "{\"mcpServers\": {\"db\": {\"command\": \"db-mcp\"}}}\n",
    );
    env.cms(&["setup"]).success();
    let run = env.cms(&["setup", "--uninstall"]);
    run.success();
    assert!(run.stdout.starts_with("removed cms from"), "{}", run.stdout);
    assert_eq!(
        mcp_json(&env),
        json!({"mcpServers": {"db": {"command": "db-mcp"}}})
    );
    let again = env.cms(&["setup", "--uninstall", "--json"]);
    again.success();
    assert_eq!(again.json()["changed"], false);
}

#[test]
fn setup_dry_run_shows_the_change_and_makes_none() {
    let env = TestEnv::new();
    let run = env.cms(&["setup", "--dry-run"]);
    run.success();
    assert!(
        run.stdout.starts_with("would have registered cms in"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\"mcpServers\""), "{}", run.stdout);
    assert!(!env.repo.join(".mcp.json").exists());
}

#[test]
fn setup_refuses_a_broken_mcp_json_and_leaves_it_alone() {
    let env = TestEnv::new();
    env.write(".mcp.json", "{ not json");
    env.cms(&["setup"])
        .code(1)
        .one_line_error_with_hint(".mcp.json is not valid JSON");
    assert_eq!(env.read(".mcp.json"), "{ not json");
}

#[test]
fn an_agent_may_not_change_the_repositorys_mcp_servers() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": ".mcp.json", "content": "{\"mcpServers\": {\"evil\": {\"command\": \"sh\"}}}\n"}},
    ]));
    let run = env.cms(&["task", "x", "-n", "t", "--json"]);
    // The write guard refuses the write before it happens.
    let task = run.json();
    assert_eq!(
        task["safety"]["blocked"][0]["path"], ".mcp.json",
        "{task:#}"
    );
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:.mcp.json"]));
}

#[test]
fn completions_offer_the_open_tasks_with_their_status() {
    let env = TestEnv::new();
    env.task_ok(&["x", "-n", "alpha"]);
    env.task_ok(&["y", "-n", "beta"]);
    env.cms(&["discard", "beta", "--force"]).success();
    let run = crate::common::Run::from(
        env.cms_command(&env.repo, &["--", "cms", "show", ""])
            .env("COMPLETE", "fish")
            .output()
            .unwrap(),
    );
    run.success();
    let tasks: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with('-')).collect();
    assert_eq!(tasks, ["alpha\tcompleted"], "{}", run.stdout);
    let subcommands = crate::common::Run::from(
        env.cms_command(&env.repo, &["--", "cms", "mer"])
            .env("COMPLETE", "fish")
            .output()
            .unwrap(),
    );
    assert!(
        subcommands.stdout.starts_with("merge\t"),
        "{}",
        subcommands.stdout
    );
}

#[test]
fn completions_print_a_script_that_calls_this_cms_back() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = env.cms(&["completions", shell]);
        run.success();
        assert!(
            run.stdout.contains(crate::common::CMS),
            "{shell}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("COMPLETE"), "{shell}: {}", run.stdout);
    }
    env.cms(&["completions", "tcsh"]).code(2);
}

mod real {
    //! `cms setup --scope user` through the real Claude Code CLI, which owns that file.

    use crate::common::real::real_scenario;

    #[test]
    fn real_claude_setup_user_twice_leaves_one_entry_and_uninstall_removes_it() {
        let Some((_api, env)) = real_scenario("real_claude_setup_user") else {
            return;
        };
        let config = env.home.join(".claude/.claude.json");
        let servers = || -> serde_json::Value {
            let text = std::fs::read_to_string(&config).unwrap_or_else(|_| "{}".into());
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["mcpServers"].clone()
        };
        let dry = env.cms(&["setup", "--scope", "user", "--dry-run"]);
        dry.success();
        assert!(
            dry.stdout.contains("mcp add --scope user cms --"),
            "{}",
            dry.stdout
        );
        assert!(servers().get("cms").is_none());
        env.cms(&["setup", "--scope", "user"]).success();
        env.cms(&["setup", "--scope", "user"]).success();
        let entries = servers();
        let names: Vec<&String> = entries.as_object().unwrap().keys().collect();
        assert_eq!(names, ["cms"]);
        assert_eq!(entries["cms"]["args"], serde_json::json!(["mcp"]));
        env.cms(&["setup", "--scope", "user", "--uninstall"])
            .success();
        assert!(servers().get("cms").is_none(), "{}", servers());
    }
}
