//! Stopping a worker: the control ref's `stop` and SIGTERM end the task as `cms abort` does,
//! and a worker killed outright takes its session with it.

use std::path::Path;

use serde_json::json;

use super::{
    claude_pids, control, out_record, remote_refs, scratch_left, spawn_worker, spec, submit, wire,
    worker_env,
};
use crate::common::{Background, LIMIT, Run, TestEnv, eventually, process_ended};

/// A job whose claude works for a minute; returns it with its running worker once claude has
/// started and the worker pushed the running record.
fn long_job(env: &TestEnv, url: &str, task: &str) -> (String, Background, u64) {
    env.steps(json!([
        {"write": {"path": "early.txt", "content": "before the stop\n"}},
        {"sleep_ms": 60000},
    ]));
    let job = submit(env, url, &spec(env, task), None);
    let worker = spawn_worker(env, url, &job);
    eventually("the worker to push its running record", || {
        remote_refs(env, url, &job).contains_key("out")
    });
    let pid = eventually("claude to start", || claude_pids(env).pop());
    // Its session is under way once its first write is in the worker's worktree.
    let worktree = out_record(env, url, &job)["worktree"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("claude's first write", || {
        Path::new(&worktree).join("early.txt").exists()
    });
    (job, worker, pid)
}

/// How a local `cms abort` leaves a task.
fn assert_stopped_as_abort_leaves_it(env: &TestEnv, url: &str, job: &str, run: &Run, pid: u64) {
    run.success();
    let lines = wire(run);
    assert_eq!(
        lines.last().unwrap()["end"],
        json!({"status": "aborted", "error": "stopped by the user"})
    );
    assert_eq!(out_record(env, url, job)["status"], "aborted");
    assert!(remote_refs(env, url, job).contains_key("branch"));
    assert!(process_ended(pid), "claude (pid {pid}) still runs");
    assert_eq!(scratch_left(env), Vec::<String>::new());
}

#[test]
fn a_stop_in_the_control_ref_ends_the_task_aborted_with_no_process_left() {
    let (env, url) = worker_env();
    let (job, worker, pid) = long_job(&env, &url, "stopped");
    control(&env, &url, &job, &json!({"stop": true, "answers": []}));
    let run = crate::common::wait_bounded(worker, LIMIT);
    assert_stopped_as_abort_leaves_it(&env, &url, &job, &run, pid);
}

#[test]
fn sigterm_as_rays_job_stop_sends_it_ends_the_task_aborted_with_no_process_left() {
    let (env, url) = worker_env();
    let (job, worker, pid) = long_job(&env, &url, "terminated");
    signal(worker.id(), libc::SIGTERM);
    let run = crate::common::wait_bounded(worker, LIMIT);
    assert_stopped_as_abort_leaves_it(&env, &url, &job, &run, pid);
}

#[test]
fn sigterm_to_the_worker_and_every_process_under_it_ends_the_task_aborted_too() {
    // A job stop may also reach the worker's children (the keeper, claude): the keeper then
    // ends the session at once, and the worker's own stop still ends the task as an abort.
    let (env, url) = worker_env();
    let (job, worker, pid) = long_job(&env, &url, "all-terminated");
    let under = descendants(worker.id());
    assert!(under.contains(&(pid as u32)), "{under:?}");
    signal(worker.id(), libc::SIGTERM);
    for process in under {
        // SAFETY: kill(2); a short-lived process (a git command) may have ended already.
        unsafe { libc::kill(process as i32, libc::SIGTERM) };
    }
    let run = crate::common::wait_bounded(worker, LIMIT);
    assert_stopped_as_abort_leaves_it(&env, &url, &job, &run, pid);
}

/// Every process under `pid`, from /proc's parent links.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, parent))
        })
        .collect();
    let mut found = vec![pid];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        at += 1;
    }
    found.remove(0);
    found
}

#[test]
fn a_killed_worker_leaves_no_session_running_and_its_last_state_on_the_remote() {
    let (env, url) = worker_env();
    let (job, worker, pid) = long_job(&env, &url, "killed");
    signal(worker.id(), libc::SIGKILL);
    // The keeper's lifeline: claude dies with the worker.
    crate::common::until_ended(pid, "claude");
    drop(worker);
    assert_eq!(out_record(&env, &url, &job)["status"], "running");
    assert!(!remote_refs(&env, &url, &job).contains_key("branch"));
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child of this test, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0, "kill {pid}");
}
