//! Random ids, uuids, timestamps and the paths the real CLI derives from the cwd.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The OS's random source, as the real CLI's ids come from: fakes running side by side must
/// never share an id.
fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0; count];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes
}

pub fn random_hex(chars: usize) -> String {
    let mut hex: String = random_bytes(chars.div_ceil(2))
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    hex.truncate(chars);
    hex
}

pub fn random_fraction() -> f64 {
    f64::from(getrandom::u32().expect("the OS random source")) / f64::from(u32::MAX)
}

pub fn uuid_v4() -> String {
    let mut bytes = random_bytes(16);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The real CLI names a project directory after its path with every other character made `-`.
pub fn project_dir_name(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

pub fn config_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".claude"),
    }
}

/// The `host:port` that API error texts blame.
pub fn inference_gateway() -> String {
    let base = std::env::var("ANTHROPIC_BASE_URL").unwrap_or_default();
    let host = base.split("://").nth(1).unwrap_or(&base);
    match host.split('/').next().filter(|host| !host.is_empty()) {
        Some(host) => host.to_string(),
        None => "api.anthropic.com".to_string(),
    }
}
