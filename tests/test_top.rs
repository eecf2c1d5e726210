//! `cms top` at a real terminal (tmux): it shows detached tasks started by other cms
//! processes, answers a waiting one with a key, and follows it live until it completes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{CMS, TestEnv};

const LIMIT: Duration = Duration::from_secs(60);

/// Polls `show` until the task is in `status`.
#[track_caller]
fn until_status(env: &TestEnv, name: &str, status: &str) -> Value {
    let start = Instant::now();
    loop {
        // A task started in the background may not have its record yet.
        let run = env.cms(&["show", name, "--json"]);
        let task = if run.code == 0 {
            run.json()
        } else {
            Value::Null
        };
        if task["status"] == status {
            return task;
        }
        assert!(
            start.elapsed() < LIMIT,
            "task {name} never became {status}: {task:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A terminal of the test's own: a tmux server on its own socket, with the test's environment.
struct Terminal<'a> {
    env: &'a TestEnv,
    socket: PathBuf,
}

impl<'a> Terminal<'a> {
    /// Runs `command` in a new 80×24 tmux session, or `None` without tmux.
    fn open(env: &'a TestEnv, command: &str) -> Option<Terminal<'a>> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is missing in CI; .ci/run installs it"
            );
            eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
            return None;
        }
        let term = Terminal {
            env,
            socket: env.root.join("tmux.sock"),
        };
        term.tmux(&["new-session", "-d", "-x", "80", "-y", "24", command]);
        Some(term)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let mut all = vec!["-S", self.socket.to_str().unwrap()];
        all.extend(args);
        let out = self
            .env
            .command(Path::new("tmux"), &self.env.repo, &all)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`, and returns the screen.
    #[track_caller]
    fn until_shown(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.tmux(&["capture-pane", "-p"]);
            if screen.contains(text) {
                return screen;
            }
            assert!(start.elapsed() < LIMIT, "{text:?} never shown:\n{screen}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn key(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }
}

impl Drop for Terminal<'_> {
    fn drop(&mut self) {
        let _ = self
            .env
            .command(
                Path::new("tmux"),
                &self.env.repo,
                &["-S", self.socket.to_str().unwrap(), "kill-server"],
            )
            .output();
    }
}

#[test]
fn top_answers_a_waiting_detached_task_with_a_key_and_follows_it_until_it_completes() {
    let env = TestEnv::new();
    env.steps(json!([{"ask": {"bash": "echo ok > ran.txt"}}]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    until_status(&env, "t", "waiting");
    let exit = env.root.join("exit");
    let command = format!("{CMS} top; echo $? > {}; sleep 60", exit.display());
    let Some(term) = Terminal::open(&env, &command) else {
        return;
    };
    let screen = term.until_shown("echo ok > ran.txt");
    assert!(screen.contains("? waiting"), "{screen}");
    term.key("a");
    let screen = term.until_shown("✓ completed");
    assert!(screen.contains("allowed Bash for t"), "{screen}");
    let task = until_status(&env, "t", "completed");
    assert_eq!(env.git(&["show", "cms/t:ran.txt"]), "ok");
    let by = task["safety"]["answered"][0]["by"].as_str().unwrap();
    assert!(by.starts_with("cms top (pid "), "{by}");

    term.key("q");
    assert_eq!(exit_code(&exit), "0");
    // The shell's screen is back: the dashboard left the alternate screen.
    let screen = term.tmux(&["capture-pane", "-p"]);
    assert!(!screen.contains("✓ completed"), "{screen}");
}

/// Waits until `file` holds a line (the exit code the shell wrote after `cms top`).
#[track_caller]
fn exit_code(file: &Path) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.ends_with('\n') {
            return text.trim().to_owned();
        }
        assert!(start.elapsed() < LIMIT, "cms top never quit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn top_shows_cms_refusal_to_merge_a_waiting_task_and_aborts_it_after_a_yes() {
    let env = TestEnv::new();
    env.steps(json!([{"ask": {"bash": "echo ok > ran.txt"}}]));
    env.cms(&["task", "-d", "x", "-n", "t"]).success();
    until_status(&env, "t", "waiting");
    let Some(term) = Terminal::open(&env, &format!("{CMS} top; sleep 60")) else {
        return;
    };
    term.until_shown("echo ok > ran.txt");
    term.key("m");
    term.until_shown("Merge task 't' into main?");
    term.key("y");
    // cms merge's own words: the error and its hint.
    let screen = term.until_shown("hint: wait for it to end");
    assert!(
        screen.contains("error: task 't' is still running"),
        "{screen}"
    );
    assert_eq!(until_status(&env, "t", "waiting")["status"], "waiting");
    term.key("x");
    term.until_shown("Abort task 't'?");
    term.key("y");
    term.until_shown("■ aborted");
    until_status(&env, "t", "aborted");
    assert!(!env.git_ok(&["cat-file", "-e", "cms/t:ran.txt"]));
}

#[test]
fn top_starts_a_task_typed_in_place_shows_its_diff_and_merges_it_after_a_yes() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "new.txt", "content": "new\n"}}]));
    let exit = env.root.join("exit");
    let command = format!("{CMS} top; echo $? > {}; sleep 60", exit.display());
    let Some(term) = Terminal::open(&env, &command) else {
        return;
    };
    term.until_shown("No tasks yet");
    term.key("n");
    term.type_text("add new file");
    term.key("Enter");
    term.until_shown("✓ completed");
    let tasks = env.cms(&["list", "--json"]);
    let name = tasks.json()[0]["name"].as_str().unwrap().to_owned();
    term.key("v");
    term.until_shown("+++ b/new.txt");
    term.key("v");
    term.until_shown("✓ completed");
    term.key("m");
    term.until_shown(&format!("Merge task '{name}' into main?"));
    term.key("y");
    term.until_shown(&format!("Merged {name} into main"));
    assert_eq!(env.git(&["show", "main:new.txt"]), "new");
    term.key("q");
    assert_eq!(exit_code(&exit), "0");
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
    let Some(term) = Terminal::open(&env, &format!("{CMS} top; sleep 60")) else {
        return;
    };
    term.until_shown("✓ completed");
    term.key("c");
    term.until_shown("message to t:");
    term.type_text("now b too");
    term.key("Enter");
    let start = Instant::now();
    while !env.git_ok(&["cat-file", "-e", "cms/t:b.txt"]) {
        assert!(
            start.elapsed() < LIMIT,
            "the follow-up never committed b.txt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    until_status(&env, "t", "completed");
    term.until_shown("✓ completed");
}

#[test]
fn top_restores_the_terminal_and_exits_130_on_sigterm() {
    let env = TestEnv::new();
    let exit = env.root.join("exit");
    let pid = env.root.join("pid");
    // `exec` makes cms the shell's child with a known pid; the outer shell reports its exit.
    let command = format!(
        "sh -c 'echo $$ > {}; exec {CMS} top'; echo $? > {}; sleep 60",
        pid.display(),
        exit.display()
    );
    let Some(term) = Terminal::open(&env, &command) else {
        return;
    };
    term.until_shown("No tasks yet");
    let pid = std::fs::read_to_string(&pid).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(exit_code(&exit), "130");
    let screen = term.tmux(&["capture-pane", "-p"]);
    assert!(!screen.contains("No tasks yet"), "{screen}");
}

#[test]
fn top_exits_when_its_terminal_goes_away() {
    let env = TestEnv::new();
    let pid = env.root.join("pid");
    // Not the terminal's session leader (the shell is), so no SIGHUP reaches it: it must see
    // the hangup itself rather than spin on a dead terminal forever.
    let command = format!(
        "sh -c 'echo $$ > {}; exec {CMS} top'; sleep 60",
        pid.display()
    );
    let Some(term) = Terminal::open(&env, &command) else {
        return;
    };
    term.until_shown("No tasks yet");
    let pid = std::fs::read_to_string(&pid).unwrap().trim().to_owned();
    term.tmux(&["kill-server"]);
    let start = Instant::now();
    // Gone, or a zombie nobody has reaped yet: either way it has ended.
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").starts_with(" Z"))
    {
        assert!(
            start.elapsed() < LIMIT,
            "cms top (pid {pid}) outlived its terminal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let Some(term) = Terminal::open(&env, &format!("{CMS} top; sleep 60")) else {
        return;
    };
    term.until_shown("✓ completed");
    term.key("t");
    // The fake claude's interactive session, on the whole screen.
    // Typed once its prompt shows: it reads the terminal from then on.
    term.until_shown(&format!(
        "session {}\n>",
        task["session_id"].as_str().unwrap()
    ));
    term.type_text("write b");
    term.key("Enter");
    term.until_shown("● b is written");
    term.type_text("/exit");
    term.key("Enter");
    term.until_shown("attach t ended.");
    assert_eq!(env.git(&["show", "cms/t:b.txt"]), "b");
    term.until_shown("✓ completed");
}

#[test]
fn top_restores_the_terminal_when_it_panics() {
    let mut env = TestEnv::new();
    env.set_env("CMS_TEST_PANIC", "top-key");
    let exit = env.root.join("exit");
    let command = format!("{CMS} top; echo $? > {}; sleep 60", exit.display());
    let Some(term) = Terminal::open(&env, &command) else {
        return;
    };
    term.until_shown("No tasks yet");
    term.key("j");
    assert_eq!(exit_code(&exit), "255");
    // cms's one-line panic report, on the shell's screen rather than the dashboard's.
    let screen = term.until_shown("error: cms panicked");
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
