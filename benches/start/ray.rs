//! The `ray` section: a task's start on a Ray cluster on this machine (`--on lab`, from
//! `cms task --detach` to the fake claude spawned on the worker) against a local start, one
//! at a time and 8 at once, on the same repository in one run, with where the remote start's
//! time goes as seen from outside cms (the job's refs on the remote, Ray's job record, the
//! job's processes, the fake claude's log).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ray_head::{RayHead, ray_head};
use super::{Bench, CMS, FAKE_CLAUDE, ms};

/// The variables the job is handed: the fake claude's log and git's identity, as the `ray_`
/// tests hand them (tests/test_ray/mod.rs).
const HANDED: &[&str] = &[
    "HOME",
    "FAKE_CLAUDE_LOG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "CMS_BOUNDARY",
    "TZ",
];

const LIMIT: Duration = Duration::from_secs(600);

struct Setup<'a> {
    bench: &'a Bench,
    head: &'a RayHead,
    repo: PathBuf,
    remote: PathBuf,
    claude_log: PathBuf,
}

/// When each mark of one remote start was seen, from the launch of `cms task`.
#[derive(Default, Clone)]
struct Marks {
    /// The job's `in` ref (spec) is on the remote: the local start and the push are done.
    pushed: Option<Duration>,
    /// Ray's record of the job says it was submitted then (its `start_time`).
    submitted: Option<Duration>,
    /// The job's entrypoint (`sh -c ... cms worker --job ID`) is running.
    entrypoint: Option<Duration>,
    /// The fake claude wrote its line.
    claude: Duration,
}

impl Setup<'_> {
    fn cms(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.bench.command(CMS, &self.repo, args);
        cmd.env("FAKE_CLAUDE_LOG", &self.claude_log)
            // The fake claude writes its log outside the worktree, as in the tests.
            .env("CMS_BOUNDARY", "off")
            .env("TZ", "UTC");
        cmd
    }

    /// The tasks the fake claude has been started for (its `--version` probes left out).
    fn claude_starts(&self) -> Vec<String> {
        std::fs::read_to_string(&self.claude_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| !v["argv"].to_string().contains("--version"))
            .filter_map(|v| v["env"]["CMS_TASK"].as_str().map(str::to_owned))
            .collect()
    }

    /// The jobs whose refs are on the remote now.
    fn jobs(&self) -> Vec<String> {
        std::fs::read_dir(self.remote.join("refs/cms/jobs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// When Ray says `job` was submitted.
    fn submitted_at(&self, job: &str) -> Option<SystemTime> {
        let mut answer = ureq::get(format!("{}/api/jobs/{job}", self.head.address))
            .call()
            .ok()?;
        let info: serde_json::Value =
            serde_json::from_str(&answer.body_mut().read_to_string().ok()?).ok()?;
        Some(UNIX_EPOCH + Duration::from_millis(info["start_time"].as_u64()?))
    }

    /// Starts `count` tasks with `args` (detached) and waits until the fake claude was
    /// started for each; returns the tasks' names and, per task, what was seen when.
    fn start(&self, args: &[&str], count: usize) -> (Vec<String>, Vec<Marks>) {
        let before: BTreeSet<String> = self.claude_starts().into_iter().collect();
        let jobs_before: BTreeSet<String> = self.jobs().into_iter().collect();
        let launched_wall = SystemTime::now();
        let launched = Instant::now();
        let mut child = self
            .cms(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // By task name: the job (`cms-<task>-<8 hex>`) and the marks.
        let mut marks: BTreeMap<String, (Option<String>, Marks, bool)> = BTreeMap::new();
        let mut exited = false;
        loop {
            let now = launched.elapsed();
            assert!(
                now < LIMIT,
                "claude was not started for every task: {args:?}"
            );
            if !exited && let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "cms {args:?} failed");
                exited = true;
            }
            for job in self.jobs() {
                if jobs_before.contains(&job) || job.len() < 13 {
                    continue;
                }
                let task = job[4..job.len() - 9].to_owned();
                let entry = marks.entry(task).or_default();
                if entry.0.is_none() {
                    entry.0 = Some(job);
                    entry.1.pushed = Some(now);
                }
            }
            for (job, mark, _) in marks.values_mut() {
                if let Some(job) = job
                    && mark.entrypoint.is_none()
                    && entrypoint_running(job)
                {
                    mark.entrypoint = Some(now);
                    mark.submitted = self
                        .submitted_at(job)
                        .and_then(|t| t.duration_since(launched_wall).ok());
                }
            }
            for name in self.claude_starts() {
                if !before.contains(&name) {
                    let entry = marks.entry(name).or_default();
                    if !entry.2 {
                        entry.1.claude = now;
                        entry.2 = true;
                    }
                }
            }
            if marks.values().filter(|m| m.2).count() >= count {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !exited {
            assert!(child.wait().unwrap().success(), "cms {args:?} failed");
        }
        marks
            .into_iter()
            .filter(|(_, m)| m.2)
            .map(|(name, (_, mark, _))| (name, mark))
            .unzip()
    }

    fn wait(&self, names: &[String]) {
        let mut args = vec!["wait"];
        args.extend(names.iter().map(String::as_str));
        let out = self.cms(&args).output().unwrap();
        assert!(
            out.status.success(),
            "cms wait: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Whether a process of this machine runs the job's entrypoint (Ray has set up its runtime
/// environment and started it).
fn entrypoint_running(job: &str) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("worker") && text.contains(job) && text.contains("--job")
        })
}

fn stats(samples: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

fn stats_row(what: &str, samples: &[Duration]) {
    let (median, min, max) = stats(samples);
    println!(
        "| {what} | {:.0} | {:.0} | {:.0} |",
        ms(median),
        ms(min),
        ms(max)
    );
}

fn part(from: Option<Duration>, to: Option<Duration>) -> Option<Duration> {
    Some(to?.saturating_sub(from?))
}

/// One step of a remote start: its length, when both its ends were seen.
type Step = fn(&Marks) -> Option<Duration>;

/// The breakdown rows of remote starts: each step's median, min and max over the runs that
/// saw both its ends.
fn breakdown(marks: &[Marks]) {
    let steps: [(&str, Step); 4] = [
        (
            "launch to the spec on the remote (local start, push)",
            |m| m.pushed,
        ),
        (
            "to the job submitted (package hashed/uploaded, submit)",
            |m| part(m.pushed, m.submitted),
        ),
        (
            "to the entrypoint running (Ray: supervisor, runtime env)",
            |m| part(m.submitted, m.entrypoint),
        ),
        (
            "to claude spawned (worker: fetch, worktree, session)",
            |m| part(m.entrypoint, Some(m.claude)),
        ),
    ];
    for (what, step) in steps {
        let samples: Vec<Duration> = marks.iter().filter_map(step).collect();
        if !samples.is_empty() {
            stats_row(&format!("&nbsp;&nbsp;{what}"), &samples);
        }
    }
}

pub fn section(bench: &Bench, dir: &Path, files: usize, runs: usize) {
    let Some(head) = ray_head("the ray section") else {
        return;
    };
    let repo = bench.repo("ray", files);
    let remote = dir.join("remote.git");
    bench.git(dir, &["init", "-q", "--bare", remote.to_str().unwrap()]);
    let names: Vec<String> = HANDED.iter().map(|n| format!("\"{n}\"")).collect();
    let config = bench.home.join(".config/cms/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        head.runner_toml(
            "lab",
            &remote,
            &format!(
                "env = [{}]\ncpus = 0.1\nclaude = \"{FAKE_CLAUDE}\"",
                names.join(", ")
            ),
        ),
    )
    .unwrap();
    let setup = Setup {
        bench,
        head,
        repo,
        remote,
        claude_log: dir.join("claude.log"),
    };
    let one = |name: &str, remote: bool| {
        let mut args = vec!["task", "x", "-n", name, "--detach"];
        // The worker always runs the session in the sandbox: so does the local task.
        args.extend(if remote {
            ["--on", "lab"]
        } else {
            ["--sandbox", "required"]
        });
        let (names, marks) = setup.start(&args, 1);
        setup.wait(&names);
        marks.into_iter().next().unwrap()
    };
    let local: Vec<Duration> = (0..runs)
        .map(|i| one(&format!("local{i}"), false).claude)
        .collect();
    // The first remote start uploads cms to the cluster; the others find it there.
    let cold = one("ray0", true);
    let warm: Vec<Marks> = (1..=runs).map(|i| one(&format!("ray{i}"), true)).collect();
    let many = |prefix: &str, remote: bool| {
        let prompts = dir.join(format!("{prefix}.txt"));
        std::fs::write(
            &prompts,
            (0..8)
                .map(|i| format!("{prefix} {i}\n"))
                .collect::<String>(),
        )
        .unwrap();
        let mut args = vec!["task", "--each", prompts.to_str().unwrap(), "--detach"];
        args.extend(if remote {
            ["--on", "lab"]
        } else {
            ["--sandbox", "required"]
        });
        let (names, marks) = setup.start(&args, 8);
        setup.wait(&names);
        marks
    };
    let local8 = many("local batch", false);
    let remote8 = many("ray batch", true);
    let claude = |m: &[Marks]| m.iter().map(|m| m.claude).collect::<Vec<_>>();
    println!();
    println!(
        "| {files} files, launch of `cms task --detach` until claude is spawned | median ms | min | max |"
    );
    println!("| --- | ---: | ---: | ---: |");
    stats_row(
        &format!("local, `--sandbox required` ({runs} runs)"),
        &local,
    );
    stats_row("`--on lab`, first (uploads cms)", &[cold.claude]);
    breakdown(std::slice::from_ref(&cold));
    stats_row(
        &format!("`--on lab`, cms already on the cluster ({runs} runs)"),
        &claude(&warm),
    );
    breakdown(&warm);
    stats_row("8 at once (`--each`), local, each task", &claude(&local8));
    stats_row(
        "8 at once (`--each`), `--on lab`, each task",
        &claude(&remote8),
    );
    breakdown(&remote8);
    let exe = std::fs::metadata(CMS).map(|m| m.len()).unwrap_or(0);
    println!(
        "\ncms binary uploaded: {:.0} MB; Ray head {}",
        exe as f64 / 1e6,
        head.address
    );
}
