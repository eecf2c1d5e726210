//! A repository's own settings are trusted explicitly (`cms trust`): until then its
//! `.cms.toml` only tightens, none of its commands run, its `.worktreeinclude` is not used and
//! claude gets none of its Claude Code files; once trusted they apply, as the task's base
//! commit has them; a changed file needs trust again.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::TestEnv;

/// Runs `cms task --json` and returns the task and what cms said on stderr.
fn run_task(env: &TestEnv, name: &str) -> (Value, String) {
    let run = env.cms(&["task", "--json", "work", "-n", name]);
    run.success();
    (run.json(), run.stderr.clone())
}

/// The one warning line about the repository's untrusted settings, if there is one.
fn trust_warning(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("until you trust them"))
        .collect();
    assert!(lines.len() <= 1, "one warning line at most:\n{stderr}");
    lines.first().map(|l| (*l).to_owned())
}

fn show(env: &TestEnv) -> Value {
    let run = env.cms(&["trust", "--show", "--json"]);
    run.success();
    run.json()
}

/// The argument after `flag` (or given as `flag=value`) in claude's last command line.
fn claude_arg(env: &TestEnv, flag: &str) -> Option<String> {
    let invocation = env.claude_invocations().pop()?;
    let argv: Vec<String> = invocation["argv"]
        .as_array()?
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    argv.iter().enumerate().find_map(|(i, arg)| {
        if arg == flag {
            Some(argv.get(i + 1).cloned().unwrap_or_default())
        } else {
            arg.strip_prefix(&format!("{flag}=")).map(str::to_owned)
        }
    })
}

#[test]
fn trust_records_the_settings_files_by_content_and_show_names_what_changed_since() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[limits]\nmax_turns = 9\n");
    env.write(".mcp.json", "{\"mcpServers\": {}}\n");
    env.write(".claude/settings.json", "{}\n");
    let before = show(&env);
    assert_eq!(before["trusted"], false);
    assert_eq!(before["up_to_date"], false);
    let doctor = env.cms(&["doctor", "--json"]).json();
    assert_eq!(doctor["checks"]["trust"]["status"], "warning", "{doctor:#}");

    let run = env.cms(&["trust", "--json"]);
    run.success();
    let trusted = run.json();
    assert_eq!(trusted["trusted"], true);
    assert_eq!(trusted["up_to_date"], true);
    assert_eq!(
        trusted["files"],
        json!([".claude/settings.json", ".cms.toml", ".mcp.json"])
    );
    let doctor = env.cms(&["doctor", "--json"]).json();
    assert_eq!(doctor["checks"]["trust"]["status"], "ok", "{doctor:#}");
    // The record lives in the user's data dir, outside the repository.
    let records: Vec<_> = std::fs::read_dir(env.home.join(".local/share/cms/trust"))
        .unwrap()
        .collect();
    assert_eq!(records.len(), 1);

    env.write(".cms.toml", "[limits]\nmax_turns = 8\n");
    env.write(".claude/agents/x.md", "---\nname: x\n---\nx\n");
    std::fs::remove_file(env.repo.join(".mcp.json")).unwrap();
    let changed = show(&env);
    assert_eq!(changed["trusted"], true);
    assert_eq!(changed["up_to_date"], false);
    assert_eq!(changed["added"], json!([".claude/agents/x.md"]));
    assert_eq!(changed["changed"], json!([".cms.toml"]));
    assert_eq!(changed["removed"], json!([".mcp.json"]));
    let text = env.cms(&["trust", "--show"]).stdout;
    assert!(
        text.contains("changed: .cms.toml") && text.contains("added: .claude/agents/x.md"),
        "{text}"
    );
    let doctor = env.cms(&["doctor", "--json"]).json();
    assert_eq!(doctor["checks"]["trust"]["status"], "warning");
    assert_eq!(doctor["checks"]["trust"]["changed"], json!([".cms.toml"]));

    let run = env.cms(&["trust", "--revoke", "--json"]);
    run.success();
    assert_eq!(run.json()["revoked"], true);
    assert_eq!(show(&env)["trusted"], false);
    assert_eq!(
        env.cms(&["trust", "--revoke", "--json"]).json()["revoked"],
        false
    );
}

#[test]
fn untrusted_repository_cannot_turn_the_sandbox_off() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[safety]\nsandbox = \"off\"\n");
    let doctor = env.cms(&["doctor", "--json"]).json();
    assert_eq!(doctor["checks"]["sandbox"]["mode"], "auto", "{doctor:#}");
    env.user_config("[safety]\nsandbox = \"required\"\n");
    let doctor = env.cms(&["doctor", "--json"]).json();
    assert_eq!(doctor["checks"]["sandbox"]["mode"], "required");
    // Tightening still applies: required over the user's auto.
    env.user_config("");
    env.write(".cms.toml", "[safety]\nsandbox = \"required\"\n");
    let doctor = env.cms(&["doctor", "--json"]).json();
    assert_eq!(doctor["checks"]["sandbox"]["mode"], "required");
    // Trusted, the repository's choice is taken as the user's.
    env.write(".cms.toml", "[safety]\nsandbox = \"off\"\n");
    env.trust();
    let doctor = env.cms(&["doctor", "--json"]).json();
    assert_eq!(doctor["checks"]["sandbox"]["mode"], "off");
}

#[test]
fn untrusted_repository_cannot_raise_limits_or_widen_the_preset_and_says_so_in_one_line() {
    let env = TestEnv::new();
    env.write(
        ".cms.toml",
        "[task]\npreset = \"full\"\n[limits]\nmax_cost = 1000\nmax_turns = 500\nmax_duration = \"2m\"\n[safety]\nprotected = [\"infra/**\"]\n[mcp]\nmax_preset = \"full\"\n",
    );
    env.steps(json!([]));
    let (task, stderr) = run_task(&env, "t");
    assert_eq!(task["preset"], "edit");
    // Lower is tighter: the duration applies.
    assert_eq!(
        task["safety"]["limits"],
        json!({"max_cost_usd": 2.0, "max_turns": 50, "max_duration_ms": 120000})
    );
    assert!(
        task["safety"]["protected"]
            .as_array()
            .unwrap()
            .contains(&json!("infra/**")),
        "{task:#}"
    );
    let warning = trust_warning(&stderr).expect("a warning");
    for key in [
        "task.preset",
        "limits.max_cost",
        "limits.max_turns",
        "mcp.max_preset",
        "cms trust",
    ] {
        assert!(warning.contains(key), "{key} in {warning}");
    }
    assert!(!warning.contains("max_duration"), "{warning}");

    env.trust();
    let (task, stderr) = run_task(&env, "u");
    assert_eq!(task["preset"], "full");
    assert_eq!(
        task["safety"]["limits"],
        json!({"max_cost_usd": 1000.0, "max_turns": 500, "max_duration_ms": 120000})
    );
    assert_eq!(trust_warning(&stderr), None);
}

#[test]
fn untrusted_setup_does_not_run() {
    let env = TestEnv::new();
    let marker = env.root.join("setup-ran");
    env.write(
        ".cms.toml",
        &format!("[worktree]\nsetup = [\"touch {}\"]\n", marker.display()),
    );
    env.steps(json!([]));
    let (task, stderr) = run_task(&env, "t");
    assert_eq!(task["status"], "completed");
    assert!(!marker.exists(), "an untrusted setup ran");
    let warning = trust_warning(&stderr).expect("a warning");
    assert!(warning.contains("worktree.setup (not run)"), "{warning}");

    env.trust();
    run_task(&env, "u");
    assert!(marker.exists(), "the trusted setup did not run");
}

#[test]
fn a_changed_cms_toml_needs_trust_again() {
    let env = TestEnv::new();
    let first = env.root.join("first");
    let second = env.root.join("second");
    env.write(
        ".cms.toml",
        &format!("[worktree]\nsetup = [\"touch {}\"]\n", first.display()),
    );
    env.trust();
    env.write(
        ".cms.toml",
        &format!("[worktree]\nsetup = [\"touch {}\"]\n", second.display()),
    );
    env.steps(json!([]));
    let (_, stderr) = run_task(&env, "t");
    assert!(!first.exists() && !second.exists());
    assert!(trust_warning(&stderr).is_some(), "{stderr}");
    assert_eq!(show(&env)["changed"], json!([".cms.toml"]));
    env.trust();
    run_task(&env, "u");
    assert!(second.exists() && !first.exists());
}

#[test]
fn untrusted_merge_check_refuses_with_a_hint() {
    let env = TestEnv::new();
    let marker = env.root.join("check-ran");
    env.write(
        ".cms.toml",
        &format!("[merge]\ncheck = [\"touch {}\"]\n", marker.display()),
    );
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    run_task(&env, "t");
    let main = env.git(&["rev-parse", "main"]);
    let run = env.cms(&["merge", "t"]);
    run.code(1)
        .one_line_error_with_hint("[merge] check is not trusted");
    assert!(run.stderr.contains("cms trust") && run.stderr.contains("--no-check"));
    assert!(!marker.exists(), "an untrusted check ran");
    assert_eq!(env.git(&["rev-parse", "main"]), main, "nothing was merged");
    env.cms(&["merge", "t", "--no-check"]).success();
    assert!(!marker.exists());
    assert_eq!(env.read("a.txt"), "a\n");

    env.steps(json!([{"write": {"path": "b.txt", "content": "b\n"}}]));
    run_task(&env, "u");
    env.trust();
    env.cms(&["merge", "u"]).success();
    assert!(marker.exists(), "the trusted check did not run");
}

#[test]
fn untrusted_worktreeinclude_and_copy_hand_no_ignored_files_to_a_task() {
    let env = TestEnv::new();
    env.ignored(
        ".env\nconfig/\n",
        &[(".env", "TOKEN=1\n"), ("config/local.json", "{}\n")],
    );
    env.write(".worktreeinclude", ".env\n");
    env.write(".cms.toml", "[worktree]\ncopy = [\"config/local.json\"]\n");
    env.steps(json!([{"bash": "ls -A .env config > seen.txt 2>&1; true"}]));
    let (task, stderr) = run_task(&env, "t");
    let worktree = Path::new(task["worktree"].as_str().unwrap());
    assert!(!worktree.join(".env").exists());
    assert!(!worktree.join("config/local.json").exists());
    let warning = trust_warning(&stderr).expect("a warning");
    assert!(
        warning.contains(".worktreeinclude") && warning.contains("worktree.copy"),
        "{warning}"
    );
    env.trust();
    let (task, _) = run_task(&env, "u");
    let worktree = Path::new(task["worktree"].as_str().unwrap());
    assert!(worktree.join(".env").exists() && worktree.join("config/local.json").exists());
}

#[test]
fn claude_gets_no_project_settings_until_trusted_and_then_only_the_base_commits() {
    let env = TestEnv::new();
    let marker = env.root.join("project-hook-ran");
    let settings = json!({"hooks": {"PreToolUse": [{"matcher": "Write", "hooks": [
        {"type": "command", "command": format!("touch {}", marker.display())}
    ]}]}});
    env.write(".claude/settings.json", &settings.to_string());
    env.write(
        ".mcp.json",
        &json!({"mcpServers": {"srv": {"command": "/bin/true"}}}).to_string(),
    );
    env.write("CLAUDE.md", "Always be kind.\n");
    env.commit_all("claude settings");
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let (_, stderr) = run_task(&env, "t");
    assert!(!marker.exists(), "an untrusted project hook ran");
    let warning = trust_warning(&stderr).expect("a warning");
    assert!(
        warning.contains(".claude/settings.json (not given to claude)")
            && warning.contains(".mcp.json (not given to claude)"),
        "{warning}"
    );
    assert_eq!(
        claude_arg(&env, "--setting-sources").as_deref(),
        Some("user")
    );
    assert!(claude_arg(&env, "--strict-mcp-config").is_some());
    assert_eq!(claude_arg(&env, "--mcp-config"), None);
    // The instructions stay.
    let appended = claude_arg(&env, "--append-system-prompt").unwrap();
    assert!(appended.contains("Always be kind."), "{appended}");

    env.trust();
    let (_, stderr) = run_task(&env, "u");
    assert_eq!(trust_warning(&stderr), None);
    assert!(marker.exists(), "the trusted project hook did not run");
    let servers: Value = serde_json::from_str(&claude_arg(&env, "--mcp-config").unwrap()).unwrap();
    assert_eq!(servers["mcpServers"]["srv"]["command"], "/bin/true");
    // cms's own guard still comes first, and its sandbox settings stand.
    let given: Value = serde_json::from_str(&claude_arg(&env, "--settings").unwrap()).unwrap();
    let pre = given["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre.len(), 2, "{given:#}");
    assert!(
        pre[0]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .contains("guard")
    );
    assert!(given["sandbox"].is_object());

    // Trusted in the checkout but not yet committed: a task's base commit has the old file,
    // which is no longer trusted, so nothing of it is loaded.
    std::fs::remove_file(&marker).unwrap();
    env.write(".claude/settings.json", "{\"hooks\": {}}\n");
    env.trust();
    run_task(&env, "v");
    assert!(
        !marker.exists(),
        "a settings file no longer trusted was loaded"
    );
}

#[test]
fn everything_under_claude_is_protected() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": ".claude/agents/x.md", "content": "---\nname: x\n---\n"}},
        {"bash": "mkdir -p .claude/skills/s && echo s > .claude/skills/s/SKILL.md"}
    ]));
    let run = env.cms(&["task", "--json", "plant", "-n", "t", "--sandbox", "off"]);
    let task = run.json();
    assert_eq!(
        task["safety"]["blocked"][0]["path"], ".claude/agents/x.md",
        "{task:#}"
    );
    assert_eq!(task["status"], "protected_path", "{task:#}");
    let run = env.cms(&["merge", "t"]);
    run.code(1);
    assert!(!env.repo.join(".claude").exists());
}

#[test]
fn without_a_main_checkout_the_settings_trusted_are_those_at_head() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[limits]\nmax_turns = 9\n");
    env.write(".claude/settings.json", "{}\n");
    env.commit_all("settings");
    let bare = env.root.join("bare.git");
    env.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    let checkout = env.root.join("linked");
    env.git_in(
        &bare,
        &["worktree", "add", "-q", checkout.to_str().unwrap(), "main"],
    );
    // A file only in the linked checkout is not what cms reads there: HEAD's are.
    std::fs::write(checkout.join(".mcp.json"), "{}\n").unwrap();
    let run = env.cms_in(&checkout, &["trust", "--json"]);
    run.success();
    let trusted = run.json();
    assert!(
        trusted["source"].as_str().unwrap().starts_with("commit "),
        "{trusted:#}"
    );
    assert_eq!(
        trusted["files"],
        json!([".claude/settings.json", ".cms.toml"])
    );
    assert_eq!(trusted["up_to_date"], true);
}
