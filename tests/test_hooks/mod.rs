//! `cms hooks install|uninstall`: the hooks land where git runs hooks, chain the hooks already
//! there, hand `cms check` what git is committing or pushing, and come out leaving the
//! originals exactly as they were.
//!
//! `cms check` is stood in for by a script (through `CMS_HOOK_BIN`) that records how it was
//! called and exits with a chosen code.

mod uninstall;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{CMS, TestEnv};

const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
const ZEROS: &str = "0000000000000000000000000000000000000000";

fn write_file(path: &Path, content: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn hooks_dir(env: &TestEnv) -> PathBuf {
    env.common_dir().join("hooks")
}

/// Every file of a directory with its content and mode, to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let path = e.path();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
                mode(&path),
            )
        })
        .collect();
    files.sort();
    files
}

/// One call of the stand-in cms.
#[derive(Debug)]
struct Call {
    argv: String,
    index: String,
    staged: Vec<String>,
}

/// The stand-in for `cms check`: appends `<argv>\t<GIT_INDEX_FILE>\t<staged files>` to its log
/// per call (the staged files as `git diff --cached` sees them in the hook's environment).
struct FakeCms {
    bin: PathBuf,
    log: PathBuf,
}

impl FakeCms {
    /// Installs the stand-in as `CMS_HOOK_BIN`, exiting 0.
    fn new(env: &mut TestEnv) -> FakeCms {
        let fake = FakeCms {
            bin: env.root.join("fake-cms"),
            log: env.root.join("fake-cms.log"),
        };
        fake.exit_with(0);
        env.set_env("CMS_HOOK_BIN", fake.bin.to_str().unwrap());
        fake
    }

    fn exit_with(&self, code: i32) {
        let complain = if code == 0 {
            ""
        } else {
            "echo 'fake cms: a protected path was touched'\n"
        };
        write_file(
            &self.bin,
            &format!(
                "#!/bin/sh\n\
                 staged=$(git diff --cached --name-only | tr '\\n' ' ')\n\
                 printf '%s\\t%s\\t%s\\n' \"$*\" \"${{GIT_INDEX_FILE-}}\" \"$staged\" >>'{}'\n\
                 {complain}exit {code}\n",
                self.log.display()
            ),
            0o755,
        );
    }

    /// Every line of the log: calls, and whatever a chained hook wrote there.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn calls(&self) -> Vec<Call> {
        self.lines()
            .iter()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let argv = fields.next()?.to_owned();
                let index = fields.next()?.to_owned();
                let staged = fields.next()?.split_whitespace().map(str::to_owned);
                Some(Call {
                    argv,
                    index,
                    staged: staged.collect(),
                })
            })
            .collect()
    }

    fn argvs(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.argv).collect()
    }

    fn clear(&self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A bare repository at `<root>/origin.git`, added as the remote `origin`.
fn add_remote(env: &TestEnv) -> PathBuf {
    let bare = env.root.join("origin.git");
    env.git_in(
        &env.root,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    env.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    bare
}

fn head(env: &TestEnv) -> String {
    env.git(&["rev-parse", "HEAD"])
}

#[test]
fn hooks_install_writes_executable_pre_commit_and_pre_push_scripts_naming_this_cms() {
    let env = TestEnv::new();
    let run = env.cms(&["hooks", "install"]);
    run.success();
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    let cms = Path::new(CMS).canonicalize().unwrap();
    for name in ["pre-commit", "pre-push"] {
        let path = hooks_dir(&env).join(name);
        let script = read(&path);
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            script.contains(&format!(
                "installed={}",
                shlex::try_quote(&cms.display().to_string()).unwrap()
            )),
            "{script}"
        );
        assert_eq!(mode(&path), 0o755, "{name}");
        assert!(run.stdout.contains(&path.display().to_string()));
        assert!(!hooks_dir(&env).join(format!("{name}.cms-chained")).exists());
    }
}

#[test]
fn hooks_install_and_uninstall_report_every_path_as_json() {
    let env = TestEnv::new();
    let dir = hooks_dir(&env);
    write_file(&dir.join("pre-push"), "#!/bin/sh\nexit 0\n", 0o755);
    let installed = env.cms(&["hooks", "install", "--json"]);
    installed.success();
    let json = installed.json();
    assert_eq!(json["hooks_dir"], dir.display().to_string());
    assert_eq!(
        json["cms"],
        Path::new(CMS).canonicalize().unwrap().display().to_string()
    );
    let hooks = json["hooks"].as_array().unwrap();
    assert_eq!(hooks[0]["hook"], "pre-commit");
    assert_eq!(hooks[0]["action"], "installed");
    assert_eq!(hooks[0]["chained"], serde_json::Value::Null);
    assert_eq!(hooks[1]["hook"], "pre-push");
    assert_eq!(hooks[1]["path"], dir.join("pre-push").display().to_string());
    assert_eq!(hooks[1]["action"], "installed");
    assert_eq!(
        hooks[1]["chained"],
        dir.join("pre-push.cms-chained").display().to_string()
    );
    assert_eq!(hooks[1]["moved_aside"], true);

    let removed = env.cms(&["hooks", "uninstall", "--json"]);
    removed.success();
    let hooks = removed.json()["hooks"].as_array().unwrap().clone();
    assert_eq!(hooks[0]["action"], "removed");
    assert_eq!(hooks[0]["restored_from"], serde_json::Value::Null);
    assert_eq!(hooks[1]["action"], "removed");
    assert_eq!(
        hooks[1]["restored_from"],
        dir.join("pre-push.cms-chained").display().to_string()
    );
}

#[test]
fn pre_commit_hook_runs_cms_check_staged_on_the_index_git_is_committing() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    env.write("a.txt", "a\n");
    env.commit_all("a");
    env.cms(&["hooks", "install"]).success();

    // `commit -a` stages into a temporary index the real one never sees: only GIT_INDEX_FILE,
    // passed through, shows cms the change.
    env.write("README.md", "changed\n");
    env.git(&["commit", "-q", "-a", "-m", "all"]);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].argv, "check --staged");
    assert!(!calls[0].index.is_empty(), "{calls:?}");
    assert_eq!(calls[0].staged, ["README.md"]);

    // `commit <path>` commits that path alone, whatever else is staged.
    fake.clear();
    env.write("README.md", "again\n");
    env.write("a.txt", "staged, not committed\n");
    env.git(&["add", "a.txt"]);
    env.git(&["commit", "-q", "-m", "only", "README.md"]);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].argv, "check --staged");
    assert_eq!(calls[0].staged, ["README.md"]);
}

#[test]
fn a_failing_cms_check_stops_the_commit_and_shows_its_output() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    env.cms(&["hooks", "install"]).success();
    fake.exit_with(3);
    let before = head(&env);
    env.write("README.md", "changed\n");
    let run = env.git_run_in(&env.repo, &["commit", "-a", "-m", "blocked"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("fake cms: a protected path was touched"),
        "{}",
        run.stderr
    );
    assert_eq!(head(&env), before);
    assert_eq!(fake.argvs(), ["check --staged"]);
}

#[test]
fn hooks_install_chains_an_existing_pre_commit_hook_and_uninstall_restores_it() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    let dir = hooks_dir(&env);
    let hook = dir.join("pre-commit");
    // Writes to the stand-in's log, so the order of the two is visible.
    let original = format!(
        "#!/bin/sh\necho \"chained $GIT_INDEX_FILE\" >>'{}'\n",
        fake.log.display()
    );
    write_file(&hook, &original, 0o750);

    let run = env.cms(&["hooks", "install"]);
    run.success();
    assert!(
        run.stdout.contains("pre-commit.cms-chained"),
        "{}",
        run.stdout
    );
    let chained = dir.join("pre-commit.cms-chained");
    assert_eq!(read(&chained), original);
    assert_eq!(mode(&chained), 0o750);
    assert!(read(&hook).contains("cms check --staged"));

    env.write("README.md", "changed\n");
    env.git(&["commit", "-q", "-a", "-m", "both hooks"]);
    let lines = fake.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let call = &fake.calls()[0];
    assert_eq!(lines[0], format!("chained {}", call.index));
    assert_eq!(call.argv, "check --staged");

    env.cms(&["hooks", "uninstall"]).success();
    assert_eq!(read(&hook), original);
    assert_eq!(mode(&hook), 0o750);
    assert!(!chained.exists());
}

#[test]
fn a_failing_chained_hook_stops_the_commit_or_push_before_cms_check_runs() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    let bare = add_remote(&env);
    let dir = hooks_dir(&env);
    for name in ["pre-commit", "pre-push"] {
        write_file(
            &dir.join(name),
            &format!("#!/bin/sh\necho '{name} hook says no' >&2\nexit 7\n"),
            0o755,
        );
    }
    env.cms(&["hooks", "install"]).success();

    let before = head(&env);
    env.write("README.md", "changed\n");
    let run = env.git_run_in(&env.repo, &["commit", "-a", "-m", "blocked"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("pre-commit hook says no"), "{run:?}");
    assert_eq!(head(&env), before);

    let run = env.git_run_in(&env.repo, &["push", "origin", "main"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("pre-push hook says no"), "{run:?}");
    assert!(
        env.git_run_in(&bare, &["rev-parse", "--verify", "-q", "main"])
            .code
            != 0
    );
    assert!(fake.lines().is_empty(), "{:?}", fake.lines());
}

#[test]
fn pre_push_hook_checks_what_each_pushed_branch_adds_and_skips_deletions() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    add_remote(&env);
    env.cms(&["hooks", "install"]).success();
    let main = head(&env);

    // New to the remote and starting at a root commit: everything, from the empty tree.
    env.git(&["push", "-q", "origin", "main"]);
    assert_eq!(fake.argvs(), [format!("check {EMPTY_TREE}..{main}")]);

    // A new branch: from the parent of its oldest commit the remote does not have.
    env.git(&["switch", "-q", "-c", "feature"]);
    env.write("a.txt", "1\n");
    env.commit_all("one");
    env.write("b.txt", "2\n");
    env.commit_all("two");
    let feature = head(&env);
    fake.clear();
    env.git(&["push", "-q", "origin", "feature"]);
    assert_eq!(fake.argvs(), [format!("check {main}..{feature}")]);

    // An update of a branch the remote has: from its tip there.
    env.write("c.txt", "3\n");
    env.commit_all("three");
    let newer = head(&env);
    fake.clear();
    env.git(&["push", "-q", "origin", "feature"]);
    assert_eq!(fake.argvs(), [format!("check {feature}..{newer}")]);

    // Nothing the remote lacks, and a deletion: nothing to check, cms is not called.
    env.git(&["branch", "same", "main"]);
    fake.clear();
    env.git(&["push", "-q", "origin", "same"]);
    env.git(&["push", "-q", "origin", "--delete", "feature"]);
    assert!(fake.lines().is_empty(), "{:?}", fake.lines());
}

#[test]
fn pre_push_hook_runs_the_chained_hook_with_the_same_arguments_and_stdin() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    let bare = add_remote(&env);
    let (args, stdin) = (
        env.root.join("chained-args"),
        env.root.join("chained-stdin"),
    );
    write_file(
        &hooks_dir(&env).join("pre-push"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >'{}'\ncat >'{}'\n",
            args.display(),
            stdin.display()
        ),
        0o755,
    );
    env.cms(&["hooks", "install"]).success();
    let main = head(&env);
    env.git(&["switch", "-q", "-c", "feature"]);
    env.write("a.txt", "1\n");
    env.commit_all("one");
    let feature = head(&env);
    fake.clear();

    env.git(&["push", "-q", "origin", "main", "feature"]);
    assert_eq!(read(&args), format!("origin\n{}\n", bare.display()));
    let mut lines: Vec<String> = read(&stdin).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("refs/heads/feature {feature} refs/heads/feature {ZEROS}"),
            format!("refs/heads/main {main} refs/heads/main {ZEROS}"),
        ]
    );
    // One check for the whole push, with a range per branch.
    let argvs = fake.argvs();
    assert_eq!(argvs.len(), 1, "{argvs:?}");
    let mut words: Vec<String> = argvs[0].split(' ').map(str::to_owned).collect();
    assert_eq!(words.remove(0), "check");
    words.sort();
    let mut expected = [
        format!("{EMPTY_TREE}..{main}"),
        format!("{EMPTY_TREE}..{feature}"),
    ];
    expected.sort();
    assert_eq!(words, expected);
}

#[test]
fn a_failing_cms_check_stops_the_push_and_the_remote_keeps_its_state() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    let bare = add_remote(&env);
    env.cms(&["hooks", "install"]).success();
    fake.exit_with(3);
    let run = env.git_run_in(&env.repo, &["push", "origin", "main"]);
    assert_ne!(run.code, 0, "{run:?}");
    // git passes a pre-push hook's stdout through as its own.
    let output = format!("{}{}", run.stdout, run.stderr);
    assert!(
        output.contains("fake cms: a protected path was touched"),
        "{output}"
    );
    assert_ne!(
        env.git_run_in(&bare, &["rev-parse", "--verify", "-q", "main"])
            .code,
        0
    );
}

#[test]
fn hooks_install_twice_changes_nothing_and_says_so() {
    let env = TestEnv::new();
    let dir = hooks_dir(&env);
    write_file(&dir.join("pre-commit"), "#!/bin/sh\nexit 0\n", 0o755);
    env.cms(&["hooks", "install"]).success();
    let before = snapshot(&dir);

    let run = env.cms(&["hooks", "install"]);
    run.success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines.iter().all(|l| l.contains("already installed")),
        "{}",
        run.stdout
    );
    let json = env.cms(&["hooks", "install", "--json"]).json();
    for hook in json["hooks"].as_array().unwrap() {
        assert_eq!(hook["action"], "unchanged");
    }
    // cms's own hook was not taken for a foreign one and chained.
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn hooks_install_honours_core_hooks_path_from_a_subdirectory() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    env.git(&["config", "core.hooksPath", ".githooks"]);
    let deep = env.repo.join("src/deep");
    std::fs::create_dir_all(&deep).unwrap();
    env.cms_in(&deep, &["hooks", "install"]).success();
    assert!(env.repo.join(".githooks/pre-commit").is_file());
    assert!(env.repo.join(".githooks/pre-push").is_file());
    assert!(!hooks_dir(&env).join("pre-commit").exists());

    env.write("README.md", "changed\n");
    env.git(&["commit", "-q", "-a", "-m", "x"]);
    assert_eq!(fake.argvs(), ["check --staged"]);

    env.cms_in(&deep, &["hooks", "uninstall"]).success();
    assert!(!env.repo.join(".githooks/pre-commit").exists());
}

#[test]
fn hooks_install_from_a_linked_worktree_uses_the_hooks_git_runs_there() {
    let mut env = TestEnv::new();
    let fake = FakeCms::new(&mut env);
    let wt = env.root.join("wt");
    env.git(&["worktree", "add", "-q", wt.to_str().unwrap(), "-b", "side"]);
    let run = env.cms_in(&wt, &["hooks", "install", "--json"]);
    run.success();
    let dir = env.git_in(
        &wt,
        &["rev-parse", "--path-format=absolute", "--git-path", "hooks"],
    );
    assert_eq!(run.json()["hooks_dir"], dir);
    assert!(hooks_dir(&env).join("pre-commit").is_file());

    std::fs::write(wt.join("README.md"), "from the worktree\n").unwrap();
    env.git_in(&wt, &["commit", "-q", "-a", "-m", "x"]);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].argv, "check --staged");
    assert_eq!(calls[0].staged, ["README.md"]);
}

#[test]
fn hooks_outside_a_repository_fail_with_one_line_and_a_hint() {
    let env = TestEnv::empty();
    let dir = env.root.join("plain");
    std::fs::create_dir_all(&dir).unwrap();
    for action in ["install", "uninstall"] {
        env.cms_in(&dir, &["hooks", action])
            .code(1)
            .one_line_error_with_hint("not in a git repository");
    }
}

#[test]
fn hooks_let_git_go_ahead_with_one_warning_when_cms_is_gone() {
    let mut env = TestEnv::new();
    add_remote(&env);
    // A cms that can be uninstalled: a copy, installing the hooks, then deleted.
    let copy = env.root.join("bin/cms");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    // Copied by `cp`, not by this process: a child that another test thread forks while this
    // process holds the copy open for writing would keep it open, and running it would fail
    // with "text file busy".
    let copied = std::process::Command::new("cp")
        .arg(CMS)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let out = env
        .command(&copy, &env.repo, &["hooks", "install"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(read(&hooks_dir(&env).join("pre-commit")).contains(copy.to_str().unwrap()));
    std::fs::remove_file(&copy).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let without_cms: Vec<&str> = path
        .split(':')
        .filter(|dir| !Path::new(dir).join("cms").exists())
        .collect();
    env.set_env("PATH", &without_cms.join(":"));

    let before = head(&env);
    env.write("README.md", "changed\n");
    let run = env.git_run_in(&env.repo, &["commit", "-q", "-a", "-m", "x"]);
    run.success();
    assert_ne!(head(&env), before);
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("cms is neither at"), "{}", run.stderr);

    let run = env.git_run_in(&env.repo, &["push", "-q", "origin", "main"]);
    run.success();
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("cms is neither at"), "{}", run.stderr);
}
