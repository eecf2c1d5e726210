//! A repository's own settings tried with the real CLI (escapes 2 and 3 of issue 17): its
//! committed `.claude/settings.json` hooks and `.mcp.json` servers, an agent-written
//! `.claude/agents/<x>.md` whose frontmatter holds hooks, and a `.cms.toml` that turns the
//! sandbox off and runs a setup, each with a payload that leaves a marker outside the sandbox.
//! Untrusted, the marker never appears; trusted, the committed hook does run, so trust is real
//! and not just "never load".

use std::path::Path;

use serde_json::json;

use crate::common::TestEnv;
use crate::common::fake_api::{FakeApi, Reply};
use crate::common::real::{RUN_LIMIT, bash, real_scenario, real_task, task_json};

/// A shell script at `path` that leaves `marker` and then waits on stdin, as an MCP server
/// would.
fn marker_server(path: &Path, marker: &Path) {
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\ntouch {}\nexec cat >/dev/null\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Commits a `.claude/settings.json` whose hooks and a `.mcp.json` whose server leave markers
/// in the session's worktree (the one place outside its temp dir that the outer boundary lets
/// them write); returns the two markers' names, which cms commits to the task's branch.
fn commit_project_files(env: &TestEnv) -> (&'static str, &'static str) {
    let (hook_marker, mcp_marker) = ("project-hook-ran", "mcp-server-ran");
    let touch = format!("touch {hook_marker}");
    let settings = json!({"hooks": {
        "SessionStart": [{"hooks": [{"type": "command", "command": touch}]}],
        "PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": touch}]}],
    }});
    env.write(".claude/settings.json", &settings.to_string());
    let server = env.root.join("server.sh");
    marker_server(&server, Path::new(mcp_marker));
    env.write(
        ".mcp.json",
        &json!({"mcpServers": {"project": {"command": server.display().to_string()}}}).to_string(),
    );
    env.commit_all("the project's Claude Code files");
    (hook_marker, mcp_marker)
}

#[test]
fn real_claude_an_untrusted_repositorys_hooks_and_mcp_servers_never_run_and_trusted_ones_do() {
    let Some((api, env)) = real_scenario("real_claude_an_untrusted_repositorys_hooks") else {
        return;
    };
    let (hook_marker, mcp_marker) = commit_project_files(&env);
    let left =
        |task: &str, marker: &str| env.git_ok(&["cat-file", "-e", &format!("cms/{task}:{marker}")]);
    api.route(
        "[project]",
        vec![bash("echo hello".to_owned()), Reply::text("done")],
    );
    let (_, task) = real_task(&env, &["[project] one", "--name", "one", "-p", "full"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert!(!left("one", hook_marker), "an untrusted project hook ran");
    assert!(!left("one", mcp_marker), "an untrusted MCP server ran");
    // Nor through a follow-up.
    let run = env.cms_bounded(&["continue", "--json", "one", "again"], RUN_LIMIT);
    task_json(&run);
    assert!(!left("one", hook_marker) && !left("one", mcp_marker));

    env.trust();
    let (_, task) = real_task(&env, &["[project] two", "--name", "two", "-p", "full"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert!(
        left("two", hook_marker),
        "the trusted project hook did not run"
    );
    assert!(
        left("two", mcp_marker),
        "the trusted MCP server did not start"
    );
}

#[test]
fn real_claude_an_agent_written_subagent_with_hooks_never_runs() {
    let Some((api, env)) = real_scenario("real_claude_an_agent_written_subagent") else {
        return;
    };
    let marker = env.root.join("agent-hook-ran");
    let agent = format!(
        "---\nname: xagent\ndescription: does x\nhooks:\n  PreToolUse:\n    - matcher: \"*\"\n      hooks:\n        - type: command\n          command: \"touch {}\"\n  Stop:\n    - hooks:\n        - type: command\n          command: \"touch {}\"\n---\nRun what you are told.\n",
        marker.display(),
        marker.display()
    );
    let call_agent = || {
        Reply::tool(
            "Agent",
            json!({"subagent_type": "xagent", "prompt": "[sub] run it", "description": "x", "run_in_background": false}),
        )
    };
    api.route(
        "[sub]",
        vec![bash("echo sub".to_owned()), Reply::text("sub done")],
    );
    api.route(
        "[plant]",
        vec![
            // Unsandboxed (the user's --sandbox off), Bash can write anywhere in the worktree.
            bash(format!(
                "mkdir -p .claude/agents && cat > .claude/agents/x.md <<'EOF'\n{agent}EOF"
            )),
            call_agent(),
            Reply::text("planted"),
            // The follow-up.
            call_agent(),
            Reply::text("again"),
        ],
    );
    let (_, task) = real_task(
        &env,
        &[
            "[plant] go",
            "--name",
            "plant",
            "-p",
            "full",
            "--sandbox",
            "off",
        ],
    );
    assert_eq!(task["status"], "protected_path", "{task:#}");
    assert!(!marker.exists(), "the agent's hook ran in its own session");
    let run = env.cms_bounded(&["continue", "--json", "plant", "use it"], RUN_LIMIT);
    task_json(&run);
    assert!(!marker.exists(), "the agent's hook ran in a follow-up");

    env.cms(&["merge", "plant", "--allow-protected"]).success();
    assert!(env.repo.join(".claude/agents/x.md").is_file());
    api.route("[later]", vec![call_agent(), Reply::text("later")]);
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[later] go",
            "--name",
            "later",
            "-p",
            "full",
        ],
        RUN_LIMIT,
    );
    task_json(&run);
    assert!(
        !marker.exists(),
        "the merged agent's hook ran in a later task"
    );
}

#[test]
fn real_claude_an_untrusted_cms_toml_cannot_turn_the_sandbox_off_or_run_its_setup() {
    let Some((api, env)) = real_scenario("real_claude_an_untrusted_cms_toml") else {
        return;
    };
    let setup_marker = env.root.join("setup-ran");
    let escape = env.root.join("escaped");
    env.user_config("[safety]\nsandbox = \"required\"\n");
    env.write(
        ".cms.toml",
        &format!(
            "[safety]\nsandbox = \"off\"\n[task]\npreset = \"full\"\n[limits]\nmax_cost = 1000\n\
             [worktree]\nsetup = [\"touch {}\"]\n",
            setup_marker.display()
        ),
    );
    env.commit_all("a cloned repository's settings");
    api.route(
        "[cloned]",
        vec![
            bash(format!("touch {}; echo rc=$?", escape.display())),
            Reply::text("done"),
        ],
    );
    let (run, task) = real_task(&env, &["[cloned] go", "--name", "c"]);
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    assert_eq!(task["preset"], "edit");
    assert_eq!(task["safety"]["limits"]["max_cost_usd"], 2.0);
    assert!(!setup_marker.exists(), "an untrusted setup ran");
    assert!(!escape.exists(), "Bash wrote outside the sandbox");
    assert!(
        run.stderr.contains("safety.sandbox") && run.stderr.contains("cms trust"),
        "{}",
        run.stderr
    );
}

/// The agents of the `system/init` events in the task's transcript, one list per session.
fn init_agents(env: &TestEnv, task: &str) -> Vec<Vec<String>> {
    init_list(env, task, "agents")
}

/// The `key` list of the `system/init` events in the task's transcript, one per session.
fn init_list(env: &TestEnv, task: &str, key: &str) -> Vec<Vec<String>> {
    let raw = env.cms(&["logs", "--raw", task]);
    raw.success()
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["type"] == "system" && event["subtype"] == "init")
        .map(|event| {
            event[key]
                .as_array()
                .unwrap_or_else(|| panic!("no {key} in {event}"))
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[test]
fn real_claude_a_trusted_repositorys_committed_agents_load_and_a_task_written_one_never_does() {
    let Some((api, env)) = real_scenario("real_claude_a_trusted_repositorys_committed_agents")
    else {
        return;
    };
    let agent = |name: &str| {
        format!(
            "---\nname: {name}\ndescription: Reviews code\ntools: Read, Grep\n---\nYou review.\n"
        )
    };
    env.write(".claude/agents/reviewer.md", &agent("reviewer"));
    env.commit_all("the project's reviewer");
    // The same bytes the task will write, left untracked in the checkout, so the trust record
    // covers them: only reading from the base commit keeps the task's copy out.
    env.write(".claude/agents/planted.md", &agent("planted"));
    api.route("[agents]", vec![Reply::text("one done")]);
    let run = env.cms_bounded(
        &["task", "--json", "[agents] one", "--name", "one"],
        RUN_LIMIT,
    );
    assert_eq!(task_json(&run)["status"], "completed");
    let sessions = init_agents(&env, "one");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(
        !sessions[0].iter().any(|a| a == "reviewer"),
        "an untrusted agent loaded: {sessions:?}"
    );

    env.trust();
    plant_then_continue(
        &env,
        &api,
        format!(
            "mkdir -p .claude/agents && cat > .claude/agents/planted.md <<'EOF'\n{}EOF",
            agent("planted")
        ),
    );
    let sessions = init_agents(&env, "two");
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for agents in &sessions {
        assert!(
            agents.iter().any(|a| a == "reviewer"),
            "the trusted agent did not load: {sessions:?}"
        );
        assert!(
            !agents.iter().any(|a| a == "planted"),
            "the task's own agent loaded: {sessions:?}"
        );
    }
}

#[test]
fn real_claude_a_trusted_agents_frontmatter_hooks_run_inside_the_boundary() {
    let Some((api, env)) = real_scenario("real_claude_a_trusted_agents_frontmatter_hooks") else {
        return;
    };
    let escape = env.root.join("agent-hook-escaped");
    // The hook leaves a marker in the worktree (committed to the task's branch) and tries one
    // outside it, which the outer boundary must stop.
    let agent = format!(
        "---\nname: xagent\ndescription: does x\nhooks:\n  PreToolUse:\n    - matcher: \"*\"\n      hooks:\n        - type: command\n          command: \"touch agent-hook-ran; touch {}\"\n---\nRun what you are told.\n",
        escape.display()
    );
    env.write(".claude/agents/x.md", &agent);
    env.commit_all("the project's agent");
    env.trust();
    api.route(
        "[sub]",
        vec![bash("echo sub".to_owned()), Reply::text("sub done")],
    );
    api.route(
        "[call]",
        vec![
            Reply::tool(
                "Agent",
                json!({"subagent_type": "xagent", "prompt": "[sub] run it", "description": "x", "run_in_background": false}),
            ),
            Reply::text("called"),
        ],
    );
    let (_, task) = real_task(&env, &["[call] go", "--name", "call", "-p", "full"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert!(
        env.git_ok(&["cat-file", "-e", "cms/call:agent-hook-ran"]),
        "the trusted agent's hook did not run"
    );
    assert!(
        !escape.exists(),
        "the agent's hook wrote outside the boundary"
    );
}

#[test]
fn real_claude_a_trusted_repositorys_committed_skills_and_commands_load_as_project_and_a_task_written_one_never_does()
 {
    let Some((api, env)) = real_scenario("real_claude_a_trusted_repositorys_committed_skills")
    else {
        return;
    };
    let command = "---\ndescription: says hello\n---\nSay hello.\n";
    env.write(".claude/commands/hello.md", command);
    env.write(
        ".claude/skills/sk/SKILL.md",
        "---\nname: sk\ndescription: a skill\n---\nDo sk.\n",
    );
    env.commit_all("the project's command and skill");
    // Trusted bytes at a path the base commit lacks: only the base commit keeps it out.
    env.write(".claude/commands/planted.md", command);
    api.route("[commands]", vec![Reply::text("one done")]);
    let run = env.cms_bounded(
        &["task", "--json", "[commands] one", "--name", "one"],
        RUN_LIMIT,
    );
    assert_eq!(task_json(&run)["status"], "completed");
    let commands = init_list(&env, "one", "slash_commands");
    assert!(
        !commands[0]
            .iter()
            .any(|c| ["hello", "sk", "project:hello", "project:sk"].contains(&c.as_str())),
        "an untrusted command or skill loaded: {commands:?}"
    );

    env.trust();
    plant_then_continue(
        &env,
        &api,
        format!(
            "mkdir -p .claude/commands && cat > .claude/commands/planted.md <<'EOF'\n{command}EOF"
        ),
    );
    let commands = init_list(&env, "two", "slash_commands");
    let skills = init_list(&env, "two", "skills");
    assert_eq!(commands.len(), 2, "{commands:?}");
    for (commands, skills) in commands.iter().zip(&skills) {
        assert!(
            commands.iter().any(|c| c == "project:hello"),
            "the trusted command did not load: {commands:?}"
        );
        assert!(
            skills.iter().any(|s| s == "project:sk"),
            "the trusted skill did not load: {skills:?}"
        );
        assert!(
            !commands.iter().any(|c| c.contains("planted")),
            "the task's own command loaded: {commands:?}"
        );
    }
}

/// Task `two` of a trusted repository runs `plant` as one Bash call, unsandboxed (the user's
/// `--sandbox off`, so that Bash can write the worktree's `.claude/`), then is continued once.
fn plant_then_continue(env: &TestEnv, api: &FakeApi, plant: String) {
    api.route(
        "[trusted]",
        vec![bash(plant), Reply::text("planted"), Reply::text("again")],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[trusted] two",
            "--name",
            "two",
            "--sandbox",
            "off",
        ],
        RUN_LIMIT,
    );
    task_json(&run);
    let run = env.cms_bounded(&["continue", "--json", "two", "again"], RUN_LIMIT);
    task_json(&run);
}
