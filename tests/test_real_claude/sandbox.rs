//! The real Claude Code CLI in Claude Code's Bash sandbox: Bash writes only in its worktree and
//! temp dir, the read-only presets get no Bash, `edit` runs the shell constructs models write
//! without asking, and a cargo home or a host the user lists is reached only then.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake_api::{FakeApi, Reply};
use crate::common::real::{
    RUN_LIMIT, bash, names, real_claude, real_env, real_scenario, real_task, task_json,
    tool_results,
};
use crate::common::{Run, TestEnv, wait_bounded};

#[test]
fn real_claude_sandboxed_bash_writes_only_in_its_worktree_and_temp_dir() {
    let Some((api, env)) = real_scenario("real_claude_sandboxed_bash_writes_only_in_its_worktree")
    else {
        return;
    };
    api.route("[other]", vec![Reply::text("nothing to do")]);
    let other = task_json(&env.cms_bounded(
        &[
            "task",
            "--json",
            "[other] idle",
            "--name",
            "other",
            "-p",
            "full",
        ],
        RUN_LIMIT,
    ));
    let other_worktree = other["worktree"].as_str().unwrap().to_owned();
    let main = env.repo.display().to_string();
    let common = env.common_dir().display().to_string();
    let outside = env.root.join("outside.txt");
    let refs_before = env.git(&["for-each-ref"]);
    api.route(
        "[box]",
        vec![
            bash(format!("echo x > {main}/evil.txt; echo rc=$?")),
            bash(format!("echo x > {}; echo rc=$?", outside.display())),
            bash(format!("echo x > {other_worktree}/backdoor.sh; echo rc=$?")),
            Reply::tool(
                "Bash",
                json!({"command": format!("echo x > {main}/escaped.txt; echo rc=$?"),
                       "description": "Escape", "dangerouslyDisableSandbox": true}),
            ),
            bash(format!(
                "echo x >> {common}/cms/tasks/box.json; echo rc=$?; echo x >> {common}/config; echo rc=$?"
            )),
            bash(
                "git update-ref -d refs/heads/main; echo rc=$?; git update-ref -d refs/heads/cms/other; echo rc=$?"
                    .to_owned(),
            ),
            // The user's reflog and packed history.
            bash(format!(
                "rm -f {common}/logs/refs/heads/main; echo rc=$?; touch {common}/objects/pack/planted; echo rc=$?"
            )),
            bash(
                "echo in > inside.txt && echo tmp > \"$TMPDIR/t\" && cp \"$TMPDIR/t\" from-tmp.txt && echo rc=$?"
                    .to_owned(),
            ),
            bash(
                "echo agent > agent.txt && git add -A && git commit -q -m 'agent commit' && echo rc=$?"
                    .to_owned(),
            ),
            // A service on the host's localhost (here the fake API itself) is out of reach.
            bash(format!(
                "(exec 3<>/dev/tcp/{}) && echo connected || echo unreachable",
                api.url.trim_start_matches("http://").replace(':', "/")
            )),
            Reply::text("Tried everything."),
        ],
    );
    let (run, task) = real_task(&env, &["[box] try", "--name", "box", "-p", "full"]);
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    let results = tool_results(&env, "box");
    assert_eq!(results.len(), 10, "{results:#?}");
    // Outside the worktree: the main checkout, elsewhere in /tmp, another task's worktree, and
    // the same with the sandbox waived; then cms's store and the repository's config.
    for (i, result) in results[..5].iter().enumerate() {
        assert!(
            result.contains("Read-only file system") && result.contains("rc=1"),
            "call {i}: {result}"
        );
        assert!(!result.contains("rc=0"), "call {i}: {result}");
    }
    assert!(!env.repo.join("evil.txt").exists() && !env.repo.join("escaped.txt").exists());
    assert!(!outside.exists());
    assert!(!Path::new(&other_worktree).join("backdoor.sh").exists());
    assert!(!env.git(&["config", "--list"]).contains("x="));
    // Another task's branch and the user's cannot be deleted.
    assert!(
        results[5].contains("Device or resource busy"),
        "{}",
        results[5]
    );
    assert!(!results[5].contains("rc=0"), "{}", results[5]);
    assert!(!results[6].contains("rc=0"), "{}", results[6]);
    assert!(env.common_dir().join("logs/refs/heads/main").exists());
    assert!(!env.common_dir().join("objects/pack/planted").exists());
    assert_eq!(
        env.git(&["for-each-ref"])
            .lines()
            .filter(|l| !l.contains("cms/box"))
            .collect::<Vec<_>>(),
        refs_before.lines().collect::<Vec<_>>()
    );
    // Inside: the worktree, the temp dir, and the agent's own commit.
    assert!(results[7].ends_with("rc=0"), "{}", results[7]);
    assert!(results[8].ends_with("rc=0"), "{}", results[8]);
    assert!(results[9].ends_with("unreachable"), "{}", results[9]);
    run.success();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]));
    let log = env.git(&["log", "--format=%s", "cms/box"]);
    assert!(log.lines().any(|l| l == "agent commit"), "{log}");
    let files: Vec<String> = env.tree_paths("cms/box");
    assert_eq!(
        files,
        ["README.md", "agent.txt", "from-tmp.txt", "inside.txt"]
    );
}

#[test]
fn real_claude_sandbox_keeps_bash_from_the_read_only_presets_and_gives_it_to_edit() {
    let Some((api, env)) = real_scenario("real_claude_sandbox_keeps_bash_from_read_only_presets")
    else {
        return;
    };
    let main = env.repo.display().to_string();
    let presets = ["read-only", "review", "plan", "edit"];
    for preset in presets {
        api.route(
            &format!("[{preset}]"),
            vec![
                bash(format!("echo x > {main}/{preset}-outside.txt; echo rc=$?")),
                bash(format!("echo made > {preset}.txt")),
                Reply::text("done"),
            ],
        );
    }
    let children: Vec<_> = presets
        .iter()
        .map(|preset| {
            env.spawn_cms(&[
                "task",
                "--json",
                &format!("[{preset}] write"),
                "--name",
                preset,
                "-p",
                preset,
            ])
        })
        .collect();
    for (child, preset) in children.into_iter().zip(presets) {
        let run = wait_bounded(child, RUN_LIMIT);
        let task = task_json(&run);
        assert_eq!(task["safety"]["sandboxed"], true, "{preset}");
        assert!(
            !env.repo.join(format!("{preset}-outside.txt")).exists(),
            "{preset}"
        );
        let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
        if preset == "edit" {
            // Confined to the worktree, Bash runs without asking, as Edit and Write do.
            run.success();
            assert_eq!(task["status"], "completed", "{task:#}");
            assert!(tool_results(&env, preset)[0].contains("Read-only file system"));
            assert_eq!(env.git(&["show", "cms/edit:edit.txt"]), "made");
        } else {
            run.code(3);
            assert_eq!(task["status"], "needs_input", "{preset}: {task:#}");
            assert_eq!(
                names(&task["permission_denials"], "tool_name"),
                ["Bash", "Bash"],
                "{preset}"
            );
            assert!(!worktree.join(format!("{preset}.txt")).exists(), "{preset}");
        }
    }
}

/// What models write constantly: a command substitution, a subshell in a pipe, a loop; each
/// is a command Claude Code's own checks would ask about, which `edit` must not.
fn shell_heavy_commands() -> Vec<Reply> {
    vec![
        bash("echo $(echo made) > out.txt".to_owned()),
        bash("(cd sub && ls) | wc -l > count.txt".to_owned()),
        bash("for f in *; do echo $f; done > list.txt".to_owned()),
        Reply::text("done"),
    ]
}

#[track_caller]
fn assert_shell_heavy_commands_ran(env: &TestEnv, task: &Value, name: &str) {
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    assert_eq!(task["permission_denials"], json!([]), "{task:#}");
    let branch = format!("cms/{name}");
    assert_eq!(env.git(&["show", &format!("{branch}:out.txt")]), "made");
    assert_eq!(env.git(&["show", &format!("{branch}:count.txt")]), "1");
    let list = env.git(&["show", &format!("{branch}:list.txt")]);
    assert!(list.lines().any(|l| l == "sub"), "{list}");
}

#[test]
fn real_claude_edit_runs_sandboxed_subshells_pipes_and_loops_without_asking() {
    let Some((api, env)) = real_scenario("real_claude_edit_runs_sandboxed_subshells") else {
        return;
    };
    env.write("sub/a.txt", "a\n");
    env.commit_all("a folder to list");
    api.route("[shell]", shell_heavy_commands());
    // No terminal and no `--ask`: a prompt here would end the task `needs_input`.
    let (run, task) = real_task(&env, &["[shell] run", "--name", "shell", "-p", "edit"]);
    assert_shell_heavy_commands_ran(&env, &task, "shell");
    run.success();
}

#[test]
fn real_claude_edit_with_ask_runs_sandboxed_subshells_without_waiting_for_an_answer() {
    let Some((api, env)) = real_scenario("real_claude_edit_with_ask_runs_sandboxed_subshells")
    else {
        return;
    };
    env.write("sub/a.txt", "a\n");
    env.commit_all("a folder to list");
    api.route("[shell]", shell_heavy_commands());
    // A prompt would leave the task `waiting`, and `wait` would time out.
    let (run, task) = real_task(
        &env,
        &["--ask", "[shell] run", "--name", "asked", "-p", "edit"],
    );
    assert_shell_heavy_commands_ran(&env, &task, "asked");
    run.success();
}

#[test]
fn real_claude_edit_still_refuses_to_run_bash_outside_the_sandbox() {
    let Some((api, env)) = real_scenario("real_claude_edit_still_refuses_to_run_bash_outside")
    else {
        return;
    };
    let main = env.repo.display().to_string();
    let escape = |key: &str| {
        api.route(
            key,
            vec![
                Reply::tool(
                    "Bash",
                    json!({"command": format!("echo x > {main}/escaped.txt; echo rc=$?"),
                           "description": "Escape", "dangerouslyDisableSandbox": true}),
                ),
                Reply::text("done"),
            ],
        );
    };
    escape("[plain]");
    escape("[asked]");
    for (key, name, ask) in [("[plain]", "plain", false), ("[asked]", "asked", true)] {
        let prompt = format!("{key} escape");
        let mut args = vec!["task", "--json", &prompt, "--name", name, "-p", "edit"];
        if ask {
            args.push("--ask");
        }
        let task = task_json(&env.cms_bounded(&args, RUN_LIMIT));
        assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
        assert!(!env.repo.join("escaped.txt").exists(), "{name}");
        let results = tool_results(&env, name);
        assert_eq!(results.len(), 1, "{name}: {results:#?}");
        // `allowUnsandboxedCommands: false` makes the CLI ignore the flag: the command runs,
        // inside the sandbox, where the checkout is read-only.
        assert!(
            results[0].contains("Read-only file system") && !results[0].contains("rc=0"),
            "{name}: {}",
            results[0]
        );
        assert_eq!(task["status"], "completed", "{name}: {task:#}");
    }
}

/// `cargo test --offline` of a crate with no dependencies, with `CARGO_HOME` at `cargo_home`,
/// then a write of its own into `cargo_home`: what a Rust task's Bash does.
fn cargo_test_in(cargo_home: &Path) -> Reply {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let bin = Path::new(String::from_utf8(sysroot.stdout).unwrap().trim()).join("bin");
    let home = cargo_home.display();
    bash(format!(
        "CARGO_HOME={home} RUSTC={bin}/rustc RUSTDOC={bin}/rustdoc {bin}/cargo test --offline 2>&1; echo rc=$?; \
         touch {home}/probe; echo touch=$?",
        bin = bin.display()
    ))
}

fn small_crate(env: &TestEnv) {
    env.write(
        "Cargo.toml",
        "[package]\nname = \"small\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    env.write(
        "src/lib.rs",
        "pub fn two() -> u8 { 2 }\n#[test]\nfn adds() { assert_eq!(two() + two(), 4); }\n",
    );
    env.write(".gitignore", "/target\n");
    env.commit_all("a small crate");
}

/// Runs `cargo test` on a small crate in a sandboxed `edit` task through one Bash call, with
/// a `CARGO_HOME` of the test's own, listed in `[safety] writable` when `writable`; returns the
/// environment (which holds the folders), the task's run and JSON, the call's result and that
/// `CARGO_HOME`.
fn cargo_test_task(test: &str, writable: bool) -> Option<(TestEnv, Run, Value, String, PathBuf)> {
    let claude = real_claude(test)?;
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    small_crate(&env);
    let cargo_home = env.root.join("cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    if writable {
        env.user_config(&format!(
            "[safety]\nwritable = [{:?}]\n",
            cargo_home.display().to_string()
        ));
    }
    api.route(
        "[rust]",
        vec![cargo_test_in(&cargo_home), Reply::text("tested")],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[rust] test it",
            "--name",
            "rust",
            "-p",
            "edit",
        ],
        Duration::from_secs(240),
    );
    let task = task_json(&run);
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    let mut results = tool_results(&env, "rust");
    assert_eq!(results.len(), 1, "{results:#?}");
    Some((env, run, task, results.remove(0), cargo_home))
}

#[test]
fn real_claude_cargo_test_passes_in_a_sandboxed_task_given_a_writable_cargo_home() {
    let Some((_env, run, task, result, cargo_home)) =
        cargo_test_task("real_claude_cargo_test_passes_in_a_sandboxed_task", true)
    else {
        return;
    };
    assert!(
        result.contains("test adds ... ok") && result.contains("rc=0"),
        "{result}"
    );
    assert!(result.ends_with("touch=0"), "{result}");
    assert!(cargo_home.join("probe").exists());
    assert_eq!(task["status"], "completed", "{task:#}");
    run.success();
}

#[test]
fn real_claude_without_a_writable_path_the_sandbox_refuses_the_write_to_cargo_home() {
    let Some((_env, _, _, result, cargo_home)) = cargo_test_task(
        "real_claude_without_a_writable_path_the_sandbox_refuses",
        false,
    ) else {
        return;
    };
    assert!(
        result.contains("Read-only file system") && result.ends_with("touch=1"),
        "{result}"
    );
    assert!(!cargo_home.join("probe").exists());
}

#[test]
fn real_claude_sandboxed_bash_reaches_a_host_only_once_the_user_lists_it() {
    let Some(claude) = real_claude("real_claude_sandboxed_bash_reaches_a_host_only_once_listed")
    else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    // The fake API stands for a registry, reached by name through the sandbox's proxy (the
    // sandbox's NO_PROXY would send localhost direct, where nothing listens).
    let port = api.url.rsplit(':').next().unwrap().to_owned();
    let fetch = format!(
        "curl --noproxy '' -sS -m 20 -o /dev/null -w 'code=%{{http_code}}' \
         http://localhost:{port}/v1/models; echo rc=$?"
    );
    for key in ["[closed]", "[open]"] {
        api.route(key, vec![bash(fetch.clone()), Reply::text("fetched")]);
    }
    let mut results = Vec::new();
    for (name, hosts) in [("closed", ""), ("open", "localhost")] {
        if !hosts.is_empty() {
            env.user_config(&format!("[safety]\nhosts = [{hosts:?}]\n"));
        }
        let prompt = format!("[{name}] fetch");
        let (_, task) = real_task(&env, &[&prompt, "--name", name, "-p", "edit"]);
        assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
        assert_eq!(task["status"], "completed", "{task:#}");
        results.extend(tool_results(&env, name));
    }
    // The proxy refuses a host nobody listed, and lets a listed one through. (2.1.332 adds a
    // `<sandbox_violations>` note naming the refused host after the command's output.)
    let outputs: Vec<&str> = results
        .iter()
        .map(|r| r.split("\n<sandbox_violations>").next().unwrap())
        .collect();
    assert_eq!(outputs, ["code=403rc=0", "code=200rc=0"]);
}
