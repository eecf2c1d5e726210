//! The one integration-test binary: every CLI test runs real `cms` against real temporary git
//! repositories with the scripted fake claude, except the `real_claude_` tests, which run the
//! real Claude Code CLI against a fake Anthropic API, and the `fake_claude_` tests, which run the
//! fake claude on its own.

mod common;
mod test_abort;
mod test_ask;
mod test_attach;
mod test_boundary;
mod test_check;
mod test_continue;
mod test_detach;
mod test_doctor;
mod test_errors;
mod test_fake_claude;
mod test_fanout;
mod test_gc;
mod test_hooks;
mod test_inspect;
mod test_logs;
mod test_mcp;
mod test_merge;
mod test_pool;
mod test_processes;
mod test_push;
mod test_real_boundary;
mod test_real_claude;
mod test_real_trust;
mod test_safety;
mod test_sandbox;
mod test_setup;
mod test_task;
mod test_top;
mod test_trust;
mod test_wait;
mod test_worktree;
