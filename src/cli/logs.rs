//! `cms logs`: a task's transcript, as readable lines, JSON Lines or claude's raw stream-json,
//! and followed while the task runs.

use std::fs::File;
use std::io::Read;
use std::time::Duration;

use clap::Args;

use super::CommandContext;
use crate::error::{CommandError, ErrorKind, exit_code};
use crate::platform::signals::{Listener, Signal};
use crate::session::protocol::Event;
use crate::store::{TaskName, TaskRecord};
use crate::transcript::{Entry, Reader};
use crate::ui::Ui;
use crate::workspace::Workspace;

/// How often `--follow` looks for new lines and a change of the task's status.
const POLL: Duration = Duration::from_millis(200);

/// Show what a task's claude sessions did: one line per text, tool call, tool result, denial
/// and result
///
/// Reads the task's transcript (every session of the task, in order). --json prints one JSON
/// object per line instead, --raw the stream-json lines exactly as claude printed them. With
/// --follow it keeps printing new lines while the task runs and exits when it has ended.
/// Exits 0, 1 for an unknown task or one without a transcript, 130 when Ctrl-C stops --follow.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task's name
    #[arg(value_parser = super::parse_existing_task, add = super::completes_tasks())]
    pub task: TaskName,

    /// Keep printing new lines while the task runs; exits by itself when it has ended
    #[arg(short, long)]
    pub follow: bool,

    /// Print claude's stream-json lines exactly as they are stored
    #[arg(long)]
    pub raw: bool,
}

pub fn cmd_logs(ctx: &CommandContext, args: LogsArgs) -> Result<u8, CommandError> {
    let ui = &ctx.ui;
    if args.raw && ui.json {
        return Err(CommandError::new(
            ErrorKind::Usage,
            "--raw and --json cannot be used together",
        )
        .with_hint(
            "--raw prints claude's own stream-json lines; --json prints cms's readable \
                     events as JSON Lines",
        ));
    }
    let ws = ctx.workspace()?;
    let record = ws.task(&args.task)?;
    let mut out = Output {
        ui,
        raw: args.raw,
        reader: Reader::new(&record.worktree),
        pending: Vec::new(),
    };
    let log = ws.store.read_log(&args.task)?;
    if !args.follow {
        let mut log = log.ok_or_else(|| no_transcript(&record))?;
        out.copy_available(&mut log)?;
        out.finish();
        return Ok(exit_code::OK);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
    runtime.block_on(follow(&ws, &args.task, record, log, &mut out))
}

/// Prints what is there, then what is appended while the task runs. The status is read
/// before the file each time, so once it says the task ended, one more read reaches
/// everything its sessions printed.
async fn follow(
    ws: &Workspace,
    name: &TaskName,
    mut record: TaskRecord,
    mut log: Option<File>,
    out: &mut Output<'_>,
) -> Result<u8, CommandError> {
    let mut interrupt = Listener::new(&[Signal::Int])
        .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
    let mut shown_prompt: Option<String> = None;
    loop {
        let running = record.status.is_live();
        if log.is_none() {
            // A task that has just started may not have opened its transcript yet.
            log = ws.store.read_log(name)?;
        }
        if let Some(log) = log.as_mut() {
            out.copy_available(log)?;
        }
        if !running {
            break;
        }
        // The transcript shows the prompt; the record says whether the task still waits on it.
        let prompt = record.pending.as_ref().map(|p| p.request_id.clone());
        if prompt.is_some()
            && prompt != shown_prompt
            && let Some(what) = crate::report::pending_line(&record)
        {
            out.ui.status(&format!(
                "waiting for an answer to {what}: `cms allow {name}` or `cms deny {name}`"
            ));
        }
        shown_prompt = prompt;
        tokio::select! {
            _ = interrupt.recv() => return Ok(exit_code::INTERRUPTED),
            () = tokio::time::sleep(POLL) => {}
        }
        // Reconciled: a task whose supervisor died reads as interrupted and ends the follow.
        record = ws.task(name)?;
    }
    if log.is_none() {
        return Err(no_transcript(&record));
    }
    out.finish();
    Ok(exit_code::OK)
}

fn no_transcript(record: &TaskRecord) -> CommandError {
    let name = &record.name;
    let hint = if record.status.is_live() {
        format!("its session is starting; `cms logs -f {name}` waits for it")
    } else {
        format!("its session never started; `cms show {name}` has what is known")
    };
    CommandError::user(format!("task '{name}' has no transcript yet")).with_hint(hint)
}

/// Prints transcript bytes as they arrive, in the chosen form.
struct Output<'a> {
    ui: &'a Ui,
    raw: bool,
    reader: Reader,
    /// The start of a line whose end has not been written yet.
    pending: Vec<u8>,
}

impl Output<'_> {
    /// Reads the file to its current end and prints every complete line.
    fn copy_available(&mut self, log: &mut File) -> Result<(), CommandError> {
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let n = log.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            if self.raw {
                self.ui.print_bytes(&chunk[..n]);
                continue;
            }
            self.pending.extend_from_slice(&chunk[..n]);
            let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            for line in lines.split(|&b| b == b'\n') {
                self.line(line);
            }
        }
    }

    /// Prints a last line that has no newline (the file ended in the middle of one).
    fn finish(&mut self) {
        let rest = std::mem::take(&mut self.pending);
        self.line(&rest);
    }

    fn line(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        // Lines that are not stream-json, or of a kind cms does not know, have nothing to read.
        for entry in self.reader.entries(&Event::parse(text)) {
            if self.ui.json {
                let json = serde_json::to_string(&entry).expect("entries always serialize");
                self.ui.println(&json);
            } else {
                self.ui.println(&readable(self.ui, &entry));
            }
        }
    }
}

fn readable(ui: &Ui, entry: &Entry) -> String {
    let s = &ui.out;
    let marker = entry.marker();
    let (indent, marker) = match entry {
        Entry::ToolResult {
            is_error: false, ..
        } => ("  ", s.good.apply_to(marker)),
        Entry::ToolResult { is_error: true, .. } => ("  ", s.bad.apply_to(marker)),
        Entry::Denied { .. } => ("", s.warn.apply_to(marker)),
        Entry::Result { is_error, .. } if *is_error => ("", s.bad.apply_to(marker)),
        Entry::Result { .. } => ("", s.good.apply_to(marker)),
        Entry::ToolCall { .. } => ("", s.name.apply_to(marker)),
        _ => ("", s.dim.apply_to(marker)),
    };
    format!("{indent}{marker} {}", entry.line())
}
