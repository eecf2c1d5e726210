//! Driving one claude process through one user message: write it, read events until the
//! `result`, close stdin, and see the process out, keeping the raw transcript as it goes.
//!
//! One `select!` loop owns everything: stdout lines, stop requests and the kill deadline.
//! Stopping is graceful first (the `interrupt` control request, which makes claude end the turn
//! with a `result` and kill its tool processes), then forceful after a grace period or at a
//! second request (claude and every process of its session killed at once, see
//! [`super::process::Claude::kill_tree`]). However the turn ends, nothing it started is left:
//! the keeper kills what remains when claude exits, and the supervisor sweeps for the session's
//! token once the keeper is gone.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::SessionError;
use super::background::{Background, Change};
use super::ledger::Ledger;
use super::process::{Spawn, spawn};
use super::protocol::{
    Event, PermissionDecision, PermissionRequest, ResultEvent, control_error_line, interrupt_line,
    permission_response_line, stop_task_line, user_message_line,
};
use crate::vocab::{LimitKind, StoppedCommand};

/// How many of claude's last stderr lines are kept for error messages.
const STDERR_TAIL: usize = 20;

/// Why a session is being stopped before it finished on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The user asked (Ctrl-C, SIGTERM, or `cms abort`).
    User,
    /// The task crossed one of its limits.
    Limit(LimitKind),
}

/// Decides after every event whether the session must stop (limits on cost and turns).
pub type StopCheck<'a> = Box<dyn FnMut(&Ledger) -> Option<StopReason> + 'a>;

/// Everything that can stop a session before it ends on its own: requests from outside
/// (signals), a check run on the ledger after every event, and a moment (the time limit).
/// With `permissions`, it also answers claude's permission prompts.
pub struct Watch<'a> {
    pub requests: mpsc::UnboundedReceiver<StopReason>,
    pub check: StopCheck<'a>,
    pub deadline: Option<(Instant, StopReason)>,
    pub permissions: Option<Permissions<'a>>,
}

impl<'a> Watch<'a> {
    /// Stops only on request.
    pub fn new(requests: mpsc::UnboundedReceiver<StopReason>) -> Watch<'a> {
        Watch {
            requests,
            check: Box::new(|_| None),
            deadline: None,
            permissions: None,
        }
    }
}

/// Decides a permission prompt now, or `None` when the answer comes later.
pub type AskFn<'a> = Box<dyn FnMut(&PermissionRequest) -> Option<PermissionDecision> + 'a>;

/// Answers claude's permission prompts (`can_use_tool`, sent with `--permission-prompt-tool
/// stdio`). claude waits for each answer, so the session simply pauses on a pending one; the
/// time limit and stop requests still apply.
pub struct Permissions<'a> {
    /// The answer at once, or `None` when someone else decides: the answer then comes on
    /// `answers`, named by the request's id.
    pub ask: AskFn<'a>,
    pub answers: mpsc::UnboundedReceiver<(String, PermissionDecision)>,
}

/// What a pending permission prompt is answered with when the session is stopped first.
const STOPPED_ANSWER: &str = "The task is being stopped, so this tool call was not allowed.";

/// Timing knobs; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long claude has to end its turn after an interrupt before it is killed.
    pub interrupt_grace: Duration,
    /// How long claude has to exit after its stdin closes.
    pub exit_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            interrupt_grace: Duration::from_secs(10),
            exit_grace: Duration::from_secs(10),
        }
    }
}

/// Where a process's output is kept: the raw stream-json transcript and its stderr.
pub struct Logs {
    pub stdout: File,
    pub stderr: File,
}

/// How one process ended.
#[derive(Debug, Default)]
pub struct TurnOutcome {
    /// Whether claude started a session (printed `system/init`).
    pub started: bool,
    pub result: Option<ResultEvent>,
    pub exit_code: Option<i32>,
    /// Set when the process was killed by a signal (cms's own kill included).
    pub signal: Option<i32>,
    pub stopped: Option<StopReason>,
    /// Whether cms had to kill the process tree.
    pub killed: bool,
    pub malformed_lines: usize,
    pub stderr_tail: Vec<String>,
    /// Background commands the agent started that cms stopped, or that were still running when
    /// claude ended: work cut short, which the agent was never told the end of.
    pub stopped_commands: Vec<StoppedCommand>,
    /// Whether cms's stop came between turns: claude's last turn had ended with its `result`
    /// and only background commands were left running.
    pub stopped_between_turns: bool,
}

impl TurnOutcome {
    /// "exited with code N" or "was killed by signal N", for error messages.
    pub fn how_it_ended(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended".to_owned(),
        }
    }

    /// The last non-empty stderr line, which is where claude puts its startup errors.
    pub fn stderr_summary(&self) -> Option<&str> {
        self.stderr_tail
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    }
}

/// Runs one message through a new claude process. Every event goes to `on_event` after the
/// ledger has seen it, so observers read up-to-date totals.
///
/// `before_message` runs once claude is started and before it has its message: claude does
/// nothing until then, so work that must precede anything the agent does (the state a session
/// is checked against) overlaps claude's own start-up. When it returns false claude is killed
/// unstarted.
#[allow(clippy::too_many_arguments)]
pub async fn run_turn(
    spec: Spawn<'_>,
    message: &str,
    before_message: impl FnOnce() -> bool,
    ledger: &mut Ledger,
    logs: Logs,
    mut watch: Watch<'_>,
    timeouts: Timeouts,
    mut on_event: impl FnMut(&Event, &Ledger),
) -> Result<TurnOutcome, SessionError> {
    let mut claude = spawn(spec)?;
    let child = &mut claude.child;
    let mut stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .expect("stdout was configured as a pipe");
    let stderr = child
        .stderr
        .take()
        .expect("stderr was configured as a pipe");
    let Logs {
        stdout: mut transcript,
        stderr: stderr_log,
    } = logs;
    let stderr_task = tokio::spawn(drain_stderr(stderr, stderr_log));

    let mut outcome = TurnOutcome::default();
    if !before_message() {
        drop(stdin);
        claude.kill_tree();
        outcome.killed = true;
        let status = claude.child.wait().await.map_err(SessionError::Wait)?;
        claude.sweep();
        outcome.exit_code = status.code();
        outcome.signal = std::os::unix::process::ExitStatusExt::signal(&status);
        outcome.stderr_tail = stderr_task.await.unwrap_or_default();
        return Ok(outcome);
    }
    ledger.start_process();
    send_line(&mut stdin, &user_message_line(message)).await;

    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut stop_open = true;
    let mut interrupts = 0u32;
    let (mut ask, mut answers) = match watch.permissions.take() {
        Some(p) => (Some(p.ask), Some(p.answers)),
        None => (None, None),
    };
    // Prompts claude is waiting on, answered when their answer comes (or the session stops).
    let mut pending: Vec<PermissionRequest> = Vec::new();
    // Background commands: claude kills the ones still running 5 s after its stdin closes, and
    // the model never hears of it. So stdin stays open after a `result` while one runs: when it
    // ends claude reports it to the model in a turn of its own, which is waited for too.
    let mut background = Background::default();
    let mut in_turn = true;
    // A command ended between turns: claude owes the turn that reports it, which starts
    // (`system/init`) well before this moment, or is not waited for any longer.
    let mut report_due: Option<Instant> = None;
    // stdin was closed because the session is over (or being stopped).
    let mut closed = false;
    // The background commands cut short, by id.
    let mut cut: Vec<String> = Vec::new();
    loop {
        buf.clear();
        let mut requested: Option<StopReason> = None;
        tokio::select! {
            read = reader.read_until(b'\n', &mut buf) => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // The transcript keeps claude's bytes exactly, malformed lines included.
                let _ = transcript.write_all(&buf);
                if !buf.ends_with(b"\n") {
                    let _ = transcript.write_all(b"\n");
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.trim().is_empty() {
                    continue;
                }
                let event = Event::parse(line);
                ledger.observe(&event);
                match &event {
                    Event::System(super::protocol::SystemEvent::Init(_)) => {
                        outcome.started = true;
                        if !in_turn {
                            // claude's own turn, reporting a background command to the model:
                            // it runs under the same watch as the first, however long it takes.
                            in_turn = true;
                            report_due = None;
                            if closed && outcome.stopped.is_none() {
                                deadline = None;
                            }
                        }
                    }
                    Event::Malformed(_) => outcome.malformed_lines += 1,
                    Event::Result(result) => {
                        outcome.result = Some(result.clone());
                        in_turn = false;
                        report_due = None;
                        if closed {
                            deadline.get_or_insert(Instant::now() + timeouts.exit_grace);
                        }
                    }
                    _ => {}
                }
                if let Some((id, Change::Ended { reported })) = background.observe(&event) {
                    if !reported && (outcome.stopped.is_some() || closed) && !cut.contains(&id) {
                        cut.push(id);
                    } else if reported && !in_turn {
                        report_due = Some(Instant::now() + timeouts.exit_grace);
                    }
                }
                on_event(&event, ledger);
                if let Event::ControlRequest(request) = &event {
                    let line = match (request.permission(), ask.as_mut()) {
                        (Some(prompt), _) if outcome.stopped.is_some() => Some(
                            permission_response_line(&prompt, &PermissionDecision::Deny(STOPPED_ANSWER.into())),
                        ),
                        (Some(prompt), Some(ask)) => match ask(&prompt) {
                            Some(decision) => Some(permission_response_line(&prompt, &decision)),
                            None => {
                                pending.push(prompt);
                                None
                            }
                        },
                        // Not asked for: claude is told no rather than left waiting.
                        (Some(prompt), None) => Some(permission_response_line(
                            &prompt,
                            &PermissionDecision::Deny("cms is not answering permission prompts for this task.".into()),
                        )),
                        (None, _) => Some(control_error_line(
                            &request.request_id,
                            &format!("cms does not handle {} requests", request.subtype),
                        )),
                    };
                    if let Some(line) = line {
                        send_line(&mut stdin, &line).await;
                    }
                }
                // Decided on the event itself, not on timing, so the same events always end
                // the task the same way. Between turns only a background command still to be
                // reported would spend more.
                if outcome.stopped.is_none() && (in_turn || (!closed && background.any_running())) {
                    requested = (watch.check)(ledger);
                }
            }
            answer = recv_answer(&mut answers) => {
                match answer {
                    Some((id, decision)) => {
                        if let Some(at) = pending.iter().position(|p| p.request_id == id) {
                            let prompt = pending.remove(at);
                            send_line(&mut stdin, &permission_response_line(&prompt, &decision)).await;
                        }
                    }
                    None => answers = None,
                }
            }
            request = watch.requests.recv(), if stop_open => {
                match request {
                    Some(reason) => requested = Some(reason),
                    None => stop_open = false,
                }
            }
            () = sleep_until(watch.deadline.map(|(at, _)| at)),
                if watch.deadline.is_some() && outcome.stopped.is_none() && (in_turn || !closed) =>
            {
                requested = watch.deadline.take().map(|(_, reason)| reason);
            }
            () = sleep_until(report_due), if report_due.is_some() => {
                // claude did not start the turn: stdin closing still makes it report what
                // ended before it exits.
                report_due = None;
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                claude.kill_tree();
                outcome.killed = true;
                deadline = None;
            }
        }
        // Between turns with nothing left running nor to report, the session is over: closing
        // stdin tells claude to exit. A stopped session's commands are stopped first.
        if requested.is_none()
            && !in_turn
            && !closed
            && outcome.result.is_some()
            && (outcome.stopped.is_some() || (!background.any_running() && report_due.is_none()))
        {
            stop_background(&mut stdin, &background, &mut cut).await;
            stdin = None;
            closed = true;
            deadline.get_or_insert(Instant::now() + timeouts.exit_grace);
        }
        let Some(reason) = requested else {
            continue;
        };
        outcome.stopped.get_or_insert(reason);
        // A prompt left unanswered would keep claude waiting instead of ending its turn.
        for prompt in pending.drain(..) {
            let deny = PermissionDecision::Deny(STOPPED_ANSWER.into());
            send_line(&mut stdin, &permission_response_line(&prompt, &deny)).await;
        }
        interrupts += 1;
        if interrupts == 1 && !in_turn && !closed {
            // Between turns there is no turn to interrupt: only the background commands the
            // last one left, stopped at once.
            outcome.stopped_between_turns = true;
            stop_background(&mut stdin, &background, &mut cut).await;
            stdin = None;
            closed = true;
            deadline = Some(Instant::now() + timeouts.exit_grace);
            continue;
        }
        let graceful = interrupts == 1 && in_turn;
        let sent = graceful
            && send_line(
                &mut stdin,
                &interrupt_line(&format!("cms_interrupt_{interrupts}")),
            )
            .await;
        if sent {
            deadline = Some(Instant::now() + timeouts.interrupt_grace);
        } else {
            claude.kill_tree();
            outcome.killed = true;
        }
    }
    drop(stdin);
    // stdout closed; give the process its exit grace, then make sure it is gone.
    let status = match tokio::time::timeout(timeouts.exit_grace, claude.child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            claude.kill_tree();
            outcome.killed = true;
            claude.child.wait().await
        }
    }
    .map_err(SessionError::Wait)?;
    // The keeper has killed and reaped the rest of the session; what carries its token now
    // escaped a keeper that was itself killed.
    claude.sweep();
    outcome.exit_code = status.code();
    outcome.signal = std::os::unix::process::ExitStatusExt::signal(&status);
    outcome.stderr_tail = stderr_task.await.unwrap_or_default();
    // Whatever claude never saw end died with the session (the keeper killed it).
    for command in background.running() {
        if !cut.contains(&command.id) {
            cut.push(command.id.clone());
        }
    }
    outcome.stopped_commands = cut
        .iter()
        .filter_map(|id| background.get(id))
        .map(|command| command.stopped())
        .collect();
    Ok(outcome)
}

/// Asks claude to stop every background command still running (`stop_task`: killed at once,
/// and no turn reports it) and counts them as cut. One claude cannot stop dies with the
/// session when claude exits.
async fn stop_background(
    stdin: &mut Option<tokio::process::ChildStdin>,
    background: &Background,
    cut: &mut Vec<String>,
) {
    for command in background.running() {
        if cut.contains(&command.id) {
            continue;
        }
        cut.push(command.id.clone());
        let request = format!("cms_stop_{}", command.id);
        send_line(stdin, &stop_task_line(&request, &command.id)).await;
    }
}

/// Writes one line to claude's stdin; a failed write means claude is gone (its exit says why),
/// so the pipe is dropped.
async fn send_line(stdin: &mut Option<tokio::process::ChildStdin>, line: &str) -> bool {
    let Some(pipe) = stdin.as_mut() else {
        return false;
    };
    let line = format!("{line}\n");
    let sent = pipe.write_all(line.as_bytes()).await.is_ok() && pipe.flush().await.is_ok();
    if !sent {
        *stdin = None;
    }
    sent
}

async fn recv_answer(
    answers: &mut Option<mpsc::UnboundedReceiver<(String, PermissionDecision)>>,
) -> Option<(String, PermissionDecision)> {
    match answers {
        Some(answers) => answers.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Copies claude's stderr to the task's stderr log, keeping the last lines for errors.
async fn drain_stderr(stderr: tokio::process::ChildStderr, mut log: File) -> Vec<String> {
    let mut tail = VecDeque::with_capacity(STDERR_TAIL);
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = log.write_all(&buf);
                let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    }
    tail.into()
}
