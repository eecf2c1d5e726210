//! `--detach`: tasks supervised in the background, followed with `wait`, `show` and `abort`,
//! and recovered with `continue` when their supervisor is killed.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{TestEnv, eventually, until_ended};

/// Kills task `name`'s supervisor outright and waits until it is gone.
fn kill_supervisor(env: &TestEnv, name: &str) {
    let pid = record(env, name)["supervisor"]["pid"].as_u64().unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    until_ended(pid, "the supervisor");
}

/// Steps that wait until `gate` exists, then write done.txt.
fn gated(gate: &Path) -> Value {
    json!([
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done; echo done > done.txt", gate.display())},
    ])
}

fn record(env: &TestEnv, name: &str) -> Value {
    let path = env.common_dir().join(format!("cms/tasks/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn status(env: &TestEnv, name: &str) -> String {
    let run = env.cms(&["show", name, "--json"]);
    run.success();
    run.json()["status"].as_str().unwrap().to_owned()
}

#[test]
fn a_detached_task_returns_at_once_and_runs_in_the_background_to_completion() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(gated(&gate));
    let run = env.cms(&["task", "-d", "x", "-n", "bg"]);
    run.success();
    assert_eq!(run.stdout.trim(), "bg");
    // It runs under a supervisor that is not the command that started it.
    assert_eq!(status(&env, "bg"), "running");
    let supervisor = record(&env, "bg")["supervisor"]["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{supervisor}")).exists());
    std::fs::write(&gate, "").unwrap();
    let waited = env.cms(&["wait", "bg"]);
    waited.success();
    assert_eq!(status(&env, "bg"), "completed");
    assert_eq!(env.git(&["show", "cms/bg:done.txt"]), "done");
    // Its progress and summary are kept in the store. The supervisor writes its summary after
    // the final record `cms wait` returns on, so the log may lag the record by a moment.
    let log = env.common_dir().join("cms/logs/bg.supervisor.log");
    eventually("the supervisor's summary in its log", || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        if log.contains("completed") {
            Ok(())
        } else {
            Err(log)
        }
    });
}

#[test]
fn a_detached_task_can_be_aborted_from_anywhere() {
    let env = TestEnv::new();
    let gate = env.root.join("never");
    env.steps(gated(&gate));
    env.cms(&["task", "--detach", "x", "-n", "stuck"]).success();
    let run = env.cms(&["abort", "stuck"]);
    run.success();
    assert_eq!(status(&env, "stuck"), "aborted");
}

#[test]
fn a_killed_detached_supervisor_leaves_the_task_interrupted_and_continue_finishes_it() {
    let env = TestEnv::new();
    let gate = env.root.join("never");
    env.script(json!({"turns": [{"steps": gated(&gate)}, {"steps": [{"write": {"path": "b.txt", "content": "b\n"}}]}]}));
    env.cms(&["task", "-d", "x", "-n", "orphan"]).success();
    // Once the session is under way, kill its supervisor outright.
    eventually("the session to start", || {
        !record(&env, "orphan")["session_id"].is_null()
    });
    kill_supervisor(&env, "orphan");
    let list = env.cms(&["list", "--json"]);
    list.success();
    assert_eq!(list.json()[0]["status"], "interrupted");
    env.script(json!({"resume_offset": 1, "turns": [{"steps": []}, {"steps": [{"write": {"path": "b.txt", "content": "b\n"}}]}]}));
    env.cms(&["continue", "-d", "orphan", "finish it"])
        .success();
    env.cms(&["wait", "orphan"]).success();
    assert_eq!(env.git(&["show", "cms/orphan:b.txt"]), "b");
}

#[test]
fn a_detached_start_that_is_refused_makes_nothing() {
    let env = TestEnv::new();
    env.cms(&["task", "-d", "   "])
        .code(2)
        .one_line_error_with_hint("prompt is empty");
    assert_eq!(env.branches(), ["main"]);
}

#[test]
fn list_shows_a_running_tasks_live_turns_and_cost() {
    let env = TestEnv::new();
    let gate = env.root.join("gate");
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done", gate.display())},
    ]));
    env.cms(&["task", "-d", "x", "-n", "live"]).success();
    // The Bash call is the second paid message: the list shows it while it runs.
    let task = eventually("live turns in the list", || {
        let list = env.cms(&["list", "--json"]);
        list.success();
        let task = list.json()[0].clone();
        if task["turns"].as_u64().unwrap_or(0) >= 2 {
            Ok(task)
        } else {
            Err(format!("{task:#}"))
        }
    });
    assert_eq!(task["status"], "running");
    assert!(task["cost_usd"].as_f64().unwrap() > 0.0, "{task:#}");
    // What a running task refuses says how to end it from here: it has no terminal.
    let refused = env.cms(&["merge", "live"]);
    refused.code(1).one_line_error_with_hint("is still running");
    assert!(
        refused.stderr.contains(
            "hint: wait for it to end (`cms wait live`), or stop it with `cms abort live`"
        ),
        "{}",
        refused.stderr
    );
    std::fs::write(&gate, "").unwrap();
    env.cms(&["wait", "live"]).success();
    // The final figures are claude's own, and nothing was taken for tampering.
    let done = env.cms(&["show", "live", "--json"]).json();
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["safety"]["violations"], json!([]));
}

mod real {
    //! Background tasks with the real Claude Code CLI: detached, followed, killed with their
    //! supervisor and continued, and fanned out.

    use std::path::Path;
    use std::time::Duration;

    use serde_json::json;

    use super::{kill_supervisor, record, status};
    use crate::common::fake_api::{FakeApi, Reply};
    use crate::common::real::{RUN_LIMIT, real_claude, real_env, real_scenario};
    use crate::common::{eventually, wait_bounded};

    #[test]
    fn real_claude_detached_task_is_followed_by_logs_and_wait_to_completion() {
        let Some((api, env)) = real_scenario("real_claude_detached_task_is_followed") else {
            return;
        };
        api.route(
            "[bg]",
            vec![
                Reply::write("bg.txt", "bg\n").delayed(Duration::from_millis(500)),
                Reply::text("written in the background"),
            ],
        );
        env.cms(&["task", "-d", "[bg] write it", "-n", "bg"])
            .success();
        let follow = env.spawn_cms(&["logs", "-f", "bg"]);
        env.cms_bounded(&["wait", "bg"], RUN_LIMIT).success();
        let logs = wait_bounded(follow, RUN_LIMIT);
        logs.success();
        assert!(logs.stdout.contains("● Write bg.txt"), "{}", logs.stdout);
        assert!(
            logs.stdout.contains("› written in the background"),
            "{}",
            logs.stdout
        );
        assert_eq!(env.git(&["show", "cms/bg:bg.txt"]), "bg");
    }

    #[test]
    fn real_claude_killed_supervisor_leaves_the_task_interrupted_and_continue_finishes_it() {
        let Some(claude) = real_claude("real_claude_killed_supervisor_leaves_the_task_interrupted")
        else {
            return;
        };
        let api = FakeApi::start();
        let env = real_env(&claude, &api);
        api.route(
            "[orphan]",
            vec![
                Reply::tool(
                    "Bash",
                    json!({"command": "echo one > one.txt && sleep 300", "description": "Work"}),
                ),
                // The continuation's first reply: claude resumes a conversation killed mid-tool
                // with one assistant message (2.1.197 drops the interrupted call and adds "No
                // response requested.") or two (2.1.332 keeps the call, with a result saying it
                // was interrupted), so it asks for reply 1 or 2, and both write two.txt.
                Reply::write("two.txt", "two\n"),
                Reply::write("two.txt", "two\n"),
                Reply::text("finished"),
            ],
        );
        env.cms(&["task", "-d", "-p", "full", "[orphan] work", "-n", "orphan"])
            .success();
        // Kill the supervisor once the Bash tool has written its file and sleeps.
        let tree = record(&env, "orphan")["worktree"]
            .as_str()
            .unwrap()
            .to_owned();
        eventually("the Bash tool to run", || {
            Path::new(&tree).join("one.txt").exists()
        });
        kill_supervisor(&env, "orphan");
        assert_eq!(status(&env, "orphan"), "interrupted");
        // What the session left uncommitted was committed by the command that noticed.
        assert!(
            env.git_ok(&["cat-file", "-e", "cms/orphan:one.txt"]),
            "{:#}",
            record(&env, "orphan")
        );
        assert_eq!(env.git(&["show", "cms/orphan:one.txt"]), "one");
        let run = env.cms_bounded(&["continue", "orphan", "go on", "--json"], RUN_LIMIT);
        run.success();
        assert_eq!(run.json()["status"], "completed");
        assert_eq!(env.git(&["show", "cms/orphan:two.txt"]), "two");
    }

    #[test]
    fn real_claude_three_attempts_each_complete_in_their_own_worktree() {
        let Some((api, env)) = real_scenario("real_claude_three_attempts") else {
            return;
        };
        api.route(
            "[try]",
            vec![Reply::write("try.txt", "tried\n"), Reply::text("tried")],
        );
        let run = env.cms_bounded(
            &[
                "task",
                "--json",
                "[try] write it",
                "--attempts",
                "3",
                "-n",
                "try",
            ],
            RUN_LIMIT,
        );
        run.success();
        let tasks = run.json();
        for (i, task) in tasks.as_array().unwrap().iter().enumerate() {
            let name = format!("try-{}", i + 1);
            assert_eq!(task["name"], name.as_str());
            assert_eq!(task["status"], "completed", "{task:#}");
            assert_eq!(env.git(&["show", &format!("cms/{name}:try.txt")]), "tried");
        }
        let list = env.cms(&["list"]);
        assert!(list.stdout.contains("3 attempts"), "{}", list.stdout);
    }
}

#[test]
fn a_killed_sandboxed_session_leaves_no_placeholder_in_the_work_cms_commits() {
    let env = TestEnv::new();
    let gate = env.root.join("never");
    env.steps(gated(&gate));
    env.cms(&["task", "-d", "--sandbox", "required", "x", "-n", "t"])
        .success();
    eventually("the session to start", || {
        !record(&env, "t")["session_id"].is_null()
    });
    // What Claude Code's sandbox leaves on the host while a Bash command runs: empty mount
    // points for the dotfiles it guards. Beside them, a real file the agent wrote.
    let worktree = std::path::PathBuf::from(record(&env, "t")["worktree"].as_str().unwrap());
    std::fs::write(worktree.join(".mcp.json"), "").unwrap();
    std::fs::write(worktree.join(".bashrc"), "").unwrap();
    std::fs::create_dir(worktree.join(".vscode")).unwrap();
    std::fs::create_dir(worktree.join(".idea")).unwrap();
    std::fs::write(worktree.join(".idea/settings.xml"), "<x/>\n").unwrap();
    // Claude Code 2.1.332 guards the files of `.claude/` one by one, and keeps a scratch
    // folder there.
    std::fs::create_dir_all(worktree.join(".claude/agents")).unwrap();
    std::fs::create_dir_all(worktree.join(".claude/.cc-writes")).unwrap();
    std::fs::write(worktree.join(".claude/settings.json"), "").unwrap();
    kill_supervisor(&env, "t");
    let task = env.cms(&["show", "t", "--json"]).json();
    assert_eq!(task["status"], "interrupted", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]));
    let files: Vec<(String, String)> = env.tree_files("cms/t");
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(names.contains(&".idea/settings.xml"), "{names:?}");
    for placeholder in [".mcp.json", ".bashrc"] {
        assert!(!names.contains(&placeholder), "{names:?}");
        assert!(!worktree.join(placeholder).exists());
    }
    assert!(!worktree.join(".vscode").exists());
    assert!(!worktree.join(".claude").exists());
}
