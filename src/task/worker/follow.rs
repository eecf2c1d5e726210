//! The worker's follower thread: it tells the job's log what the session does (claude's new
//! lines, the record's changes), pushes `out` at each status change, and acts on the `control`
//! ref as `cms allow`/`cms deny` and `cms abort` do locally.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::push::push_results;
use crate::git::{self, Oid};
use crate::platform::Signal;
use crate::runner::wire::{CONTROL_FILE, Control, JobRef, WireLine, job_ref};
use crate::session;
use crate::store::{PermissionAnswer, Store, TaskName, TaskRecord};
use crate::task::ask::answer_prompt;
use crate::vocab::Status;

/// How often the follower reads the transcript and the record.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often the `control` ref is looked at while a prompt waits for its answer, and otherwise.
const CONTROL_POLL_WAITING: Duration = Duration::from_secs(1);
const CONTROL_POLL: Duration = Duration::from_secs(2);

/// The follower thread's state (see the module's documentation).
pub(super) struct Follower<'a> {
    pub(super) store: Store,
    pub(super) repo_dir: PathBuf,
    pub(super) remote: &'a str,
    pub(super) job: &'a str,
    pub(super) name: TaskName,
    pub(super) done: &'a AtomicBool,
    pub(super) emit: &'a (dyn Fn(&WireLine) + Sync),
}

/// What the follower has seen and done so far.
#[derive(Default)]
struct Seen {
    log_offset: u64,
    partial: Vec<u8>,
    record: Option<(Status, Option<crate::store::PendingPermission>, f64)>,
    /// The status of the last `out` pushed.
    status: Option<Status>,
    control_oid: Option<Oid>,
    control: Control,
    next_control: Option<Instant>,
    stop_sent: bool,
    answered: BTreeSet<String>,
}

impl Follower<'_> {
    pub(super) fn run(&self) {
        let mut seen = Seen::default();
        loop {
            // Read after the flag, so the last pass sees everything the session wrote.
            let last = self.done.load(Ordering::SeqCst);
            self.tail_log(&mut seen);
            let record = self.store.load(&self.name).ok();
            if let Some(record) = &record {
                self.mirror(&mut seen, record, !last);
            }
            if last {
                return;
            }
            if let Some(record) = &record {
                self.control(&mut seen, record);
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }

    /// Says every complete line claude's transcript gained.
    fn tail_log(&self, seen: &mut Seen) {
        let Ok(mut file) = std::fs::File::open(self.store.log_path(&self.name)) else {
            return;
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(seen.log_offset)).is_err()
            || file.read_to_end(&mut bytes).is_err()
        {
            return;
        }
        seen.log_offset += bytes.len() as u64;
        seen.partial.extend_from_slice(&bytes);
        while let Some(end) = seen.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = seen.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            (self.emit)(&WireLine::Claude(line));
        }
    }

    /// Says the record when its status, prompt or cost changed, and pushes `out` when its
    /// status did (unless the session is over: the worker's last push follows). Nothing is
    /// said or pushed before claude printed its first line: a claude that never starts is the
    /// worker's error, with nothing half-made on the remote.
    fn mirror(&self, seen: &mut Seen, record: &TaskRecord, push: bool) {
        if seen.log_offset == 0 {
            return;
        }
        let key = (record.status, record.pending.clone(), record.cost_usd);
        if seen.record.as_ref() != Some(&key) {
            seen.record = Some(key);
            (self.emit)(&WireLine::Record(Box::new(record.clone())));
        }
        if !push || seen.status == Some(record.status) {
            return;
        }
        seen.status = Some(record.status);
        if let Err(err) = push_results(
            &self.store,
            &self.repo_dir,
            self.remote,
            self.job,
            record,
            None,
        ) {
            // The session goes on; the next status change or the end pushes again.
            eprintln!("cms worker: warning: could not push the task's state: {err}");
        }
    }

    /// Reads the `control` ref when it is due, and acts on what it asks.
    fn control(&self, seen: &mut Seen, record: &TaskRecord) {
        let now = Instant::now();
        if seen.next_control.is_none_or(|due| now >= due) {
            let waiting = record.status == Status::Waiting;
            seen.next_control = Some(
                now + if waiting {
                    CONTROL_POLL_WAITING
                } else {
                    CONTROL_POLL
                },
            );
            match self.read_control(seen.control_oid) {
                Ok(Some((oid, control))) => {
                    seen.control_oid = Some(oid);
                    seen.control = control;
                }
                Ok(None) => {}
                Err(err) => {
                    eprintln!("cms worker: warning: could not read the job's control: {err}")
                }
            }
        }
        if seen.control.stop && !seen.stop_sent {
            // As `cms abort` does: the supervisor (this process) stops the session gracefully.
            if let Some(supervisor) = &record.supervisor {
                seen.stop_sent = session::signal_supervisor(supervisor, Signal::Term);
            }
        }
        let Some(pending) = record
            .pending
            .as_ref()
            .filter(|p| record.status == Status::Waiting && p.answer.is_none())
        else {
            return;
        };
        if seen.answered.contains(&pending.request_id) {
            return;
        }
        let Some(answer) = seen
            .control
            .answers
            .iter()
            .find(|a| a.request_id == pending.request_id)
        else {
            return;
        };
        let answer = PermissionAnswer {
            allow: answer.allow,
            always: answer.always,
            message: answer.message.clone(),
            by: answer.by.clone(),
        };
        // As `cms allow`/`cms deny` answer: into the record, for the session to pass on.
        if answer_prompt(&self.store, &self.name, Some(&pending.request_id), answer).is_ok() {
            seen.answered.insert(pending.request_id.clone());
        }
    }

    /// The control at the remote when it is not `known` any more.
    fn read_control(&self, known: Option<Oid>) -> Result<Option<(Oid, Control)>, String> {
        let name = job_ref(self.job, JobRef::Control);
        let listed = git::remote::ls_remote(Some(&self.repo_dir), self.remote, &name)
            .map_err(|err| err.to_string())?;
        let Some((oid, _)) = listed.into_iter().find(|(_, n)| *n == name) else {
            return Ok(None);
        };
        if Some(oid) == known {
            return Ok(None);
        }
        git::remote::fetch(&self.repo_dir, self.remote, &[&format!("+{name}:{name}")])
            .map_err(|err| err.to_string())?;
        let files =
            git::remote::read_commit_files(&self.repo_dir, oid).map_err(|err| err.to_string())?;
        let text = files
            .get(CONTROL_FILE)
            .ok_or_else(|| format!("the control commit has no {CONTROL_FILE}"))?;
        let control =
            serde_json::from_slice(text).map_err(|err| format!("{CONTROL_FILE}: {err}"))?;
        Ok(Some((oid, control)))
    }
}
