//! Live permission answers: a prompt claude sends over the control protocol is answered at
//! once when cms's policy decides it, and otherwise waits in the task's record (status
//! `waiting`) for the user's answer from `cms allow`/`cms deny` or the supervisor's terminal.
//!
//! The record is the one channel: whoever answers writes the answer into the pending prompt
//! under the task's lock, naming the prompt's id, and the supervisor, which polls the record
//! while a prompt waits, passes it to claude and shows the next prompt or clears the wait. So
//! an answer works the same from any process, and a stale answer can never reach a later
//! prompt.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::safety::{self, Rules};
use crate::session::Permissions;
use crate::session::protocol::{PermissionDecision, PermissionRequest};
use crate::store::{
    Answered, PendingPermission, PermissionAnswer, Store, TaskName, TaskRecord, now_rfc3339,
};
use crate::vocab::Status;

use super::TaskError;

/// How often a supervisor with a waiting prompt looks for an answer in the record.
const ANSWER_POLL: Duration = Duration::from_millis(100);

/// Who answered a prompt cms answered itself: its policy, or an earlier "always".
const BY_POLICY: &str = "cms policy";
const BY_ALWAYS: &str = "allowed always earlier";

/// What the agent is told when the user denies a call without saying why.
pub const DEFAULT_DENIAL: &str =
    "The user denied this tool call. Do not retry it; find another way or explain what you need.";

/// Shows the prompt a task now waits on (`Some`), or that it waits no more (`None`).
pub type OnPrompt = Box<dyn Fn(Option<&PendingPermission>) + Send + Sync>;

/// How a session's permission prompts are answered besides `cms allow`/`cms deny` (they are
/// shown through the run's `Observer`).
pub struct AskOptions {
    /// Answers typed at the supervisor's terminal, each for the prompt shown last.
    pub typed: Option<mpsc::UnboundedReceiver<PermissionAnswer>>,
    /// `[notify] command`, run whenever the task starts waiting.
    pub notify: Option<Vec<String>>,
}

/// The answering side of a session that asks; [`Asking::finish`] ends it.
pub struct Asking {
    shared: Arc<Shared>,
    watcher: tokio::task::JoinHandle<()>,
}

struct Shared {
    store: Store,
    name: TaskName,
    worktree: PathBuf,
    rules: Arc<Rules>,
    preset: crate::vocab::Preset,
    sandboxed: bool,
    on_prompt: OnPrompt,
    notify: Option<Vec<String>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Prompts claude waits on, oldest first; the first is the one in the record.
    queue: VecDeque<PermissionRequest>,
    /// Tools the user allowed for the rest of the task.
    always: BTreeSet<String>,
    /// Of those, the ones granted during this session, for the task's `safety.allowed`.
    granted: Vec<String>,
    /// Every prompt answered, for the task's `safety.answered`.
    answered: Vec<Answered>,
}

/// What a session's asking leaves for the task's record.
pub struct Asked {
    /// Tools allowed `--always`, for `safety.allowed`.
    pub granted: Vec<String>,
    pub answered: Vec<Answered>,
}

/// Starts answering the permission prompts of `record`'s session, whose protected paths are
/// `rules`. Must be called inside the session's tokio runtime.
pub fn start(
    store: &Store,
    record: &TaskRecord,
    opts: AskOptions,
    on_prompt: OnPrompt,
    rules: &Arc<Rules>,
) -> (Permissions<'static>, Asking) {
    let (answers_tx, answers_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        store: store.clone(),
        name: record.name.clone(),
        worktree: record.worktree.clone(),
        // The same globs the write guard enforces.
        rules: Arc::clone(rules),
        preset: record.preset,
        sandboxed: record.safety.sandboxed,
        on_prompt,
        notify: opts.notify,
        state: Mutex::new(State {
            always: record.safety.allowed.iter().cloned().collect(),
            ..State::default()
        }),
    });
    let asker = Arc::clone(&shared);
    let ask = Box::new(move |request: &PermissionRequest| asker.ask(request));
    let watcher = tokio::spawn(watch(Arc::clone(&shared), opts.typed, answers_tx));
    (
        Permissions {
            ask,
            answers: answers_rx,
        },
        Asking { shared, watcher },
    )
}

impl Asking {
    /// Ends the asking once the session is over: no prompt waits any more, the record says
    /// `running` again for the finish, and what was answered is returned.
    pub fn finish(self) -> Asked {
        self.watcher.abort();
        let asked = {
            let mut state = self.shared.lock();
            state.queue.clear();
            Asked {
                granted: std::mem::take(&mut state.granted),
                answered: std::mem::take(&mut state.answered),
            }
        };
        self.shared.publish(false);
        asked
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer cms's policy gives at once, with who gave it for the record, or `None` when
    /// it is the user's to give.
    fn policy(&self, request: &PermissionRequest) -> Option<(PermissionDecision, &'static str)> {
        let is_write = safety::guard::WRITE_TOOLS_MATCHER
            .split('|')
            .any(|tool| tool == request.tool_name);
        if is_write {
            // The guard hook has already judged this call; judging again costs nothing and
            // does not depend on claude running the hook.
            let denied = safety::guard::verdict(
                &self.worktree,
                &self.rules,
                &request.tool_name,
                &request.input,
            );
            if let Some(violation) = denied {
                let reason = safety::guard::reason_for(&violation);
                return Some((PermissionDecision::Deny(reason), BY_POLICY));
            }
        }
        if request.tool_name == "Bash"
            && let Some(verdict) =
                safety::sandbox::bash_policy(self.sandboxed, self.preset, &request.input)
        {
            let decision = match verdict {
                Ok(()) => PermissionDecision::Allow,
                Err(why) => PermissionDecision::Deny(why),
            };
            return Some((decision, BY_POLICY));
        }
        self.lock()
            .always
            .contains(&request.tool_name)
            .then_some((PermissionDecision::Allow, BY_ALWAYS))
    }

    fn ask(&self, request: &PermissionRequest) -> Option<PermissionDecision> {
        if let Some((decision, by)) = self.policy(request) {
            let (allow, message) = match &decision {
                PermissionDecision::Allow => (true, None),
                PermissionDecision::Deny(message) => (false, Some(message.clone())),
            };
            self.lock().answered.push(Answered {
                tool_name: request.tool_name.clone(),
                tool_use_id: request.tool_use_id.clone(),
                allow,
                always: by == BY_ALWAYS,
                by: by.to_owned(),
                message,
            });
            return Some(decision);
        }
        let first = {
            let mut state = self.lock();
            state.queue.push_back(request.clone());
            state.queue.len() == 1
        };
        self.publish(first);
        None
    }

    /// Writes the first waiting prompt into the record (or clears the wait when none is
    /// left), shows it, and runs the notifier when a new prompt is shown.
    fn publish(&self, new_prompt: bool) {
        let pending = {
            let state = self.lock();
            state.queue.front().map(|head| PendingPermission {
                request_id: head.request_id.clone(),
                tool_name: head.tool_name.clone(),
                input: head.input.clone(),
                description: head.description.clone(),
                tool_use_id: head.tool_use_id.clone(),
                blocked_path: head.blocked_path.clone(),
                since: now_rfc3339(),
                queued: state.queue.len() - 1,
                answer: None,
            })
        };
        let written = self.store.update(&self.name, |r| {
            match &pending {
                Some(pending) => {
                    let same =
                        r.pending.as_ref().map(|p| &p.request_id) == Some(&pending.request_id);
                    if same {
                        // Only the count behind it changed: keep its time and any answer.
                        if let Some(current) = r.pending.as_mut() {
                            current.queued = pending.queued;
                        }
                    } else {
                        r.pending = Some(pending.clone());
                    }
                    r.status = Status::Waiting;
                }
                None => {
                    r.pending = None;
                    if r.status == Status::Waiting {
                        r.status = Status::Running;
                    }
                }
            }
        });
        (self.on_prompt)(pending.as_ref());
        if new_prompt && let (Some(command), Ok(record)) = (&self.notify, written) {
            notify_waiting(command, &record);
        }
    }

    /// Passes on the answer the record holds for the first waiting prompt, if there is one.
    fn collect(&self, answers: &mpsc::UnboundedSender<(String, PermissionDecision)>) {
        let Some(head) = self.lock().queue.front().map(|h| h.request_id.clone()) else {
            return;
        };
        let Ok(record) = self.store.load(&self.name) else {
            return;
        };
        let answer = match record.pending {
            Some(pending) if pending.request_id == head => match pending.answer {
                Some(answer) => answer,
                None => return,
            },
            // The prompt vanished from the record (a damaged or rewritten record): show it
            // again, since claude still waits on it.
            _ => return self.publish(false),
        };
        let mut sent = Vec::new();
        {
            let mut state = self.lock();
            let Some(prompt) = state.queue.pop_front() else {
                return;
            };
            if answer.allow && answer.always && state.always.insert(prompt.tool_name.clone()) {
                state.granted.push(prompt.tool_name.clone());
            }
            let decision = if answer.allow {
                PermissionDecision::Allow
            } else {
                PermissionDecision::Deny(
                    answer
                        .message
                        .clone()
                        .filter(|m| !m.trim().is_empty())
                        .unwrap_or_else(|| DEFAULT_DENIAL.to_owned()),
                )
            };
            state.answered.push(Answered {
                tool_name: prompt.tool_name.clone(),
                tool_use_id: prompt.tool_use_id.clone(),
                allow: answer.allow,
                always: answer.allow && answer.always,
                by: answer.by.clone(),
                message: match &decision {
                    PermissionDecision::Deny(message) => Some(message.clone()),
                    PermissionDecision::Allow => None,
                },
            });
            sent.push((prompt.request_id, decision));
            // An "always" also answers the prompts for that tool already waiting behind.
            let always = state.always.clone();
            let mut also = Vec::new();
            state.queue.retain(|waiting| {
                let allowed = always.contains(&waiting.tool_name);
                if allowed {
                    also.push(waiting.clone());
                }
                !allowed
            });
            for waiting in also {
                state.answered.push(Answered {
                    tool_name: waiting.tool_name.clone(),
                    tool_use_id: waiting.tool_use_id.clone(),
                    allow: true,
                    always: true,
                    by: answer.by.clone(),
                    message: None,
                });
                sent.push((waiting.request_id, PermissionDecision::Allow));
            }
        }
        if answer.allow && answer.always {
            let tool = self.lock().always.clone();
            let _ = self.store.update(&self.name, |r| {
                for t in &tool {
                    if !r.safety.allowed.contains(t) {
                        r.safety.allowed.push(t.clone());
                    }
                }
            });
        }
        for answer in sent {
            let _ = answers.send(answer);
        }
        let more = !self.lock().queue.is_empty();
        self.publish(more);
    }
}

/// Polls the record for answers while a prompt waits, and writes answers typed at the
/// terminal into it (so they take the same path as `cms allow`).
async fn watch(
    shared: Arc<Shared>,
    mut typed: Option<mpsc::UnboundedReceiver<PermissionAnswer>>,
    answers: mpsc::UnboundedSender<(String, PermissionDecision)>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(ANSWER_POLL) => {}
            answer = recv(&mut typed) => match answer {
                Some(answer) => {
                    let head = shared.lock().queue.front().map(|h| h.request_id.clone());
                    if let Some(head) = head {
                        let _ = answer_prompt(&shared.store, &shared.name, Some(&head), answer);
                    }
                }
                None => typed = None,
            },
        }
        shared.collect(&answers);
    }
}

/// Runs `[notify] command` for a task that started waiting, off the caller's thread: the
/// notifier may take seconds and the session must not wait on it.
pub(super) fn notify_waiting(command: &[String], record: &TaskRecord) {
    let (command, record) = (command.to_vec(), record.clone());
    std::thread::spawn(move || {
        let json = crate::report::task_json(&record);
        if let Err(why) = super::notify(&command, &record, &json) {
            eprintln!("cms: warning: notify.command: {why}");
        }
    });
}

async fn recv(
    typed: &mut Option<mpsc::UnboundedReceiver<PermissionAnswer>>,
) -> Option<PermissionAnswer> {
    match typed {
        Some(typed) => typed.recv().await,
        None => std::future::pending().await,
    }
}

/// Answers the prompt `name` waits on (only if it is still `request_id`, when given), for its
/// supervisor to pass on. Returns the prompt answered.
pub fn answer_prompt(
    store: &Store,
    name: &TaskName,
    request_id: Option<&str>,
    answer: PermissionAnswer,
) -> Result<PendingPermission, TaskError> {
    store.with_task_lock(name, || {
        let mut record = store.load(name)?;
        let waiting = record.status == Status::Waiting;
        let Some(pending) = record.pending.as_mut().filter(|_| waiting) else {
            return Err(TaskError::NotWaiting {
                name: name.clone(),
                status: record.status,
            });
        };
        if request_id.is_some_and(|id| id != pending.request_id) || pending.answer.is_some() {
            return Err(TaskError::AlreadyAnswered { name: name.clone() });
        }
        pending.answer = Some(answer);
        let answered = pending.clone();
        store.save(&mut record)?;
        Ok(answered)
    })?
}

/// What became of an answer: the prompt answered, and the task's record once its supervisor
/// passed the answer on (or once `patience` ran out, `passed_on` false).
pub struct Delivered {
    pub answered: PendingPermission,
    pub record: TaskRecord,
    pub passed_on: bool,
}

/// Answers the prompt `name` waits on and waits (up to `patience`) for its supervisor to
/// pass the answer on; shared by `cms allow`/`cms deny` and the MCP server's `task_answer`.
/// With `request_id`, only that prompt is answered (the one the caller checked).
pub fn answer_and_deliver(
    ws: &crate::workspace::Workspace,
    name: &TaskName,
    request_id: Option<&str>,
    answer: PermissionAnswer,
    patience: Duration,
) -> Result<Delivered, TaskError> {
    // Loading first reconciles: a task whose supervisor died is not waiting any more.
    ws.task(name)?;
    let answered = answer_prompt(&ws.store, name, request_id, answer)?;
    let deadline = std::time::Instant::now() + patience;
    loop {
        let record = ws.task(name)?;
        let passed_on =
            record.pending.as_ref().map(|p| &p.request_id) != Some(&answered.request_id);
        if passed_on || !record.status.is_live() || std::time::Instant::now() >= deadline {
            return Ok(Delivered {
                answered,
                record,
                passed_on,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
