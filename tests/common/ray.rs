//! A real Ray head for the `ray_` tests: one per test process, started on first use, bound to
//! loopback only, on ports picked free, stopped when the test process ends however it ends.
//!
//! `.ci/run` installs `ray[default]` into `target/ray/venv` and names its `ray` in
//! `CMS_RAY_BIN`; without that variable the tests look in that folder. Without Ray a test is
//! skipped with the reason printed, except in CI, where it fails.
//!
//! The head is `ray start --head --block`, run by a small `sh` watchdog whose stdin is a pipe
//! from this process: when the test process ends (returns, panics, is killed with SIGKILL) the
//! pipe closes, the watchdog's `read` returns and it sends the head SIGTERM, on which
//! `ray start --block` stops every process of the cluster, jobs included. No `unsafe`, no
//! signal-on-parent-death: the lib's unit tests include this file too
//! (`src/runner/ray/tests.rs`).
//!
//! Self-contained (std and the crate's own dependencies only) for that reason.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The release `.ci/run` installs; keep in step with it.
pub const PINNED_VERSION: &str = "2.60.0";

/// The head's logical CPUs: jobs ask for 1 by default and some tests run 8 at once; they are
/// light (a fake claude), so more logical CPUs than cores is fine.
pub const CPUS: u32 = 8;

/// How long the head may take to answer after `ray start` (about 5 s on an idle machine).
const START_LIMIT: Duration = Duration::from_secs(180);

/// How many ports the head's workers get (one per worker process: job supervisors, jobs'
/// drivers).
const WORKER_PORTS: u16 = 64;

/// The running head.
pub struct RayHead {
    /// The Jobs API, `http://127.0.0.1:PORT`.
    pub address: String,
    /// The head's log (the output of `ray start`), for a test's failure message.
    pub log: PathBuf,
    /// Closing it (at the end of the process) stops the head.
    _watchdog: Mutex<ChildStdin>,
}

static HEAD: OnceLock<Result<RayHead, String>> = OnceLock::new();

/// Prints past the test harness's output capture, so the line shows even for passing tests.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The folder `.ci/run` installs Ray into.
pub fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ray/venv")
}

fn locate_ray() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("CMS_RAY_BIN").filter(|v| !v.is_empty()) {
        let bin = std::path::absolute(PathBuf::from(bin)).map_err(|e| e.to_string())?;
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("CMS_RAY_BIN={} does not exist", bin.display()))
        };
    }
    let bin = install_dir().join("bin/ray");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "CMS_RAY_BIN is unset and {} does not exist",
            bin.display()
        ))
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The test process's Ray head, started on first use; `None` (with the reason printed) when Ray
/// is not installed outside CI. In CI a missing Ray, or a head that does not start, fails the
/// test.
pub fn ray_head(test: &str) -> Option<&'static RayHead> {
    let ray = match locate_ray() {
        Ok(ray) => ray,
        Err(why) if !in_ci() => {
            say(&format!(
                "ray tests: Ray not available ({why}); skipped {test}. Run .ci/run once (it \
                 installs ray[default]=={PINNED_VERSION} into {}) or set CMS_RAY_BIN",
                install_dir().display()
            ));
            return None;
        }
        Err(why) => panic!("Ray not available in CI ({why}); .ci/run installs it"),
    };
    match HEAD.get_or_init(|| start(&ray)) {
        Ok(head) => Some(head),
        Err(why) => panic!("the Ray head did not start: {why}"),
    }
}

/// The `ray` executable the head was started with, for a test that acts as an operator would.
pub fn ray_bin() -> PathBuf {
    locate_ray().expect("the head started, so ray is there")
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `count` consecutive free ports below the kernel's ephemeral range (where the single ports
/// come from), starting somewhere this process's id picks so two runs rarely try the same.
fn free_port_range(count: u16) -> (u16, u16) {
    let slots = (32000 - 20000) / count;
    let first_slot = std::process::id() as u16 % slots;
    for i in 0..slots {
        let base = 20000 + ((first_slot + i) % slots) * count;
        let all_free = (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return (base, base + count - 1);
        }
    }
    panic!("no {count} consecutive free ports between 20000 and 32000");
}

/// Removes the folders of heads whose test process is gone (a killed run cannot clean up).
fn remove_stale_dirs(parent: &Path) {
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("cms-ray-")
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start(ray: &Path) -> Result<RayHead, String> {
    // Short: Ray's unix sockets live under it, and a socket's path has at most 107 bytes.
    let parent = std::env::temp_dir();
    remove_stale_dirs(&parent);
    let temp_dir = parent.join(format!("cms-ray-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temp_dir);
    std::fs::create_dir_all(&temp_dir).map_err(|e| e.to_string())?;
    let log = temp_dir.join("head.log");
    let (min_worker, max_worker) = free_port_range(WORKER_PORTS);
    let dashboard = free_port();
    let args: Vec<String> = [
        "start",
        "--head",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--dashboard-host",
        "127.0.0.1",
        "--disable-usage-stats",
        "--include-dashboard",
        "true",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--port={}", free_port()),
        format!("--dashboard-port={dashboard}"),
        format!("--ray-client-server-port={}", free_port()),
        format!("--dashboard-agent-listen-port={}", free_port()),
        format!("--min-worker-port={min_worker}"),
        format!("--max-worker-port={max_worker}"),
        format!("--num-cpus={CPUS}"),
        // The least Ray takes: the tests move no objects, and a default of 30% of memory
        // would be a lot on a small CI machine.
        format!("--object-store-memory={}", 128 * 1024 * 1024),
        format!("--temp-dir={}", temp_dir.display()),
    ])
    .collect();
    // The watchdog: the head in the background, then wait for stdin to close (this process
    // ending) and stop it. `exec`less on purpose: the shell must outlive `read`.
    let script = r#"ray="$1"; shift; "$ray" "$@" </dev/null & pid=$!; read -r _; kill -TERM "$pid" 2>/dev/null; wait "$pid""#;
    let output = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("ray-head")
        .arg(ray)
        .args(&args)
        .current_dir(&temp_dir)
        // With it unset, Ray binds some of its servers to the machine's address; with it,
        // every one binds the node address, 127.0.0.1.
        .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        .env("RAY_USAGE_STATS_ENABLED", "0")
        // On SIGTERM, stop at once: by default Ray drains the node for 30 s first.
        .env("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
        .stdin(Stdio::piped())
        .stdout(output.try_clone().map_err(|e| e.to_string())?)
        .stderr(output)
        .spawn()
        .map_err(|e| format!("cannot run sh for {}: {e}", ray.display()))?;
    let watchdog = child.stdin.take().expect("stdin is piped");
    // Nobody waits for the watchdog: it ends after this process does, and init reaps it.
    drop(child);
    let address = format!("http://127.0.0.1:{dashboard}");
    let started = Instant::now();
    say(&format!(
        "ray tests: starting a Ray head at {address} (log {})",
        log.display()
    ));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    loop {
        let answer = agent.get(format!("{address}/api/version")).call();
        if answer.is_ok_and(|r| r.status() == 200) {
            break;
        }
        if started.elapsed() > START_LIMIT {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "no answer at {address} after {START_LIMIT:?}; its log ends:\n{}",
                tail.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    say(&format!(
        "ray tests: the Ray head answered after {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(RayHead {
        address,
        log,
        _watchdog: Mutex::new(watchdog),
    })
}

impl RayHead {
    /// A `[runners.NAME]` table for the user's configuration (`TestEnv::user_config`) pointing
    /// at this head, with `remote` as its git remote; `extra` lines (`env = [...]`, `claude =
    /// "..."`, `cms = "..."`) are added to the table as they are.
    pub fn runner_toml(&self, name: &str, remote: &Path, extra: &str) -> String {
        let mut text = format!(
            "[runners.{name}]\nkind = \"ray\"\naddress = \"{}\"\nremote = \"{}\"\n",
            self.address,
            remote.display()
        );
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(line.trim());
            text.push('\n');
        }
        text
    }
}

impl std::fmt::Display for RayHead {
    /// The head for a failure message: where it answers and where its log is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ray head {} (log {})", self.address, self.log.display())
    }
}
