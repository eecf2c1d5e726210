//! What the user does while a sandboxed task runs with the real Claude Code CLI (merge,
//! continue, edit, with loose and with packed refs) is blamed on no one, and a task shadowing
//! a packed branch with a loose ref is caught after its session.

use std::path::Path;

use serde_json::{Value, json};

use super::{Arena, arena};
use crate::common::fake_api::Reply;
use crate::common::real::{RUN_LIMIT, bash, task_json, tool_results};
use crate::common::{Background, FAKE_CLAUDE, wait_bounded};

impl Arena {
    /// Runs a cms command whose sessions use the fake claude, as a user's other tasks might.
    fn fake(&self, args: &[&str]) -> Value {
        let mut cmd = self.env.cms_command(&self.env.repo, args);
        cmd.env("CMS_CLAUDE_BIN", FAKE_CLAUDE)
            .env("CMS_BOUNDARY", "off");
        let run = wait_bounded(Background::spawn(&mut cmd), RUN_LIMIT);
        run.success();
        run.json()
    }
}

#[test]
fn real_claude_benign_parallel_work_merging_continuing_and_editing_while_a_task_runs_blames_nothing()
 {
    parallel_work("real_claude_benign_parallel_work", false);
}

#[test]
fn real_claude_benign_parallel_work_with_packed_refs_blames_nothing() {
    parallel_work("real_claude_benign_parallel_work_with_packed_refs", true);
}

/// While a sandboxed task `c` waits in a Bash call, the user merges task `a`, continues task
/// `b` and edits their checkout. With `packed`, every ref was packed first, so the merge and
/// the follow-up write loose refs where `c`'s sandbox could have written them too: git's
/// reflog tells them apart.
fn parallel_work(test: &str, packed: bool) {
    let Some(arena) = arena(test) else {
        return;
    };
    let env = &arena.env;
    env.write(".gitignore", ".env\n");
    env.write("shared.txt", "shared\n");
    env.commit_all("shared");
    env.write(".env", "SECRET=1\n");
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    arena.fake(&["task", "--json", "task a", "--name", "a"]);
    env.steps(json!([{"write": {"path": "b.txt", "content": "b\n"}}]));
    arena.fake(&["task", "--json", "task b", "--name", "b"]);
    if packed {
        env.git(&["pack-refs", "--all"]);
        assert!(!env.common_dir().join("refs/heads/main").exists());
    }
    // c's one Bash call says it has started (in its worktree, the one place it may write)
    // and waits until the user is done.
    let go = env.root.join("c-go");
    arena.api.route(
        "[c]",
        vec![
            bash(format!(
                "echo started > started.txt && until [ -f {} ]; do sleep 0.05; done; echo rc=$?",
                go.display()
            )),
            Reply::text("done"),
        ],
    );
    let c = env.spawn_cms(&[
        "task",
        "--json",
        "[c] wait for the user",
        "--name",
        "c",
        "-p",
        "full",
    ]);
    crate::common::eventually("task c to start its Bash call", || {
        let shown = env.cms(&["show", "c", "--json"]);
        shown.code == 0
            && shown.json()["worktree"]
                .as_str()
                .is_some_and(|worktree| Path::new(worktree).join("started.txt").is_file())
    });

    env.cms(&["merge", "a"]).success();
    let a = arena.show("a");
    assert_eq!(a["status"], "merged", "{a:#}");
    env.steps(json!([{"write": {"path": "b2.txt", "content": "more\n"}}]));
    let b = arena.fake(&["continue", "b", "more", "--json"]);
    assert_eq!(b["status"], "completed", "{b:#}");
    env.write("shared.txt", "edited by the user\n");
    env.write(".env", "SECRET=2\n");
    std::fs::write(&go, "").unwrap();

    let run = wait_bounded(c, RUN_LIMIT);
    let task = task_json(&run);
    run.success();
    assert_eq!(task["safety"]["sandboxed"], true, "{task:#}");
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["safety"]["violations"], json!([]), "{task:#}");
    assert_eq!(task["safety"]["warnings"], json!([]), "{task:#}");
    assert!(tool_results(env, "c")[0].contains("rc=0"));
    // a's and b's records, ledgers and branches are as cms left them.
    assert_eq!(arena.show("a"), a);
    let b_now = arena.show("b");
    assert_eq!(b_now["status"], "completed");
    assert_eq!(b_now["turns"], b["turns"]);
    assert_eq!(b_now["cost_usd"], b["cost_usd"]);
    assert_eq!(
        env.git(&["rev-parse", "cms/b"]),
        b["head"].as_str().unwrap()
    );
    assert_eq!(env.git(&["show", "cms/b:b2.txt"]), "more");
    // Mergeable as it is, no --allow-protected.
    env.cms(&["merge", "c"]).success();
    env.cms(&["merge", "b"]).success();
    assert_eq!(env.read("shared.txt"), "edited by the user\n");
    assert_eq!(env.read("b2.txt"), "more\n");
}

#[test]
fn real_claude_shadowing_a_packed_branch_with_a_loose_ref_is_caught_after_the_session() {
    let Some(arena) = arena("real_claude_shadowing_a_packed_branch") else {
        return;
    };
    let env = &arena.env;
    let main_before = env.git(&["rev-parse", "main"]);
    // A packed main has no loose file for the sandbox to deny, and refs/heads/ stays writable
    // for the task's own branch.
    env.git(&["pack-refs", "--all"]);
    let attack = arena.attack(
        "shadow",
        &[
            "echo x > x.txt && git add x.txt && git commit -qm x && git rev-parse HEAD > \
           \"$(git rev-parse --git-common-dir)/refs/heads/main\""
                .to_owned(),
        ],
        &[],
    );
    attack.ran(0);
    attack.caught("git_ref refs/heads/main");
    // Reported, not put back: the user decides.
    assert_ne!(env.git(&["rev-parse", "main"]), main_before);
}
