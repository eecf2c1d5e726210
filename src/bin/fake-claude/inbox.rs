//! Stdin in stream-json mode: queued user messages, control requests and interrupts.

use std::io::{self, BufRead};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::output::{Obj, emit};
use crate::signals::SIGINT_SEEN;

/// How long a waiting step sleeps between looks at stdin and the signal flags.
pub const POLL: Duration = Duration::from_millis(10);

/// Why a running step stopped early.
pub enum Abort {
    /// A `control_request` interrupt; the process carries on afterwards.
    Interrupt,
    /// SIGINT; the process exits after the turn's result.
    Sigint,
}

pub struct Inbox {
    /// Messages from the stdin reader thread; `None` once stdin has closed, or in prompt mode.
    pub messages: Option<Receiver<Value>>,
    /// User messages received but not yet answered by a turn.
    pub pending_turns: usize,
    /// The host's answers to our control requests (`response` objects), by request id.
    pub responses: Vec<Value>,
    /// `stop_task` requests (request id, task id), answered between turns.
    pub stop_requests: Vec<(String, String)>,
}

impl Inbox {
    pub fn from_stdin() -> Inbox {
        let (sender, receiver) = mpsc::channel();
        // A thread of its own, so that an interrupt is seen while a step sleeps or a command runs.
        thread::spawn(move || {
            for line in io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&line) {
                    Ok(message) => {
                        if sender.send(message).is_err() {
                            break;
                        }
                    }
                    Err(err) => {
                        eprintln!("fake-claude: ignoring a stdin line that is not JSON: {err}")
                    }
                }
            }
        });
        Inbox {
            messages: Some(receiver),
            pending_turns: 0,
            responses: Vec::new(),
            stop_requests: Vec::new(),
        }
    }

    pub fn closed() -> Inbox {
        Inbox {
            messages: None,
            pending_turns: 0,
            responses: Vec::new(),
            stop_requests: Vec::new(),
        }
    }

    /// Takes the host's answer to our control request `request_id`, if it has come.
    pub fn take_response(&mut self, request_id: &str) -> Option<Value> {
        let at = self
            .responses
            .iter()
            .position(|r| r["request_id"] == request_id)?;
        Some(self.responses.remove(at))
    }

    pub fn is_closed(&self) -> bool {
        self.messages.is_none()
    }

    /// Waits up to `wait` for one stdin message and reports an interrupt or SIGINT, if any.
    pub fn poll(&mut self, wait: Duration) -> Option<Abort> {
        let received = match &self.messages {
            Some(messages) if wait.is_zero() => messages
                .try_recv()
                .map_err(|err| err == TryRecvError::Disconnected),
            Some(messages) => messages
                .recv_timeout(wait)
                .map_err(|err| err == RecvTimeoutError::Disconnected),
            None => {
                thread::sleep(wait);
                Err(false)
            }
        };
        let interrupted = match received {
            Ok(message) => self.accept(&message),
            Err(closed) => {
                if closed {
                    self.messages = None;
                }
                false
            }
        };
        if SIGINT_SEEN.load(Ordering::SeqCst) {
            Some(Abort::Sigint)
        } else if interrupted {
            Some(Abort::Interrupt)
        } else {
            None
        }
    }

    /// Files a message; true if it asks to interrupt the running turn.
    fn accept(&mut self, message: &Value) -> bool {
        match message["type"].as_str() {
            // Messages sent while a turn runs simply wait for their own turn.
            Some("user") => {
                self.pending_turns += 1;
                false
            }
            Some("control_request") if message["request"]["subtype"] == "stop_task" => {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                self.stop_requests.push((
                    text(&message["request_id"]),
                    text(&message["request"]["task_id"]),
                ));
                false
            }
            Some("control_request") => {
                let response = Obj::new()
                    .field("subtype", "success")
                    .field("request_id", &message["request_id"])
                    .end();
                emit(
                    &Obj::new()
                        .field("type", "control_response")
                        .raw("response", response)
                        .end(),
                );
                message["request"]["subtype"] == "interrupt"
            }
            Some("control_response") => {
                self.responses.push(message["response"].clone());
                false
            }
            // Unknown types need nothing.
            _ => false,
        }
    }
}
