//! Naming processes without ever hitting a reused pid: what `/proc` says about a pid, and
//! pidfds, which pin one process so that a signal sent through them can only reach it.
//!
//! A pid is only a number: once its process has been reaped, the kernel may give it to an
//! unrelated process, so "read /proc, then kill(pid)" can hit a stranger. [`pin`] closes that
//! gap: it opens a pidfd first and checks the process's identity afterwards. If the pinned
//! process still exists when the check reads `/proc/<pid>`, the pid still belongs to it (a
//! pid is freed only when its process is reaped), so the check read the pinned process. If it
//! was reaped in between, the check may have read a newcomer, but every signal sent through the
//! pidfd then fails with `ESRCH` instead of reaching the newcomer. Either way nothing but the
//! checked process is ever signalled.

#[cfg(target_os = "linux")]
use std::io;
#[cfg(target_os = "linux")]
use std::time::Duration;

#[cfg(target_os = "linux")]
use crate::platform::Signal;
#[cfg(target_os = "linux")]
pub use crate::platform::process::Pidfd as Pinned;

/// The fields of `/proc/<pid>/stat` cms uses.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// Clock ticks since boot: with the pid, it names one process for the life of the system.
    pub start_time: u64,
    /// Exited but not yet reaped: nothing left to stop.
    pub zombie: bool,
}

/// Reads `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so fields
/// are counted from the last `)`.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... starttime is field 22 of the line, index 19 here.
    Some(ProcStat {
        zombie: matches!(*fields.first()?, "Z" | "X"),
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Every pid `/proc` lists (processes, not threads).
#[cfg(target_os = "linux")]
pub fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Whether the process's initial environment holds exactly the entry `entry` (`KEY=value`).
/// Processes of other users, and zombies, have no readable environment: false.
#[cfg(target_os = "linux")]
pub fn environ_has(pid: u32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|bytes| bytes.split(|b| *b == 0).any(|e| e == entry.as_bytes()))
}

/// Opens a pidfd on `pid` and returns it if `is_it(pid)`, evaluated after the pidfd exists,
/// says this is the process meant (see the module docs for why that order is safe).
/// `Ok(None)`: no such process, or not the one meant. `Err` with `ENOSYS`: the kernel has no
/// pidfds (before Linux 5.3).
#[cfg(target_os = "linux")]
pub fn pin(pid: u32, is_it: impl FnOnce(u32) -> bool) -> io::Result<Option<Pinned>> {
    let Some(pinned) = Pinned::open(pid)? else {
        return Ok(None);
    };
    Ok(is_it(pid).then_some(pinned))
}

/// Kills every process whose environment carries `entry` (a session's token), except this
/// one, and waits a little for them to go. Repeats while new ones appear (a process forking
/// while it is killed), a bounded number of times. Returns how many were killed.
#[cfg(target_os = "linux")]
pub fn kill_tagged(entry: &str) -> usize {
    const ROUNDS: usize = 5;
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..ROUNDS {
        let victims: Vec<Pinned> = all_pids()
            .into_iter()
            .filter(|pid| *pid != me && environ_has(*pid, entry))
            .filter_map(|pid| pin(pid, |pid| environ_has(pid, entry)).ok().flatten())
            .filter(|pinned| pinned.signal(Signal::Kill))
            .collect();
        if victims.is_empty() {
            break;
        }
        killed += victims.len();
        // A killed process keeps its environment readable until it has exited.
        for victim in &victims {
            victim.wait_exit(Duration::from_secs(2));
        }
    }
    killed
}

/// Without pidfds no process can be signalled safely by pid, so nothing is killed.
#[cfg(not(target_os = "linux"))]
pub fn kill_tagged(_entry: &str) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{Signal, environ_has, kill_tagged, parse_stat, pin, stat};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    fn sleeper() -> std::process::Child {
        Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.ppid, stat.start_time, stat.zombie), (7, 12345, false));
        assert!(parse_stat("42 (broken").is_none());
    }

    #[test]
    fn a_pinned_process_is_signalled_only_when_its_identity_checks_out() {
        let mut child = sleeper();
        let pid = child.id();
        let start = stat(pid).unwrap().start_time;
        // A check that fails (a different start time: a reused pid) pins nothing.
        assert!(
            pin(pid, |p| stat(p).is_some_and(|s| s.start_time == start + 1))
                .unwrap()
                .is_none()
        );
        assert!(child.try_wait().unwrap().is_none(), "a failed check killed");
        let pinned = pin(pid, |p| stat(p).is_some_and(|s| s.start_time == start))
            .unwrap()
            .expect("the check passes for the process itself");
        assert!(pinned.signal(Signal::Kill));
        assert!(pinned.wait_exit(Duration::from_secs(20)));
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::Kill.raw())
        );
        // Reaped: the pidfd names a process that no longer exists, so nothing is signalled,
        // whoever has the pid now.
        assert!(!pinned.signal(Signal::Kill));
    }

    #[test]
    fn only_processes_carrying_the_token_are_killed_by_it() {
        let token = format!("CMS_TEST_TOKEN={}", std::process::id());
        let mut tagged = Command::new("sleep")
            .arg("1000")
            .env("CMS_TEST_TOKEN", std::process::id().to_string())
            .spawn()
            .unwrap();
        let mut other = sleeper();
        // The environment of a just-forked child may still be its parent's until it execs.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !environ_has(tagged.id(), &token) {
            assert!(std::time::Instant::now() < deadline, "never exec'd");
            std::thread::yield_now();
        }
        assert_eq!(kill_tagged(&token), 1);
        let status = tagged.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::Kill.raw())
        );
        assert!(
            other.try_wait().unwrap().is_none(),
            "an untagged process was killed"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
