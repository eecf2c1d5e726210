//! The keeper: the small process between the supervisor and claude that makes sure nothing a
//! session started outlives it (Linux; `cms keeper`, hidden, runs it).
//!
//! It makes itself a child subreaper, so every process the session starts stays its
//! descendant however it detaches (setsid, nohup, double fork, bwrap's PID namespace): an
//! orphan is adopted by the keeper instead of init. It starts claude with its own stdio
//! (the supervisor's pipes, passed straight through) and waits for one of three things:
//!
//! - claude exits: the session is over;
//! - the lifeline closes: the supervisor dropped its end to kill the session, or died (a
//!   pipe's last writer closing is the one death notice that cannot be missed or misrouted;
//!   `PR_SET_PDEATHSIG` fires on the death of the parent *thread*);
//! - SIGTERM, SIGINT or SIGHUP reach it.
//!
//! Then it SIGKILLs every descendant, reaps them all, and exits as claude did: the same exit
//! code, or the same signal raised on itself, so the supervisor tells a crash from a kill as
//! if it had run claude itself.
//!
//! For an interactive session (`cms attach`) the keeper shares the terminal's foreground
//! process group with cms and claude, so the terminal's Ctrl-C and Ctrl-\ reach it too: they
//! are claude's to handle, and the keeper ignores them. SIGUSR1 is then the supervisor's way
//! to interrupt claude: the keeper passes it on to claude as SIGINT.

#[cfg(target_os = "linux")]
pub use linux::run;

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{HashMap, HashSet};
    use std::ffi::OsString;
    use std::io;
    use std::os::fd::RawFd;
    use std::process::{Command, ExitStatus};

    use crate::platform::fds::{self, Lifeline};
    use crate::platform::signals::SignalFd;
    use crate::platform::{Signal, process, spawn};
    use crate::session::pids::{self, ProcStat};

    /// The signals that ask the keeper to end the session now, plus SIGCHLD. Blocked and read
    /// from a signalfd, so none is lost between two polls.
    const SIGNALS: [Signal; 6] = [
        Signal::Chld,
        Signal::Term,
        Signal::Int,
        Signal::Hup,
        Signal::Quit,
        Signal::Usr1,
    ];

    /// The signals that end the session: SIGINT only when no terminal user shares the
    /// keeper's process group (see the module docs).
    fn ends_session(signal: i32, interactive: bool) -> bool {
        match Signal::from_raw(signal) {
            Some(Signal::Term | Signal::Hup) => true,
            Some(Signal::Int) => !interactive,
            _ => false,
        }
    }

    /// Runs `program` to its end as described in the module docs and returns its exit status.
    /// The caller should then exit the same way ([`exit_like`](super::exit_like)).
    pub fn run(
        lifeline: RawFd,
        program: &OsString,
        args: &[OsString],
        interactive: bool,
    ) -> io::Result<ExitStatus> {
        process::become_subreaper()?;
        // claude and the agent's tools must not hold the lifeline.
        let lifeline = Lifeline::adopt(lifeline)?;
        let signals = SignalFd::block(&SIGNALS)?;
        let keeper = std::process::id();
        let claude = spawn_ready(program, args, keeper)?;
        // The keeper's own stdin and stdout are claude's pipes; holding them would keep the
        // supervisor from seeing claude's output end. stderr stays, for the keeper's own errors.
        fds::release_stdio();
        let mut status = None;
        loop {
            let (lifeline_ready, signalled) = match fds::wait_readable(&lifeline, &signals) {
                Ok(ready) => ready,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if lifeline_ready && lifeline.closed() {
                break;
            }
            if signalled {
                let received = signals.drain();
                let stop = received.iter().any(|s| ends_session(*s, interactive));
                reap_ready(claude, &mut status);
                if status.is_none() && received.contains(&Signal::Usr1.raw()) {
                    // Our own child, not reaped yet (status is none), so its pid cannot name
                    // anyone else.
                    process::kill(claude, Signal::Int);
                }
                if stop || status.is_some() {
                    break;
                }
            }
        }
        end_everything(claude, &mut status);
        Ok(std::os::unix::process::ExitStatusExt::from_raw(
            status.unwrap_or(Signal::Kill.raw()),
        ))
    }

    /// The descriptor the command inside the boundary says it got there on.
    const READY_FD: RawFd = 3;

    /// How many times a boundary whose set-up failed is tried again.
    const BOUNDARY_ATTEMPTS: u32 = 3;

    /// Starts `program` as claude's parent and returns its pid. When `program` is the outer
    /// boundary's bubblewrap, its set-up can fail through no fault of the session: it binds
    /// single git files (refs, the index) read-only, and a parallel `git commit` or merge that
    /// renames one over while bubblewrap mounts it fails the mount. So the command inside the
    /// boundary first says it got there (a byte on a pipe, from a shell that then execs
    /// claude); a bubblewrap that exits without saying so never started claude, read no input
    /// and wrote no output, and is reaped and started again.
    fn spawn_ready(program: &OsString, args: &[OsString], keeper: u32) -> io::Result<u32> {
        let boundary = std::path::Path::new(program)
            .file_name()
            .is_some_and(|name| name == "bwrap")
            && args.iter().any(|a| a == "--");
        if !boundary {
            return spawn_once(program, args, keeper, None);
        }
        let mut attempt = 1;
        loop {
            let (reader, writer) = io::pipe()?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&writer);
            // bwrap's options end at the first `--`; the shell goes right after it.
            let split = args.iter().position(|a| a == "--").expect("checked above") + 1;
            let mut inner: Vec<OsString> = args[..split].to_vec();
            inner.extend([
                "sh".into(),
                "-c".into(),
                format!("printf . >&{READY_FD} && exec \"$@\" {READY_FD}>&-").into(),
                "sh".into(),
            ]);
            inner.extend(args[split..].iter().cloned());
            let pid = spawn_once(program, &inner, keeper, Some(fd))?;
            drop(writer);
            if got_there(reader) || attempt == BOUNDARY_ATTEMPTS {
                return Ok(pid);
            }
            attempt += 1;
            // Our own child, which has exited or is exiting.
            process::reap(pid);
        }
    }

    /// Whether the command inside the boundary wrote its byte before the pipe closed.
    fn got_there(reader: io::PipeReader) -> bool {
        let mut byte = [0u8; 1];
        let mut reader = reader;
        loop {
            match io::Read::read(&mut reader, &mut byte) {
                Ok(n) => return n == 1,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Spawns `program` as the keeper's child, dying with it; `keep_fd` is open in it as
    /// [`READY_FD`].
    fn spawn_once(
        program: &OsString,
        args: &[OsString],
        keeper: u32,
        keep_fd: Option<RawFd>,
    ) -> io::Result<u32> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        // claude dies with the keeper. The ready descriptor goes at a fixed, single-digit
        // number: sh's redirections take no other.
        spawn::as_keeper_child(&mut cmd, keeper, keep_fd, READY_FD);
        let child = cmd.spawn()?;
        Ok(child.id())
    }

    /// Reaps every child that has exited, noting claude's status.
    fn reap_ready(claude: u32, status: &mut Option<i32>) {
        while let Some((pid, raw)) = process::reap_any_ended() {
            if pid == claude {
                *status = Some(raw);
            }
        }
    }

    /// Kills every descendant and reaps until the keeper has no child left. Orphans of killed
    /// processes are adopted by the keeper (it is their subreaper), so each reaping round walks
    /// the tree again and kills what has appeared.
    fn end_everything(claude: u32, status: &mut Option<i32>) {
        loop {
            kill_descendants();
            let (pid, raw) = match process::reap_any() {
                Ok(reaped) => reaped,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // ECHILD: nobody left.
                Err(_) => return,
            };
            if pid == claude {
                *status = Some(raw);
            }
            reap_ready(claude, status);
        }
    }

    /// SIGKILLs every process below the keeper, all at once (so a forking process has no
    /// parent left to restart it).
    ///
    /// Each pid comes from one snapshot of `/proc` and is signalled through a pidfd only if,
    /// once pinned, it still has the start time it had in the snapshot and a parent in the
    /// tree (see [`pids::pin`] for why that cannot hit a reused pid). Without pidfds only the
    /// keeper's own children are signalled with kill(2): a child cannot be reaped, so its pid
    /// cannot be reused, by anyone but the keeper, which is not reaping while it does this;
    /// the grandchildren become its children as their parents die.
    fn kill_descendants() {
        let keeper = std::process::id();
        let table: HashMap<u32, ProcStat> = pids::all_pids()
            .into_iter()
            .filter_map(|pid| Some((pid, pids::stat(pid)?)))
            .collect();
        let tree = descendants(keeper, &table);
        let mut members: HashSet<u32> = tree.iter().copied().collect();
        members.insert(keeper);
        for pid in tree {
            let seen = table[&pid];
            if seen.zombie {
                continue;
            }
            let same = |pid: u32| {
                pids::stat(pid).is_some_and(|now| {
                    now.start_time == seen.start_time && members.contains(&now.ppid)
                })
            };
            match pids::pin(pid, same) {
                Ok(Some(pinned)) => {
                    pinned.signal(Signal::Kill);
                }
                Ok(None) => {}
                Err(_) if seen.ppid == keeper => {
                    // An unreaped child of ours (see above).
                    process::kill(pid, Signal::Kill);
                }
                Err(_) => {}
            }
        }
    }

    /// Every pid below `root` in a snapshot, parents before children.
    fn descendants(root: u32, table: &HashMap<u32, ProcStat>) -> Vec<u32> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, stat) in table {
            children.entry(stat.ppid).or_default().push(*pid);
        }
        let mut out = Vec::new();
        let mut queue = vec![root];
        while let Some(parent) = queue.pop() {
            for child in children.get(&parent).into_iter().flatten() {
                if *child != root && !out.contains(child) {
                    out.push(*child);
                    queue.push(*child);
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::{ProcStat, descendants};
        use std::collections::HashMap;

        fn stat(ppid: u32) -> ProcStat {
            ProcStat {
                ppid,
                start_time: 1,
                zombie: false,
            }
        }

        #[test]
        fn descendants_are_found_at_any_depth_and_only_below_the_root() {
            let table: HashMap<u32, ProcStat> = [
                (10, stat(1)),
                (11, stat(10)),
                (12, stat(11)),
                (13, stat(12)),
                (20, stat(1)),
                (21, stat(20)),
            ]
            .into_iter()
            .collect();
            let mut found = descendants(10, &table);
            found.sort_unstable();
            assert_eq!(found, [11, 12, 13]);
            assert!(descendants(13, &table).is_empty());
        }
    }
}

/// Exits this process the way `status` says its child ended: the same code, or the same
/// signal raised on itself (with core dumps off: the child's crash is not the keeper's).
pub fn exit_like(status: std::process::ExitStatus) -> ! {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        crate::platform::signals::die_by(signal);
    }
    std::process::exit(status.code().unwrap_or(1));
}
