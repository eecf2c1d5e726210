//! What cms adds to git where users wait: starting a task (cold and from the warm pool)
//! against `git worktree add`, `cms list` with 200 tasks against `git worktree list`, a
//! task's diff and protected-path check against git's status and diff, the memory of a
//! supervised task, 32 tasks at once, and a start on a Ray cluster on this machine against a
//! local one. Each comparison runs both sides on the same generated repository in one run.
//!
//! `cargo bench --features test-fakes --bench start [-- FILES] [SECTION]...` (default 100,000
//! files, every section: start, diff, list, memory, parallel, ray; the fake claude stands in
//! for Claude Code, so no network and no cost; `ray` needs Ray as the `ray_` tests do, in
//! `target/ray/venv` or `CMS_RAY_BIN`, and is skipped without it).

// The tests' Ray head, shared as it is; the bench uses only part of it.
#[path = "../tests/common/ray.rs"]
#[allow(dead_code)]
mod ray_head;
#[path = "start/ray.rs"]
mod ray_section;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CMS: &str = env!("CARGO_BIN_EXE_cms");
const FAKE_CLAUDE: &str = env!("CARGO_BIN_EXE_fake-claude");

struct Bench {
    dir: PathBuf,
    home: PathBuf,
}

impl Bench {
    fn new(dir: &Path) -> Bench {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Bench {
            dir: dir.to_owned(),
            home,
        }
    }

    fn command(&self, program: &str, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .env("CMS_CLAUDE_BIN", FAKE_CLAUDE)
            .env_remove("FAKE_CLAUDE_SCRIPT");
        cmd
    }

    fn run(&self, program: &str, cwd: &Path, args: &[&str]) -> Output {
        let out = self.command(program, cwd, args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn git(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut all = vec!["-c", "gc.auto=0"];
        all.extend(args);
        self.run("git", cwd, &all)
    }

    /// A repository of `files` files in 500 folders, committed and packed as a clone is.
    fn repo(&self, name: &str, files: usize) -> PathBuf {
        let repo = self.dir.join(name);
        std::fs::create_dir_all(&repo).unwrap();
        self.git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
        for i in 0..files {
            let folder = repo.join(format!("src/m{}", i % 500));
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(format!("f{i}.txt")), format!("line {i}\n")).unwrap();
        }
        self.git(&repo, &["add", "-A"]);
        self.git(&repo, &["commit", "-q", "-m", "init"]);
        self.git(&repo, &["gc", "-q"]);
        repo
    }
}

/// The median of `runs` timings of `f`, which may set up untimed work through its argument.
fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut samples: Vec<Duration> = (0..runs).map(|_| f()).collect();
    samples.sort();
    samples[runs / 2]
}

/// The parts of the bench, in the order they run.
const SECTIONS: [&str; 6] = ["start", "diff", "list", "memory", "parallel", "ray"];

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(what: &str, value: Duration, reference: Duration) {
    println!(
        "| {what} | {:.0} ({:.2}x) |",
        ms(value),
        ms(value) / ms(reference)
    );
}

/// How long `cms task` takes from its launch to starting claude: the stand-in claude notes
/// the time and fails at once, so cms takes the start back and the next run starts clean.
fn until_claude_starts(bench: &Bench, repo: &Path, stamp: &Path, claude: &Path) -> Duration {
    let _ = std::fs::remove_file(stamp);
    let launched = SystemTime::now();
    let out = bench
        .command(CMS, repo, &["task", "x", "-n", "timed", "--sandbox", "off"])
        .env("CMS_CLAUDE_BIN", claude)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the stand-in claude fails on purpose"
    );
    let nanos: u128 = std::fs::read_to_string(stamp)
        .expect("claude was started")
        .trim()
        .parse()
        .unwrap();
    let spawned = UNIX_EPOCH + Duration::from_nanos(nanos as u64);
    spawned.duration_since(launched).unwrap_or_default()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    // Sections named on the command line run alone (`-- diff list`); none named, all run.
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| SECTIONS.contains(a))
        .collect();
    let want = |section: &str| named.is_empty() || named.contains(&section);
    let tmp = tempfile::tempdir().unwrap();
    let bench = Bench::new(tmp.path());
    let runs = 5;
    let big = if want("start") || want("diff") {
        bench.repo("big", files)
    } else {
        PathBuf::new()
    };

    if want("start") {
        // Start: `git worktree add` against cms up to claude's start, cold and pooled.
        let stamp = tmp.path().join("spawned");
        let claude = tmp.path().join("claude-stamp");
        std::fs::write(
            &claude,
            format!("#!/bin/sh\ndate +%s%N > {}\nexit 1\n", stamp.display()),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&claude).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&claude, perms).unwrap();
        let plain = tmp.path().join("plain");
        let add = median(runs, || {
            let took = timed(|| {
                bench.git(
                    &big,
                    &[
                        "worktree",
                        "add",
                        "-q",
                        "-b",
                        "plain",
                        plain.to_str().unwrap(),
                    ],
                );
            });
            bench.git(
                &big,
                &["worktree", "remove", "--force", plain.to_str().unwrap()],
            );
            bench.git(&big, &["branch", "-q", "-D", "plain"]);
            took
        });
        let cold = median(runs, || until_claude_starts(&bench, &big, &stamp, &claude));
        let pooled = median(runs, || {
            bench.run(CMS, &big, &["pool", "warm", "1"]);
            until_claude_starts(&bench, &big, &stamp, &claude)
        });
        bench.run(CMS, &big, &["pool", "drain"]);
        println!("| {files} files, median of {runs} | ms |");
        println!("| --- | ---: |");
        println!("| `git worktree add` | {:.0} |", ms(add));
        row("`cms task` until claude starts, cold", cold, add);
        row(
            "`cms task` until claude starts, from the warm pool",
            pooled,
            add,
        );
    }

    if want("diff") {
        // A task's change: cms's diff and check against git's status and diff.
        let script = tmp.path().join("edit-20.json");
        std::fs::write(
            &script,
            r#"{"turns":[{"steps":[{"bash":"for i in $(seq 0 19); do echo changed >> src/m$i/f$i.txt; done"}]}]}"#,
        )
        .unwrap();
        let out = bench
            .command(CMS, &big, &["task", "edit", "-n", "edit", "--json"])
            .env("FAKE_CLAUDE_SCRIPT", &script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let task: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let worktree = PathBuf::from(task["worktree"].as_str().unwrap());
        let git_status_and_diff = || {
            median(runs, || {
                timed(|| {
                    bench.git(&worktree, &["status", "--porcelain"]);
                    bench.git(&big, &["diff", "--name-status", "main...cms/edit"]);
                })
            })
        };
        // `cms diff` checks the protected paths as it shows the change, in one process.
        let cms_diff = || {
            median(runs, || {
                timed(|| drop(bench.run(CMS, &big, &["diff", "edit", "--stat"])))
            })
        };
        let git_side = git_status_and_diff();
        let cms_side = cms_diff();
        let two_commands = median(runs, || {
            timed(|| {
                bench.run(CMS, &big, &["diff", "edit", "--stat"]);
                bench.run(CMS, &big, &["check", "--task", "edit"]);
            })
        });
        // The same with the 20 changes left uncommitted in the worktree.
        for i in 0..20 {
            let file = worktree.join(format!("src/m{i}/f{i}.txt"));
            let mut text = std::fs::read_to_string(&file).unwrap();
            text.push_str("uncommitted\n");
            std::fs::write(&file, text).unwrap();
        }
        let git_dirty = git_status_and_diff();
        let cms_dirty = cms_diff();
        println!();
        println!("| a task that changed 20 files, median of {runs} | ms |");
        println!("| --- | ---: |");
        println!(
            "| `git status --porcelain` + `git diff --name-status` | {:.0} |",
            ms(git_side)
        );
        row(
            "`cms diff --stat` (the diff and the protected-path check)",
            cms_side,
            git_side,
        );
        row(
            "`cms diff --stat` + `cms check --task` (two commands)",
            two_commands,
            git_side,
        );
        println!(
            "| with the 20 changes uncommitted: `git status --porcelain` + `git diff --name-status` | {:.0} |",
            ms(git_dirty)
        );
        row(
            "with the 20 changes uncommitted: `cms diff --stat`",
            cms_dirty,
            git_dirty,
        );
    }

    if want("list") {
        // Many tasks: `cms list` with 200 against `git worktree list`.
        let small = bench.repo("small", 500);
        for i in 0..200 {
            bench.run(
                CMS,
                &small,
                &["task", "x", "-n", &format!("t{i}"), "--sandbox", "off"],
            );
        }
        let wt_list = median(9, || {
            timed(|| drop(bench.git(&small, &["worktree", "list"])))
        });
        let cms_list = median(9, || timed(|| drop(bench.run(CMS, &small, &["list"]))));
        println!();
        println!("| 200 tasks, median of 9 | ms |");
        println!("| --- | ---: |");
        println!("| `git worktree list` | {:.0} |", ms(wt_list));
        row("`cms list`", cms_list, wt_list);
    }

    if want("memory") {
        // The memory of a supervised task: its supervisor and keeper, claude not counted.
        let gate = tmp.path().join("gate");
        let gated = tmp.path().join("gated.json");
        std::fs::write(
            &gated,
            format!(
                r#"{{"turns":[{{"steps":[{{"bash":"until [ -e {} ]; do sleep 0.05; done"}}]}}]}}"#,
                gate.display()
            ),
        )
        .unwrap();
        let mem = bench.repo("mem", 500);
        bench
            .command(
                CMS,
                &mem,
                &["task", "-d", "x", "-n", "held", "--sandbox", "off"],
            )
            .env("FAKE_CLAUDE_SCRIPT", &gated)
            .output()
            .unwrap();
        let record = mem.join(".git/cms/tasks/held.json");
        let start = Instant::now();
        let supervisor = loop {
            let text = std::fs::read_to_string(&record).unwrap_or_default();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if !value["session_id"].is_null() {
                break value["supervisor"]["pid"].as_u64().unwrap() as u32;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the task never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let keeper: u64 = children(supervisor).into_iter().map(rss_kib).sum();
        let resident = rss_kib(supervisor) + keeper;
        std::fs::write(&gate, "").unwrap();
        bench.run(CMS, &mem, &["wait", "held"]);
        println!();
        println!(
            "Resident memory of one supervised task (supervisor and keeper): {:.1} MB",
            resident as f64 / 1024.0
        );
    }

    if want("parallel") {
        // 32 tasks at once, each with a whole transcript.
        let many = bench.repo("many", 500);
        let prompts = tmp.path().join("prompts.txt");
        std::fs::write(
            &prompts,
            (0..32)
                .map(|i| format!("task number {i}\n"))
                .collect::<String>(),
        )
        .unwrap();
        let busy = tmp.path().join("busy.json");
        std::fs::write(
            &busy,
            r#"{"turns":[{"steps":[{"text":"working"},{"bash":"echo $CMS_TASK > who.txt"},{"sleep_ms":200}]}]}"#,
        )
        .unwrap();
        let mut outcome = None;
        let wall = timed(|| {
            outcome = Some(
                bench
                    .command(
                        CMS,
                        &many,
                        &[
                            "task",
                            "--each",
                            prompts.to_str().unwrap(),
                            "--jobs",
                            "32",
                            "--json",
                            "--sandbox",
                            "off",
                        ],
                    )
                    .env("FAKE_CLAUDE_SCRIPT", &busy)
                    .output()
                    .unwrap(),
            );
        });
        let out = outcome.unwrap();
        let tasks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let completed = tasks
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] == "completed")
            .count();
        println!(
            "32 tasks at once (--jobs 32, fake claude): {completed} of 32 completed in {:.1} s",
            wall.as_secs_f64()
        );
    }

    if want("ray") {
        // A start on a Ray head on loopback against a local start, one and 8 at once.
        ray_section::section(&bench, tmp.path(), files, runs);
    }
}
