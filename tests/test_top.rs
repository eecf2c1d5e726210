//! `cms top` at a real terminal (tmux): it shows detached tasks started by other cms
//! processes, answers a waiting one with a key, and follows it live until it completes.

use serde_json::json;

use crate::common::terminal::Terminal;
use crate::common::{CMS, TestEnv, eventually, until_ended};

/// `cms top` in an 80×24 terminal, or `None` (the test skipped) without tmux.
fn top(env: &TestEnv, test: &str) -> Option<Terminal> {
    Terminal::run_in(env, test, (80, 24), &["top"])
}

/// `cms top` showing a detached task `t` that waits for permission to run a Bash call.
fn top_over_a_waiting_task(env: &TestEnv, test: &str) -> Option<(Terminal, String)> {
    env.steps(json!([{"ask": {"bash": "echo ok > ran.txt"}}]));
    // `review` asks for Bash, which a sandboxed `edit` task runs without asking.
    env.cms(&["task", "-d", "-p", "review", "x", "-n", "t"])
        .success();
    env.until_status("t", "waiting");
    let term = top(env, test)?;
    let screen = term.wait_for("echo ok > ran.txt");
    Some((term, screen))
}

#[test]
fn top_answers_a_waiting_detached_task_with_a_key_and_follows_it_until_it_completes() {
    let env = TestEnv::new();
    let Some((term, screen)) = top_over_a_waiting_task(&env, "top_answers") else {
        return;
    };
    assert!(screen.contains("? waiting"), "{screen}");
    term.key("a");
    let screen = term.wait_for("✓ completed");
    assert!(screen.contains("allowed Bash for t"), "{screen}");
    let task = env.until_status("t", "completed");
    assert_eq!(env.git(&["show", "cms/t:ran.txt"]), "ok");
    let by = task["safety"]["answered"][0]["by"].as_str().unwrap();
    assert!(by.starts_with("cms top (pid "), "{by}");

    term.key("q");
    assert_eq!(term.wait_exit().0, 0);
    // The shell's screen is back: the dashboard left the alternate screen.
    let screen = term.tmux(&["capture-pane", "-p"]);
    assert!(!screen.contains("✓ completed"), "{screen}");
}

#[test]
fn top_shows_cms_refusal_to_merge_a_waiting_task_and_aborts_it_after_a_yes() {
    let env = TestEnv::new();
    let Some((term, _)) = top_over_a_waiting_task(&env, "top_refuses_merge") else {
        return;
    };
    term.key("m");
    term.wait_for("Merge task 't' into main?");
    term.key("y");
    // cms merge's own words: the error and its hint.
    let screen = term.wait_for("hint: wait for it to end");
    assert!(
        screen.contains("error: task 't' is still running"),
        "{screen}"
    );
    assert_eq!(env.until_status("t", "waiting")["status"], "waiting");
    term.key("x");
    term.wait_for("Abort task 't'?");
    term.key("y");
    term.wait_for("■ aborted");
    env.until_status("t", "aborted");
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:ran.txt"]));
}

#[test]
fn top_starts_a_task_typed_in_place_shows_its_diff_and_merges_it_after_a_yes() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "new.txt", "content": "new\n"}}]));
    let Some(term) = top(&env, "top_new_task") else {
        return;
    };
    term.wait_for("No tasks yet");
    term.key("n");
    term.type_text("add new file");
    term.key("Enter");
    term.wait_for("Start a task with this prompt?");
    term.key("y");
    term.wait_for("✓ completed");
    let tasks = env.cms(&["list", "--json"]);
    let name = tasks.json()[0]["name"].as_str().unwrap().to_owned();
    term.key("v");
    term.wait_for("+++ b/new.txt");
    term.key("v");
    term.wait_for("✓ completed");
    term.key("m");
    term.wait_for(&format!("Merge task '{name}' into main?"));
    term.key("y");
    term.wait_for(&format!("Merged {name} into main"));
    assert_eq!(env.git(&["show", "main:new.txt"]), "new");
    term.key("q");
    assert_eq!(term.wait_exit().0, 0);
}

#[test]
fn top_keeps_what_worktree_setup_and_merge_checks_print_off_its_screen() {
    let env = TestEnv::new();
    env.write(
        ".cms.toml",
        "[worktree]\nsetup = [\"echo SETUP-OUT; echo SETUP-ERR >&2\"]\n\
         [merge]\ncheck = [\"echo CHECK-OUT; echo CHECK-ERR >&2\"]\n",
    );
    env.trust();
    env.steps(json!([{"write": {"path": "new.txt", "content": "new\n"}}]));
    let Some(term) = Terminal::run_in(&env, "top_quiet_commands", (200, 50), &["top"]) else {
        return;
    };
    term.wait_for("No tasks yet");
    term.key("n");
    term.type_text("add new file");
    term.key("Enter");
    term.wait_for("Start a task with this prompt?");
    term.key("y");
    let screen = term.wait_for("✓ completed");
    assert!(!screen.contains("SETUP-"), "{screen}");
    let name = env.cms(&["list", "--json"]).json()[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    term.key("m");
    term.wait_for(&format!("Merge task '{name}' into main?"));
    term.key("y");
    let screen = term.wait_for("1 check(s) passed.");
    assert!(
        screen.contains(&format!("Merged {name} into main")),
        "{screen}"
    );
    assert!(!screen.contains("CHECK-"), "{screen}");
    assert_eq!(env.git(&["show", "main:new.txt"]), "new");
}

#[test]
fn top_denies_a_waiting_task_with_the_reason_typed_in_place() {
    let env = TestEnv::new();
    let Some((term, _)) = top_over_a_waiting_task(&env, "top_denies") else {
        return;
    };
    term.key("d");
    term.wait_for("reason for task 't' (Enter for none):");
    // Letters that are keys in the list (n starts a task, q quits) are the reason's here.
    term.type_text("not now, quietly");
    term.key("Enter");
    term.wait_for("denied Bash for t");
    let task = env.until_status("t", "completed");
    let answered = &task["safety"]["answered"][0];
    assert_eq!(answered["message"], "not now, quietly");
    assert_eq!(answered["allow"], false);
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:ran.txt"]));
    assert_eq!(
        env.cms(&["list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn top_shows_why_an_attach_failed() {
    let env = TestEnv::new();
    let Some((term, _)) = top_over_a_waiting_task(&env, "top_attach_fails") else {
        return;
    };
    // A waiting task is still running: cms attach refuses it before starting claude.
    term.key("t");
    let screen = term.wait_for("cms attach t ended with exit status: 1");
    assert!(screen.contains("error: task 't' is"), "{screen}");
    assert!(screen.contains("hint:"), "{screen}");
    assert_eq!(env.until_status("t", "waiting")["status"], "waiting");
}

#[test]
fn top_continues_a_task_with_a_message_typed_in_place() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    env.cms(&["task", "x", "-n", "t"]).success();
    // The follow-up is the session's second turn.
    env.script(json!({"resume_offset": 1, "turns": [
        {"steps": [], "result": "unused"},
        {"steps": [{"write": {"path": "b.txt", "content": "b\n"}}], "result": "done"}
    ]}));
    let Some(term) = top(&env, "top_continues") else {
        return;
    };
    term.wait_for("✓ completed");
    term.key("c");
    term.wait_for("message to t:");
    term.type_text("now b too");
    term.key("Enter");
    eventually("the follow-up to commit b.txt", || {
        env.git_ok(&["cat-file", "-e", "cms/t:b.txt"])
    });
    env.until_status("t", "completed");
    term.wait_for("✓ completed");
}

/// `cms top` on an empty repository, once it shows, and its pid (`exec` gives it the pid of
/// the shell that wrote it down).
fn top_with_its_pid(env: &TestEnv, test: &str) -> Option<(Terminal, u64)> {
    let pid = env.root.join("pid");
    let command = format!("echo $$ > {}; exec {CMS} top", pid.display());
    let term = Terminal::shell(env, test, (80, 24), &command)?;
    term.wait_for("No tasks yet");
    let pid = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Some((term, pid))
}

#[test]
fn top_restores_the_terminal_and_exits_130_on_sigterm() {
    let env = TestEnv::new();
    let Some((term, pid)) = top_with_its_pid(&env, "top_sigterm") else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let screen = term.exits_with(130);
    assert!(!screen.contains("No tasks yet"), "{screen}");
}

#[test]
fn top_exits_when_its_terminal_goes_away() {
    let env = TestEnv::new();
    // Not the terminal's session leader (the shell is), so no SIGHUP reaches it: it must see
    // the hangup itself rather than spin on a dead terminal forever.
    let Some((term, pid)) = top_with_its_pid(&env, "top_hangup") else {
        return;
    };
    term.close();
    until_ended(pid, "cms top, its terminal closed,");
}

#[test]
fn top_attaches_to_a_task_at_the_terminal_and_comes_back_when_the_session_ends() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let task = env.task_ok(&["write a", "-n", "t"]);
    env.script(json!({"resume_offset": 1, "turns": [
        {},
        {"steps": [{"write": {"path": "b.txt", "content": "b\n"}}], "result": "b is written"}
    ]}));
    let Some(term) = top(&env, "top_attaches") else {
        return;
    };
    term.wait_for("✓ completed");
    term.key("t");
    // The fake claude's interactive session, on the whole screen.
    // Typed once its prompt shows: it reads the terminal from then on.
    term.wait_for(&format!(
        "session {}\n>",
        task["session_id"].as_str().unwrap()
    ));
    term.type_text("write b");
    term.key("Enter");
    term.wait_for("● b is written");
    term.type_text("/exit");
    term.key("Enter");
    term.wait_for("attach t ended.");
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
    term.wait_for("✓ completed");
}

#[test]
fn top_restores_the_terminal_when_it_panics() {
    let mut env = TestEnv::new();
    env.set_env("CMS_TEST_PANIC", "top-key");
    let Some(term) = top(&env, "top_panics") else {
        return;
    };
    term.wait_for("No tasks yet");
    term.key("j");
    assert_eq!(term.wait_exit().0, 255);
    // cms's one-line panic report, on the shell's screen rather than the dashboard's.
    let screen = term.wait_for("error: cms panicked");
    assert!(!screen.contains("No tasks yet"), "{screen}");
}

#[test]
fn top_without_a_terminal_refuses_as_a_usage_error() {
    let env = TestEnv::new();
    let run = env.cms(&["top"]);
    run.code(2)
        .one_line_error_with_hint("cms top needs a terminal");
    assert_eq!(run.stdout, "");
}
