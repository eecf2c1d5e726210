//! `cms shell-init`: a shell function, `cmscd`, that `cd`s into a task's worktree.
//!
//! A program cannot change its shell's directory, so, as zoxide and worktrunk do, cms prints a
//! function for the shell to evaluate. It is a function of its own rather than a wrapper around
//! `cms`: every `cms` invocation stays exactly the binary's, and `cmscd` adds the one thing a
//! binary cannot do.

use clap::{Args, ValueEnum};

use super::CommandContext;
use crate::error::{CommandError, exit_code};

/// Print a shell function `cmscd <TASK>` that changes to the task's worktree
///
/// Evaluate it from your shell's startup file: `eval "$(cms shell-init bash)"` in ~/.bashrc,
/// `eval "$(cms shell-init zsh)"` in ~/.zshrc, `cms shell-init fish | source` in
/// ~/.config/fish/config.fish. `cmscd` runs `cms path` and, when that fails, leaves the
/// directory as it was and returns its exit code.
#[derive(Debug, Args)]
pub struct ShellInitArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

// `dir=$(...)` after `local` keeps the substitution's exit status (on one line, `local`'s own
// would hide it); `command` skips any function or alias named cms.
const POSIX: &str = r#"cmscd() {
    local dir
    dir="$(command cms path "$@")" || return
    cd -- "$dir"
}
"#;

// fish's `set` takes the command substitution's exit status, which `return` passes on.
const FISH: &str = r#"function cmscd --description 'cd into a cms task worktree'
    set -l dir (command cms path $argv); or return
    cd $dir
end
"#;

pub fn cmd_shell_init(ctx: &CommandContext, args: ShellInitArgs) -> Result<u8, CommandError> {
    ctx.ui.print(match args.shell {
        Shell::Bash | Shell::Zsh => POSIX,
        Shell::Fish => FISH,
    });
    Ok(exit_code::OK)
}
