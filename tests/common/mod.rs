//! Test environment: a temporary home, a real git repository, the fake claude, and helpers to
//! run `cms` and `git` in them with a scrubbed environment.

pub mod fake_api;
pub mod poll;
pub mod ray;
pub mod real;
pub mod terminal;

pub use poll::{LIMIT, eventually};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const CMS: &str = env!("CARGO_BIN_EXE_cms");
pub const FAKE_CLAUDE: &str = env!("CARGO_BIN_EXE_fake-claude");
/// The id git gives the tree with no entries.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// The protocol samples, as recorded from the real CLI.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-protocol/samples")
        .join(name)
}

pub struct TestEnv {
    _root: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub repo: PathBuf,
    pub script: PathBuf,
    pub claude_log: PathBuf,
    extra_env: Vec<(String, String)>,
}

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn success(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The error line must be one line, followed by a hint.
    #[track_caller]
    pub fn one_line_error_with_hint(&self, needle: &str) -> &Run {
        let lines: Vec<&str> = self.stderr.lines().collect();
        let error = lines
            .iter()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line in stderr:\n{}", self.stderr));
        assert!(
            error.contains(needle),
            "error line {error:?} lacks {needle:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("hint: ")),
            "no hint in stderr:\n{}",
            self.stderr
        );
        self
    }
}

impl TestEnv {
    /// A repository `repo` on branch `main` with one commit holding `README.md`.
    pub fn new() -> TestEnv {
        let env = Self::empty();
        std::fs::create_dir_all(&env.repo).unwrap();
        env.git(&["init", "-q", "-b", "main"]);
        env.write("README.md", "hello\n");
        env.git(&["add", "."]);
        env.git(&["commit", "-q", "-m", "init"]);
        env
    }

    /// Like `new` but without creating the repository.
    pub fn empty() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("cms-test")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        TestEnv {
            script: root.join("script.json"),
            claude_log: root.join("claude-log.jsonl"),
            repo: root.join("repo"),
            home,
            root,
            _root: dir,
            extra_env: Vec::new(),
        }
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// Gives this test's processes a TMPDIR of their own, for tests of state cms keeps there
    /// for the whole machine (the port locks), which other tests running at the same time
    /// would otherwise share.
    pub fn private_tmpdir(&mut self) {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.to_str().unwrap().to_owned();
        self.set_env("TMPDIR", &dir);
    }

    fn apply_env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("TMPDIR", std::env::temp_dir())
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test User")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test User")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .env("TZ", "UTC")
            .env("NO_COLOR", "1")
            .env("CMS_CLAUDE_BIN", FAKE_CLAUDE)
            .env("CMS_EXIT_GRACE_MS", "5000")
            .env("CMS_INTERRUPT_GRACE_MS", "5000")
            // The fake claude writes its log outside the worktree, and its escapes test what
            // cms detects; the real_claude_ tests turn the outer boundary back on.
            .env("CMS_BOUNDARY", "off")
            .env("FAKE_CLAUDE_LOG", &self.claude_log);
        if self.script.exists() {
            cmd.env("FAKE_CLAUDE_SCRIPT", &self.script);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
    }

    /// A `cms` command in `dir`, ready to run.
    pub fn cms_command(&self, dir: &Path, args: &[&str]) -> Command {
        self.command(Path::new(CMS), dir, args)
    }

    /// Any program in `dir` with the test environment, stdin null, ready to run.
    pub fn command(&self, program: &Path, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(dir).stdin(Stdio::null());
        self.apply_env(&mut cmd);
        cmd
    }

    pub fn cms(&self, args: &[&str]) -> Run {
        self.cms_in(&self.repo, args)
    }

    pub fn cms_in(&self, dir: &Path, args: &[&str]) -> Run {
        Run::from(self.cms_command(dir, args).output().unwrap())
    }

    /// Runs `cms` in the repository with `input` on its stdin.
    pub fn cms_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self
            .cms_command(&self.repo, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // cms may refuse its command line before it reads: the pipe may be closed by then.
        let _ = child.stdin.take().unwrap().write_all(input);
        Run::from(child.wait_with_output().unwrap())
    }

    /// Starts `cms` in the repository without waiting for it; see [`wait_bounded`].
    pub fn spawn_cms(&self, args: &[&str]) -> Background {
        Background::spawn(&mut self.cms_command(&self.repo, args))
    }

    /// Runs `cms` in the repository, failing the test if it has not ended within `limit`.
    pub fn cms_bounded(&self, args: &[&str], limit: Duration) -> Run {
        wait_bounded(self.spawn_cms(args), limit)
    }

    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir).stdin(Stdio::null());
        self.apply_env(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo, args)
    }

    /// Runs git in `dir` whatever its outcome, for commands expected to fail (a hook refusing).
    pub fn git_run_in(&self, dir: &Path, args: &[&str]) -> Run {
        Run::from(self.command(Path::new("git"), dir, args).output().unwrap())
    }

    /// Whether a git command succeeds (for probing refs).
    pub fn git_ok(&self, args: &[&str]) -> bool {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(&self.repo).stdin(Stdio::null());
        self.apply_env(&mut cmd);
        cmd.output().unwrap().status.success()
    }

    /// Writes the user's configuration file (`~/.config/cms/config.toml`).
    pub fn user_config(&self, text: &str) {
        let config = self.home.join(".config/cms/config.toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(config, text).unwrap();
    }

    /// Trusts the repository's settings files as they are now (`cms trust`): a test that
    /// relies on what an untrusted `.cms.toml` may not do (commands, copies, links, higher
    /// limits, a wider preset, a looser sandbox) calls this after writing it.
    pub fn trust(&self) {
        self.cms(&["trust"]).success();
    }

    pub fn write(&self, path: &str, content: &str) {
        let path = self.repo.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Warms the pool to `size` worktrees (`cms pool warm`) and returns the folder they wait in.
    pub fn warmed_pool(&self, size: &str) -> PathBuf {
        self.cms(&["pool", "warm", size]).success();
        let status = self.cms(&["pool", "status", "--json"]);
        status.success();
        Path::new(status.json()[0]["path"].as_str().unwrap())
            .parent()
            .unwrap()
            .to_owned()
    }

    /// Commits a `.gitignore` of `patterns`, then writes `files` (path, content), which it
    /// ignores, into the checkout.
    pub fn ignored(&self, patterns: &str, files: &[(&str, &str)]) {
        self.write(".gitignore", patterns);
        self.commit_all("ignore");
        for (path, content) in files {
            self.write(path, content);
        }
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.repo.join(path)).unwrap()
    }

    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// Sets the fake claude's script.
    pub fn script(&self, script: Value) {
        std::fs::write(&self.script, serde_json::to_vec_pretty(&script).unwrap()).unwrap();
    }

    /// A one-turn script with these steps and final text.
    pub fn steps(&self, steps: Value) {
        self.script(serde_json::json!({"turns": [{"steps": steps, "result": "done"}]}));
    }

    /// The fake claude's invocations so far.
    pub fn claude_invocations(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.claude_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The value after `flag` in the last command line cms gave claude.
    pub fn last_claude_arg(&self, flag: &str) -> Option<String> {
        let invocation = self.claude_invocations().pop()?;
        let argv: Vec<&str> = invocation["argv"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let at = argv.iter().position(|a| *a == flag)?;
        argv.get(at + 1).map(|v| (*v).to_owned())
    }

    pub fn common_dir(&self) -> PathBuf {
        self.repo.join(".git")
    }

    pub fn branches(&self) -> Vec<String> {
        self.git(&["branch", "--format=%(refname:short)"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Paths of every worktree git knows, the main one included.
    pub fn worktrees(&self) -> Vec<PathBuf> {
        self.git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .map(PathBuf::from)
            .collect()
    }

    /// Paths of a commit's tree.
    pub fn tree_paths(&self, rev: &str) -> Vec<String> {
        let listed = self.git(&["ls-tree", "-r", "--name-only", rev]);
        listed.lines().map(str::to_owned).collect()
    }

    /// Files of a commit's tree with their contents.
    pub fn tree_files(&self, rev: &str) -> Vec<(String, String)> {
        self.git(&["ls-tree", "-r", "--name-only", rev])
            .lines()
            .map(|path| {
                let content = self.git(&["show", &format!("{rev}:{path}")]);
                (path.to_owned(), content)
            })
            .collect()
    }

    /// Polls `show` until the task is in `status`, and returns its JSON.
    #[track_caller]
    pub fn until_status(&self, name: &str, status: &str) -> Value {
        eventually(&format!("task {name} to become {status}"), || {
            // A task started in the background may not have its record yet.
            let run = self.cms(&["show", name, "--json"]);
            let task = if run.code == 0 {
                run.json()
            } else {
                Value::Null
            };
            if task["status"] == status {
                Ok(task)
            } else {
                Err(format!("{task:#}"))
            }
        })
    }

    /// Runs a task expected to succeed and returns its JSON.
    #[track_caller]
    pub fn task_ok(&self, args: &[&str]) -> Value {
        self.task_ending(0, args)
    }

    /// Runs `cms task --json <args>`, expecting exit code `code`, and returns the task's JSON.
    #[track_caller]
    pub fn task_ending(&self, code: i32, args: &[&str]) -> Value {
        let mut full = vec!["task", "--json"];
        full.extend_from_slice(args);
        let run = self.cms(&full);
        run.code(code);
        run.json()
    }
}

/// A process started in the background with piped output. Dropped before it was waited for
/// (a test failed while it ran), it is killed: a failed test must not leave sessions running.
pub struct Background(Option<Child>);

impl Background {
    /// Starts `cmd` with piped output, without waiting for it; see [`wait_bounded`].
    pub fn spawn(cmd: &mut Command) -> Background {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Background(Some(child))
    }

    /// Starts `cmd` with its stderr going to `path`, for tests that act on what it says while it
    /// runs; [`wait_bounded`] then reports an empty stderr.
    pub fn spawn_with_stderr_in(cmd: &mut Command, path: &Path) -> Background {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(path).unwrap())
            .spawn()
            .unwrap();
        Background(Some(child))
    }

    /// Its pid, for signalling it.
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("not waited for yet").id()
    }

    /// Its stdin, if it was started with a piped one.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.0.as_mut().and_then(|child| child.stdin.take())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The live processes whose command line (its words joined by spaces) holds `marker`.
pub fn running_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            }) && !process_ended(u64::from(*pid))
        })
        .collect()
}

/// Whether process `pid` has ended: gone from /proc, or a zombie its parent has not reaped
/// yet (a killed detached process is reparented to PID 1, which may reap it late).
pub fn process_ended(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// Waits until process `pid` has ended (see [`process_ended`]).
#[track_caller]
pub fn until_ended(pid: u64, what: &str) {
    eventually(&format!("{what} (pid {pid}) to end"), || process_ended(pid));
}

/// Waits for a background process, killing it and failing the test when it has not ended
/// within `limit`: a hung claude must fail the suite, not stall it.
pub fn wait_bounded(mut process: Background, limit: Duration) -> Run {
    let mut child = process.0.take().expect("waited for once");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let Ok(status) = poll::within(limit, || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        // Its pipes closed with it (claude dies with cms), so its output so far is there.
        panic!(
            "the command did not finish within {limit:?} and was killed; its stderr:\n{}",
            stderr.join().unwrap()
        );
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// `kind path` for each warning of a task (a change while it ran that it may not have made).
pub fn warnings(task: &Value) -> Vec<String> {
    task["safety"]["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings list: {task:#}"))
        .iter()
        .map(|w| {
            format!(
                "{} {}",
                w["kind"].as_str().unwrap(),
                w["path"].as_str().unwrap()
            )
        })
        .collect()
}

/// `kind path` for each violation of a task's JSON.
pub fn violations(task: &Value) -> Vec<String> {
    task["safety"]["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations array in {task:#}"))
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["kind"].as_str().unwrap(),
                v["path"].as_str().unwrap()
            )
        })
        .collect()
}
