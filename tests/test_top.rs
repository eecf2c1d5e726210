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
    let start = Instant::now();
    while !exit.exists() || std::fs::read_to_string(&exit).unwrap().is_empty() {
        assert!(start.elapsed() < LIMIT, "cms top never quit");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&exit).unwrap().trim(), "0");
    // The shell's screen is back: the dashboard left the alternate screen.
    let screen = term.tmux(&["capture-pane", "-p"]);
    assert!(!screen.contains("✓ completed"), "{screen}");
}

#[test]
fn top_without_a_terminal_refuses_as_a_usage_error() {
    let env = TestEnv::new();
    let run = env.cms(&["top"]);
    run.code(2)
        .one_line_error_with_hint("cms top needs a terminal");
    assert_eq!(run.stdout, "");
}
