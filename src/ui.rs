//! Terminal output: stdout for data, stderr for progress and errors, colors resolved once.

use std::io::{IsTerminal, Write};

pub use crate::report::Styles;

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct Ui {
    pub json: bool,
    pub color: ColorChoice,
    /// Styles for text written to stdout.
    pub out: Styles,
    /// Styles for text written to stderr.
    pub err: Styles,
}

impl Ui {
    pub fn new(color: ColorChoice, json: bool) -> Ui {
        match color {
            // console already honours TTY detection, TERM=dumb, NO_COLOR and CLICOLOR(_FORCE).
            ColorChoice::Auto => {}
            ColorChoice::Always => {
                console::set_colors_enabled(true);
                console::set_colors_enabled_stderr(true);
            }
            ColorChoice::Never => {
                console::set_colors_enabled(false);
                console::set_colors_enabled_stderr(false);
            }
        }
        if json {
            // JSON on stdout is for machines; escape codes would corrupt it.
            console::set_colors_enabled(false);
        }
        Ui {
            json,
            color,
            out: Styles::colored(),
            err: Styles::colored().for_stderr(),
        }
    }

    /// Whether `git diff` and friends should color: `None` lets git decide as it would.
    pub fn color_override(&self) -> Option<bool> {
        match self.color {
            // git ignores NO_COLOR (https://no-color.org) and would follow `color.ui`.
            ColorChoice::Auto if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) => {
                Some(false)
            }
            ColorChoice::Auto => None,
            ColorChoice::Always => Some(true),
            ColorChoice::Never => Some(false),
        }
    }

    /// Writes data to stdout. A closed pipe (`cms list | head -1`) ends the process quietly.
    pub fn print(&self, text: &str) {
        self.print_bytes(text.as_bytes());
    }

    /// Writes bytes to stdout as they are (`cms logs --raw`), a closed pipe as for `print`.
    pub fn print_bytes(&self, bytes: &[u8]) {
        let mut stdout = std::io::stdout().lock();
        let result = stdout.write_all(bytes).and_then(|()| stdout.flush());
        if let Err(err) = result
            && err.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }

    pub fn println(&self, text: &str) {
        self.print(&format!("{text}\n"));
    }

    pub fn print_json(&self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).expect("JSON values always serialize");
        self.println(&text);
    }

    /// A status line on stderr.
    pub fn status(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    pub fn warn(&self, text: &str) {
        self.status(&format!("{} {text}", self.err.warn.apply_to("warning:")));
    }

    pub fn stdin_is_terminal(&self) -> bool {
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }
}
