//! The warm pool: tasks take worktrees checked out ahead of time, the pool refills itself,
//! and nothing of the pool is ever mistaken for a task's or the user's.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestEnv;

const LIMIT: Duration = Duration::from_secs(60);

fn pool(env: &TestEnv) -> Vec<Value> {
    let run = env.cms(&["pool", "status", "--json"]);
    run.success();
    run.json().as_array().unwrap().clone()
}

/// Waits until `n` worktrees wait in the pool (the refill runs in the background).
#[track_caller]
fn until_pool_has(env: &TestEnv, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let now = pool(env);
        if now.len() == n {
            return now;
        }
        assert!(start.elapsed() < LIMIT, "the pool never held {n}: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_task_takes_a_pooled_worktree_at_its_base_and_the_pool_refills() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[pool]\nsize = 1\n");
    let run = env.cms(&["pool", "warm", "--json"]);
    run.success();
    assert_eq!(run.json(), json!({"added": 1, "waiting": 1}));
    let warmed = pool(&env);
    let warmed_path = warmed[0]["path"].as_str().unwrap().to_owned();
    assert_eq!(
        warmed[0]["commit"],
        env.git(&["rev-parse", "HEAD"]).as_str()
    );
    // The base moves on after the pool was warmed: the task must start from the new commit.
    env.write("later.txt", "later\n");
    env.git(&["add", "later.txt"]);
    env.git(&["commit", "-q", "-m", "later"]);
    env.steps(json!([{"bash": "cat later.txt > seen.txt"}]));
    let task = env.task_ok(&["x", "-n", "t"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]));
    assert_eq!(env.git(&["show", "cms/t:seen.txt"]), "later");
    assert_eq!(
        env.git(&["rev-parse", "cms/t^"]),
        env.git(&["rev-parse", "main"])
    );
    // It took the pooled worktree (moved to the task's place) and the pool refilled.
    assert!(!std::path::Path::new(&warmed_path).exists());
    let refilled = until_pool_has(&env, 1);
    assert_ne!(refilled[0]["path"], warmed[0]["path"]);
    // doctor counts them.
    let doctor = env.cms(&["doctor"]);
    assert!(
        format!("{}{}", doctor.stdout, doctor.stderr).contains("1 worktree(s) waiting in the pool"),
        "{}{}",
        doctor.stdout,
        doctor.stderr
    );
    // gc leaves waiting worktrees alone; drain removes them.
    env.cms(&["gc"]).success();
    assert_eq!(pool(&env).len(), 1);
    let drained = env.cms(&["pool", "drain", "--json"]);
    drained.success();
    assert_eq!(drained.json()["removed"], 1);
    assert!(pool(&env).is_empty());
    // The task's own worktree is untouched by all of it.
    env.cms(&["merge", "t"]).success();
    assert_eq!(env.read("seen.txt"), "later\n");
}

#[test]
fn a_task_takes_a_worktree_warmed_at_its_base_as_it_is_on_its_own_branch() {
    let env = TestEnv::new();
    env.cms(&["pool", "warm", "1"]).success();
    let warmed = pool(&env);
    assert_eq!(
        warmed[0]["commit"],
        env.git(&["rev-parse", "HEAD"]).as_str()
    );
    env.steps(json!([{"bash": "git symbolic-ref HEAD > branch.txt; git status --porcelain --untracked-files=no > tracked.txt"}]));
    let task = env.task_ok(&["x", "-n", "t"]);
    assert_eq!(task["status"], "completed", "{task:#}");
    assert!(!std::path::Path::new(warmed[0]["path"].as_str().unwrap()).exists());
    assert_eq!(env.git(&["show", "cms/t:branch.txt"]), "refs/heads/cms/t");
    assert_eq!(env.git(&["show", "cms/t:tracked.txt"]), "");
    assert_eq!(
        env.git(&["rev-parse", "cms/t^"]),
        env.git(&["rev-parse", "main"])
    );
    assert!(pool(&env).is_empty());
}

#[test]
fn pool_warm_without_a_size_says_how_to_give_one() {
    let env = TestEnv::new();
    env.cms(&["pool", "warm"])
        .code(1)
        .one_line_error_with_hint("the pool's size is 0");
    env.cms(&["pool", "warm", "2"]).success();
    assert_eq!(pool(&env).len(), 2);
    // Warming again to the same size adds nothing.
    let again = env.cms(&["pool", "warm", "2", "--json"]);
    assert_eq!(again.json()["added"], 0);
    env.cms(&["pool", "drain"]).success();
}
