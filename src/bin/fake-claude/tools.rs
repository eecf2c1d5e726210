//! The tool steps (Write, Read, Edit, Bash, denials, sleeps) and their effects on files.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::child::{Ended, in_own_session, run_to_end, shell, write_file};
use crate::inbox::POLL;
use crate::output::{Json, Obj, emit, tool_input_json, tool_result_error, tool_result_ok};
use crate::patch::structured_patch;
use crate::session::{Session, TurnEnd, TurnState};

const FRESH_STATE: &str = "(file state is current in your context — no need to Read it back)";

impl Session {
    pub fn write_step(
        &mut self,
        st: &mut TurnState,
        path: &str,
        content: &str,
    ) -> Result<(), TurnEnd> {
        let file = self.cwd.join(path);
        let file_path = file.display().to_string();
        let input = Obj::new()
            .field("file_path", &file_path)
            .field("content", content)
            .end();
        let Some(id) = self.hooked_tool_use(st, "Write", &input)? else {
            return Ok(());
        };
        let original = fs::read_to_string(&file).ok();
        if let Err(err) = write_file(&file, content) {
            self.tool_use_error(&id, &err.to_string());
            return Ok(());
        }
        let (kind, message, patch) = match &original {
            None => (
                "create",
                format!("File created successfully at: {file_path} {FRESH_STATE}"),
                Json::array(Vec::new()),
            ),
            Some(old) => (
                "update",
                format!("The file {file_path} has been updated successfully. {FRESH_STATE}"),
                structured_patch(old, content),
            ),
        };
        let result = Obj::new()
            .field("type", kind)
            .field("filePath", &file_path)
            .field("content", content)
            .raw("structuredPatch", patch)
            .field("originalFile", &original)
            .field("userModified", false)
            .end();
        emit(&self.user_event(tool_result_ok(&id, &message).end(), Some(result)));
        Ok(())
    }

    pub fn read_step(&mut self, st: &mut TurnState, path: &str) -> Result<(), TurnEnd> {
        let file = self.cwd.join(path);
        let file_path = file.display().to_string();
        let input = Obj::new().field("file_path", &file_path).end();
        // Read finds a missing file only when it runs, after the hooks.
        let Some(id) = self.hooked_tool_use(st, "Read", &input)? else {
            return Ok(());
        };
        let Ok(text) = fs::read_to_string(&file) else {
            let message = format!(
                "File does not exist. Note: your current working directory is {}.",
                self.cwd.display()
            );
            self.tool_use_error(&id, &message);
            return Ok(());
        };
        // Like the real Read tool, the empty string after a final newline counts as a line.
        let lines: Vec<&str> = text.split('\n').collect();
        let numbered: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("{}\t{line}", i + 1))
            .collect();
        let details = Obj::new()
            .field("filePath", &file_path)
            .field("content", &text)
            .field("numLines", lines.len())
            .field("startLine", 1)
            .field("totalLines", lines.len())
            .end();
        let result = Obj::new().field("type", "text").raw("file", details).end();
        let block = tool_result_ok(&id, &numbered.join("\n")).end();
        emit(&self.user_event(block, Some(result)));
        Ok(())
    }

    pub fn edit_step(
        &mut self,
        st: &mut TurnState,
        path: &str,
        old: &str,
        new: &str,
        replace_all: bool,
    ) -> Result<(), TurnEnd> {
        let file = self.cwd.join(path);
        let file_path = file.display().to_string();
        let input = Obj::new()
            .field("replace_all", replace_all)
            .field("file_path", &file_path)
            .field("old_string", old)
            .field("new_string", new)
            .end();
        let id = self.tool_use(st, "Edit", input.clone())?;
        let Ok(original) = fs::read_to_string(&file) else {
            self.tool_use_error(&id, "File does not exist.");
            return Ok(());
        };
        let matches = if old.is_empty() {
            0
        } else {
            original.matches(old).count()
        };
        if matches == 0 {
            self.tool_use_error(
                &id,
                &format!("String to replace not found in file.\nString: {old}"),
            );
            return Ok(());
        }
        if matches > 1 && !replace_all {
            self.tool_use_error(
                &id,
                &format!(
                    "Found {matches} matches of the string to replace, but replace_all is false. \
                     To replace all occurrences, set replace_all to true. To replace only one \
                     occurrence, please provide more context to uniquely identify the instance.\n\
                     String: {old}"
                ),
            );
            return Ok(());
        }
        // The checks above are Edit's input validation, which the real CLI does before hooks.
        if self.blocked_by_hooks(st, "Edit", &input, &id)? {
            return Ok(());
        }
        let updated = edited(&original, old, new, replace_all);
        if let Err(err) = fs::write(&file, &updated) {
            self.tool_use_error(&id, &err.to_string());
            return Ok(());
        }
        let message = format!("The file {file_path} has been updated successfully. {FRESH_STATE}");
        let result = Obj::new()
            .field("filePath", &file_path)
            .field("oldString", old)
            .field("newString", new)
            .field("originalFile", &original)
            .raw("structuredPatch", structured_patch(&original, &updated))
            .field("userModified", false)
            .field("replaceAll", replace_all)
            .end();
        emit(&self.user_event(tool_result_ok(&id, &message).end(), Some(result)));
        Ok(())
    }

    pub fn bash_step(
        &mut self,
        st: &mut TurnState,
        command: &str,
        description: &str,
    ) -> Result<(), TurnEnd> {
        let input = Obj::new()
            .field("command", command)
            .field("description", description)
            .end();
        let Some(id) = self.hooked_tool_use(st, "Bash", &input)? else {
            return Ok(());
        };
        let output = match run_to_end(shell(command, &self.cwd), None, None, &mut self.inbox) {
            Ok(Ended::Exited(output)) => output,
            Ok(Ended::Aborted(abort)) => return Err(self.interrupted(st, abort, Some(&id))),
            Ok(Ended::TimedOut) => unreachable!("a Bash step runs without a timeout"),
            Err(err) => {
                self.tool_use_error(&id, &err.to_string());
                return Ok(());
            }
        };
        // The real Bash tool drops trailing newlines before reporting output.
        let stdout = output.stdout.trim_end_matches('\n');
        let stderr = output.stderr.trim_end_matches('\n');
        let printed = [stdout, stderr].into_iter().filter(|text| !text.is_empty());
        if output.code != 0 {
            let content = std::iter::once(format!("Exit code {}", output.code))
                .chain(printed.map(str::to_string))
                .collect::<Vec<_>>()
                .join("\n");
            self.emit_tool_error(&id, &content, &format!("Error: {content}"));
            return Ok(());
        }
        let mut content = printed.collect::<Vec<_>>().join("\n");
        if content.is_empty() {
            content = "(Bash completed with no output)".to_string();
        }
        let block = tool_result_ok(&id, &content).field("is_error", false).end();
        let result = Obj::new()
            .field("stdout", stdout)
            .field("stderr", stderr)
            .field("interrupted", false)
            .field("isImage", false)
            .field("noOutputExpected", false)
            .end();
        emit(&self.user_event(block, Some(result)));
        Ok(())
    }

    pub fn deny_step(
        &mut self,
        st: &mut TurnState,
        tool: &str,
        input: &Value,
        message: Option<&str>,
    ) -> Result<(), TurnEnd> {
        let mut input = input.clone();
        // Models always send absolute paths; scripts may say `hello.txt`.
        if let Some(path) = input.get_mut("file_path")
            && let Some(relative) = path.as_str().filter(|p| !p.starts_with('/'))
        {
            *path = Value::from(self.cwd.join(relative).display().to_string());
        }
        let input_json = tool_input_json(tool, &input);
        let id = self.tool_use(st, tool, input_json.clone())?;
        let message = message.map_or_else(|| self.default_denial(tool, &input), str::to_string);
        self.deny(st, tool, &id, input_json, &message);
        Ok(())
    }

    /// A refused tool call: its error result, and its entry in the result's `permission_denials`.
    pub fn deny(
        &self,
        st: &mut TurnState,
        tool: &str,
        tool_use_id: &str,
        input: Json,
        message: &str,
    ) {
        self.emit_tool_error(tool_use_id, message, &format!("Error: {message}"));
        st.denials.push(
            Obj::new()
                .field("tool_name", tool)
                .field("tool_use_id", tool_use_id)
                .raw("tool_input", input)
                .end(),
        );
    }

    pub fn default_denial(&self, tool: &str, input: &Value) -> String {
        let text = |key: &str| input[key].as_str().unwrap_or_default().to_string();
        match tool {
            "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => format!(
                "Claude requested permissions to write to {}, but you haven't granted it yet.",
                text("file_path")
            ),
            "Bash" => {
                let command = text("command");
                let words: Vec<&str> = command.split_whitespace().collect();
                let program = words.first().copied().unwrap_or_default();
                let target = self.cwd.join(words.last().copied().unwrap_or_default());
                format!(
                    "{program} in '{}' was blocked. For security, Claude Code may only create or \
                     modify files in the allowed working directories for this session: '{}'.",
                    target.display(),
                    self.cwd.display()
                )
            }
            _ => format!(
                "Claude requested permissions to use {tool}, but you haven't granted it yet."
            ),
        }
    }

    pub fn sleep_step(&mut self, st: &mut TurnState, ms: u64) -> Result<(), TurnEnd> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            // A sleep stands for a slow API call, so an interrupt here aborts "streaming".
            if let Some(abort) = self.inbox.poll(left.min(POLL)) {
                return Err(self.interrupted(st, abort, None));
            }
        }
    }

    pub fn spawn_grandchild(&self, pidfile: &Path, sleep_s: u64) -> io::Result<()> {
        let mut cmd = Command::new("sleep");
        cmd.arg(sleep_s.to_string())
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = in_own_session(&mut cmd).spawn()?;
        fs::write(self.cwd.join(pidfile), format!("{}\n", child.id()))?;
        // Reaped in the background so that a killed sleeper does not linger as our zombie;
        // when we exit first it is adopted by init and outlives us, like the tool processes
        // the real CLI leaves behind.
        thread::spawn(move || child.wait());
        Ok(())
    }

    fn tool_use_error(&self, tool_use_id: &str, message: &str) {
        self.emit_tool_error(
            tool_use_id,
            &format!("<tool_use_error>{message}</tool_use_error>"),
            &format!("Error: {message}"),
        );
    }

    fn emit_tool_error(&self, tool_use_id: &str, content: &str, tool_use_result: &str) {
        let block = tool_result_error(tool_use_id, content);
        emit(&self.user_event(block, Some(Json::of(tool_use_result))));
    }
}

/// The text an Edit leaves: the first occurrence of `old` replaced, or every one.
pub fn edited(original: &str, old: &str, new: &str, replace_all: bool) -> String {
    if replace_all {
        original.replace(old, new)
    } else {
        original.replacen(old, new, 1)
    }
}
