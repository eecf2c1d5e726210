//! The interactive mode (no `-p`), as far as cms relies on it: `claude --resume <id>` at a
//! terminal. Each line typed is a user message that runs the next scripted turn, rendered for
//! people rather than as stream-json; the session goes to its transcript as in every mode.
//! `/exit` or the end of input ends it with exit code 0. Ctrl-C (SIGINT) interrupts a running
//! turn and the session goes on; at the prompt, a first Ctrl-C says to press it again and a
//! second one exits 0.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;

use serde_json::Value;

use crate::inbox::POLL;
use crate::script::Script;
use crate::session::{Session, TurnEnd};
use crate::signals::SIGINT_SEEN;

/// Runs the session until the user leaves it.
pub fn serve(mut session: Session, script: &Script, resumed: bool) -> ! {
    if !io::stdin().is_terminal() {
        // The real CLI's terminal UI cannot start without one either.
        eprintln!("Error: Raw mode is not supported on the current process.stdin");
        process::exit(1);
    }
    let transcript =
        crate::transcript::path_of(&session.cwd.display().to_string(), &session.session_id);
    if resumed && !transcript.is_file() {
        eprintln!(
            "No conversation found with session ID: {}",
            session.session_id
        );
        process::exit(1);
    }
    say(&format!(
        "fake-claude {} · session {}",
        crate::version(),
        session.session_id
    ));
    let lines = read_lines();
    let mut answered = 0;
    let mut exit_armed = false;
    prompt();
    loop {
        let line = match lines.recv_timeout(POLL) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                if SIGINT_SEEN.swap(false, Ordering::SeqCst) {
                    if exit_armed {
                        process::exit(0);
                    }
                    exit_armed = true;
                    say("\nPress Ctrl-C again to exit");
                    prompt();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => process::exit(0),
        };
        exit_armed = false;
        let line = line.trim();
        if line == "/exit" {
            process::exit(0);
        }
        if line.is_empty() {
            prompt();
            continue;
        }
        let end = session.run_turn(script, script.resume_offset + answered);
        answered += 1;
        // A Ctrl-C during the turn ended it; here, unlike in -p mode, the session goes on.
        if SIGINT_SEEN.swap(false, Ordering::SeqCst) {
            prompt();
            continue;
        }
        if let TurnEnd::Exit(code) = end {
            process::exit(code);
        }
        prompt();
    }
}

/// The terminal's lines, read on a thread of their own so Ctrl-C is seen while none comes.
fn read_lines() -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in io::stdin().lock().lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn say(text: &str) {
    let mut out = io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        process::exit(1);
    }
}

fn prompt() {
    let mut out = io::stdout().lock();
    let _ = write!(out, "> ").and_then(|()| out.flush());
}

/// Shows an event as the terminal UI would: the assistant's texts and tool calls, the errors
/// of tool results, interrupts.
pub fn render(event: &str) {
    let Ok(event) = serde_json::from_str::<Value>(event) else {
        return;
    };
    let blocks = event["message"]["content"].as_array().cloned();
    for block in blocks.into_iter().flatten() {
        match (event["type"].as_str(), block["type"].as_str()) {
            (Some("assistant"), Some("text")) => {
                say(&format!("● {}", block["text"].as_str().unwrap_or_default()))
            }
            (Some("assistant"), Some("tool_use")) => {
                let input = &block["input"];
                let target = ["file_path", "command", "pattern"]
                    .iter()
                    .find_map(|key| input[*key].as_str())
                    .unwrap_or_default();
                say(&format!(
                    "● {}({target})",
                    block["name"].as_str().unwrap_or_default()
                ));
            }
            (Some("user"), Some("tool_result")) if block["is_error"] == true => {
                let text = match &block["content"] {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                say(&format!("  ⎿  {}", text.lines().next().unwrap_or_default()));
            }
            (Some("user"), Some("text")) => say(&format!(
                "  ⎿  {}",
                block["text"].as_str().unwrap_or_default()
            )),
            _ => {}
        }
    }
}
