//! No process outlives its task: whatever the agent's Bash leaves running (nohup'd, setsid'd,
//! double-forked, or the Bash command itself) is gone when the task completes, hits a limit,
//! is stopped with Ctrl-C, or when cms is killed; and if the keeper was killed along with cms,
//! the next cms command kills them.
//!
//! The processes are found by a marker in their command line (`sleep 1000.<unique>`), not by
//! the pid they write: under Claude Code's Bash sandbox (bubblewrap with its own PID
//! namespace) the pid a command sees is not the host's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use crate::common::{Background, LIMIT, Run, TestEnv, eventually, wait_bounded};

static NEXT_MARKER: AtomicU32 = AtomicU32::new(0);

/// Long-running processes an agent's Bash command leaves behind, each `sleep <marker>`.
pub struct Detached {
    dir: PathBuf,
    marker: String,
}

/// The three ways a command detaches a process from itself.
const WAYS: [&str; 3] = ["nohup", "setsid", "double-fork"];

impl Detached {
    /// Processes that will report their start with files in `dir`.
    pub fn new(dir: &Path) -> Detached {
        let n = NEXT_MARKER.fetch_add(1, Ordering::SeqCst);
        Detached {
            dir: dir.to_owned(),
            marker: format!("1000.{}{n:03}", std::process::id()),
        }
    }

    fn pidfile(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pid"))
    }

    /// One process that writes its pid to `<name>.pid` (atomically) and becomes the sleeper.
    fn body(&self, name: &str) -> String {
        let file = self.pidfile(name).display().to_string();
        format!(
            "echo $$ > {file}.tmp && mv {file}.tmp {file} && exec sleep {}",
            self.marker
        )
    }

    /// A Bash command that starts one nohup'd, one setsid'd and one double-forked sleeper and
    /// returns once all three have started.
    pub fn command(&self) -> String {
        let [nohup, setsid, double] = WAYS.map(|w| self.body(w));
        let wait = WAYS
            .map(|w| format!("[ -e {} ]", self.pidfile(w).display()))
            .join(" && ");
        format!(
            "nohup sh -c '{nohup}' >/dev/null 2>&1 &\n\
             setsid sh -c '{setsid}' >/dev/null 2>&1 &\n\
             (sh -c '{double}' >/dev/null 2>&1 &)\n\
             until {wait}; do sleep 0.01; done"
        )
    }

    /// A command that starts one more sleeper in the foreground, reporting as `<name>.pid`:
    /// a Bash tool call still running.
    pub fn foreground(&self, name: &str) -> String {
        self.body(name)
    }

    /// Waits (bounded) until the agent's command has started the sleepers named.
    pub fn wait_started(&self, names: &[&str]) {
        eventually("the sleepers to start", || {
            names.iter().all(|n| self.pidfile(n).exists())
        });
        eventually("the sleepers to exec", || {
            self.running().len() == names.len()
        });
    }

    /// Host pids of the live processes running `sleep <marker>`.
    pub fn running(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                // A zombie has an empty command line: it is dead.
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == self.marker.as_bytes()))
            })
            .collect()
    }

    /// Each way started (its pid file is there), and none of them runs any more.
    #[track_caller]
    pub fn assert_started_and_gone(&self) {
        for way in WAYS {
            assert!(self.pidfile(way).exists(), "{way} never started");
        }
        self.assert_gone();
    }

    /// Waits (bounded) until none of them runs.
    #[track_caller]
    pub fn assert_gone(&self) {
        eventually("the detached processes to be gone", || {
            self.running().is_empty()
        });
    }
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process the test started (or its child, found while it is alive).
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0, "kill {pid}");
}

/// The keeper cms started: its child running `cms keeper`.
fn keeper_of(cms: u32) -> u32 {
    let mut found = None;
    eventually("the keeper", || {
        found = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                ppid == Some(cms) && cmdline.split(|b| *b == 0).nth(1) == Some(b"keeper")
            });
        found.is_some()
    });
    found.unwrap()
}

/// Task `name` (prompt `x`), started in the background, whose Bash has left the detached
/// processes running every way and now sleeps.
fn detached_then_asleep(env: &TestEnv, name: &str) -> (Detached, Background) {
    let detached = Detached::new(&env.root);
    env.steps(json!([
        {"bash": detached.command()},
        {"sleep_ms": 60000},
    ]));
    let child = spawn_task(env, &["x", "-n", name]);
    detached.wait_started(&WAYS);
    (detached, child)
}

/// Starts `cms task --json <args>` without waiting.
fn spawn_task(env: &TestEnv, args: &[&str]) -> Background {
    let mut full = vec!["task", "--json"];
    full.extend_from_slice(args);
    env.spawn_cms(&full)
}

/// Runs `cms task --json <args>` to its end (bounded).
fn run_task(env: &TestEnv, args: &[&str]) -> Run {
    wait_bounded(spawn_task(env, args), LIMIT)
}

fn task_of(env: &TestEnv, name: &str) -> Value {
    let shown = env.cms(&["show", "--json", name]);
    shown.success();
    shown.json()
}

#[test]
fn background_processes_the_agent_started_are_gone_when_the_task_completes() {
    let env = TestEnv::new();
    let detached = Detached::new(&env.root);
    env.steps(json!([{"bash": detached.command()}]));
    let run = run_task(&env, &["start a server", "-n", "bg"]);
    run.success();
    assert_eq!(run.json()["status"], "completed");
    detached.assert_started_and_gone();
}

#[test]
fn background_processes_are_gone_when_the_task_hits_its_turn_limit() {
    let env = TestEnv::new();
    let detached = Detached::new(&env.root);
    env.steps(json!([
        {"bash": detached.command()},
        {"write": {"path": "two.txt", "content": "2\n"}},
        {"write": {"path": "three.txt", "content": "3\n"}},
    ]));
    let run = run_task(&env, &["x", "-n", "limited", "--max-turns", "2"]);
    run.code(3);
    assert_eq!(run.json()["status"], "turns_exceeded");
    detached.assert_started_and_gone();
}

#[test]
fn background_processes_are_gone_after_ctrl_c() {
    let env = TestEnv::new();
    let (detached, child) = detached_then_asleep(&env, "stopped");
    signal(child.id(), libc::SIGINT);
    let run = wait_bounded(child, LIMIT);
    run.code(130);
    assert_eq!(run.json()["status"], "aborted");
    detached.assert_gone();
}

#[test]
fn killing_cms_with_sigkill_kills_the_running_bash_tool_and_its_background_processes_at_once() {
    let env = TestEnv::new();
    let detached = Detached::new(&env.root);
    env.steps(json!([
        {"bash": detached.command()},
        {"bash": detached.foreground("foreground")},
    ]));
    let child = spawn_task(&env, &["x", "-n", "killed"]);
    detached.wait_started(&["nohup", "setsid", "double-fork", "foreground"]);
    signal(child.id(), libc::SIGKILL);
    wait_bounded(child, LIMIT);
    // No cms command runs before this: the keeper did it on its own.
    detached.assert_gone();
    assert_eq!(task_of(&env, "killed")["status"], "interrupted");
}

#[test]
fn processes_that_outlive_a_killed_keeper_are_killed_by_the_next_cms_command() {
    let env = TestEnv::new();
    let (detached, child) = detached_then_asleep(&env, "orphaned");
    let cms = child.id();
    let keeper = keeper_of(cms);
    // Stopped first, so that cms cannot clean up when it sees its keeper die.
    signal(cms, libc::SIGSTOP);
    signal(keeper, libc::SIGKILL);
    signal(cms, libc::SIGKILL);
    wait_bounded(child, LIMIT);
    // Nothing is left to kill them until a cms command runs in the repository.
    assert_eq!(detached.running().len(), WAYS.len());
    // Any command: here a new task, which never looks at the old one by name.
    std::fs::remove_file(&env.script).unwrap();
    run_task(&env, &["y", "-n", "next"]).success();
    detached.assert_gone();
    assert_eq!(task_of(&env, "orphaned")["status"], "interrupted");
}

#[test]
fn a_killed_supervisors_temp_dir_is_removed_by_the_next_cms_command() {
    let env = TestEnv::new();
    let reported = env.root.join("tmpdir.txt");
    env.steps(json!([
        {"bash": format!("echo \"$TMPDIR\" > {}.part && mv {0}.part {0}", reported.display())},
        {"sleep_ms": 60000},
    ]));
    let child = spawn_task(&env, &["x", "-n", "dropped"]);
    eventually("the task to report its temp dir", || reported.exists());
    let temp = PathBuf::from(std::fs::read_to_string(&reported).unwrap().trim());
    assert!(temp.is_dir(), "{}", temp.display());
    signal(child.id(), libc::SIGKILL);
    wait_bounded(child, LIMIT);
    // The supervisor died before it could remove it; the next command does.
    assert!(temp.is_dir());
    env.cms(&["list"]).success();
    assert!(!temp.exists(), "{} outlived its task", temp.display());
    assert_eq!(task_of(&env, "dropped")["status"], "interrupted");
}

#[test]
fn processes_of_another_running_task_are_left_alone() {
    let env = TestEnv::new();
    let (detached, child) = detached_then_asleep(&env, "alive");
    // Other cms commands (and a finished task) see a live supervisor and touch nothing.
    env.cms(&["list"]).success();
    std::fs::remove_file(&env.script).unwrap();
    run_task(&env, &["y", "-n", "other"]).success();
    assert_eq!(detached.running().len(), WAYS.len());
    signal(child.id(), libc::SIGINT);
    wait_bounded(child, LIMIT).code(130);
    detached.assert_gone();
}

// The real Claude Code CLI, with a fake API scripting its Bash calls. The pid files go in the
// task's worktree: with Claude Code's Bash sandbox on, that is where Bash may write.

use crate::common::fake_api::Reply;
use crate::common::real::{RUN_LIMIT, real_scenario};

/// The task's worktree, once its record exists.
fn worktree_of(env: &TestEnv, name: &str) -> PathBuf {
    let mut worktree = None;
    eventually("the task's record", || {
        let shown = env.cms(&["show", "--json", name]);
        worktree =
            (shown.code == 0).then(|| PathBuf::from(shown.json()["worktree"].as_str().unwrap()));
        worktree.is_some()
    });
    worktree.unwrap()
}

#[test]
fn real_claude_background_processes_the_agent_started_are_gone_when_the_task_completes() {
    let Some((api, env)) = real_scenario("real_claude_background_processes_are_gone") else {
        return;
    };
    // Written relative to claude's cwd, which is the worktree.
    let detached = Detached::new(Path::new("."));
    api.route(
        "[serve]",
        vec![
            Reply::tool(
                "Bash",
                json!({"command": detached.command(), "description": "Start servers"}),
            ),
            Reply::text("Started."),
        ],
    );
    let run = env.cms_bounded(
        &[
            "task",
            "--json",
            "[serve] start",
            "--name",
            "serve",
            "-p",
            "full",
        ],
        RUN_LIMIT,
    );
    run.success();
    let task = run.json();
    assert_eq!(task["status"], "completed", "{task:#}");
    let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
    for way in WAYS {
        assert!(
            worktree.join(format!("{way}.pid")).exists(),
            "{way} never started: {task:#}"
        );
    }
    detached.assert_gone();
}

#[test]
fn real_claude_a_running_bash_tool_and_its_background_processes_die_with_a_killed_cms() {
    let Some((api, env)) = real_scenario("real_claude_a_running_bash_tool_dies_with_cms") else {
        return;
    };
    let detached = Detached::new(Path::new("."));
    let command = format!(
        "{}\n{}",
        detached.command(),
        detached.foreground("foreground")
    );
    api.route(
        "[hang]",
        vec![
            Reply::tool("Bash", json!({"command": command, "description": "Serve"})),
            Reply::text("Done."),
        ],
    );
    let child = spawn_task(&env, &["[hang] serve", "--name", "hang", "-p", "full"]);
    let worktree = worktree_of(&env, "hang");
    let in_worktree = Detached {
        dir: worktree,
        marker: detached.marker.clone(),
    };
    in_worktree.wait_started(&["nohup", "setsid", "double-fork", "foreground"]);
    signal(child.id(), libc::SIGKILL);
    wait_bounded(child, RUN_LIMIT);
    in_worktree.assert_gone();
    assert_eq!(task_of(&env, "hang")["status"], "interrupted");
}

#[test]
fn claude_killed_by_a_signal_is_reported_with_that_signal_through_the_keeper() {
    let env = TestEnv::new();
    // The Bash command's parent is claude. SIGUSR1 kills without a core dump.
    env.steps(json!([
        {"write": {"path": "kept.txt", "content": "kept\n"}},
        {"bash": "kill -USR1 $PPID"},
    ]));
    let run = run_task(&env, &["x", "-n", "signalled"]);
    run.code(3);
    let task = run.json();
    assert_eq!(task["status"], "failed");
    let error = task["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("was killed by signal {}", libc::SIGUSR1)),
        "{error}"
    );
    assert_eq!(env.git(&["show", "cms/signalled:kept.txt"]), "kept");
}

#[test]
fn a_task_started_with_its_stdin_closed_still_ends_its_background_processes() {
    let env = TestEnv::new();
    let detached = Detached::new(&env.root);
    env.steps(json!([{"bash": detached.command()}]));
    let cms = crate::common::CMS;
    let script = format!("exec 0<&- '{cms}' task --json x -n closed");
    let run = wait_bounded(
        Background::spawn(&mut env.command(Path::new("sh"), &env.repo, &["-c", &script])),
        LIMIT,
    );
    run.success();
    assert_eq!(run.json()["status"], "completed");
    detached.assert_started_and_gone();
}

#[test]
fn a_claude_the_keeper_cannot_execute_is_a_failed_start_that_says_why() {
    let mut env = TestEnv::new();
    // A file, so cms finds it, but not executable: only the keeper's exec fails.
    let bin = env.root.join("claude-not-executable");
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    env.set_env("CMS_CLAUDE_BIN", bin.to_str().unwrap());
    let run = wait_bounded(env.spawn_cms(&["task", "x", "-n", "noexec"]), LIMIT);
    run.code(1)
        .one_line_error_with_hint("before starting a session");
    assert!(run.stderr.contains("Permission denied"), "{}", run.stderr);
    assert_eq!(env.branches(), ["main"]);
    assert!(!env.common_dir().join("cms/tasks/noexec.json").exists());
}

/// Runs `cms keeper` with `bwrap` (a stand-in in `dir` that fails its set-up `fails` times, as
/// a bubblewrap whose read-only bind of a git file raced a rename, then runs what follows its
/// `--`) around a command that writes `ran`; returns the keeper's exit code.
fn keeper_around_a_flaky_bwrap(dir: &Path, fails: u32) -> i32 {
    let bwrap = dir.join("bwrap");
    std::fs::write(
        &bwrap,
        format!(
            "#!/bin/sh\necho try >> {tries}\n\
             if [ \"$(wc -l < {tries})\" -le {fails} ]; then\n\
             echo 'bwrap: Unable to remount destination' >&2; exit 1; fi\n\
             while [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"\n",
            tries = dir.join("tries").display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bwrap, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ran = dir.join("ran");
    // The lifeline is a copy of stdin, a pipe the test holds open until the keeper is done.
    let mut keeper = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec 5<&0; exec \"$@\" 0</dev/null")
        .arg("sh")
        .args([crate::common::CMS, "keeper", "--lifeline-fd", "5", "--"])
        .arg(&bwrap)
        .args(["--ro-bind", "/", "/", "--"])
        .args(["sh", "-c", &format!("echo ran > {}", ran.display())])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `wait` would close the child's stdin first, and with it the lifeline.
    let lifeline = keeper.stdin.take();
    let status = keeper.wait().unwrap();
    drop(lifeline);
    status.code().unwrap_or(-1)
}

#[test]
fn a_boundary_whose_set_up_failed_is_started_again_and_the_session_runs() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(keeper_around_a_flaky_bwrap(dir.path(), 2), 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ran")).unwrap(),
        "ran\n"
    );
    let tries = std::fs::read_to_string(dir.path().join("tries")).unwrap();
    assert_eq!(tries.lines().count(), 3, "{tries}");
}

#[test]
fn a_boundary_that_never_sets_up_is_tried_three_times_and_its_failure_is_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(keeper_around_a_flaky_bwrap(dir.path(), 10), 1);
    assert!(!dir.path().join("ran").exists());
    let tries = std::fs::read_to_string(dir.path().join("tries")).unwrap();
    assert_eq!(tries.lines().count(), 3, "{tries}");
}
