//! Background commands (Bash `run_in_background`) an agent leaves running when its turn ends:
//! waited for and reported back to the agent within the task's limits, or stopped, named in
//! the record and ended `needs_input`, never a silent `completed`.

use serde_json::json;

use crate::common::{
    LIMIT, TestEnv, eventually, process_ended, running_with, until_ended, wait_bounded,
};

#[test]
fn background_command_that_outlives_the_turn_is_waited_for_and_reported_back() {
    let env = TestEnv::new();
    env.script(json!({"turns": [
        {"steps": [{"bash": {
            "command": "sleep 1 && echo built > late.txt",
            "description": "slow build",
            "run_in_background": true
        }}], "result": "The build runs in the background."},
        // The turn claude starts by itself when the command ends.
        {"steps": [], "result": "The build finished and wrote late.txt."}
    ]}));
    let task = env.task_ok(&["build it", "-n", "late", "--preset", "full"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["response"], "The build finished and wrote late.txt.");
    // The report turn is paid and counted like any: two API replies, then one more.
    assert_eq!(task["turns"], 3, "{task:#}");
    assert_eq!(env.git(&["show", "cms/late:late.txt"]), "built");
    assert_eq!(task["stopped_commands"], json!([]));
    let log = std::fs::read_to_string(env.common_dir().join("cms/logs/late.jsonl")).unwrap();
    assert!(log.contains(r#""subtype":"task_notification""#), "{log}");
}

#[test]
fn background_command_cut_by_the_time_limit_ends_the_task_needs_input_naming_it() {
    let env = TestEnv::new();
    env.script(json!({"turns": [
        {"steps": [
            {"write": {"path": "early.txt", "content": "early\n"}},
            {"bash": {
                "command": "echo $$ > build.pid && sleep 120 && echo built > late.txt",
                "description": "long build",
                "run_in_background": true
            }}
        ], "result": "The build runs in the background."},
        {"steps": [], "result": "never reported"}
    ]}));
    let task = env.task_ending(
        3,
        &[
            "build it",
            "-n",
            "cut",
            "--preset",
            "full",
            "--max-duration",
            "3s",
        ],
    );
    assert_eq!(task["status"], "needs_input", "{task:#}");
    let stopped = task["stopped_commands"].as_array().unwrap();
    assert_eq!(stopped.len(), 1, "{task:#}");
    assert_eq!(stopped[0]["description"], "long build");
    assert!(
        stopped[0]["command"]
            .as_str()
            .unwrap()
            .contains("sleep 120")
    );
    let error = task["error"].as_str().unwrap();
    assert!(error.contains("long build"), "{error}");
    assert!(error.contains("time limit"), "{error}");
    // The work done before the cut is kept; the cut work never happened.
    assert_eq!(env.git(&["show", "cms/cut:early.txt"]), "early");
    assert!(!env.git_ok(&["cat-file", "-e", "cms/cut:late.txt"]));
    // Nothing of the stopped command survives its task.
    let pid: u64 = env
        .git(&["show", "cms/cut:build.pid"])
        .trim()
        .parse()
        .unwrap();
    until_ended(pid, "the stopped background command");
    assert!(process_ended(pid));

    let show = env.cms(&["show", "cut"]);
    assert!(show.stdout.contains("stopped"), "{}", show.stdout);
    assert!(show.stdout.contains("sleep 120"), "{}", show.stdout);
    assert!(
        show.stdout.contains("cms continue cut") && show.stdout.contains("--max-duration"),
        "{}",
        show.stdout
    );
}

#[test]
fn background_command_left_running_is_named_in_the_outcome_line_with_a_hint_to_continue() {
    let env = TestEnv::new();
    env.script(json!({"turns": [
        {"steps": [{"bash": {
            "command": "sleep 120",
            "description": "watch the logs",
            "run_in_background": true
        }}], "result": "Watching."}
    ]}));
    let run = env.cms(&["task", "watch", "-n", "watch", "--max-duration", "2s"]);
    run.code(3);
    assert!(run.stdout.contains("needs_input"), "{}", run.stdout);
    assert!(
        run.stdout.contains("stopped: sleep 120 (watch the logs)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("cms continue watch"), "{}", run.stdout);
}

#[test]
fn background_command_running_when_the_user_aborts_between_turns_is_stopped_and_named() {
    let env = TestEnv::new();
    // A command line no other test's process has, to find this one's.
    let marker = format!("1000.{}", std::process::id());
    env.script(json!({"turns": [
        {"steps": [{"bash": {
            "command": format!("sleep {marker}"),
            "description": "serve the docs",
            "run_in_background": true
        }}], "result": "Serving."}
    ]}));
    let supervisor = env.spawn_cms(&["task", "serve", "-n", "serve"]);
    // The agent's turn is over while its command runs on.
    let log = env.common_dir().join("cms/logs/serve.jsonl");
    eventually("the first turn's result", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(r#""type":"result""#))
    });
    assert!(!running_with(&format!("sleep {marker}")).is_empty());
    let run = env.cms(&["abort", "serve", "--json"]);
    run.success();
    assert_eq!(run.json()[0]["status"], "aborted", "{}", run.stdout);
    wait_bounded(supervisor, LIMIT).code(130);
    let task = env.cms(&["show", "serve", "--json"]).json();
    assert_eq!(
        task["stopped_commands"][0]["description"], "serve the docs",
        "{task:#}"
    );
    assert!(running_with(&format!("sleep {marker}")).is_empty());
}
