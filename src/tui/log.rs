//! The live tail of one task's readable log: the transcript read from where it was last left,
//! turned into `cms logs` lines.

use std::fs::File;
use std::io::Read;

use crate::session::protocol::Event;
use crate::store::{Store, TaskName, TaskRecord};
use crate::transcript::Reader;

/// Lines kept; the pane shows the last of them.
const KEEP: usize = 500;

#[derive(Default)]
pub struct LogTail {
    name: Option<TaskName>,
    file: Option<File>,
    reader: Reader,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    pub lines: Vec<String>,
}

impl LogTail {
    /// Follows `record`'s transcript (starting over when it is another task's), reading what
    /// was appended since the last call. Returns whether there are new lines.
    pub fn update(&mut self, store: &Store, record: Option<&TaskRecord>) -> bool {
        let Some(record) = record else {
            let had = !self.lines.is_empty();
            *self = LogTail::default();
            return had;
        };
        if self.name.as_ref() != Some(&record.name) {
            *self = LogTail {
                name: Some(record.name.clone()),
                reader: Reader::new(&record.worktree),
                ..LogTail::default()
            };
        }
        if self.file.is_none() {
            // A task that has just started may not have opened its transcript yet.
            let Ok(Some(file)) = store.read_log(&record.name) else {
                return false;
            };
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        let before = self.lines.len();
        let mut chunk = vec![0; 64 * 1024];
        while let Ok(n) = file.read(&mut chunk) {
            if n == 0 {
                break;
            }
            self.partial.extend_from_slice(&chunk[..n]);
        }
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return false;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(line);
            if text.trim().is_empty() {
                continue;
            }
            for entry in self.reader.entries(&Event::parse(text.trim_end())) {
                self.lines
                    .push(format!("{} {}", entry.marker(), entry.line()));
            }
        }
        let extra = self.lines.len().saturating_sub(KEEP);
        self.lines.drain(..extra);
        self.lines.len() != before || extra > 0
    }
}

/// `text` as the terminal will show it: tabs expanded to the next multiple of 8 columns and
/// other control characters dropped. ratatui counts a tab or an escape as one column (or
/// none) while the terminal moves the cursor further, so cells it believes it drew keep
/// what was there before.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut column = 0;
    for c in text.chars() {
        if c == '\t' {
            let to = (column / 8 + 1) * 8;
            out.extend(std::iter::repeat_n(' ', to - column));
            column = to;
        } else if c == '\n' {
            // One row per line here: a line break inside one reads as a space.
            out.push(' ');
            column += 1;
        } else if !c.is_control() {
            out.push(c);
            let mut buf = [0; 4];
            column += ratatui::text::Span::raw(&*c.encode_utf8(&mut buf)).width();
        }
    }
    out
}
