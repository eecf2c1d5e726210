//! Following a remote task's job while it runs: its logs carry the session's stream-json lines
//! (kept in the local transcript, read into the ledger and shown through the observer, as a
//! local session's stdout is) and the worker's record (a permission prompt makes the task
//! `waiting` here); answers and stop requests go back through the remote's `control` ref.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Submitted;
use crate::runner::{ray, wire};
use crate::session::protocol::{Event, SystemEvent};
use crate::session::{Ledger, StopReason};
use crate::store::{PendingPermission, TaskRecord};
use crate::task::ask::OnPrompt;
use crate::vocab::Status;
use crate::workspace::Workspace;

/// How often the job's logs and status are read.
const POLL: Duration = Duration::from_millis(400);
/// How long a stop request waits for the worker to stop its session and push what it has,
/// before the job is stopped through Ray (which kills the worker's processes).
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long the Jobs API may be unreachable before the task is given up as interrupted (the
/// job is then stopped if it can be; the worker pushes what it has).
const HEAD_PATIENCE: Duration = Duration::from_secs(600);
/// Beyond the task's own time limit (which the worker enforces), how long this side waits
/// before it stops the job itself.
const LIMIT_GRACE: Duration = Duration::from_secs(120);

/// How following a job ended.
pub(super) struct Followed {
    /// The worker's last word (`{"end": ...}`), if it got to say it.
    pub end: Option<wire::End>,
    /// Why the worker itself failed (`{"error": ...}`).
    pub worker_error: Option<String>,
    /// The job's state when following stopped, if the API answered.
    pub job: Option<ray::JobStatus>,
    /// Whether the user asked the task to stop.
    pub stopped: bool,
    /// Why following gave up on the job (the API unreachable for too long).
    pub gave_up: Option<String>,
    pub ledger: Ledger,
    pub elapsed: Duration,
}

pub(super) async fn follow(
    ws: &Workspace,
    record: &TaskRecord,
    job: &Submitted,
    mut stop: mpsc::UnboundedReceiver<StopReason>,
    mut on_event: impl FnMut(&Event, &Ledger),
    on_prompt: OnPrompt,
    notify: Option<Vec<String>>,
) -> Followed {
    let clock = Instant::now();
    let name = record.name.clone();
    let mut ledger = Ledger::resume(record.cost_usd, record.turns, record.tools_used.clone());
    ledger.start_process();
    let mut transcript = ws.store.open_log(&name).ok();
    let mut control = wire::Control::default();
    let mut offset = 0usize;
    let mut stop_since: Option<Instant> = None;
    let mut job_stopped = false;
    let mut unreachable_since: Option<Instant> = None;
    let mut followed = Followed {
        end: None,
        worker_error: None,
        job: None,
        stopped: false,
        gave_up: None,
        ledger: Ledger::default(),
        elapsed: Duration::ZERO,
    };
    let time_limit = record.safety.limits.map(|l| {
        l.max_duration
            .saturating_sub(Duration::from_millis(record.duration_ms))
    });
    let client = Arc::new(job.client.clone());
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown_pending: Option<String> = None;
    // The live turn and cost as the record has them, so `list` and `show` follow the task.
    let mut shown = (record.turns, record.cost_usd);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(_) = stop.recv() => {
                followed.stopped = true;
                if stop_since.is_none() {
                    stop_since = Some(Instant::now());
                    control.stop = true;
                    push_control(ws, job, &control).await;
                } else if !job_stopped {
                    // A second stop request: stop the job at once.
                    job_stopped = stop_job(&client, &job.job).await;
                }
                continue;
            }
        }
        // The logs first, then the status: a job seen ended has all its lines in the log.
        let status = blocking(&client, {
            let id = job.job.clone();
            move |c| c.status(&id)
        })
        .await;
        let logs = blocking(&client, {
            let id = job.job.clone();
            move |c| c.logs(&id)
        })
        .await;
        match (&status, &logs) {
            (Ok(_), Ok(_)) => unreachable_since = None,
            _ => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= HEAD_PATIENCE {
                    let why = status.err().or(logs.err());
                    followed.gave_up = Some(format!(
                        "the runner's Jobs API at {} did not answer for {}s: {}",
                        job.remote.address,
                        HEAD_PATIENCE.as_secs(),
                        why.unwrap_or_default()
                    ));
                    stop_job(&client, &job.job).await;
                    break;
                }
                continue;
            }
        }
        let (Ok(status), Ok(text)) = (status, logs) else {
            unreachable!("both answered")
        };
        // Only whole lines: the last one may still be being written.
        let complete = text
            .get(offset..)
            .and_then(|rest| rest.rfind('\n').map(|i| i + 1));
        if let Some(len) = complete {
            let new = &text[offset..offset + len];
            offset += len;
            for line in new.lines() {
                match wire::parse_line(line) {
                    Some(wire::WireLine::Claude(raw)) => {
                        if let Some(file) = transcript.as_mut() {
                            let _ = writeln!(file, "{raw}");
                        }
                        let event = Event::parse(&raw);
                        ledger.observe(&event);
                        // As a local session: the session is on record as soon as it is known.
                        if let Event::System(SystemEvent::Init(init)) = &event {
                            let _ = ws.store.update(&name, |r| {
                                r.session_id = Some(init.session_id.clone());
                                r.model = r.model.clone().or(init.model.clone());
                            });
                        }
                        on_event(&event, &ledger);
                    }
                    Some(wire::WireLine::Record(worker)) => {
                        mirror(ws, &name, &worker, &on_prompt, &mut shown_pending, &notify);
                    }
                    Some(wire::WireLine::End(end)) => followed.end = Some(end),
                    Some(wire::WireLine::Error(error)) => followed.worker_error = Some(error),
                    Some(wire::WireLine::Pushed(_)) | None => {}
                }
            }
        }
        let live = (ledger.live_turns(), ledger.live_cost_usd());
        if live != shown {
            shown = live;
            let _ = ws.store.update(&name, |r| {
                r.turns = live.0;
                r.cost_usd = live.1;
            });
        }
        let ended = status.state.is_terminal();
        followed.job = Some(status);
        if ended {
            break;
        }
        // Answers given here (`cms allow`/`cms deny` write them into the local prompt) go up.
        if let Ok(local) = ws.store.load(&name)
            && let Some(pending) = &local.pending
            && let Some(answer) = &pending.answer
            && !control
                .answers
                .iter()
                .any(|a| a.request_id == pending.request_id)
        {
            control.answers.push(wire::ControlAnswer {
                request_id: pending.request_id.clone(),
                allow: answer.allow,
                always: answer.always,
                message: answer.message.clone(),
                by: answer.by.clone(),
            });
            push_control(ws, job, &control).await;
        }
        let overdue = time_limit.is_some_and(|limit| clock.elapsed() >= limit + LIMIT_GRACE);
        if overdue && stop_since.is_none() {
            stop_since = Some(Instant::now());
            control.stop = true;
            push_control(ws, job, &control).await;
        }
        if stop_since.is_some_and(|since| since.elapsed() >= STOP_GRACE) && !job_stopped {
            job_stopped = stop_job(&client, &job.job).await;
        }
    }
    if shown_pending.is_some() {
        on_prompt(None);
    }
    followed.ledger = ledger;
    followed.elapsed = clock.elapsed();
    followed
}

/// Mirrors what the worker's record says of the task's wait into the local record: a prompt
/// waiting there waits here (an answer already given here is kept until it went up).
fn mirror(
    ws: &Workspace,
    name: &crate::store::TaskName,
    worker: &TaskRecord,
    on_prompt: &OnPrompt,
    shown: &mut Option<String>,
    notify: &Option<Vec<String>>,
) {
    let pending = worker
        .pending
        .clone()
        .filter(|_| worker.status == Status::Waiting);
    let updated = ws.store.update(name, |r| {
        if !r.status.is_live() {
            return;
        }
        match &pending {
            Some(prompt) => {
                let answer = r
                    .pending
                    .as_ref()
                    .filter(|p| p.request_id == prompt.request_id)
                    .and_then(|p| p.answer.clone());
                r.status = Status::Waiting;
                r.pending = Some(PendingPermission {
                    answer,
                    ..prompt.clone()
                });
            }
            None => {
                r.status = Status::Running;
                r.pending = None;
            }
        }
    });
    let Ok(record) = updated else { return };
    let now = record.pending.as_ref().map(|p| p.request_id.clone());
    if now != *shown {
        on_prompt(record.pending.as_ref());
        if let (Some(_), Some(command)) = (&now, notify) {
            crate::task::ask::notify_waiting(command, &record);
        }
        *shown = now;
    }
}

async fn push_control(ws: &Workspace, job: &Submitted, control: &wire::Control) {
    let bytes = serde_json::to_vec_pretty(control).expect("control serializes");
    let dir = &ws.repo.common_dir;
    let files = [(wire::CONTROL_FILE, bytes.as_slice())];
    let pushed = crate::git::remote::files_commit(dir, &files, &[]).and_then(|commit| {
        let to = wire::job_ref(&job.job, wire::JobRef::Control);
        crate::git::remote::push(
            dir,
            &job.remote.remote,
            &[(commit.to_string().as_str(), to.as_str())],
            true,
        )
    });
    // A push that fails is tried again with the next answer or stop; the job's own stop is
    // the backstop for a stop request.
    let _ = pushed;
}

async fn stop_job(client: &Arc<ray::RayClient>, job: &str) -> bool {
    let id = job.to_owned();
    blocking(client, move |c| c.stop(&id)).await.is_ok()
}

/// Runs a blocking call of the Jobs API off the runtime's thread, so stop signals are still
/// heard while the API is slow to answer.
async fn blocking<T: Send + 'static>(
    client: &Arc<ray::RayClient>,
    call: impl FnOnce(&ray::RayClient) -> Result<T, crate::runner::RunnerError> + Send + 'static,
) -> Result<T, String> {
    let client = Arc::clone(client);
    match tokio::task::spawn_blocking(move || call(&client)).await {
        Ok(result) => result.map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    }
}
