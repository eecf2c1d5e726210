//! Running a started task's session in this process to its end, with the stop signals of a
//! foreground run: what `cms task`, `cms continue`, `cms attach` and a background supervisor
//! share. Front ends hear of the run through an [`Observer`], as nextest's runner reports to
//! its reporter; they print, the engine decides.

use std::cell::RefCell;

use tokio::sync::mpsc;

use super::attach::run_attached;
use super::error::TaskError;
use super::handoff::stop_requested_early;
use super::run::{RunOptions, abandon, run};
use super::started::Started;
use crate::platform::signals::{Listener, Signal};
use crate::session::protocol::Event;
use crate::session::{Ledger, StopReason, Timeouts};
use crate::store::{PendingPermission, TaskName, TaskRecord};

/// Which way a stop request is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// A stop that came before the run's own handlers: the session is stopped gracefully.
    Early,
    /// The first stop signal: the session is stopped gracefully; another one kills it.
    Graceful,
    /// A second stop signal: the session is killed.
    Kill,
}

/// What a run tells its front end. Every method has a default that ignores it, so a front end
/// implements only what it shows.
pub trait Observer {
    /// An event of the session, with the ledger as it stands after it.
    fn event(&mut self, _event: &Event, _ledger: &Ledger) {}
    /// A stop request was heard.
    fn stopping(&mut self, _how: Stopping) {}
    /// A fan-out handed a task to its background supervisor; `sandbox_warning` says why its
    /// Bash runs unsandboxed, if it does.
    fn started(&mut self, _name: &TaskName, _sandbox_warning: Option<&str>) {}
    /// A task of a fan-out ended (its record as it ended).
    fn ended(&mut self, _record: &TaskRecord) {}
    /// The task waits on a permission answer: in a foreground run that asks, each time the
    /// prompt is (re)written; in a fan-out, once for each prompt of each task.
    fn asks(&mut self, _record: &TaskRecord, _pending: &PendingPermission) {}
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// How the session runs.
pub enum Foreground {
    /// Headless (`claude -p`): SIGINT, SIGTERM and SIGHUP stop it, the first gracefully, a
    /// second one by killing it.
    Headless(RunOptions),
    /// Interactive at the user's terminal (`cms attach`): the terminal's Ctrl-C and Ctrl-\
    /// reach cms too (it shares claude's process group) and are claude's to handle; SIGTERM
    /// and SIGHUP (`cms abort`, a closed terminal) stop the session.
    Attached(Timeouts),
}

/// Runs `started`'s session here to its end and returns the task's final record.
pub fn run_foreground(
    ws: &crate::workspace::Workspace,
    started: Started,
    how: Foreground,
    observer: &mut dyn Observer,
) -> Result<TaskRecord, TaskError> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            abandon(ws, &started);
            return Err(TaskError::Runtime(err));
        }
    };
    let observer = RefCell::new(observer);
    runtime.block_on(async {
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        // Registered before anything runs, so no stop request can fall between two handlers.
        let attached = matches!(how, Foreground::Attached(_));
        let handlers = stop_signals(attached);
        // A stop that reached a background supervisor before these handlers existed.
        if stop_requested_early() {
            observer.borrow_mut().stopping(Stopping::Early);
            let _ = stop_tx.send(StopReason::User);
        }
        let signals = forward_stop_signals(handlers, attached, stop_tx, &observer);
        // The prompts come from the task that answers them, off this one: a channel brings
        // them here, where the observer is.
        let (prompt_tx, mut prompt_rx) = mpsc::unbounded_channel();
        let record = started.record.clone();
        let prompts = forward_prompts(&record, &mut prompt_rx, &observer);
        let on_prompt = Box::new(move |pending: Option<&PendingPermission>| {
            if let Some(pending) = pending {
                let _ = prompt_tx.send(pending.clone());
            }
        });
        let session = async {
            match how {
                Foreground::Headless(opts) => {
                    let on_event = |event: &Event, ledger: &Ledger| {
                        observer.borrow_mut().event(event, ledger);
                    };
                    // A task on a runner: its session is a job there, followed from here.
                    if started.record.remote.is_some() {
                        super::remote::run(ws, started, opts, stop_rx, on_event, on_prompt).await
                    } else {
                        run(ws, started, opts, stop_rx, on_event, on_prompt).await
                    }
                }
                Foreground::Attached(timeouts) => {
                    run_attached(ws, started, timeouts, stop_rx).await
                }
            }
        };
        let result = tokio::select! {
            result = session => result,
            never = signals => match never {},
            never = prompts => match never {},
        };
        // A prompt sent as the session ended is still shown.
        while let Ok(pending) = prompt_rx.try_recv() {
            observer.borrow_mut().asks(&record, &pending);
        }
        result
    })
}

/// The signals a run handles: SIGINT, SIGTERM, SIGHUP and, attached, SIGQUIT (caught only so
/// that it does not end cms).
fn stop_signals(attached: bool) -> Option<Listener> {
    let signals: &[Signal] = if attached {
        &[Signal::Int, Signal::Quit, Signal::Term, Signal::Hup]
    } else {
        &[Signal::Int, Signal::Term, Signal::Hup]
    };
    Listener::new(signals).ok()
}

/// Shows the observer each prompt the task waits on, until the run ends (it never returns on
/// its own).
async fn forward_prompts(
    record: &TaskRecord,
    prompts: &mut mpsc::UnboundedReceiver<PendingPermission>,
    observer: &RefCell<&mut dyn Observer>,
) -> std::convert::Infallible {
    while let Some(pending) = prompts.recv().await {
        observer.borrow_mut().asks(record, &pending);
    }
    std::future::pending().await
}

/// Turns stop signals into stop requests until the run ends (it never returns on its own).
async fn forward_stop_signals(
    handlers: Option<Listener>,
    attached: bool,
    stop: mpsc::UnboundedSender<StopReason>,
    observer: &RefCell<&mut dyn Observer>,
) -> std::convert::Infallible {
    if let Some(mut handlers) = handlers {
        let mut count = 0;
        loop {
            let signal = handlers.recv().await;
            // Attached, the terminal's keys are claude's own.
            if attached && matches!(signal, Signal::Int | Signal::Quit) {
                continue;
            }
            count += 1;
            if !attached {
                observer.borrow_mut().stopping(if count == 1 {
                    Stopping::Graceful
                } else {
                    Stopping::Kill
                });
            }
            if stop.send(StopReason::User).is_err() {
                break;
            }
        }
    }
    std::future::pending().await
}
