//! The warm pool: tasks take worktrees checked out ahead of time, the pool refills itself,
//! and nothing of the pool is ever mistaken for a task's or the user's.

use serde_json::{Value, json};

use crate::common::{LIMIT, TestEnv, eventually};

fn pool(env: &TestEnv) -> Vec<Value> {
    let run = env.cms(&["pool", "status", "--json"]);
    run.success();
    run.json().as_array().unwrap().clone()
}

/// Waits until `n` worktrees wait in the pool (the refill runs in the background).
#[track_caller]
fn until_pool_has(env: &TestEnv, n: usize) -> Vec<Value> {
    eventually(&format!("the pool to hold {n}"), || {
        let now = pool(env);
        if now.len() == n {
            Ok(now)
        } else {
            Err(format!("{now:?}"))
        }
    })
}

#[test]
fn a_task_takes_a_pooled_worktree_at_its_base_and_the_pool_refills() {
    let env = TestEnv::new();
    env.write(".cms.toml", "[pool]\nsize = 1\n");
    env.trust();
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

#[test]
fn files_an_unsandboxed_task_plants_in_the_pool_never_reach_the_next_task() {
    let env = TestEnv::new();
    let pool_dir = env.warmed_pool("2");
    // Unsandboxed, the agent's Bash runs as the user: it writes into the waiting worktrees
    // (the one it did not take), a new file and a tracked one.
    env.steps(json!([{"bash": format!(
        "for w in {}/*; do echo planted-by-evil > $w/planted.txt; echo planted-by-evil > $w/README.md; done",
        pool_dir.display()
    )}]));
    let evil = env.task_ok(&["plant", "-n", "evil", "--sandbox", "off"]);
    assert_eq!(evil["status"], "completed", "{evil:#}");
    assert_eq!(evil["safety"]["sandboxed"], false, "{evil:#}");
    let left = pool(&env);
    assert_eq!(left.len(), 1, "{left:?}");
    let warmed = left[0]["path"].as_str().unwrap().to_owned();
    assert!(std::path::Path::new(&warmed).join("planted.txt").exists());

    env.steps(json!([{"write": {"path": "own.txt", "content": "own\n"}}]));
    let next = env.task_ok(&["own work", "-n", "next"]);
    assert_eq!(next["status"], "completed", "{next:#}");
    assert_eq!(next["safety"]["violations"], json!([]));
    // It started cold: the planted worktree was not handed out.
    assert_ne!(next["worktree"].as_str().unwrap(), warmed);
    assert!(std::path::Path::new(&warmed).join("planted.txt").exists());
    let worktree = std::path::Path::new(next["worktree"].as_str().unwrap());
    assert!(!worktree.join("planted.txt").exists());
    assert_eq!(
        std::fs::read_to_string(worktree.join("README.md")).unwrap(),
        "hello\n"
    );
    let changed = env.git(&["diff", "--name-only", "main", "cms/next"]);
    assert_eq!(changed, "own.txt");
    let diff = env.cms(&["diff", "next"]);
    diff.success();
    assert!(!diff.stdout.contains("planted-by-evil"), "{}", diff.stdout);

    // The next warm removes the worktree the unsandboxed task could reach and warms a clean
    // one, which a task then takes.
    env.cms(&["pool", "warm", "1"]).success();
    let fresh = pool(&env);
    assert_eq!(fresh.len(), 1);
    assert!(!std::path::Path::new(&warmed).exists());
    let fresh = fresh[0]["path"].as_str().unwrap().to_owned();
    env.steps(json!([{"write": {"path": "third.txt", "content": "third\n"}}]));
    let third = env.task_ok(&["third", "-n", "third"]);
    assert!(
        !std::path::Path::new(&fresh).exists(),
        "the clean one was taken"
    );
    assert_eq!(
        env.git(&["diff", "--name-only", "main", "cms/third"]),
        "third.txt"
    );
    assert_eq!(third["status"], "completed");
}

#[test]
fn while_an_unsandboxed_task_runs_the_pool_neither_hands_out_nor_warms() {
    let env = TestEnv::new();
    env.cms(&["pool", "warm", "1"]).success();
    let gate = env.root.join("gate");
    env.steps(json!([{"bash": format!("until [ -e {} ]; do sleep 0.02; done", gate.display())}]));
    let running = env.spawn_cms(&["task", "wait", "-n", "slow", "--sandbox", "off"]);
    env.until_status("slow", "running");
    let markers = env.common_dir().join("cms/pool/unsandboxed");
    eventually("the session to mark itself", || {
        std::fs::read_dir(&markers).is_ok_and(|mut d| d.next().is_some())
    });
    // Warm adds nothing (and drops the worktree the session could reach).
    let warm = env.cms(&["pool", "warm", "1", "--json"]);
    assert_eq!(warm.json(), json!({"added": 0, "waiting": 0}));
    std::fs::write(&gate, "").unwrap();
    crate::common::wait_bounded(running, LIMIT).success();
    assert!(
        std::fs::read_dir(&markers).map_or(true, |mut d| d.next().is_none()),
        "the marker outlived the session"
    );
    // Ended, it no longer holds the pool back.
    let warm = env.cms(&["pool", "warm", "1", "--json"]);
    assert_eq!(warm.json(), json!({"added": 1, "waiting": 1}));
}

#[test]
fn a_pooled_worktree_whose_git_admin_dir_was_written_is_never_handed_out() {
    let env = TestEnv::new();
    let pool_dir = env.warmed_pool("2");
    // A sandboxed session can write the common dir's objects and the admin dir of a worktree
    // warmed after its sandbox was set up: it stages a file there, hidden from `git add` by
    // skip-worktree, so that the task handed this worktree would commit it.
    env.steps(json!([{"bash": format!(
        "blob=$(echo planted-in-admin | git hash-object -w --stdin) && \
         for w in {}/*; do admin=$(sed 's/^gitdir: //' $w/.git); \
         GIT_DIR=$admin git update-index --add --cacheinfo 100644,$blob,planted.txt && \
         GIT_DIR=$admin git update-index --skip-worktree planted.txt || exit 1; done",
        pool_dir.display()
    )}]));
    let tamper = env.task_ok(&["tamper", "-n", "tamper"]);
    assert_eq!(tamper["status"], "completed", "{tamper:#}");
    let left = pool(&env);
    assert_eq!(left.len(), 1, "{left:?}");
    let tampered = left[0]["path"].as_str().unwrap().to_owned();
    assert!(
        env.git_in(std::path::Path::new(&tampered), &["ls-files"])
            .contains("planted.txt")
    );

    env.steps(json!([{"write": {"path": "own.txt", "content": "own\n"}}]));
    let next = env.task_ok(&["own work", "-n", "next"]);
    assert_eq!(next["status"], "completed", "{next:#}");
    assert_ne!(next["worktree"].as_str().unwrap(), tampered);
    assert_eq!(
        env.git(&["diff", "--name-only", "main", "cms/next"]),
        "own.txt"
    );
    // The next warm drops it.
    env.cms(&["pool", "warm", "1"]).success();
    assert!(!std::path::Path::new(&tampered).exists());
}
