//! Bash commands run in the background (`run_in_background`), as
//! `samples/background_*.jsonl` show the real CLI running them: `task_started` and an
//! immediate tool_result, then, between turns, `task_updated` and `task_notification` when one
//! ends and a turn of its own reporting it; `stop_task` kills one; a closed stdin waits 5 s
//! for them and kills the rest.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::child::{kill_group, shell};
use crate::ids::{project_dir_name, random_hex, uuid_v4};
use crate::inbox::POLL;
use crate::output::{Obj, emit, tool_result_ok};
use crate::session::{Session, TurnEnd, TurnState};

/// How long the real CLI waits for background commands once its stdin has closed ("print
/// wind-down", a fixed 5000 ms in 2.1.197) before it kills them.
const WIND_DOWN: Duration = Duration::from_secs(5);

pub struct Job {
    pub id: String,
    tool_use_id: String,
    description: String,
    child: Child,
    output_file: PathBuf,
}

/// How a job ended, as claude reports it.
pub struct Ended {
    job: Job,
    code: i32,
}

impl Session {
    pub fn background_bash_step(
        &mut self,
        st: &mut TurnState,
        command: &str,
        description: &str,
    ) -> Result<(), TurnEnd> {
        let input = Obj::new()
            .field("command", command)
            .field("description", description)
            .field("run_in_background", true)
            .end();
        let Some(tool_use_id) = self.hooked_tool_use(st, "Bash", &input)? else {
            return Ok(());
        };
        let id = format!("b{}", random_hex(8));
        let output_file = self.task_output_file(&id);
        let started = output_file
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| File::create(&output_file))
            .and_then(|out| {
                let mut cmd = shell(command, &self.cwd);
                cmd.stdout(out.try_clone()?).stderr(out);
                cmd.spawn()
            });
        let child = match started {
            Ok(child) => child,
            Err(err) => {
                eprintln!("fake-claude: background command failed to start: {err}");
                return Ok(());
            }
        };
        emit(
            &Obj::new()
                .field("type", "system")
                .field("subtype", "task_started")
                .field("task_id", &id)
                .field("tool_use_id", &tool_use_id)
                .field("description", description)
                .field("task_type", "local_bash")
                .field("uuid", uuid_v4())
                .field("session_id", &self.session_id)
                .end(),
        );
        let content = format!(
            "Command running in background with ID: {id}. Output is being written to: {}. You \
             will be notified when it completes. To check interim output, use Read on that file \
             path.",
            output_file.display()
        );
        let block = tool_result_ok(&tool_use_id, &content)
            .field("is_error", false)
            .end();
        let result = Obj::new()
            .field("stdout", "")
            .field("stderr", "")
            .field("interrupted", false)
            .field("isImage", false)
            .field("noOutputExpected", false)
            .field("backgroundTaskId", &id)
            .end();
        emit(&self.user_event(block, Some(result)));
        self.jobs.push(Job {
            id,
            tool_use_id,
            description: description.to_owned(),
            child,
            output_file,
        });
        Ok(())
    }

    /// `$TMPDIR/claude-<uid>/<cwd, mangled>/<session>/tasks/<id>.output`, as the real CLI.
    fn task_output_file(&self, id: &str) -> PathBuf {
        // SAFETY: getuid cannot fail and touches no memory.
        let uid = unsafe { libc::getuid() };
        std::env::temp_dir()
            .join(format!("claude-{uid}"))
            .join(project_dir_name(&self.cwd.display().to_string()))
            .join(&self.session_id)
            .join("tasks")
            .join(format!("{id}.output"))
    }

    /// The first job that has ended on its own, taken off the list.
    pub fn ended_job(&mut self) -> Option<Ended> {
        let at = self
            .jobs
            .iter_mut()
            .position(|job| matches!(job.child.try_wait(), Ok(Some(_))))?;
        let mut job = self.jobs.remove(at);
        let status = job.child.wait().ok()?;
        let code = status.code().unwrap_or(128);
        Some(Ended { job, code })
    }

    /// Prints a job's end, as claude does between turns; the caller then runs the turn that
    /// reports it to the model.
    pub fn report_end(&self, ended: &Ended) {
        let (status, summary) = if ended.code == 0 {
            (
                "completed",
                format!(
                    "Background command \"{}\" completed (exit code 0)",
                    ended.job.description
                ),
            )
        } else {
            (
                "failed",
                format!(
                    "Background command \"{}\" failed with exit code {}",
                    ended.job.description, ended.code
                ),
            )
        };
        self.task_updated(&ended.job.id, status);
        emit(
            &Obj::new()
                .field("type", "system")
                .field("subtype", "task_notification")
                .field("task_id", &ended.job.id)
                .field("tool_use_id", &ended.job.tool_use_id)
                .field("status", status)
                .field("output_file", ended.job.output_file.display().to_string())
                .field("summary", summary)
                .field("session_id", &self.session_id)
                .field("uuid", uuid_v4())
                .end(),
        );
    }

    /// `stop_task`: the job killed at once, its end printed, then the answer; no turn follows.
    pub fn stop_job(&mut self, request_id: &str, task_id: &str) {
        if let Some(at) = self.jobs.iter().position(|job| job.id == task_id) {
            let job = self.jobs.remove(at);
            self.kill_job(job);
        }
        let response = Obj::new()
            .field("subtype", "success")
            .field("request_id", request_id)
            .raw("response", Obj::new().end())
            .end();
        emit(
            &Obj::new()
                .field("type", "control_response")
                .raw("response", response)
                .end(),
        );
    }

    fn kill_job(&self, mut job: Job) {
        kill_group(job.child.id());
        let _ = job.child.wait();
        self.task_updated(&job.id, "killed");
        emit(
            &Obj::new()
                .field("type", "system")
                .field("subtype", "task_notification")
                .field("task_id", &job.id)
                .field("tool_use_id", &job.tool_use_id)
                .field("status", "stopped")
                .field("output_file", "")
                .field("summary", &job.description)
                .field("uuid", uuid_v4())
                .field("session_id", &self.session_id)
                .end(),
        );
    }

    fn task_updated(&self, task_id: &str, status: &str) {
        let end_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let patch = Obj::new()
            .field("status", status)
            .field("end_time", end_time)
            .end();
        emit(
            &Obj::new()
                .field("type", "system")
                .field("subtype", "task_updated")
                .field("task_id", task_id)
                .raw("patch", patch)
                .field("uuid", uuid_v4())
                .field("session_id", &self.session_id)
                .end(),
        );
    }

    /// stdin has closed: a job that ends within the wind-down is returned, to be reported;
    /// `None` once none is left, the ones still running then killed unreported.
    pub fn wind_down(&mut self, since: Instant) -> Option<Ended> {
        loop {
            if let Some(ended) = self.ended_job() {
                return Some(ended);
            }
            if self.jobs.is_empty() {
                return None;
            }
            if since.elapsed() >= WIND_DOWN {
                for job in std::mem::take(&mut self.jobs) {
                    self.kill_job(job);
                }
                return None;
            }
            std::thread::sleep(POLL);
        }
    }
}
