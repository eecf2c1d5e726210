//! Runners: where a task runs when it does not run on this machine (a Ray cluster), as the
//! user's configuration names them, and the client cms talks to one with.

pub mod ray;
pub mod wire;

/// The one kind of runner there is today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    /// A Ray cluster, reached through its Jobs REST API.
    Ray,
}

impl RunnerKind {
    pub const EXPECTED: &'static str = "expected \"ray\"";

    pub fn parse(text: &str) -> Option<RunnerKind> {
        (text == "ray").then_some(RunnerKind::Ray)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Ray => "ray",
        }
    }
}

/// `[runners.NAME]` of the user's configuration (never a repository's: a repository does not
/// say where its code is sent).
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    pub kind: RunnerKind,
    /// The Ray Jobs API, such as `http://ray-head:8265`.
    pub address: String,
    /// A git URL (or path) both this machine and the workers reach: the transport.
    pub remote: String,
    /// Names of the variables handed to the job; their values are read when a job is submitted
    /// and never printed, logged or kept.
    pub env: Vec<String>,
    /// The job's `entrypoint_num_cpus`.
    pub cpus: f64,
    /// The job's `entrypoint_memory`, in bytes.
    pub memory: Option<u64>,
    /// cms on the workers; `None`: this cms binary is uploaded with the job.
    pub cms: Option<String>,
    /// claude on the workers: a name on their PATH, or a path.
    pub claude: String,
}

impl RunnerConfig {
    pub const DEFAULT_CPUS: f64 = 1.0;
    pub const DEFAULT_CLAUDE: &'static str = "claude";
}

/// Whether `name` may name a runner (it is part of keys and job metadata).
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err("a runner's name is letters, digits, '-' and '_'".to_owned())
    }
}

/// Whether `name` can be an environment variable's name (it is handed to the job by name).
pub fn validate_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("the name of an environment variable, such as \"ANTHROPIC_API_KEY\"".to_owned())
    }
}

/// The Jobs API address: http(s), a host, nothing after the port but an optional `/`.
pub fn validate_address(address: &str) -> Result<(), String> {
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"));
    match rest.map(|r| r.trim_end_matches('/')) {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '@']) => Ok(()),
        _ => {
            Err("the Ray Jobs API as http(s)://HOST:PORT, such as \"http://ray-head:8265\"".into())
        }
    }
}

/// A job's memory: bytes, or a number with a unit (`512MB`, `4GiB`, `1.5G`; K/M/G/T are powers
/// of 1000, Ki/Mi/Gi/Ti of 1024, a trailing `B` optional).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let reason = || "bytes, or a number with a unit such as \"4GiB\" or \"512MB\"".to_owned();
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| reason())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix('B')
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        "ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(reason()),
    };
    let bytes = (number * factor).round();
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(reason());
    }
    Ok(bytes as u64)
}

/// What went wrong talking to a runner. Messages are one line and never hold the value of a
/// variable handed to a job.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot reach the Ray Jobs API at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("invalid Ray Jobs API address '{address}': {reason}")]
    Address { address: String, reason: String },
    #[error("the Ray cluster at {address} has no job {job}")]
    UnknownJob { address: String, job: String },
    #[error("the Ray cluster at {address} refused to {action} (HTTP {status}): {message}")]
    Refused {
        address: String,
        action: String,
        status: u16,
        message: String,
    },
    #[error(
        "the Ray cluster at {address} gave an answer cms does not understand to {action}: {reason}"
    )]
    Protocol {
        address: String,
        action: String,
        reason: String,
    },
    #[error("cannot package {} for the cluster: {reason}", path.display())]
    Package {
        path: std::path::PathBuf,
        reason: String,
    },
}

#[cfg(test)]
mod tests;
