//! Background commands with the real CLI: a Bash `run_in_background` command that outlives
//! the agent's turn (longer than the 5 s claude itself waits once its stdin closes) is waited
//! for and reported back, or stopped and named; the task never ends `completed` with its work
//! cut.

use serde_json::json;

use crate::common::fake_api::Reply;
use crate::common::real::{names, real_scenario, real_task, transcript};

fn background(command: &str, description: &str) -> Reply {
    Reply::tool(
        "Bash",
        json!({"command": command, "description": description, "run_in_background": true}),
    )
}

#[test]
fn real_claude_background_command_that_outlives_the_turn_is_reported_back_and_its_work_committed() {
    let Some((api, env)) = real_scenario("real_claude_background_command_is_reported_back") else {
        return;
    };
    api.route(
        "[late]",
        vec![
            background("sleep 8 && echo done > late.txt", "slow build"),
            Reply::text("The build runs in the background."),
            // The turn claude starts by itself once the command has ended.
            Reply::text("The build finished and wrote late.txt."),
        ],
    );
    let (run, task) = real_task(
        &env,
        &["[late] build", "--name", "late", "--preset", "full"],
    );
    run.success();
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["response"], "The build finished and wrote late.txt.");
    assert_eq!(names(&task["files_changed"], "path"), ["late.txt"]);
    assert_eq!(env.git(&["show", "cms/late:late.txt"]), "done");
    let events = transcript(&env, "late");
    assert!(
        events
            .iter()
            .any(|e| e["subtype"] == "task_notification" && e["status"] == "completed"),
        "{events:#?}"
    );
}

#[test]
fn real_claude_background_command_cut_by_the_time_limit_ends_needs_input_naming_it() {
    let Some((api, env)) = real_scenario("real_claude_background_command_cut") else {
        return;
    };
    api.route(
        "[cut]",
        vec![
            background("sleep 120 && echo done > late.txt", "long build"),
            Reply::text("The build runs in the background."),
            Reply::text("never reported"),
        ],
    );
    let (run, task) = real_task(
        &env,
        &[
            "[cut] build",
            "--name",
            "cut",
            "--preset",
            "full",
            "--max-duration",
            "10s",
        ],
    );
    run.code(3);
    assert_eq!(task["status"], "needs_input", "{task:#}");
    let stopped = task["stopped_commands"].as_array().unwrap();
    assert_eq!(stopped.len(), 1, "{task:#}");
    assert_eq!(stopped[0]["description"], "long build");
    assert_eq!(stopped[0]["command"], "sleep 120 && echo done > late.txt");
    assert!(
        task["error"].as_str().unwrap().contains("time limit"),
        "{task:#}"
    );
    assert!(!env.git_ok(&["cat-file", "-e", "cms/cut:late.txt"]));
    // claude stopped it on cms's request, and the model was never told it finished.
    let events = transcript(&env, "cut");
    assert!(
        events
            .iter()
            .any(|e| e["subtype"] == "task_updated" && e["patch"]["status"] == "killed"),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| e["status"] == "completed"));
}
