//! `[notify] command`: the user's own program, told when a task ends, so a desktop or chat
//! notification can be wired without cms knowing either.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::store::TaskRecord;

/// How long the notifier may take before it is killed; the task's end must not wait on it.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `command` with the task's JSON on its stdin and `CMS_TASK`, `CMS_STATUS` set. A
/// failure is returned as one line for a warning; it never changes the task.
pub fn notify(
    command: &[String],
    record: &TaskRecord,
    json: &serde_json::Value,
) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("notify.command is empty")?;
    let mut child = Command::new(program)
        .args(args)
        .env("CMS_TASK", record.name.as_str())
        .env("CMS_STATUS", record.status.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run {program}: {err}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A notifier that does not read its stdin is fine.
        let _ = stdin.write_all(json.to_string().as_bytes());
    }
    let deadline = Instant::now() + NOTIFY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{program} failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} took longer than {}s and was stopped",
                    NOTIFY_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => return Err(format!("{program}: {err}")),
        }
    }
}
