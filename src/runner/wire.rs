//! What the local cms and a worker running its task elsewhere agree on: the refs under
//! `refs/cms/jobs/<job>/` that carry the task through the git remote, the job's [`Spec`], the
//! control the local side writes, and the lines a worker prints to its job's log.
//!
//! Refs (all at the runner's remote):
//! - `start`: the commit the worker's worktree starts at.
//! - `in`: a files commit with `spec.json` (a [`Spec`]) and, for a follow-up,
//!   `session.jsonl` (claude's session file, which the worker resumes).
//! - `control`: a files commit with `control.json` (a [`Control`]), written by the local side
//!   and polled by the worker: permission answers and a stop request.
//! - `branch`: the task's branch tip, pushed by the worker at the end.
//! - `out`: a files commit with `record.json` (the worker's record), `log.jsonl` (claude's
//!   raw transcript), `stderr` and `session.jsonl`, pushed by the worker at every status
//!   change and at the end, so a worker that dies leaves its last state.
//!
//! A wire line is [`WORKER_PREFIX`] and one JSON object ([`WireLine`]); every other line of a
//! job's log (Ray's own) is ignored by [`parse_line`].

use serde::{Deserialize, Serialize};

use crate::git::{Oid, oid_hex};
use crate::store::{TaskName, TaskRecord};
use crate::vocab::{Limits, Preset, Status, TrustRecord};

/// What starts every wire line a worker prints.
pub const WORKER_PREFIX: &str = "cms-worker ";

/// The [`Spec`] version this cms writes and reads.
pub const SPEC_VERSION: u32 = 1;

/// The files of the `in`, `control` and `out` commits.
pub const SPEC_FILE: &str = "spec.json";
pub const SESSION_FILE: &str = "session.jsonl";
pub const CONTROL_FILE: &str = "control.json";
pub const RECORD_FILE: &str = "record.json";
pub const LOG_FILE: &str = "log.jsonl";
pub const STDERR_FILE: &str = "stderr";

/// One of a job's refs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRef {
    Start,
    In,
    Control,
    Branch,
    Out,
}

impl JobRef {
    pub fn as_str(self) -> &'static str {
        match self {
            JobRef::Start => "start",
            JobRef::In => "in",
            JobRef::Control => "control",
            JobRef::Branch => "branch",
            JobRef::Out => "out",
        }
    }
}

/// The folder of `job`'s refs: `refs/cms/jobs/<job>/`.
pub fn job_refs(job: &str) -> String {
    format!("refs/cms/jobs/{job}/")
}

/// The full name of one of `job`'s refs: `refs/cms/jobs/<job>/<which>`.
pub fn job_ref(job: &str, which: JobRef) -> String {
    format!("{}{}", job_refs(job), which.as_str())
}

/// A new job id for `task`: `cms-<task>-<8 hex digits>`, also the Ray submission id.
pub fn new_job_id(task: &TaskName) -> String {
    job_id(task, random_u32())
}

/// The job id of `task` with `suffix` as its 8 hex digits.
pub fn job_id(task: &TaskName, suffix: u32) -> String {
    format!("cms-{task}-{suffix:08x}")
}

/// Whether `text` can be a job id: it becomes a ref name's component and a path's, so only
/// letters, digits, `-`, `_` and `.`, not starting with `.` and without `..` or `.lock` at
/// its end.
pub fn valid_job_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !text.starts_with('.')
        && !text.contains("..")
        && !text.ends_with(".lock")
}

fn random_u32() -> u32 {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    match random {
        Ok(()) => u32::from_le_bytes(bytes),
        // Unique enough among one user's jobs, which is all the suffix is for.
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            nanos ^ std::process::id().rotate_left(16)
        }
    }
}

/// What a worker is to run: everything the local start decided, so the worker reads no
/// configuration and no trust of its own. The worker always runs the session with the
/// sandbox required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// [`SPEC_VERSION`]; a worker refuses any other.
    pub version: u32,
    pub task: TaskName,
    /// The task's prompt, as its record keeps it.
    pub prompt: String,
    /// What claude is sent: the prompt for a new task, the follow-up's message otherwise.
    pub message: String,
    /// The task's original base, from which its change is counted.
    #[serde(with = "oid_hex")]
    pub base: Oid,
    /// The commit the worker's worktree starts at (the branch's tip for a follow-up).
    #[serde(with = "oid_hex")]
    pub start: Oid,
    /// The session a follow-up resumes (its file is `session.jsonl` in the `in` commit).
    #[serde(default)]
    pub resume: Option<String>,
    /// A follow-up's record so far: cost, turns and time carry over, limits are sums over
    /// sessions.
    #[serde(default)]
    pub record: Option<TaskRecord>,
    #[serde(default)]
    pub model: Option<String>,
    pub preset: Preset,
    pub limits: Limits,
    /// The protected-path globs the task is judged by (its record's).
    #[serde(default)]
    pub protected: Vec<String>,
    /// `[safety] hosts`: domains the sandboxed Bash may reach.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Permission prompts wait for an answer (through `control`) instead of being denied.
    #[serde(default)]
    pub ask: bool,
    /// The user's trust in the repository's settings files, decided locally.
    #[serde(default)]
    pub trust: Option<TrustRecord>,
    /// claude on the worker: a name on PATH or a path.
    pub claude: String,
}

/// What the local side asks of a running worker (`control.json`); each write replaces the
/// whole, so answers accumulate in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// Stop the session, as `cms abort` does.
    #[serde(default)]
    pub stop: bool,
    #[serde(default)]
    pub answers: Vec<ControlAnswer>,
}

/// An answer to the permission prompt `request_id`, as `cms allow`/`cms deny` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlAnswer {
    pub request_id: String,
    pub allow: bool,
    #[serde(default)]
    pub always: bool,
    #[serde(default)]
    pub message: Option<String>,
    pub by: String,
}

/// What a worker pushed at its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    #[serde(with = "oid_hex")]
    pub out: Oid,
    #[serde(with = "oid_hex")]
    pub branch: Oid,
}

/// How the task ended on the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub status: Status,
    pub error: Option<String>,
}

/// One line a worker prints: [`WORKER_PREFIX`] and one of these as a JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireLine {
    /// A raw stream-json line claude printed, in order.
    Claude(String),
    /// The worker's record, on each change of its status, pending prompt or cost.
    Record(Box<TaskRecord>),
    /// The `out` and `branch` commits pushed at the end.
    Pushed(Pushed),
    /// The last line: how the task ended.
    End(End),
    /// The worker could not run the task (one line, like a command's error).
    Error(String),
}

impl WireLine {
    /// The line as printed, without its newline.
    pub fn to_line(&self) -> String {
        let json = serde_json::to_string(self).expect("wire lines serialize");
        format!("{WORKER_PREFIX}{json}")
    }
}

/// The wire line `line` holds, or `None` for any other line of a job's log.
pub fn parse_line(line: &str) -> Option<WireLine> {
    let json = line
        .trim_end_matches(['\r', '\n'])
        .strip_prefix(WORKER_PREFIX)?;
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::{
        Control, End, JobRef, Pushed, Spec, WireLine, job_id, job_ref, new_job_id, parse_line,
        valid_job_id,
    };
    use crate::git::Oid;
    use crate::store::{TaskName, TaskRecord};
    use crate::vocab::{Limits, Preset, Status};

    fn record() -> TaskRecord {
        let text = r#"{
          "version": 2, "name": "fix-auth", "status": "waiting", "prompt": "fix auth",
          "branch": "cms/fix-auth", "worktree": "/w/fix-auth",
          "base": "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "base_branch": "main",
          "session_id": "s-1", "model": null, "preset": "edit", "cost_usd": 0.25, "turns": 3,
          "duration_ms": 1200, "response": null, "tools_used": [], "files_changed": [],
          "permission_denials": [],
          "safety": {"limits": null, "protected": [], "violations": []},
          "error": null, "merge": null, "supervisor": null,
          "pending": {"request_id": "r-1", "tool_name": "Bash", "input": {"command": "ls"},
                      "description": null, "tool_use_id": null, "blocked_path": null,
                      "since": "2026-01-01T00:00:00Z"},
          "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        }"#;
        serde_json::from_str(text).unwrap()
    }

    fn oid(hex: char) -> Oid {
        Oid::from_str(&hex.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn every_wire_line_reads_back_as_it_was_printed() {
        let lines = [
            WireLine::Claude(r#"{"type":"system","subtype":"init","session_id":"s"}"#.to_owned()),
            WireLine::Claude("not json at all, \"quoted\"\tand tabbed".to_owned()),
            WireLine::Record(Box::new(record())),
            WireLine::Pushed(Pushed {
                out: oid('a'),
                branch: oid('b'),
            }),
            WireLine::End(End {
                status: Status::Aborted,
                error: Some("stopped by the user".to_owned()),
            }),
            WireLine::End(End {
                status: Status::Completed,
                error: None,
            }),
            WireLine::Error("the job's spec is not valid JSON".to_owned()),
        ];
        for line in lines {
            let text = line.to_line();
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(parse_line(&text), Some(line.clone()), "{text}");
            // As a log reader may get it, with its newline (or a CRLF).
            assert_eq!(parse_line(&format!("{text}\r\n")), Some(line));
        }
    }

    #[test]
    fn the_lines_have_the_shapes_the_design_names() {
        let end = WireLine::End(End {
            status: Status::Completed,
            error: None,
        });
        assert_eq!(
            end.to_line(),
            r#"cms-worker {"end":{"status":"completed","error":null}}"#
        );
        let pushed = WireLine::Pushed(Pushed {
            out: oid('a'),
            branch: oid('b'),
        });
        assert_eq!(
            pushed.to_line(),
            format!(
                r#"cms-worker {{"pushed":{{"out":"{}","branch":"{}"}}}}"#,
                "a".repeat(40),
                "b".repeat(40)
            )
        );
        assert_eq!(
            WireLine::Claude("{}".to_owned()).to_line(),
            r#"cms-worker {"claude":"{}"}"#
        );
        assert_eq!(
            WireLine::Error("x".to_owned()).to_line(),
            r#"cms-worker {"error":"x"}"#
        );
    }

    #[test]
    fn rays_own_log_lines_and_damaged_wire_lines_are_ignored() {
        for line in [
            "",
            "2026-01-01 00:00:00,000\tINFO job_manager.py:530 -- Runtime env is setting up.",
            "Running entrypoint for job cms-fix-auth-0a1b2c3d: ./cms worker --remote x --job y",
            r#"{"claude":"{}"}"#,
            r#" cms-worker {"claude":"{}"}"#,
            "cms-worker ",
            r#"cms-worker {"claude":"{}""#,
            r#"cms-worker {"unknown":1}"#,
            r#"cms-worker {"claude":"{}","end":{"status":"completed","error":null}}"#,
            "cms-worker-ish {}",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn a_spec_and_a_control_read_back_and_missing_optional_fields_default() {
        let spec = Spec {
            version: 1,
            task: TaskName::parse("fix-auth").unwrap(),
            prompt: "fix auth".to_owned(),
            message: "and test it".to_owned(),
            base: oid('1'),
            start: oid('2'),
            resume: Some("s-1".to_owned()),
            record: Some(record()),
            model: Some("sonnet".to_owned()),
            preset: Preset::Edit,
            limits: Limits::default(),
            protected: vec!["secrets/**".to_owned()],
            hosts: vec!["registry.npmjs.org".to_owned()],
            ask: true,
            trust: None,
            claude: "claude".to_owned(),
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&text).unwrap(), spec);
        let minimal = format!(
            r#"{{"version":1,"task":"t","prompt":"p","message":"p","base":"{}","start":"{}",
                "preset":"edit","limits":{{"max_cost_usd":1.0,"max_turns":5,"max_duration_ms":1000}},
                "claude":"claude"}}"#,
            "1".repeat(40),
            "2".repeat(40)
        );
        let spec: Spec = serde_json::from_str(&minimal).unwrap();
        assert_eq!((spec.resume, spec.ask, spec.trust), (None, false, None));
        let control: Control = serde_json::from_str("{}").unwrap();
        assert_eq!(control, Control::default());
        let control: Control = serde_json::from_str(
            r#"{"stop":false,"answers":[{"request_id":"r","allow":false,"always":false,
                "message":"no","by":"cms deny (pid 1)"}]}"#,
        )
        .unwrap();
        assert_eq!(control.answers[0].message.as_deref(), Some("no"));
    }

    #[test]
    fn job_ids_name_the_task_and_make_valid_ref_names() {
        let task = TaskName::parse("fix-auth").unwrap();
        assert_eq!(job_id(&task, 0x0a1b2c3d), "cms-fix-auth-0a1b2c3d");
        let fresh = new_job_id(&task);
        assert!(fresh.starts_with("cms-fix-auth-") && fresh.len() == "cms-fix-auth-".len() + 8);
        assert!(valid_job_id(&fresh));
        assert_eq!(
            job_ref(&fresh, JobRef::Control),
            format!("refs/cms/jobs/{fresh}/control")
        );
        for bad in ["", "../x", "a/b", ".hidden", "x.lock", "a b", "a..b"] {
            assert!(!valid_job_id(bad), "{bad:?}");
        }
    }
}
