//! What an untrusted repository's `.cms.toml` may not do: the keys that would loosen the
//! settings or run a command are taken out of its layer before it is applied, and named in one
//! warning (see [`crate::trust`]).

use crate::safety::sandbox::SandboxMode;

use super::{Config, Layer, parse_duration, parse_preset};

/// What cms left out of an untrusted repository's settings (see [`crate::trust`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Untrusted {
    /// The file it came from, for the warning.
    pub source: String,
    /// Each key (or file, such as `.worktreeinclude`) that was ignored.
    pub ignored: Vec<String>,
    /// The `[merge] check` commands that were not taken: a merge refuses rather than merging
    /// unchecked.
    pub checks: Vec<String>,
}

impl Untrusted {
    /// The one warning line naming what was ignored, if anything was.
    pub fn warning(&self) -> Option<String> {
        (!self.ignored.is_empty()).then(|| {
            format!(
                "ignored what the repository's settings ask for until you trust them: {} \
                 (from {}); `cms trust --show` says what they are, `cms trust` applies them",
                self.ignored.join(", "),
                self.source
            )
        })
    }
}

impl Config {
    /// Takes out of an untrusted repository's layer whatever would loosen the settings so far
    /// or run a command, noting each key: a lower sandbox mode, a wider preset, higher limits
    /// or MCP caps, `[worktree]` copies, links, setup and ports, `[pool]`, `[merge] check`.
    /// What tightens (a stricter sandbox, lower limits, more protected paths) stays. Values
    /// that do not parse are left for `apply` to refuse.
    pub(super) fn restrict(&mut self, layer: &mut Layer, source_name: &str) {
        let mut ignored: Vec<&str> = Vec::new();
        let strictness = |mode: SandboxMode| match mode {
            SandboxMode::Off => 0,
            SandboxMode::Auto => 1,
            SandboxMode::Required => 2,
        };
        let sandbox = layer.safety.sandbox.as_deref().and_then(SandboxMode::parse);
        if sandbox.is_some_and(|mode| strictness(mode) < strictness(self.sandbox)) {
            ignored.push("safety.sandbox");
            layer.safety.sandbox = None;
        }
        let preset = layer
            .task
            .preset
            .as_deref()
            .and_then(|p| parse_preset(p).ok());
        if preset.is_some_and(|p| p.rank() > self.preset.rank()) {
            ignored.push("task.preset");
            layer.task.preset = None;
        }
        let limits = &mut layer.limits;
        if limits
            .max_cost
            .is_some_and(|c| c > self.limits.max_cost_usd)
        {
            ignored.push("limits.max_cost");
            limits.max_cost = None;
        }
        if limits.max_turns.is_some_and(|t| t > self.limits.max_turns) {
            ignored.push("limits.max_turns");
            limits.max_turns = None;
        }
        let duration = limits
            .max_duration
            .as_deref()
            .and_then(|d| parse_duration(d).ok());
        if duration.is_some_and(|d| d > self.limits.max_duration) {
            ignored.push("limits.max_duration");
            limits.max_duration = None;
        }
        // A repository's caps only ever lower the user's (see `apply_mcp`); a higher one is
        // named here so the user learns it was not taken.
        let (mcp, caps) = (&mut layer.mcp, &self.mcp);
        if mcp.max_cost.is_some_and(|c| c > caps.limits.max_cost_usd) {
            ignored.push("mcp.max_cost");
            mcp.max_cost = None;
        }
        if mcp.max_turns.is_some_and(|t| t > caps.limits.max_turns) {
            ignored.push("mcp.max_turns");
            mcp.max_turns = None;
        }
        let mcp_duration = mcp
            .max_duration
            .as_deref()
            .and_then(|d| parse_duration(d).ok());
        if mcp_duration.is_some_and(|d| d > caps.limits.max_duration) {
            ignored.push("mcp.max_duration");
            mcp.max_duration = None;
        }
        if mcp.max_running.is_some_and(|r| r > caps.max_running) {
            ignored.push("mcp.max_running");
            mcp.max_running = None;
        }
        let mcp_preset = mcp.max_preset.as_deref().and_then(|p| parse_preset(p).ok());
        if mcp_preset.is_some_and(|p| p.rank() > caps.max_preset.rank()) {
            ignored.push("mcp.max_preset");
            mcp.max_preset = None;
        }
        let worktree = &mut layer.worktree;
        if worktree.copy.take().is_some_and(|c| !c.is_empty()) {
            ignored.push("worktree.copy");
        }
        if worktree.link.take().is_some_and(|l| !l.is_empty()) {
            ignored.push("worktree.link");
        }
        if worktree.setup.take().is_some_and(|s| !s.is_empty()) {
            ignored.push("worktree.setup (not run)");
        }
        if worktree.setup_counts.take().is_some() {
            ignored.push("worktree.setup_counts");
        }
        if worktree.ports.is_some_and(|p| p > self.worktree.ports) {
            ignored.push("worktree.ports");
            worktree.ports = None;
        }
        if layer.pool.size.is_some_and(|n| n > self.pool_size) {
            ignored.push("pool.size");
            layer.pool.size = None;
        }
        // Loosening the sandbox: more folders to write, more hosts to reach.
        if layer.safety.writable.take().is_some_and(|w| !w.is_empty()) {
            ignored.push("safety.writable");
        }
        if layer.safety.hosts.take().is_some_and(|h| !h.is_empty()) {
            ignored.push("safety.hosts");
        }
        if let Some(checks) = layer.merge.check.take().filter(|c| !c.is_empty()) {
            ignored.push("merge.check (not run)");
            self.untrusted.checks = checks;
        }
        self.untrusted.source = source_name.to_owned();
        self.untrusted
            .ignored
            .extend(ignored.into_iter().map(str::to_owned));
    }
}
