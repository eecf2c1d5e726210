//! Live permission answers: a task that asks for a tool waits (`waiting`) until `cms allow`
//! or `cms deny` answers from any process, or its time limit ends it; without asking, a
//! denied tool ends the task `needs_input`.

use serde_json::{Value, json};

use crate::common::terminal::Terminal;
use crate::common::{Background, LIMIT, TestEnv, eventually, wait_bounded};

/// A repository whose tasks run in `review`, where Bash is a tool claude must ask for (a
/// sandboxed `edit` task runs any Bash without asking).
fn asking_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.set_env("CMS_PRESET", "review");
    env
}

/// A Bash call `review` does not allow, so claude asks for it.
fn asks_bash(command: &str) -> Value {
    json!({"ask": {"bash": command}})
}

fn show(env: &TestEnv, name: &str) -> Value {
    let run = env.cms(&["show", name, "--json"]);
    run.success();
    run.json()
}

#[test]
fn a_detached_task_waits_on_a_tool_it_may_not_use_until_cms_allow_answers() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo ok > ran.txt")]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    let task = env.until_status("t", "waiting");
    assert_eq!(task["pending"]["tool_name"], "Bash");
    assert_eq!(task["pending"]["input"]["command"], "echo ok > ran.txt");
    assert_eq!(task["can_continue"], false);
    // Detached tasks ask by default: claude sends its prompts to cms.
    assert_eq!(
        env.last_claude_arg("--permission-prompt-tool").as_deref(),
        Some("stdio")
    );
    let list = env.cms(&["list"]);
    list.success();
    let line = list.stdout.lines().find(|l| l.starts_with("t ")).unwrap();
    assert!(line.contains("waiting"), "{line}");
    assert!(line.contains("asks for Bash echo ok > ran.txt"), "{line}");
    let shown = env.cms(&["show", "t"]);
    assert!(shown.stdout.contains("cms allow t"), "{}", shown.stdout);

    let allowed = env.cms(&["allow", "t"]);
    allowed.success();
    assert_eq!(
        allowed.stdout.trim(),
        "allowed Bash: echo ok > ran.txt for t"
    );
    env.cms_bounded(&["wait", "t"], LIMIT).success();
    let task = show(&env, "t");
    assert_eq!(task["status"], "completed");
    assert_eq!(env.git(&["show", "cms/t:ran.txt"]), "ok");
    assert_eq!(task["pending"], Value::Null);
    assert_eq!(task["permission_denials"], json!([]));
    let answered = &task["safety"]["answered"][0];
    assert_eq!(answered["tool_name"], "Bash");
    assert_eq!(answered["allow"], true);
    assert!(
        answered["by"]
            .as_str()
            .unwrap()
            .starts_with("cms allow (pid "),
        "{answered}"
    );
}

#[test]
fn cms_deny_tells_the_agent_why_and_the_call_never_runs() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo no > no.txt")]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    env.until_status("t", "waiting");
    let denied = env.cms(&["deny", "t", "use the script instead"]);
    denied.success();
    assert!(
        denied.stdout.starts_with("denied Bash"),
        "{}",
        denied.stdout
    );
    env.cms_bounded(&["wait", "t"], LIMIT).success();
    let task = show(&env, "t");
    // The user answered, so the task needs nothing more from them.
    assert_eq!(task["status"], "completed");
    assert_eq!(task["permission_denials"], json!([]));
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:no.txt"]));
    let answered = &task["safety"]["answered"][0];
    assert_eq!(answered["allow"], false);
    assert_eq!(answered["message"], "use the script instead");
    // The agent got the message as the tool's error.
    let logs = env.cms(&["logs", "t"]);
    assert!(
        logs.stdout.contains("✗ Bash: use the script instead"),
        "{}",
        logs.stdout
    );
}

#[test]
fn allow_always_answers_the_later_prompts_for_that_tool_and_follow_ups_keep_it() {
    let env = asking_env();
    env.script(json!({"turns": [
        {"steps": [asks_bash("echo 1 > one.txt"), asks_bash("echo 2 > two.txt")]},
        {"steps": [asks_bash("echo 3 > three.txt")]},
    ]}));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    env.until_status("t", "waiting");
    env.cms(&["allow", "t", "--always"]).success();
    env.cms_bounded(&["wait", "t"], LIMIT).success();
    let task = show(&env, "t");
    assert_eq!(task["status"], "completed");
    assert_eq!(env.git(&["show", "cms/t:two.txt"]), "2");
    assert_eq!(task["safety"]["allowed"], json!(["Bash"]));
    assert_eq!(task["safety"]["answered"].as_array().unwrap().len(), 2);
    // The follow-up's claude is allowed Bash from the start, so it never asks.
    env.script(json!({"resume_offset": 1, "turns": [
        {"steps": [asks_bash("echo 1 > one.txt"), asks_bash("echo 2 > two.txt")]},
        {"steps": [asks_bash("echo 3 > three.txt")]},
    ]}));
    let run = env.cms_bounded(&["continue", "t", "more", "--ask", "--json"], LIMIT);
    run.success();
    let allowed = env.last_claude_arg("--allowedTools").unwrap();
    assert!(allowed.split(',').any(|rule| rule == "Bash"), "{allowed}");
    assert_eq!(env.git(&["show", "cms/t:three.txt"]), "3");
}

#[test]
fn a_foreground_task_with_ask_is_answered_from_another_process() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo ok > ran.txt")]));
    let task = env.spawn_cms(&["task", "--ask", "x", "-n", "fg", "--json"]);
    env.until_status("fg", "waiting");
    env.cms(&["allow", "fg"]).success();
    let run = wait_bounded(task, LIMIT);
    run.success();
    assert_eq!(run.json()["status"], "completed");
    // Without a terminal, the supervisor says how to answer.
    assert!(
        run.stderr
            .contains("`cms allow fg` or `cms deny fg [MESSAGE]`"),
        "{}",
        run.stderr
    );
    assert_eq!(env.git(&["show", "cms/fg:ran.txt"]), "ok");
}

#[test]
fn without_ask_and_without_a_terminal_a_tool_it_may_not_use_ends_the_task_needs_input() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo ok > ran.txt")]));
    let run = env.cms_bounded(&["task", "x", "-n", "t", "--json"], LIMIT);
    run.code(3);
    let task = run.json();
    assert_eq!(task["status"], "needs_input");
    assert_eq!(task["permission_denials"][0]["tool_name"], "Bash");
    assert_eq!(env.last_claude_arg("--permission-prompt-tool"), None);
    // --no-ask does the same for a detached task.
    env.cms(&["task", "-d", "--no-ask", "x", "-n", "quiet"])
        .success();
    env.cms_bounded(&["wait", "quiet"], LIMIT).code(3);
    assert_eq!(show(&env, "quiet")["status"], "needs_input");
}

#[test]
fn the_time_limit_ends_a_task_that_waits_for_an_answer() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo late > late.txt")]));
    env.cms(&["task", "-d", "x", "-n", "t", "--max-duration", "2s"])
        .success();
    env.until_status("t", "waiting");
    // `wait` returns on the wait itself; the time limit then ends it.
    let task = env.until_status("t", "duration_exceeded");
    assert_eq!(task["pending"], Value::Null);
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:late.txt"]));
}

#[test]
fn abort_ends_a_waiting_task_without_running_the_call() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo no > no.txt")]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    env.until_status("t", "waiting");
    env.cms_bounded(&["abort", "t"], LIMIT).success();
    let task = show(&env, "t");
    assert_eq!(task["status"], "aborted");
    assert_eq!(task["pending"], Value::Null);
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:no.txt"]));
}

#[test]
fn wait_returns_when_a_task_starts_waiting_and_says_how_to_answer() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo ok > ran.txt")]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    let run = env.cms_bounded(&["wait", "t"], LIMIT);
    run.code(3);
    assert!(
        run.stdout
            .contains("t waiting for Bash echo ok > ran.txt: `cms allow t` or `cms deny t`"),
        "{}",
        run.stdout
    );
    env.cms(&["allow", "t"]).success();
    env.cms_bounded(&["wait", "t"], LIMIT).success();
}

#[test]
fn logs_follow_shows_the_prompt_and_follows_the_task_past_its_answer() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo ok > ran.txt"), {"text": "all done"}]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    env.until_status("t", "waiting");
    let follow = env.spawn_cms(&["logs", "-f", "t"]);
    env.cms(&["allow", "t"]).success();
    let run = wait_bounded(follow, LIMIT);
    run.success();
    let ask = run
        .stdout
        .lines()
        .position(|l| l == "? asks for Bash echo ok > ran.txt")
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        run.stdout.lines().skip(ask).any(|l| l == "› all done"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("waiting for an answer to Bash echo ok > ran.txt"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_notify_command_hears_when_a_task_starts_waiting_and_when_it_ends() {
    let env = asking_env();
    let out = env.root.join("notified");
    env.user_config(&format!(
        "[notify]\ncommand = [\"sh\", \"-c\", \"echo $CMS_TASK $CMS_STATUS >> {}\"]\n",
        out.display()
    ));
    env.steps(json!([asks_bash("echo ok > ran.txt")]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    let told = |what: &str| {
        eventually(&format!("the notifier to be told {what:?}"), || {
            std::fs::read_to_string(&out).is_ok_and(|t| t.contains(what))
        });
    };
    told("t waiting");
    env.cms(&["allow", "t"]).success();
    env.cms_bounded(&["wait", "t"], LIMIT).success();
    told("t completed");
}

#[test]
fn a_fan_out_asks_by_default_and_says_which_attempt_waits() {
    let env = asking_env();
    env.steps(json!([asks_bash("echo \"$CMS_TASK\" > who.txt")]));
    let said = env.root.join("fan-out.stderr");
    let fan = Background::spawn_with_stderr_in(
        &mut env.cms_command(
            &env.repo,
            &["task", "x", "--attempts", "2", "-n", "pair", "--json"],
        ),
        &said,
    );
    // Answered only once the fan-out has told of both prompts: it looks every 100 ms, and a
    // prompt answered before it looks was never the user's to answer.
    for name in ["pair-1", "pair-2"] {
        let told = format!("{name} asks for Bash echo \"$CMS_TASK\" > who.txt");
        eventually(&format!("the fan-out to tell {told:?}"), || {
            std::fs::read_to_string(&said).is_ok_and(|t| t.contains(&told))
        });
    }
    env.cms(&["allow", "pair-1"]).success();
    env.cms(&["deny", "pair-2"]).success();
    wait_bounded(fan, LIMIT).success();
    assert_eq!(env.git(&["show", "cms/pair-1:who.txt"]), "pair-1");
    assert!(!env.git_ok(&["cat-file", "-e", "cms/pair-2:who.txt"]));
}

#[test]
fn allow_and_deny_refuse_a_task_that_is_not_waiting_and_change_nothing() {
    let env = asking_env();
    env.task_ok(&["x", "-n", "done"]);
    let before = show(&env, "done");
    env.cms(&["allow", "done"])
        .code(1)
        .one_line_error_with_hint("is not waiting for a permission answer");
    env.cms(&["deny", "done", "no"])
        .code(1)
        .one_line_error_with_hint("is not waiting for a permission answer");
    assert_eq!(show(&env, "done"), before);
    env.cms(&["allow", "ghost"]).code(1);
    env.cms(&["allow", "../x"]).code(2);
}

#[test]
fn a_foreground_task_at_a_terminal_asks_inline_and_takes_the_answer_typed_there() {
    let env = asking_env();
    env.script(json!({"turns": [{"steps": [
        asks_bash("echo 1 > one.txt"),
        asks_bash("echo 2 > two.txt"),
        asks_bash("echo 3 > three.txt"),
    ]}]}));
    // Asked by default: stdin and stderr are the terminal.
    let Some(term) = Terminal::run(&env, "ask_inline", &["task", "x", "-n", "tty"]) else {
        return;
    };
    let prompt = "allow it? [y]es, [n]o [why], [a]lways Bash";
    term.wait_for(prompt);
    assert_eq!(show(&env, "tty")["status"], "waiting");
    term.type_line("y");
    // Each answer goes to the prompt on screen, so the next is typed once it shows.
    let screen = term.wait_for_times(prompt, 2);
    assert!(screen.contains("? Bash: echo 2 > two.txt"), "{screen}");
    term.type_line("n not that one");
    term.wait_for_times(prompt, 3);
    term.type_line("a");
    term.exits_with(0);
    let task = show(&env, "tty");
    assert_eq!(task["status"], "completed");
    assert_eq!(env.git(&["show", "cms/tty:one.txt"]), "1");
    assert!(!env.git_ok(&["cat-file", "-e", "cms/tty:two.txt"]));
    assert_eq!(env.git(&["show", "cms/tty:three.txt"]), "3");
    let by: Vec<&str> = task["safety"]["answered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["the supervisor's terminal"; 3]);
    assert_eq!(task["safety"]["answered"][1]["message"], "not that one");
    assert_eq!(task["safety"]["allowed"], json!(["Bash"]));
}

mod real {
    //! The same answers with the real Claude Code CLI: its `can_use_tool` prompts wait in the
    //! record and its tool runs, or is refused with the user's words, as answered.

    use serde_json::json;

    use super::{LIMIT, show};
    use crate::common::fake_api::{FakeApi, Reply};
    use crate::common::real::{real_claude, real_env, tool_results};

    /// A read-only task (Bash is not allowed without asking) whose agent runs `command`.
    fn asking_task(test: &str, command: &str) -> Option<(FakeApi, crate::common::TestEnv)> {
        let claude = real_claude(test)?;
        let api = FakeApi::start();
        let env = real_env(&claude, &api);
        api.route(
            "[ask]",
            vec![
                Reply::tool(
                    "Bash",
                    json!({"command": command, "description": "Write a file"}),
                ),
                Reply::text("finished"),
            ],
        );
        env.cms(&["task", "-d", "-p", "read-only", "[ask] write it", "-n", "t"])
            .success();
        Some((api, env))
    }

    #[test]
    fn real_claude_a_waiting_task_runs_the_tool_once_cms_allow_answers() {
        let Some((_api, env)) = asking_task(
            "real_claude_a_waiting_task_runs_the_tool_once_cms_allow_answers",
            "echo ok > ran.txt",
        ) else {
            return;
        };
        let task = env.until_status("t", "waiting");
        assert_eq!(task["pending"]["tool_name"], "Bash");
        assert_eq!(task["pending"]["input"]["command"], "echo ok > ran.txt");
        env.cms(&["allow", "t"]).success();
        env.cms_bounded(&["wait", "t"], LIMIT).success();
        let task = show(&env, "t");
        assert_eq!(task["status"], "completed", "{task:#}");
        assert_eq!(task["permission_denials"], json!([]));
        assert_eq!(env.git(&["show", "cms/t:ran.txt"]), "ok");
    }

    #[test]
    fn real_claude_cms_deny_refuses_the_tool_with_the_users_words() {
        let Some((_api, env)) = asking_task(
            "real_claude_cms_deny_refuses_the_tool_with_the_users_words",
            "echo no > no.txt",
        ) else {
            return;
        };
        env.until_status("t", "waiting");
        env.cms(&["deny", "t", "not this way"]).success();
        env.cms_bounded(&["wait", "t"], LIMIT).success();
        let task = show(&env, "t");
        assert_eq!(task["status"], "completed", "{task:#}");
        assert!(!env.git_ok(&["cat-file", "-e", "cms/t:no.txt"]));
        let results = tool_results(&env, "t");
        assert!(
            results.iter().any(|r| r.contains("not this way")),
            "{results:#?}"
        );
    }

    #[test]
    fn real_claude_abort_ends_a_waiting_task_and_the_call_never_runs() {
        let Some((_api, env)) = asking_task(
            "real_claude_abort_ends_a_waiting_task_and_the_call_never_runs",
            "echo no > no.txt",
        ) else {
            return;
        };
        env.until_status("t", "waiting");
        env.cms_bounded(&["abort", "t"], LIMIT).success();
        let task = show(&env, "t");
        assert_eq!(task["status"], "aborted", "{task:#}");
        assert!(!env.git_ok(&["cat-file", "-e", "cms/t:no.txt"]));
    }
}
