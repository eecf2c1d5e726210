//! What the checks around a session cost on a big repository: `Baseline::capture` (the user's
//! checkout with its ignored files, refs, git metadata, quiet tasks) against one plain
//! `git status`, on the same generated repository in one run. `cargo bench --bench
//! fingerprint [-- FILES]` (default 100,000 files, a tenth of them git-ignored build output).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cms::bench::{Baseline, Surroundings};

fn git(dir: &Path, args: &[&str]) {
    // No background `gc --auto`: the explicit `git gc` below would collide with it.
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "gc.auto=0"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed");
}

/// The median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[runs / 2]
}

fn main() {
    let files: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join(".gitignore"), "target/\n.env\n").unwrap();
    std::fs::write(repo.join(".env"), "SECRET=1\n").unwrap();
    let ignored = files / 10;
    for i in 0..files {
        let folder = if i < ignored {
            repo.join(format!("target/m{}", i % 100))
        } else {
            repo.join(format!("src/m{}", i % 500))
        };
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("f{i}.txt")), format!("line {i}\n")).unwrap();
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    // A repository this size comes from a clone, so its objects are packed; a few loose ones
    // are the user's recent work.
    git(&repo, &["gc", "-q"]);
    std::fs::write(repo.join("src/m0/recent.txt"), "recent\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "recent"]);
    // A few dirty files, as a user at work has.
    for i in 0..20 {
        std::fs::write(repo.join(format!("src/m{i}/dirty{i}.txt")), "wip\n").unwrap();
    }
    let task = dir.path().join("task");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "cms/bench",
            task.to_str().unwrap(),
        ],
    );
    let common = repo.join(".git");
    let runs = 9;
    let status = median(runs, || {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["status", "--porcelain"])
            .output()
            .unwrap();
        assert!(out.status.success());
    });
    // The one git command the checkout fingerprint runs, to tell git's share from cms's.
    let status_ignored = median(runs, || {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args([
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--ignored=traditional",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    });
    let capture = median(runs, || {
        Baseline::capture(Surroundings {
            common_dir: common.clone(),
            worktree: task.clone(),
            branch_ref: "refs/heads/cms/bench".to_owned(),
            checkouts: vec![repo.clone()],
            quiet_tasks: Vec::new(),
            object_backup: Some(dir.path().join("object-backup")),
            // Unsandboxed: the capture then skips the reflogs a sandboxed one notes.
            sandbox_deny: None,
        })
        .expect("capture");
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| {files} files ({ignored} ignored), median of {runs} | ms |");
    println!("| --- | ---: |");
    println!("| `git status --porcelain` | {:.0} |", ms(status));
    println!(
        "| `git status --porcelain --untracked-files=all --ignored=traditional` (git's part of the fingerprint) | {:.0} ({:.2}x) |",
        ms(status_ignored),
        ms(status_ignored) / ms(status)
    );
    println!(
        "| fingerprint around a session (`Baseline::capture`) | {:.0} ({:.2}x) |",
        ms(capture),
        ms(capture) / ms(status)
    );
}
