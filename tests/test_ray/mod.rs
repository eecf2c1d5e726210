//! Tasks on a Ray cluster (`cms task --on`), end to end against a real Ray head on loopback:
//! the start commit goes up a git remote, `cms worker` runs the session on the cluster, and
//! the task comes home to be shown, diffed, merged, continued, answered and aborted here.

mod faults;
mod outage;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::common::ray::{RayHead, ray_head};
use crate::common::{FAKE_CLAUDE, LIMIT, TestEnv, eventually, wait_bounded};

/// The variables a job needs to run the fake claude and git as the tests' own processes do.
pub const HANDED: &[&str] = &[
    "HOME",
    "FAKE_CLAUDE_SCRIPT",
    "FAKE_CLAUDE_LOG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "CMS_BOUNDARY",
    "CMS_EXIT_GRACE_MS",
    "CMS_INTERRUPT_GRACE_MS",
    "TZ",
];

/// The cluster's turn: one remote test at a time. Ray sets up each job's runtime in a Python
/// supervisor of its own; with eight of them starting on CI's two cores, another test's job
/// took 64 s to start (seen in CI), past the tests' one wait limit.
static CLUSTER: Mutex<()> = Mutex::new(());

pub fn cluster_turn() -> MutexGuard<'static, ()> {
    // A test that failed while it had the turn must not fail the others.
    CLUSTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A repository whose user configuration has runner `lab` on the shared Ray head, with a bare
/// repository beside it as the runner's git remote, and the cluster's turn; `None` when no Ray
/// is installed here.
pub fn ray_env(test: &str) -> Option<(TestEnv, &'static RayHead, MutexGuard<'static, ()>)> {
    let head = ray_head(test)?;
    let turn = cluster_turn();
    let env = TestEnv::new();
    let remote = remote_of(&env);
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    let names: Vec<String> = HANDED.iter().map(|n| format!("\"{n}\"")).collect();
    env.user_config(&head.runner_toml(
        "lab",
        &remote,
        &format!(
            "env = [{}]\ncpus = 0.1\nclaude = \"{FAKE_CLAUDE}\"",
            names.join(", ")
        ),
    ));
    Some((env, head, turn))
}

pub fn remote_of(env: &TestEnv) -> PathBuf {
    env.root.join("remote.git")
}

/// The refs the remote holds under cms's namespace.
pub fn remote_refs(env: &TestEnv) -> String {
    env.git(&["ls-remote", remote_of(env).to_str().unwrap(), "refs/cms/*"])
}

#[test]
fn ray_task_with_the_fake_claude_completes_on_the_cluster_and_merges_locally() {
    let Some((env, _head, _turn)) =
        ray_env("ray_task_with_the_fake_claude_completes_on_the_cluster_and_merges_locally")
    else {
        return;
    };
    env.steps(json!([
        {"write": {"path": "src/lib.rs", "content": "pub fn remote() {}\n"}},
        {"bash": "echo built > build.log"},
    ]));
    let run = env.cms(&[
        "task",
        "--json",
        "add a function",
        "-n",
        "far",
        "--on",
        "lab",
    ]);
    run.success();
    let task = run.json();
    assert_eq!(task["status"], "completed", "{task:#}");
    // The foreground progress showed the session's tools as a local session's.
    assert!(run.stderr.contains("● Write src/lib.rs"), "{}", run.stderr);
    let files: Vec<&str> = task["files_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"src/lib.rs"), "{task:#}");
    assert!(task["cost_usd"].as_f64().unwrap() > 0.0, "{task:#}");
    assert_eq!(task["remote"]["runner"], "lab");
    // The transcript came home: logs read it as any task's.
    let logs = env.cms(&["logs", "far"]);
    logs.success();
    assert!(logs.stdout.contains("src/lib.rs"), "{}", logs.stdout);
    // The worktree here holds the worker's work, and it merges like any task's.
    let diff = env.cms(&["diff", "far"]);
    diff.success();
    assert!(diff.stdout.contains("pub fn remote()"), "{}", diff.stdout);
    env.cms(&["merge", "far"]).success();
    assert_eq!(env.read("src/lib.rs"), "pub fn remote() {}\n");
    // Nothing of the job is left on the remote.
    assert_eq!(remote_refs(&env), "");
}

#[test]
fn ray_continue_runs_on_the_cluster_and_resumes_the_session() {
    let Some((env, _head, _turn)) =
        ray_env("ray_continue_runs_on_the_cluster_and_resumes_the_session")
    else {
        return;
    };
    let turns = json!([
        {"steps": [{"write": {"path": "a.txt", "content": "one\n"}}], "result": "first"},
        {"steps": [{"write": {"path": "b.txt", "content": "two\n"}}], "result": "second"},
    ]);
    env.script(json!({"turns": turns}));
    let first = env.task_ok(&["first", "-n", "again", "--on", "lab"]);
    let session = first["session_id"].as_str().unwrap().to_owned();
    // The follow-up's process plays the script's second turn, as a resumed claude would.
    env.script(json!({"turns": turns, "resume_offset": 1}));
    let second = env.cms(&["continue", "again", "go on", "--json"]);
    second.success();
    let task = second.json();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(
        task["session_id"],
        session.as_str(),
        "the session was resumed"
    );
    assert_eq!(task["response"], "second", "{task:#}");
    assert!(
        task["turns"].as_u64() > first["turns"].as_u64(),
        "the follow-up's turns add to the first session's: {task:#}"
    );
    assert_eq!(env.git(&["show", "cms/again:a.txt"]), "one");
    assert_eq!(env.git(&["show", "cms/again:b.txt"]), "two");
    // The transcript keeps both sessions, each once.
    let logs = env.cms(&["logs", "again"]);
    logs.success();
    let writes = |file: &str| {
        logs.stdout
            .lines()
            // Relative to the worktree the session ran in, on the worker.
            .filter(|l| *l == format!("● Write {file}"))
            .count()
    };
    assert_eq!(
        (writes("a.txt"), writes("b.txt")),
        (1, 1),
        "{}",
        logs.stdout
    );
    let show = env.cms(&["show", "again"]);
    assert!(show.stdout.contains("runner  lab"), "{}", show.stdout);
    // The follow-up's claude was told to resume the first session.
    let resumed = env.claude_invocations().iter().any(|inv| {
        inv["argv"].to_string().contains(&session) && inv["argv"].to_string().contains("--resume")
    });
    assert!(resumed, "{:#?}", env.claude_invocations());
}

#[test]
fn ray_waiting_prompt_is_answered_locally_with_cms_allow() {
    let Some((env, _head, _turn)) =
        ray_env("ray_waiting_prompt_is_answered_locally_with_cms_allow")
    else {
        return;
    };
    env.steps(json!([
        {"ask": {"bash": "touch asked.txt"}},
        {"write": {"path": "after.txt", "content": "after\n"}},
    ]));
    // In `review`, Bash is a tool claude must ask for.
    let name = env.cms(&[
        "task", "ask me", "-n", "asks", "--on", "lab", "--detach", "--preset", "review",
    ]);
    name.success();
    let waiting = env.until_status("asks", "waiting");
    assert_eq!(waiting["pending"]["tool_name"], "Bash", "{waiting:#}");
    env.cms(&["allow", "asks"]).success();
    let done = env.until_status("asks", "completed");
    assert_eq!(done["safety"]["answered"][0]["allow"], true, "{done:#}");
    assert_eq!(env.git(&["show", "cms/asks:after.txt"]), "after");
}

#[test]
fn ray_eight_tasks_at_once_complete_each_with_its_own_work() {
    let Some((env, _head, _turn)) =
        ray_env("ray_eight_tasks_at_once_complete_each_with_its_own_work")
    else {
        return;
    };
    env.steps(json!([{"write": {"path": "out.txt", "content": "done\n"}}]));
    let lines: String = (1..=8).map(|i| format!("task number {i}\n")).collect();
    let prompts = env.root.join("prompts.txt");
    std::fs::write(&prompts, lines).unwrap();
    let run = env.cms(&[
        "task",
        "--each",
        prompts.to_str().unwrap(),
        "--on",
        "lab",
        "--jobs",
        "8",
        "--json",
    ]);
    run.success();
    let tasks: Value = run.json();
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 8, "{tasks:#?}");
    for task in tasks {
        assert_eq!(task["status"], "completed", "{task:#}");
        let name = task["name"].as_str().unwrap();
        assert_eq!(env.git(&["show", &format!("cms/{name}:out.txt")]), "done");
    }
}

#[test]
fn ray_unreachable_runner_fails_the_start_with_a_hint_and_makes_nothing() {
    let env = TestEnv::new();
    let remote = remote_of(&env);
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    // Port 9 on loopback: nothing listens there.
    env.user_config(&format!(
        "[runners.lab]\nkind = \"ray\"\naddress = \"http://127.0.0.1:9\"\nremote = \"{}\"\n",
        remote.display()
    ));
    env.cms(&["task", "x", "-n", "nowhere", "--on", "lab"])
        .code(1)
        .one_line_error_with_hint("runner 'lab'");
    assert!(env.cms(&["show", "nowhere"]).code != 0);
    assert_eq!(env.branches(), vec!["main".to_owned()]);
    assert_eq!(remote_refs(&env), "");
}

#[test]
fn unknown_runner_is_refused_naming_the_configured_ones() {
    let env = TestEnv::new();
    env.user_config(
        "[runners.lab]\nkind = \"ray\"\naddress = \"http://127.0.0.1:9\"\nremote = \"/nowhere\"\n",
    );
    let run = env.cms(&["task", "x", "-n", "which", "--on", "lba"]);
    run.code(1)
        .one_line_error_with_hint("no runner named 'lba'");
    assert!(run.stderr.contains("lab"), "{}", run.stderr);
    assert_eq!(env.branches(), vec!["main".to_owned()]);
}

/// Waits until the task's record names its job, and returns it.
pub fn job_of(env: &TestEnv, name: &str) -> String {
    eventually(&format!("task {name}'s job"), || {
        let task = env.cms(&["show", name, "--json"]).json();
        match task["remote"]["job"].as_str() {
            Some(job) => Ok(job.to_owned()),
            None => Err(format!("{task:#}")),
        }
    })
}

#[test]
fn ray_task_with_the_real_cli_completes_on_the_cluster_against_the_fake_api() {
    use crate::common::fake_api::{CWD, Reply};
    use crate::common::real::{claude_env, real_claude};
    let Some(claude) = real_claude("ray_task_with_the_real_cli") else {
        return;
    };
    let Some(head) = ray_head("ray_task_with_the_real_cli") else {
        return;
    };
    let _turn = cluster_turn();
    let api = crate::common::fake_api::FakeApi::start();
    let mut env = TestEnv::new();
    let remote = remote_of(&env);
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    let mut handed: Vec<String> = HANDED.iter().map(|n| format!("\"{n}\"")).collect();
    for (key, value) in claude_env(&api, &env.home.join(".claude")) {
        env.set_env(key, &value);
        handed.push(format!("\"{key}\""));
    }
    env.user_config(&head.runner_toml(
        "lab",
        &remote,
        &format!(
            "env = [{}]\ncpus = 0.1\nclaude = \"{}\"",
            handed.join(", "),
            claude.display()
        ),
    ));
    api.route(
        "[tools]",
        vec![
            Reply::write("made.txt", "made on the cluster\n"),
            Reply::tool("Read", json!({"file_path": format!("{CWD}/made.txt")})),
            Reply::text("Made it."),
        ],
    );
    let task = env.task_ok(&["[tools] make a file", "-n", "real-far", "--on", "lab"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["response"], "Made it.", "{task:#}");
    assert!(task["safety"]["sandboxed"].as_bool().unwrap(), "{task:#}");
    assert_eq!(
        env.git(&["show", "cms/real-far:made.txt"]),
        "made on the cluster"
    );
    env.cms(&["merge", "real-far"]).success();
    assert_eq!(env.read("made.txt"), "made on the cluster\n");
}

#[test]
fn ray_cms_installed_on_the_workers_is_the_one_the_job_runs() {
    let Some((env, head, _turn)) = ray_env("ray_cms_installed_on_the_workers") else {
        return;
    };
    // The workers' own cms: this build, behind a script that says it ran.
    let ran = env.root.join("installed-cms-ran");
    let installed = env.root.join("installed-cms");
    std::fs::write(
        &installed,
        format!(
            "#!/bin/sh\ntouch '{}'\nexec '{}' \"$@\"\n",
            ran.display(),
            crate::common::CMS
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &installed,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let names: Vec<String> = HANDED.iter().map(|n| format!("\"{n}\"")).collect();
    env.user_config(&head.runner_toml(
        "lab",
        &remote_of(&env),
        &format!(
            "env = [{}]\ncpus = 0.1\nclaude = \"{FAKE_CLAUDE}\"\ncms = \"{}\"",
            names.join(", "),
            installed.display()
        ),
    ));
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["x", "-n", "installed", "--on", "lab"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert!(ran.exists(), "the job ran the workers' cms");
    assert_eq!(env.git(&["show", "cms/installed:a.txt"]), "a");
}

#[test]
fn ray_attempts_run_on_the_default_runner_of_the_users_configuration() {
    let Some((env, _head, _turn)) = ray_env("ray_attempts_run_on_the_default_runner") else {
        return;
    };
    let config = std::fs::read_to_string(env.home.join(".config/cms/config.toml")).unwrap();
    env.user_config(&format!("{config}[task]\nrunner = \"lab\"\n"));
    env.steps(json!([{"write": {"path": "try.txt", "content": "try\n"}}]));
    let run = env.cms(&["task", "try it", "-n", "try", "--attempts", "2", "--json"]);
    run.success();
    let tasks: Value = run.json();
    for task in tasks.as_array().unwrap() {
        assert_eq!(task["status"], "completed", "{task:#}");
        assert_eq!(task["remote"]["runner"], "lab", "{task:#}");
    }
    // `--on local` runs here whatever the default.
    let here = env.task_ok(&["x", "-n", "here", "--on", "local"]);
    assert!(here["remote"].is_null(), "{here:#}");
}

#[test]
fn ray_a_detached_remote_task_is_followed_by_logs_f_and_wait_as_a_local_one() {
    let Some((env, _head, _turn)) = ray_env("ray_a_detached_remote_task_is_followed") else {
        return;
    };
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"sleep_ms": 2000},
        {"write": {"path": "b.txt", "content": "b\n"}},
    ]));
    env.cms(&["task", "x", "-n", "watched", "--on", "lab", "-d"])
        .success();
    eventually("the session to start", || {
        env.cms(&["show", "watched", "--json"]).json()["session_id"].is_string()
    });
    let follower = env.spawn_cms(&["logs", "-f", "watched"]);
    let waited = env.cms(&["wait", "watched", "--json"]);
    waited.success();
    assert_eq!(waited.json()[0]["status"], "completed", "{}", waited.stdout);
    let followed = wait_bounded(follower, LIMIT);
    followed.success();
    for line in ["● Write a.txt", "● Write b.txt"] {
        assert!(followed.stdout.contains(line), "{}", followed.stdout);
    }
}
