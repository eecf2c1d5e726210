//! A blocking client of Ray's Jobs REST API (the dashboard's `/api/jobs/`, `/api/packages/`,
//! `/api/version`): submit a job, read its status and logs, stop and delete it, and upload the
//! cms binary as a content-addressed package. Every request has timeouts, so an unreachable
//! head is an error in seconds, not a hang.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::RunnerError;

/// How long a connection to the head may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the head may take to answer, and to send each part of its answer.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of one answer cms reads: a long session's whole log comes in one answer.
const MAX_BODY: u64 = 1 << 30;
/// The longest error message of the head's that cms repeats (its tracebacks are long).
const MAX_MESSAGE: usize = 300;

/// A Ray cluster's Jobs API (a clone shares its connections).
#[derive(Clone)]
pub struct RayClient {
    /// `http(s)://host:port`, without a trailing `/`.
    address: String,
    agent: ureq::Agent,
}

/// A job to submit. `env_vars` hold secrets (API keys): `Debug` shows their names only, and no
/// error cms makes repeats their values.
#[derive(Clone, PartialEq)]
pub struct JobSpec {
    pub submission_id: String,
    /// A shell command line, run in `working_dir` on a worker.
    pub entrypoint: String,
    pub env_vars: BTreeMap<String, String>,
    /// A `gcs://` package (see [`RayClient::ensure_package`]) unpacked as the job's folder.
    pub working_dir: Option<String>,
    pub num_cpus: f64,
    /// Bytes.
    pub memory: Option<u64>,
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: BTreeMap<&str, &str> = self
            .env_vars
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("JobSpec")
            .field("submission_id", &self.submission_id)
            .field("entrypoint", &self.entrypoint)
            .field("env_vars", &env)
            .field("working_dir", &self.working_dir)
            .field("num_cpus", &self.num_cpus)
            .field("memory", &self.memory)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Where a job is in its life, as Ray says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
}

impl JobState {
    /// Whether the job has ended (it will not change again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Stopped | JobState::Succeeded | JobState::Failed
        )
    }

    fn parse(text: &str) -> Option<JobState> {
        Some(match text {
            "PENDING" => JobState::Pending,
            "RUNNING" => JobState::Running,
            "STOPPED" => JobState::Stopped,
            "SUCCEEDED" => JobState::Succeeded,
            "FAILED" => JobState::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Stopped => "STOPPED",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
        }
    }
}

/// A job's state, Ray's message about it, and its entrypoint's exit code once it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub state: JobState,
    pub message: Option<String>,
    pub exit_code: Option<i32>,
}

/// The package name of each binary hashed in this process, by (path, length, mtime): hashing
/// a binary of tens of megabytes once per task start would be the start's largest cost.
static PACKAGES: Mutex<BTreeMap<PackageKey, String>> = Mutex::new(BTreeMap::new());

/// A binary as it is on disk: its path, length and modification time.
type PackageKey = (PathBuf, u64, SystemTime);

/// An answer: its status and body.
struct Answer {
    status: u16,
    body: String,
}

impl RayClient {
    /// A client of the Jobs API at `address` (`http://host:8265`); makes no request.
    pub fn new(address: &str) -> Result<RayClient, RunnerError> {
        super::validate_address(address).map_err(|reason| RunnerError::Address {
            address: address.to_owned(),
            reason,
        })?;
        let config = ureq::Agent::config_builder()
            .timeout_resolve(Some(CONNECT_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(READ_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .timeout_per_write(Some(READ_TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("cms/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(RayClient {
            address: address.trim_end_matches('/').to_owned(),
            agent: config.into(),
        })
    }

    /// The cluster's Ray version (`GET /api/version`).
    pub fn version(&self) -> Result<String, RunnerError> {
        let action = "say its version";
        let answer = self.request("GET", "/api/version", None, action)?;
        let json = self.expect_json(answer, action, &[])?;
        json["ray_version"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.protocol(action, "no ray_version"))
    }

    /// Makes sure the cluster holds `exe` as a package whose one file is `cms` and returns its
    /// URI, `gcs://_ray_pkg_cms_<first 16 hex digits of the binary's SHA-256>.zip`, for a job's
    /// `working_dir`. A package already there is not uploaded again.
    pub fn ensure_package(&self, exe: &Path) -> Result<String, RunnerError> {
        self.ensure_package_uploaded(exe).map(|(uri, _)| uri)
    }

    /// [`RayClient::ensure_package`], and whether it uploaded the package.
    pub(crate) fn ensure_package_uploaded(
        &self,
        exe: &Path,
    ) -> Result<(String, bool), RunnerError> {
        let package_error = |reason: String| RunnerError::Package {
            path: exe.to_owned(),
            reason,
        };
        let meta = std::fs::metadata(exe).map_err(|e| package_error(e.to_string()))?;
        let key = (
            exe.to_owned(),
            meta.len(),
            meta.modified().map_err(|e| package_error(e.to_string()))?,
        );
        let cached = PACKAGES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let mut bytes = None;
        let name = match cached {
            Some(name) => name,
            None => {
                let content = std::fs::read(exe).map_err(|e| package_error(e.to_string()))?;
                let digest = Sha256::digest(&content);
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                let name = format!("_ray_pkg_cms_{hex}.zip");
                PACKAGES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, name.clone());
                bytes = Some(content);
                name
            }
        };
        let uri = format!("gcs://{name}");
        let path = format!("/api/packages/gcs/{name}");
        let check = "say whether it holds cms's package";
        let answer = self.request("GET", &path, None, check)?;
        match answer.status {
            200 => return Ok((uri, false)),
            404 => {}
            _ => return Err(self.refused(check, answer, &[])),
        }
        let content = match bytes {
            Some(content) => content,
            None => std::fs::read(exe).map_err(|e| package_error(e.to_string()))?,
        };
        let zipped = zip_binary(&content).map_err(package_error)?;
        let upload = "take cms's package";
        let answer = self.request("PUT", &path, Some(Body::Bytes(&zipped)), upload)?;
        if answer.status != 200 {
            return Err(self.refused(upload, answer, &[]));
        }
        Ok((uri, true))
    }

    /// Submits `job` (`POST /api/jobs/`).
    pub fn submit(&self, job: &JobSpec) -> Result<(), RunnerError> {
        let mut runtime_env = json!({ "env_vars": job.env_vars });
        if let Some(dir) = &job.working_dir {
            runtime_env["working_dir"] = json!(dir);
        }
        let mut body = json!({
            "submission_id": job.submission_id,
            "entrypoint": job.entrypoint,
            "runtime_env": runtime_env,
            "entrypoint_num_cpus": job.num_cpus,
            "metadata": job.metadata,
        });
        if let Some(memory) = job.memory {
            body["entrypoint_memory"] = json!(memory);
        }
        let secrets: Vec<&str> = job.env_vars.values().map(String::as_str).collect();
        let action = format!("submit job {}", job.submission_id);
        let answer = self.request("POST", "/api/jobs/", Some(Body::Json(&body)), &action)?;
        self.expect_json(answer, &action, &secrets).map(|_| ())
    }

    /// The job's state (`GET /api/jobs/<id>`).
    pub fn status(&self, id: &str) -> Result<JobStatus, RunnerError> {
        let action = format!("say how job {id} is");
        let answer = self.job_request("GET", id, "", &action)?;
        let json = self.expect_json(answer, &action, &[])?;
        let state = json["status"]
            .as_str()
            .and_then(JobState::parse)
            .ok_or_else(|| self.protocol(&action, &format!("status {}", json["status"])))?;
        Ok(JobStatus {
            state,
            message: json["message"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            exit_code: json["driver_exit_code"]
                .as_i64()
                .and_then(|c| i32::try_from(c).ok()),
        })
    }

    /// The job's whole log so far (`GET /api/jobs/<id>/logs`); a follower keeps its own offset.
    pub fn logs(&self, id: &str) -> Result<String, RunnerError> {
        let action = format!("give the logs of job {id}");
        let answer = self.job_request("GET", id, "/logs", &action)?;
        let json = self.expect_json(answer, &action, &[])?;
        json["logs"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.protocol(&action, "no logs"))
    }

    /// Asks Ray to stop the job (`POST /api/jobs/<id>/stop`), which ends its entrypoint's
    /// process group (SIGTERM, then SIGKILL); Ray's `stopped` answer, `true` even for a job
    /// that has just ended, so [`RayClient::status`] says how it ended.
    pub fn stop(&self, id: &str) -> Result<bool, RunnerError> {
        let action = format!("stop job {id}");
        let answer = self.job_request("POST", id, "/stop", &action)?;
        let json = self.expect_json(answer, &action, &[])?;
        json["stopped"]
            .as_bool()
            .ok_or_else(|| self.protocol(&action, "no stopped"))
    }

    /// Forgets an ended job, its logs included (`DELETE /api/jobs/<id>`).
    pub fn delete(&self, id: &str) -> Result<(), RunnerError> {
        let action = format!("delete job {id}");
        let answer = self.job_request("DELETE", id, "", &action)?;
        self.expect_json(answer, &action, &[]).map(|_| ())
    }

    /// A request about one job; Ray's 404 is [`RunnerError::UnknownJob`].
    fn job_request(
        &self,
        method: &str,
        id: &str,
        tail: &str,
        action: &str,
    ) -> Result<Answer, RunnerError> {
        let path = format!("/api/jobs/{}{tail}", escape_segment(id));
        let answer = self.request(method, &path, None, action)?;
        if answer.status == 404 {
            return Err(RunnerError::UnknownJob {
                address: self.address.clone(),
                job: id.to_owned(),
            });
        }
        Ok(answer)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Body<'_>>,
        action: &str,
    ) -> Result<Answer, RunnerError> {
        let url = format!("{}{path}", self.address);
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("POST", None) => self.agent.post(&url).send_empty(),
            ("POST", Some(Body::Json(json))) => self
                .agent
                .post(&url)
                .content_type("application/json")
                .send(json.to_string().as_bytes()),
            ("PUT", Some(Body::Bytes(bytes))) => self
                .agent
                .put(&url)
                .content_type("application/zip")
                .send(bytes),
            (method, _) => unreachable!("no {method} request is made"),
        };
        let mut response = sent.map_err(|err| self.unreachable(&err))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|err| match err {
                ureq::Error::Timeout(_) | ureq::Error::Io(_) => self.unreachable(&err),
                other => self.protocol(action, &other.to_string()),
            })?;
        // A proxy or ingress in front of a head that is down answers for it.
        if matches!(status, 502..=504) {
            return Err(RunnerError::Unreachable {
                address: self.address.clone(),
                reason: format!("HTTP {status} from what stands in front of it"),
            });
        }
        Ok(Answer { status, body })
    }

    fn unreachable(&self, err: &ureq::Error) -> RunnerError {
        RunnerError::Unreachable {
            address: self.address.clone(),
            reason: one_line(&err.to_string(), &[]),
        }
    }

    /// The answer's JSON, when the head said yes.
    fn expect_json(
        &self,
        answer: Answer,
        action: &str,
        secrets: &[&str],
    ) -> Result<Value, RunnerError> {
        if answer.status != 200 {
            return Err(self.refused(action, answer, secrets));
        }
        serde_json::from_str(&answer.body).map_err(|e| self.protocol(action, &e.to_string()))
    }

    fn refused(&self, action: &str, answer: Answer, secrets: &[&str]) -> RunnerError {
        RunnerError::Refused {
            address: self.address.clone(),
            action: action.to_owned(),
            status: answer.status,
            message: one_line(&answer.body, secrets),
        }
    }

    fn protocol(&self, action: &str, reason: &str) -> RunnerError {
        RunnerError::Protocol {
            address: self.address.clone(),
            action: action.to_owned(),
            reason: one_line(reason, &[]),
        }
    }
}

enum Body<'a> {
    Json(&'a Value),
    Bytes(&'a [u8]),
}

/// The gist of a message of the head's on one line: its last line that says something (a
/// traceback ends with the exception), shortened, with every secret in it blanked out.
fn one_line(text: &str, secrets: &[&str]) -> String {
    let mut line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("(no message)")
        .to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        line = line.replace(secret, "<redacted>");
    }
    if line.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

/// A job id as one segment of a URL path.
fn escape_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A zip holding `binary` as `cms`, executable, deflated, with a fixed date so the same binary
/// always makes the same bytes.
fn zip_binary(binary: &[u8]) -> Result<Vec<u8>, String> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        // The fastest level: a debug build of cms is over 200 MB, and the best level takes
        // many times longer for a few percent less.
        .compression_level(Some(1))
        .unix_permissions(0o755)
        .large_file(binary.len() as u64 >= u32::MAX as u64);
    writer
        .start_file("cms", options)
        .map_err(|e| e.to_string())?;
    writer.write_all(binary).map_err(|e| e.to_string())?;
    let cursor = writer.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests;
