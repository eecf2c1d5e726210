//! `cms hooks uninstall` puts the chained originals back exactly, leaves a hook the user
//! replaced alone with a warning, and `install` refuses a chained name already taken.

use super::{FakeCms, hooks_dir, mode, read, snapshot, write_file};
use crate::common::TestEnv;

#[test]
fn hooks_uninstall_restores_chained_originals_with_their_exact_content_and_mode() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    let dir = hooks_dir(&env);
    // Not executable: git would not run it, and neither does cms's hook.
    let pre_commit = format!("#!/bin/sh\necho chained >>'{}'\n", fake.log.display());
    write_file(&dir.join("pre-commit"), &pre_commit, 0o644);
    let pre_push = "#!/bin/sh\n# mine\nexit 0\n";
    write_file(&dir.join("pre-push"), pre_push, 0o700);
    env.cms(&["hooks", "install"]).success();
    assert_eq!(mode(&dir.join("pre-commit.cms-chained")), 0o644);
    assert_eq!(mode(&dir.join("pre-push.cms-chained")), 0o700);

    env.write("README.md", "changed\n");
    env.git(&["commit", "-q", "-a", "-m", "x"]);
    assert_eq!(fake.argvs(), ["check --staged"]);
    assert_eq!(fake.lines().len(), 1, "{:?}", fake.lines());

    let run = env.cms(&["hooks", "uninstall"]);
    run.success();
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    assert_eq!(read(&dir.join("pre-commit")), pre_commit);
    assert_eq!(mode(&dir.join("pre-commit")), 0o644);
    assert_eq!(read(&dir.join("pre-push")), pre_push);
    assert_eq!(mode(&dir.join("pre-push")), 0o700);
    assert!(!dir.join("pre-commit.cms-chained").exists());
    assert!(!dir.join("pre-push.cms-chained").exists());
}

#[test]
fn hooks_uninstall_leaves_a_hook_the_user_replaced_alone_with_a_warning() {
    let env = TestEnv::new();
    let dir = hooks_dir(&env);
    write_file(&dir.join("pre-commit"), "#!/bin/sh\n# first\n", 0o755);
    env.cms(&["hooks", "install"]).success();
    let replaced = "#!/bin/sh\n# the user's own, written after cms's\n";
    write_file(&dir.join("pre-commit"), replaced, 0o755);

    let run = env.cms(&["hooks", "uninstall"]);
    run.success();
    let warning = run
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning: {run:?}"));
    assert!(warning.contains("no longer cms's"), "{warning}");
    assert!(warning.contains("pre-commit.cms-chained"), "{warning}");
    assert_eq!(read(&dir.join("pre-commit")), replaced);
    assert_eq!(
        read(&dir.join("pre-commit.cms-chained")),
        "#!/bin/sh\n# first\n"
    );
    assert!(!dir.join("pre-push").exists());
}

#[test]
fn hooks_uninstall_warns_about_a_replaced_hook_but_not_about_the_originals_it_put_back() {
    let env = TestEnv::new();
    let dir = hooks_dir(&env);
    let original = "#!/bin/sh\n# the pre-push hook from before cms\n";
    write_file(&dir.join("pre-push"), original, 0o755);
    env.cms(&["hooks", "install"]).success();
    let replaced = "#!/bin/sh\n# replaced cms's pre-commit\n";
    write_file(&dir.join("pre-commit"), replaced, 0o755);

    let run = env.cms(&["hooks", "uninstall"]);
    run.success();
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{run:?}");
    assert!(warnings[0].contains("pre-commit alone"), "{run:?}");
    assert_eq!(read(&dir.join("pre-commit")), replaced);
    assert_eq!(read(&dir.join("pre-push")), original);

    // Nothing of cms is left: the hooks there are simply the user's.
    let run = env.cms(&["hooks", "uninstall"]);
    run.success();
    assert_eq!(run.stderr, "");
    assert!(run.stdout.contains("No cms hooks installed"), "{run:?}");
}

#[test]
fn hooks_uninstall_with_nothing_installed_says_so_and_succeeds() {
    let env = TestEnv::new();
    let before = snapshot(&hooks_dir(&env));
    let run = env.cms(&["hooks", "uninstall"]);
    run.success();
    assert!(run.stdout.contains("No cms hooks installed"), "{run:?}");
    let json = env.cms(&["hooks", "uninstall", "--json"]).json();
    for hook in json["hooks"].as_array().unwrap() {
        assert_eq!(hook["action"], "not_installed");
    }
    assert_eq!(snapshot(&hooks_dir(&env)), before);
}

#[test]
fn hooks_install_refuses_when_the_chained_name_is_taken_and_changes_nothing() {
    let env = TestEnv::new();
    let dir = hooks_dir(&env);
    write_file(&dir.join("pre-commit"), "#!/bin/sh\n# mine\n", 0o755);
    write_file(
        &dir.join("pre-commit.cms-chained"),
        "something else\n",
        0o644,
    );
    let before = snapshot(&dir);
    env.cms(&["hooks", "install"])
        .code(1)
        .one_line_error_with_hint("pre-commit.cms-chained already exists");
    assert_eq!(snapshot(&dir), before);

    // Left without the cms hook that ran it, it would be run by a new one unasked.
    std::fs::remove_file(dir.join("pre-commit")).unwrap();
    let before = snapshot(&dir);
    env.cms(&["hooks", "install"])
        .code(1)
        .one_line_error_with_hint("no cms pre-commit hook runs it");
    assert_eq!(snapshot(&dir), before);
}
