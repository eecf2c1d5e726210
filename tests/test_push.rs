//! `cms push`: a task's branch goes to a remote for review, optionally with a pull request,
//! and nobody else's commits on the remote are ever overwritten.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::TestEnv;

/// A bare repository next to `env`'s, added as `origin`.
fn bare_origin(env: &TestEnv) -> PathBuf {
    let remote = env.root.join("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    remote
}

fn remote_tip(env: &TestEnv, remote: &Path, branch: &str) -> Option<String> {
    let run = env.git_run_in(
        &env.repo,
        &[
            "--git-dir",
            remote.to_str().unwrap(),
            "rev-parse",
            "--verify",
            "-q",
            branch,
        ],
    );
    (run.code == 0).then(|| run.stdout.trim().to_owned())
}

fn task_writing(env: &TestEnv, name: &str, path: &str) -> serde_json::Value {
    env.steps(json!([{"write": {"path": path, "content": "x\n"}}]));
    env.task_ok(&["add a file", "-n", name])
}

#[test]
fn push_pushes_the_task_branch_to_a_bare_remote() {
    let env = TestEnv::new();
    let remote = bare_origin(&env);
    let task = task_writing(&env, "t", "a.txt");
    let run = env.cms(&["push", "t", "--json"]);
    run.success();
    let pushed = run.json();
    assert_eq!(pushed["push"]["remote"], "origin");
    assert_eq!(pushed["push"]["branch"], "cms/t");
    assert_eq!(pushed["push"]["commit"], task["head"]);
    assert_eq!(
        remote_tip(&env, &remote, "cms/t").as_deref(),
        task["head"].as_str()
    );
    // Pushing is not merging: the task stays open, main untouched.
    assert_eq!(pushed["status"], "completed");
    assert_eq!(remote_tip(&env, &remote, "main"), None);
    let human = env.cms(&["push", "t"]);
    human.success();
    assert!(
        human.stdout.starts_with("Pushed t to origin as cms/t"),
        "{}",
        human.stdout
    );
}

#[test]
fn push_again_replaces_only_what_cms_pushed_there() {
    let env = TestEnv::new();
    let remote = bare_origin(&env);
    task_writing(&env, "t", "a.txt");
    env.cms(&["push", "t"]).success();
    // A follow-up, then a push: the remote branch follows.
    env.steps(json!([{"write": {"path": "b.txt", "content": "b\n"}}]));
    env.cms(&["continue", "t", "more"]).success();
    env.cms(&["push", "t"]).success();
    let ours = env.git(&["rev-parse", "cms/t"]);
    assert_eq!(remote_tip(&env, &remote, "cms/t"), Some(ours.clone()));
    // A reviewer pushes a fixup to that branch.
    let clone = env.root.join("reviewer");
    env.git(&[
        "clone",
        "-q",
        "-b",
        "cms/t",
        remote.to_str().unwrap(),
        clone.to_str().unwrap(),
    ]);
    std::fs::write(clone.join("review.txt"), "fix\n").unwrap();
    env.git_in(&clone, &["add", "review.txt"]);
    env.git_in(&clone, &["commit", "-q", "-m", "review fixup"]);
    env.git_in(&clone, &["push", "-q", "origin", "cms/t"]);
    let theirs = remote_tip(&env, &remote, "cms/t").unwrap();
    // The task's next push would drop it: refused, and the reviewer's commit stays.
    env.steps(json!([{"write": {"path": "c.txt", "content": "c\n"}}]));
    env.cms(&["continue", "t", "again"]).success();
    env.cms(&["push", "t"])
        .code(1)
        .one_line_error_with_hint("pushing task 't' to origin failed");
    assert_eq!(remote_tip(&env, &remote, "cms/t"), Some(theirs));
}

#[test]
fn push_pr_opens_a_pull_request_through_gh_once() {
    let mut env = TestEnv::new();
    bare_origin(&env);
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = env.root.join("gh-calls");
    let gh = bin.join("gh");
    std::fs::write(
        &gh,
        format!(
            "#!/bin/sh\necho \"$@\" >> {0}.args\ncat >> {0}.body\necho 'Creating pull request'\necho https://github.com/o/r/pull/7\n",
            calls.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&gh).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&gh, perms).unwrap();
    env.set_env(
        "PATH",
        &format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    task_writing(&env, "t", "a.txt");
    let run = env.cms(&["push", "t", "--pr", "--json"]);
    run.success();
    assert_eq!(run.json()["push"]["pr"], "https://github.com/o/r/pull/7");
    let args = std::fs::read_to_string(calls.with_extension("args")).unwrap();
    assert_eq!(
        args.trim(),
        "pr create --head cms/t --title add a file --body-file - --base main"
    );
    let body = std::fs::read_to_string(calls.with_extension("body")).unwrap();
    assert!(
        body.starts_with("done\n\nFiles changed:\n\n- `a.txt` added (+1 -0)\n"),
        "{body}"
    );
    assert!(body.contains("Made by cms task `t`"), "{body}");
    // The pull request follows its branch: a second push does not open another.
    env.cms(&["push", "t", "--pr"]).success();
    let args = std::fs::read_to_string(calls.with_extension("args")).unwrap();
    assert_eq!(args.lines().count(), 1);
}

#[test]
fn push_pr_without_gh_refuses_before_pushing() {
    let mut env = TestEnv::new();
    let remote = bare_origin(&env);
    task_writing(&env, "t", "a.txt");
    // Only the folders git and sh live in: no gh there.
    let dirs: Vec<String> = ["git", "sh"]
        .iter()
        .filter_map(|p| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {p}"))
                .output()
                .ok()?;
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            Some(path.parent()?.display().to_string())
        })
        .collect();
    if dirs.iter().any(|d| Path::new(d).join("gh").exists()) {
        eprintln!("SKIPPED: gh is installed beside git");
        return;
    }
    env.set_env("PATH", &dirs.join(":"));
    env.cms(&["push", "t", "--pr"])
        .code(1)
        .one_line_error_with_hint("--pr needs the GitHub CLI (gh)");
    assert_eq!(remote_tip(&env, &remote, "cms/t"), None);
}

#[test]
fn push_refuses_without_a_remote_or_with_an_unknown_one() {
    let env = TestEnv::new();
    task_writing(&env, "t", "a.txt");
    env.cms(&["push", "t"])
        .code(1)
        .one_line_error_with_hint("task 't' has no remote to push to");
    bare_origin(&env);
    env.cms(&["push", "t", "--remote", "upstream"])
        .code(1)
        .one_line_error_with_hint("no remote named 'upstream'");
    let record = env.cms(&["show", "t", "--json"]).json();
    assert_eq!(record["push"], serde_json::Value::Null);
}

#[test]
fn a_rebased_task_can_be_pushed_again_over_what_cms_pushed() {
    let env = TestEnv::new();
    let remote = bare_origin(&env);
    task_writing(&env, "t", "a.txt");
    env.cms(&["push", "t"]).success();
    env.write("main.txt", "m\n");
    env.commit_all("main moves on");
    env.steps(json!([]));
    env.cms(&["continue", "t", "--rebase"]).success();
    let rebased = env.git(&["rev-parse", "cms/t"]);
    env.cms(&["push", "t"]).success();
    assert_eq!(remote_tip(&env, &remote, "cms/t"), Some(rebased));
}
