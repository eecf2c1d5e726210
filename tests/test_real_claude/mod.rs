//! `cms` end to end with the real Claude Code CLI (the pinned npm release), offline against the
//! fake Anthropic API of `common::fake_api`: the fake claude encodes what we believe about
//! claude, these tests check it against what claude does: a task's changes and cost, denied
//! tools, API errors, parallel tasks, `doctor` and the limits. Where the CLI comes from and how
//! it is kept offline is `common::real`; protected paths are `hooks`, the Bash sandbox
//! `sandbox`.

mod background;
mod hooks;
mod sandbox;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake_api::{CWD, FakeApi, Reply};
use crate::common::real::{
    RUN_LIMIT, assert_cost, claude_version, default_model, last_result, names, real_claude,
    real_env, real_scenario, real_task, reply_cost, task_json, transcript,
};
use crate::common::wait_bounded;

#[test]
fn real_claude_task_commits_exactly_its_tool_changes_and_records_the_clis_cost() {
    let Some((api, env)) = real_scenario("real_claude_task_commits_exactly_its_tool_changes")
    else {
        return;
    };
    env.write("edit.txt", "one\ntwo\nthree\n");
    env.write("old.txt", "to be deleted\n");
    env.commit_all("files to change");
    let base = env.git(&["rev-parse", "HEAD"]);
    api.route(
        "[tools]",
        vec![
            Reply::write("src/new.txt", "made by Write\n")
            .preceded_by_text("Making the changes."),
            // Edit refuses a file the session has not read.
            Reply::tool("Read", json!({"file_path": format!("{CWD}/edit.txt")})),
            Reply::tool(
                "Edit",
                json!({"file_path": format!("{CWD}/edit.txt"), "old_string": "two", "new_string": "TWO"}),
            ),
            Reply::tool(
                "Bash",
                json!({"command": "rm old.txt && echo made-by-bash > bash.txt", "description": "Swap files"}),
            ),
            Reply::text("All four changes are made."),
        ],
    );

    let (run, task) = real_task(
        &env,
        &[
            "[tools] change the files",
            "--name",
            "tools",
            "--preset",
            "full",
        ],
    );
    run.success();
    assert_eq!(task["status"], "completed");
    assert_eq!(task["response"], "All four changes are made.");
    assert_eq!(
        names(&task["files_changed"], "path"),
        ["bash.txt", "edit.txt", "old.txt", "src/new.txt"]
    );
    assert_eq!(
        names(&task["files_changed"], "status"),
        ["added", "modified", "deleted", "added"]
    );
    assert_eq!(
        env.tree_files("cms/tools"),
        [
            ("README.md".to_owned(), "hello".to_owned()),
            ("bash.txt".to_owned(), "made-by-bash".to_owned()),
            ("edit.txt".to_owned(), "one\nTWO\nthree".to_owned()),
            ("src/new.txt".to_owned(), "made by Write".to_owned()),
        ]
    );
    assert_eq!(env.git(&["rev-parse", "cms/tools^"]), base);
    assert_eq!(task["tools_used"], json!(["Write", "Read", "Edit", "Bash"]));
    assert_eq!(env.git(&["status", "--porcelain"]), "");

    // The recorded cost is claude's own figure, which is the fake API's fixed usage priced.
    let events = transcript(&env, "tools");
    let result = last_result(&events);
    assert_cost(
        &task["cost_usd"],
        result["total_cost_usd"].as_f64().unwrap(),
    );
    assert_cost(&task["cost_usd"], 5.0 * reply_cost());
    assert_eq!(task["turns"], result["num_turns"]);
    assert_eq!(task["session_id"], result["session_id"]);

    // claude ran in the task's worktree and asked for each scripted reply once.
    let requests = api.requests_for("[tools]");
    let indexes: Vec<usize> = requests.iter().map(|r| r.reply_index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4]);
    for request in &requests {
        assert_eq!(request.cwd.as_deref(), task["worktree"].as_str());
        // reply_cost() is priced for the CLI's default model.
        assert_eq!(request.model, default_model());
    }
}

#[test]
fn real_claude_read_only_task_ends_needs_input_listing_the_denied_tools() {
    let Some((api, env)) = real_scenario("real_claude_read_only_task_ends_needs_input") else {
        return;
    };
    api.route(
        "[look]",
        vec![
            Reply::tool("Read", json!({"file_path": format!("{CWD}/README.md")})),
            Reply::write("notes.txt", "notes\n"),
            Reply::tool(
                "Bash",
                json!({"command": format!("touch {CWD}/touched.txt"), "description": "Touch a file"}),
            ),
            Reply::text("I could not write the notes."),
        ],
    );

    let (run, task) = real_task(
        &env,
        &[
            "[look] read and take notes",
            "--name",
            "look",
            "--preset",
            "read-only",
        ],
    );
    run.code(3);
    assert_eq!(task["status"], "needs_input");
    assert_eq!(
        names(&task["permission_denials"], "tool_name"),
        ["Write", "Bash"]
    );
    assert_eq!(task["files_changed"], json!([]));
    assert_eq!(task["error"], Value::Null);
    let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
    assert!(!worktree.join("notes.txt").exists());
    assert!(!worktree.join("touched.txt").exists());
    // `show` lists the denials for a person too.
    let show = env.cms(&["show", "look"]);
    show.success();
    for denial in ["Write notes.txt", "Bash touch touched.txt"] {
        assert!(
            show.stdout
                .lines()
                .any(|l| l.contains("denied") && l.ends_with(denial)),
            "{denial} missing from:\n{}",
            show.stdout
        );
    }
}

#[test]
fn real_claude_api_errors_fail_the_task_with_the_apis_message() {
    let Some((api, env)) = real_scenario("real_claude_api_errors_fail_the_task") else {
        return;
    };
    // (route, HTTP status, the API's message, what the task's error must say): for 401 claude
    // puts its own words in place of the API's.
    let cases = [
        (
            "[e500]",
            500,
            "fake internal server error",
            "fake internal server error",
        ),
        ("[e529]", 529, "fake overload", "fake overload"),
        ("[e401]", 401, "invalid x-api-key", "Invalid API key"),
    ];
    for (key, status, message, _) in cases {
        api.route(key, vec![Reply::error(status, message)]);
    }
    // Side by side: each waits out claude's retry backoff.
    let children: Vec<_> = cases
        .iter()
        .map(|(key, status, _, _)| {
            let name = format!("e{status}");
            env.spawn_cms(&["task", "--json", &format!("{key} fail"), "--name", &name])
        })
        .collect();
    for (child, (key, status, _, expected)) in children.into_iter().zip(cases) {
        let run = wait_bounded(child, RUN_LIMIT);
        let task = task_json(&run);
        run.code(3);
        assert_eq!(task["status"], "failed", "{key}");
        let error = task["error"].as_str().unwrap();
        assert!(error.contains(expected), "{key}: {error}");
        assert!(error.contains(&status.to_string()), "{key}: {error}");
        assert_cost(&task["cost_usd"], 0.0);
        assert_eq!(task["files_changed"], json!([]));
        // CLAUDE_CODE_MAX_RETRIES=1: one retry, then claude gives up.
        let statuses: Vec<u16> = api.requests_for(key).iter().map(|r| r.status).collect();
        assert_eq!(statuses, [status; 2], "{key}");
    }
}

#[test]
fn real_claude_parallel_tasks_against_one_api_do_not_mix() {
    let Some((api, env)) = real_scenario("real_claude_parallel_tasks_do_not_mix") else {
        return;
    };
    let write = |name: &str| {
        Reply::tool(
            "Write",
            json!({"file_path": format!("{CWD}/{name}.txt"), "content": format!("{name}\n")}),
        )
    };
    // Held back so both sessions are mid-conversation at the same time.
    let held = Duration::from_millis(300);
    // alpha hands its write to a subagent, whose conversation starts afresh inside alpha's. In
    // the foreground, as Claude Code 2.1.197 always ran one: 2.1.332 runs it in the background
    // unless told otherwise, and then asks the model once more when the subagent's report
    // comes back.
    api.route(
        "[alpha]",
        vec![
            Reply::tool(
                "Agent",
                json!({"description": "Write alpha", "prompt": "[alpha-sub] write alpha.txt", "subagent_type": "general-purpose", "run_in_background": false}),
            )
            .delayed(held),
            Reply::text("alpha done"),
        ],
    );
    api.route(
        "[alpha-sub]",
        vec![write("alpha"), Reply::text("alpha.txt written")],
    );
    api.route(
        "[beta]",
        vec![write("beta").delayed(held), Reply::text("beta done")],
    );
    let tasks = ["alpha", "beta"];
    let children: Vec<_> = tasks
        .iter()
        .map(|name| {
            env.spawn_cms(&[
                "task",
                "--json",
                &format!("[{name}] write your file"),
                "--name",
                name,
            ])
        })
        .collect();
    let results: Vec<Value> = children
        .into_iter()
        .map(|child| {
            let run = wait_bounded(child, RUN_LIMIT);
            run.success();
            task_json(&run)
        })
        .collect();

    // (task, its routes, how many replies its claude process paid for)
    let expected = [
        ("alpha", &["[alpha]", "[alpha-sub]"][..], 4),
        ("beta", &["[beta]"], 2),
    ];
    for ((name, routes, replies), task) in expected.into_iter().zip(&results) {
        assert_eq!(task["status"], "completed", "{name}");
        assert_eq!(task["response"], format!("{name} done"));
        assert_eq!(
            env.tree_files(&format!("cms/{name}")),
            [
                ("README.md".to_owned(), "hello".to_owned()),
                (format!("{name}.txt"), name.to_owned()),
            ]
        );
        // A subagent's usage is part of its parent process's cost.
        assert_cost(&task["cost_usd"], f64::from(replies) * reply_cost());
        for route in routes {
            let requests = api.requests_for(route);
            assert_eq!(requests.len(), 2, "{route}: {requests:?}");
            for request in &requests {
                assert_eq!(request.cwd.as_deref(), task["worktree"].as_str(), "{route}");
                assert_eq!(request.subagent, route.ends_with("-sub]"), "{route}");
            }
        }
    }
    assert_ne!(results[0]["session_id"], results[1]["session_id"]);
}

#[test]
fn real_claude_doctor_finds_the_cli_and_accepts_its_tested_version() {
    let Some(claude) = real_claude("real_claude_doctor_finds_the_cli") else {
        return;
    };
    let api = FakeApi::start();
    let env = real_env(&claude, &api);
    let run = env.cms_bounded(&["doctor", "--json"], RUN_LIMIT);
    run.success();
    let doctor = run.json();
    let check = &doctor["checks"]["claude"];
    assert_eq!(check["status"], "ok", "{doctor:#}");
    // Every version the tests run against is one doctor accepts as tested.
    assert_eq!(check["version"], claude_version());
    assert_eq!(check["path"], claude.display().to_string());
    assert_eq!(check["source"], "CMS_CLAUDE_BIN");
}

#[test]
fn real_claude_cost_limit_stops_the_task_before_the_next_reply_and_keeps_its_work() {
    let Some((api, env)) = real_scenario("real_claude_cost_limit_stops_the_task") else {
        return;
    };
    let write = |name: &str| {
        Reply::tool(
            "Write",
            json!({"file_path": format!("{CWD}/{name}.txt"), "content": format!("{name}\n")}),
        )
    };
    api.route(
        "[spend]",
        vec![
            write("one"),
            write("two"),
            write("three"),
            Reply::text("done"),
        ],
    );
    // Each reply costs reply_cost(); the second one crosses the limit.
    let limit = format!("{}", 1.5 * reply_cost());
    let (run, task) = real_task(
        &env,
        &["[spend] write", "--name", "spend", "--max-cost", &limit],
    );
    run.code(3);
    assert_eq!(task["status"], "cost_exceeded", "{task:#}");
    assert_cost(&task["cost_usd"], 2.0 * reply_cost());
    assert_eq!(api.requests_for("[spend]").len(), 2);
    let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
    assert!(worktree.is_dir());
    assert_eq!(env.git(&["show", "cms/spend:one.txt"]), "one");
    assert!(!worktree.join("three.txt").exists());
}

#[test]
fn real_claude_duration_limit_interrupts_a_slow_reply_and_keeps_the_work_done() {
    let Some((api, env)) = real_scenario("real_claude_duration_limit_interrupts") else {
        return;
    };
    api.route(
        "[slow]",
        vec![
            Reply::write("early.txt", "early\n"),
            Reply::text("too late").delayed(Duration::from_secs(50)),
        ],
    );
    let (run, task) = real_task(
        &env,
        &["[slow] write", "--name", "slow", "--max-duration", "10s"],
    );
    run.code(3);
    assert_eq!(task["status"], "duration_exceeded", "{task:#}");
    assert!(task["error"].as_str().unwrap().contains("time limit"));
    assert_eq!(env.git(&["show", "cms/slow:early.txt"]), "early");
    // claude ended its turn on the interrupt, through the protocol.
    let events = transcript(&env, "slow");
    assert_eq!(last_result(&events)["subtype"], "error_during_execution");
}

#[test]
fn real_claude_starts_with_the_smallest_cost_limit_and_records_the_turns_it_paid() {
    let Some((api, env)) = real_scenario("real_claude_starts_with_the_smallest_cost_limit") else {
        return;
    };
    let write = |name: &str| {
        Reply::tool(
            "Write",
            json!({"file_path": format!("{CWD}/{name}.txt"), "content": format!("{name}\n")}),
        )
    };
    // claude 2.1.197 refuses `--max-budget-usd 0` (and cms once rounded small budgets to
    // that); the smallest limit cms accepts must start a session.
    api.route("[tiny]", vec![write("one"), Reply::text("done")]);
    let (_, task) = real_task(
        &env,
        &["[tiny] write", "-n", "tiny", "--max-cost", "0.0001"],
    );
    assert_eq!(task["status"], "cost_exceeded", "{task:#}");
    assert!(task["session_id"].is_string(), "{task:#}");
    assert_eq!(task["turns"], 1, "{task:#}");
    // Turns: two replies paid for, while claude's num_turns counts the tool turns too.
    api.route(
        "[turns]",
        vec![
            write("one"),
            write("two"),
            write("three"),
            Reply::text("done"),
        ],
    );
    let (_, task) = real_task(&env, &["[turns] write", "-n", "turns", "--max-turns", "2"]);
    assert_eq!(task["status"], "turns_exceeded", "{task:#}");
    assert_eq!(api.requests_for("[turns]").len(), 2);
    assert_eq!(task["turns"], 2, "{task:#}");
    let events = transcript(&env, "turns");
    assert!(last_result(&events)["num_turns"].as_u64().unwrap() > 2);
}
