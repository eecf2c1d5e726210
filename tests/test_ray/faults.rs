//! Remote tasks that do not end on their own: aborted here, their worker killed, the cms
//! following them killed. Each ends with a status saying so, keeps what the worker pushed,
//! and leaves no process of its session anywhere.

use serde_json::json;

use super::{job_of, ray_env, remote_refs};
use crate::common::{TestEnv, eventually, running_with, until_ended};

/// A task on the cluster that writes a file, then sleeps until stopped (`sleep <marker>`);
/// returns the marker once the sleep runs on the worker. `number` tells the tests' sleeps
/// apart.
fn sleeping_task(env: &TestEnv, name: &str, number: u32) -> String {
    // A marker no other test's sleep has, so the checks see only this task's.
    let marker = format!("1000.{}{number}", std::process::id());
    env.steps(json!([
        {"write": {"path": "kept.txt", "content": "kept\n"}},
        {"bash": format!("sleep {marker}")},
    ]));
    env.cms(&["task", "sleep", "-n", name, "--on", "lab", "--detach"])
        .success();
    eventually("the task's sleep to run on the worker", || {
        if running_with(&format!("sleep {marker}")).is_empty() {
            Err(env.cms(&["show", name]).stdout)
        } else {
            Ok(())
        }
    });
    marker
}

#[test]
fn ray_abort_stops_the_job_keeps_the_work_and_leaves_no_process() {
    let Some((env, _head, _turn)) =
        ray_env("ray_abort_stops_the_job_keeps_the_work_and_leaves_no_process")
    else {
        return;
    };
    let marker = sleeping_task(&env, "stopme", 1);
    let run = env.cms(&["abort", "stopme", "--json"]);
    run.success();
    let task = &run.json()[0];
    assert_eq!(task["status"], "aborted", "{task:#}");
    assert_eq!(task["files_changed"][0]["path"], "kept.txt", "{task:#}");
    assert!(running_with(&format!("sleep {marker}")).is_empty());
    let job = job_of(&env, "stopme");
    assert!(
        running_with(&format!("--job {job}")).is_empty(),
        "the job's worker is gone"
    );
    // What the agent wrote before it was stopped came home on its branch.
    assert_eq!(env.git(&["show", "cms/stopme:kept.txt"]), "kept");
    assert_eq!(remote_refs(&env), "");
}

#[test]
fn ray_worker_killed_mid_task_ends_interrupted_and_leaves_no_process() {
    let Some((env, _head, _turn)) =
        ray_env("ray_worker_killed_mid_task_ends_interrupted_and_leaves_no_process")
    else {
        return;
    };
    let marker = sleeping_task(&env, "killed", 2);
    let job = job_of(&env, "killed");
    // The worker itself (not the shell that started it: its name is cms).
    let workers: Vec<u32> = running_with(&format!("--job {job}"))
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "cms")
        })
        .collect();
    assert!(!workers.is_empty(), "no worker process for {job}");
    for pid in workers {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let task = env.until_status("killed", "interrupted");
    let error = task["error"].as_str().unwrap_or_default();
    assert!(error.contains(&job), "{task:#}");
    // One line, not Ray's copy of the job's log.
    assert!(!error.contains('\n'), "{task:#}");
    eventually("the session's processes to be gone", || {
        running_with(&format!("sleep {marker}")).is_empty()
    });
}

#[test]
fn ray_killed_local_follower_is_settled_by_the_next_command_and_the_job_stopped() {
    let Some((env, _head, _turn)) =
        ray_env("ray_killed_local_follower_is_settled_by_the_next_command_and_the_job_stopped")
    else {
        return;
    };
    let marker = sleeping_task(&env, "orphan", 3);
    // The record on disk names the process following the job.
    let path = env.common_dir().join("cms/tasks/orphan.json");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let follower = record["supervisor"]["pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &follower.to_string()])
        .status()
        .unwrap();
    until_ended(follower, "the cms following the job");
    let list = env.cms(&["list", "--json"]);
    list.success();
    assert!(list.stderr.contains("orphan"), "{}", list.stderr);
    let task = env.cms(&["show", "orphan", "--json"]).json();
    assert_eq!(task["status"], "interrupted", "{task:#}");
    eventually("the job's session to be stopped", || {
        running_with(&format!("sleep {marker}")).is_empty()
    });
}

#[test]
fn ray_job_stopped_from_rays_side_ends_the_task_here_and_leaves_no_process() {
    let Some((env, head, _turn)) = ray_env("ray_job_stopped_from_rays_side_ends_the_task_here")
    else {
        return;
    };
    let marker = sleeping_task(&env, "raystop", 4);
    let job = job_of(&env, "raystop");
    // Stopped as an operator would, with Ray's own CLI.
    let ray = crate::common::ray::ray_bin();
    let stopped = std::process::Command::new(&ray)
        .args(["job", "stop", "--no-wait", "--address", &head.address, &job])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    let task = eventually("the task to end", || {
        let task = env.cms(&["show", "raystop", "--json"]).json();
        if task["status"] == "running" {
            Err(format!("{task:#}"))
        } else {
            Ok(task)
        }
    });
    assert!(
        ["aborted", "interrupted"].contains(&task["status"].as_str().unwrap()),
        "{task:#}"
    );
    assert!(running_with(&format!("sleep {marker}")).is_empty());
    assert!(running_with(&format!("--job {job}")).is_empty());
}
