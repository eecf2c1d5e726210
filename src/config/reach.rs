//! `[safety] writable` and `hosts`: where a sandboxed Bash may write and connect beyond its
//! worktree, added up across layers.

use std::path::PathBuf;

use super::paths::expand_home;
use super::{Config, ConfigError};

impl Config {
    /// `[safety] writable` and `hosts`, added to the earlier layers'. An untrusted
    /// repository's were taken out by [`Config::restrict`] before.
    pub(super) fn apply_sandbox_reach(
        &mut self,
        writable: Option<Vec<String>>,
        hosts: Option<Vec<String>>,
        invalid: &dyn Fn(&'static str, String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        for path in writable.unwrap_or_default() {
            let expanded = expand_home(&path, home.as_deref());
            if !expanded.is_absolute() {
                let reason = "expected an absolute path or one starting with ~/".to_owned();
                return Err(invalid("safety.writable", path, reason));
            }
            if !self.writable.contains(&expanded) {
                self.writable.push(expanded);
            }
        }
        for host in hosts.unwrap_or_default() {
            crate::safety::sandbox::validate_host(&host)
                .map_err(|r| invalid("safety.hosts", host.clone(), r))?;
            if !self.hosts.contains(&host) {
                self.hosts.push(host);
            }
        }
        Ok(())
    }
}
