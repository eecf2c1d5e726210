//! A task's own git machinery turned against cms, with the fake claude's Bash: an admin dir
//! swapped for a look-alike or a symlink, and a nested repository armed with filters and an
//! fsmonitor. No git of cms ever runs their payload (`test_real_boundary::confinement` tries the same with
//! the real CLI, sandboxed).

use serde_json::json;

use super::{attack, not_blamed};
use crate::common::terminal::Terminal;
use crate::common::{TestEnv, violations};

/// How a session replaces its own git admin dir (`<common>/worktrees/<admin>`).
#[derive(Clone, Copy)]
pub(crate) enum AdminSwap {
    /// The admin dir renamed away, and a look-alike folder in its place.
    LookAlike,
    /// The admin dir renamed away, and a symlink to a copy in its place.
    Symlink,
}

/// A shell line that replaces the task's admin dir as `swap` says with one whose `commondir`
/// names a fake common dir, whose config runs `payload` as `core.fsmonitor` and from every
/// hook of its `core.hooksPath`; the payload appends a line to `marker`. It runs git only
/// before anything is planted.
pub(crate) fn admin_swap(swap: AdminSwap, marker: &std::path::Path) -> String {
    let plant = "A=$(git rev-parse --path-format=absolute --git-dir) \
         && C=$(git rev-parse --path-format=absolute --git-common-dir) && F=$PWD/.evil \
         && mkdir -p $F/common/hooks && ln -s $C/objects $F/common/objects \
         && ln -s $C/refs $F/common/refs && cp $C/HEAD $C/config $F/common/ \
         && printf '#!/bin/sh\\necho pwned >> %MARKER%\\n' > $F/payload && chmod +x $F/payload \
         && for h in pre-commit prepare-commit-msg commit-msg post-commit pre-merge-commit \
            post-checkout post-merge post-rewrite reference-transaction post-index-change; \
            do cp $F/payload $F/common/hooks/$h; done \
         && printf '[core]\\n\\tfsmonitor = %s\\n\\thooksPath = %s\\n' $F/payload $F/common/hooks \
            >> $F/common/config"
        .replace("%MARKER%", &marker.display().to_string());
    let swap = match swap {
        AdminSwap::LookAlike => {
            "mv $A $A.orig && mkdir $A && cp $A.orig/HEAD $A.orig/gitdir $A.orig/index $A/ \
             && echo $F/common > $A/commondir"
        }
        AdminSwap::Symlink => {
            "cp -r $A $F/admin && echo $F/common > $F/admin/commondir && mv $A $A.orig \
             && ln -s $F/admin $A"
        }
    };
    format!("{plant} && {swap}")
}

/// Whether git run the ordinary way in `worktree` (discovering its repository through `.git`)
/// runs the payload: the attack is armed, and only cms's own git keeps it from running.
fn armed(worktree: &std::path::Path, marker: &std::path::Path) -> bool {
    let _ = std::process::Command::new("git")
        .arg("-C")
        .arg(worktree)
        .args(["status", "--porcelain"])
        .output();
    let ran = marker.exists();
    let _ = std::fs::remove_file(marker);
    ran
}

/// The session's end and every command on a task whose session swapped its admin dir run no
/// git through it: the task is `protected_path` (`git_admin`), diff, merge (with
/// `--allow-protected` too) and continue refuse it, and discard removes it all.
fn admin_swap_never_runs_the_payload(swap: AdminSwap) {
    let env = TestEnv::new();
    let marker = env.root.join("pwned");
    let (run, task) = attack(
        &env,
        "swapper",
        json!([{"bash": admin_swap(swap, &marker)}]),
    );
    run.code(3);
    assert_eq!(task["status"], "protected_path", "{task:#}");
    let found = violations(&task);
    assert!(
        found.iter().any(|v| v.starts_with("git_admin ")),
        "{found:?}"
    );
    assert!(!marker.exists(), "the session's end ran the payload");
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    let main_before = env.git(&["rev-parse", "main"]);
    for args in [
        &["diff", "swapper"][..],
        &["merge", "swapper"],
        &["merge", "swapper", "--allow-protected"],
        &["continue", "swapper", "go on"],
        &["commit", "swapper"],
    ] {
        let refused = env.cms(args);
        refused.code(1);
        refused.one_line_error_with_hint("admin dir was tampered with");
        assert!(!marker.exists(), "cms {args:?} ran the payload");
    }
    // At a terminal too, where attach would run claude in the worktree: refused first.
    let test = match swap {
        AdminSwap::LookAlike => "admin_swap_look_alike",
        AdminSwap::Symlink => "admin_swap_symlink",
    };
    if let Some(term) = Terminal::run(&env, test, &["attach", "swapper"]) {
        let screen = term.exits_with(1);
        assert!(screen.contains("admin dir was tampered with"), "{screen}");
        assert!(!marker.exists(), "cms attach ran the payload");
    }
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    match swap {
        AdminSwap::LookAlike => assert!(armed(&worktree, &marker), "the payload does not run"),
        // cms unlinked the planted symlink when the session ended, which disarmed it.
        AdminSwap::Symlink => assert!(!armed(&worktree, &marker), "the link is still there"),
    }
    env.cms(&["gc"]).success();
    assert!(worktree.is_dir(), "gc removed an open task's worktree");
    env.cms(&["discard", "swapper"]).success();
    assert!(!marker.exists(), "discard ran the payload");
    assert!(!worktree.exists());
    assert!(!env.git_ok(&["rev-parse", "--verify", "-q", "refs/heads/cms/swapper"]));
    let admins: Vec<_> = std::fs::read_dir(env.common_dir().join("worktrees"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(admins.is_empty(), "{admins:?}");
    env.cms(&["gc"]).success();
    assert!(!marker.exists(), "gc ran the payload");
}

#[test]
fn bash_replacing_its_admin_dir_with_a_look_alike_is_caught_and_no_git_of_cms_runs_its_config() {
    admin_swap_never_runs_the_payload(AdminSwap::LookAlike);
}

#[test]
fn bash_replacing_its_admin_dir_with_a_symlink_is_caught_and_no_git_of_cms_runs_its_config() {
    admin_swap_never_runs_the_payload(AdminSwap::Symlink);
}

/// A shell line that makes `sub/` a nested repository the task's index tracks as a gitlink,
/// then arms it: its config names a clean filter, a process filter and an fsmonitor, all a
/// payload that appends a line to `marker`, and its files' times change so that any git
/// looking for changes inside it rehashes them through the filters.
pub(crate) fn nested_repo(marker: &std::path::Path) -> String {
    "mkdir -p sub && cd sub && git init -q && printf 'a filter=c\\nb filter=p\\n' > .gitattributes \
     && echo a > a && echo b > b && git add . \
     && git -c user.name=a -c user.email=a@example.com commit -qm s && cd .. && git add sub \
     && P=$PWD/.payload && printf '#!/bin/sh\\necho pwned >> %MARKER%\\ncat\\n' > $P \
     && chmod +x $P && git -C sub config filter.c.clean $P && git -C sub config filter.p.process $P \
     && git -C sub config core.fsmonitor $P && touch -d 2001-01-01 sub/a sub/b"
        .replace("%MARKER%", &marker.display().to_string())
}

/// A nested repository's commit as its HEAD says, read with git inside it (the test's own).
fn nested_head(worktree: &std::path::Path) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(worktree.join("sub"))
        .args(["-c", "core.fsmonitor=false", "rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_nested_repository_in_a_task_is_committed_by_its_commit_and_no_git_of_cms_runs_inside_it() {
    let env = TestEnv::new();
    let marker = env.root.join("pwned");
    let (run, task) = attack(&env, "nester", json!([{"bash": nested_repo(&marker)}]));
    not_blamed(&run, &task);
    assert!(
        !marker.exists(),
        "the session's end ran git inside the nested repository"
    );
    let worktree = std::path::PathBuf::from(task["worktree"].as_str().unwrap());
    let head = nested_head(&worktree);
    assert!(
        env.git(&["ls-tree", "cms/nester", "sub"])
            .starts_with(&format!("160000 commit {head}")),
    );
    env.cms(&["diff", "nester"]).success();
    assert!(
        !marker.exists(),
        "cms diff ran git inside the nested repository"
    );
    // The follow-up moves the nested repository to a new commit and touches its files again:
    // its session's end commits the gitlink, already tracked, at that commit.
    // (Its config set aside meanwhile: the agent's own git would run the payload.)
    env.steps(
        json!([{"bash": "cd sub && mv .git/config .git/config.x && git init -q \
        && echo c > c && git add c && git -c user.name=a -c user.email=a@example.com \
           commit -qm c && mv .git/config.x .git/config && touch -d 2002-02-02 a b \
        && cd .. && echo top > top"}]),
    );
    env.cms(&["continue", "nester", "go on"]).success();
    assert!(
        !marker.exists(),
        "cms continue ran git inside the nested repository"
    );
    let moved = nested_head(&worktree);
    assert_ne!(moved, head);
    assert!(
        env.git(&["ls-tree", "cms/nester", "sub"])
            .starts_with(&format!("160000 commit {moved}")),
    );
    assert!(env.git_ok(&["cat-file", "-e", "cms/nester:top"]));
    // Plain git in the worktree runs the payload: only cms's own git keeps it from running.
    let _ = std::process::Command::new("git")
        .arg("-C")
        .arg(&worktree)
        .args(["add", "--all", "--dry-run"])
        .output();
    assert!(marker.exists(), "the nested repository is not armed");
    std::fs::remove_file(&marker).unwrap();
    env.cms(&["merge", "nester"]).success();
    assert!(
        !marker.exists(),
        "cms merge ran git inside the nested repository"
    );
    assert!(
        env.git(&["ls-tree", "main", "sub"])
            .starts_with(&format!("160000 commit {moved}")),
    );

    let (run, task) = attack(&env, "nester2", json!([{"bash": nested_repo(&marker)}]));
    not_blamed(&run, &task);
    assert!(
        !marker.exists(),
        "the session's end ran git inside the nested repository"
    );
    env.cms(&["discard", "nester2", "--force"]).success();
    assert!(
        !marker.exists(),
        "cms discard ran git inside the nested repository"
    );
}
