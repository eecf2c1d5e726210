//! Scripted stand-in for the Claude Code CLI (`claude` 2.1.197), built only for the test suite:
//! it owns the fake's argument checks, stream-json event shapes, cost accounting, interrupt and
//! signal handling and exit codes, all driven by a JSON script (see `docs/fake-claude.md`).
//!
//! It shares no code with cms on purpose: its shapes are transcribed from recordings of the real
//! CLI (`tests/fixtures/claude-protocol/samples`, copied from
//! `../shared/claude-protocol`), so a mistake in cms's parser cannot be mirrored here and go
//! unnoticed.

mod background;
mod child;
mod ends;
mod events;
mod hooks;
mod ids;
mod inbox;
mod interactive;
mod model;
mod options;
mod output;
mod patch;
mod permission;
mod replay;
mod script;
mod session;
mod signals;
mod tools;
mod transcript;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Read, Write};
use std::process;

use crate::hooks::load_hooks;
use crate::ids::is_uuid;
use crate::inbox::Inbox;
use crate::options::Options;
use crate::output::{OUTPUT, Obj, OutputFormat};
use crate::script::load_script;
use crate::session::{Session, TurnEnd};
use crate::signals::install_signal_handlers;

/// The Claude Code releases whose behaviour the fake imitates where they differ; the first is
/// the default.
const VERSIONS: &[&str] = &["2.1.197", "2.1.332"];

/// The release the fake plays: `FAKE_CLAUDE_VERSION`, so a test comparing it with a real CLI
/// can ask for that CLI's version, or else the first of [`VERSIONS`].
fn version() -> &'static str {
    static CHOSEN: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| match std::env::var("FAKE_CLAUDE_VERSION") {
        Err(_) => VERSIONS[0],
        Ok(wanted) => VERSIONS.iter().find(|v| **v == wanted).unwrap_or_else(|| {
            script_error(&format!(
                "FAKE_CLAUDE_VERSION={wanted} is not one of {}",
                VERSIONS.join(", ")
            ))
        }),
    })
}

/// Whether the fake plays Claude Code 2.1.332 (or later), not 2.1.197.
fn since_2_1_332() -> bool {
    version() != VERSIONS[0]
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    log_invocation(&args);
    let opts = Options::parse(args.get(1..).unwrap_or_default());
    if opts.version {
        println!("{} (Claude Code)", version());
        return;
    }

    let output = opts.output_format.as_deref().unwrap_or("text");
    let stream_input = opts.input_format.as_deref() == Some("stream-json");
    if !opts.print {
        let _ = OUTPUT.set(OutputFormat::Interactive);
        let hooks = load_hooks(opts.settings.as_deref());
        let script = load_script();
        install_signal_handlers(&script);
        let session = start_session(&opts, &script, hooks, Inbox::closed());
        interactive::serve(session, &script, opts.resume.is_some());
    }
    if output == "stream-json" && !opts.verbose {
        usage_error("Error: When using --print, --output-format=stream-json requires --verbose");
    }
    if stream_input && output != "stream-json" {
        usage_error("Error: --input-format=stream-json requires output-format=stream-json.");
    }
    if opts.session_id.as_deref().is_some_and(|id| !is_uuid(id)) {
        usage_error("Error: Invalid session ID. Must be a valid UUID.");
    }
    let format = match output {
        "json" => OutputFormat::Json,
        "stream-json" => OutputFormat::StreamJson,
        _ => OutputFormat::Text,
    };
    let _ = OUTPUT.set(format);

    let hooks = load_hooks(opts.settings.as_deref());
    let script = load_script();
    install_signal_handlers(&script);

    if stream_input {
        // The real CLI reads nothing from a redirected regular file and quietly exits 0.
        if stdin_is_regular_file() {
            return;
        }
        start_session(&opts, &script, hooks, Inbox::from_stdin()).serve(&script);
    }

    if opts.prompt.is_none() && !read_stdin_prompt() {
        usage_error(
            "Error: Input must be provided either through stdin or as a prompt argument when using --print",
        );
    }
    let mut session = start_session(&opts, &script, hooks, Inbox::closed());
    let code = match session.run_turn(&script, script.resume_offset) {
        TurnEnd::Exit(code) => code,
        TurnEnd::Continue { is_error } => i32::from(is_error),
    };
    process::exit(code);
}

/// A session whose messages go to its transcript from now on.
fn start_session(
    opts: &Options,
    script: &script::Script,
    hooks: Vec<hooks::HookGroup>,
    inbox: Inbox,
) -> Session {
    let session = Session::new(opts, script, hooks, inbox);
    transcript::start(
        &session.cwd.display().to_string(),
        &session.session_id,
        script.usage.output_tokens,
    );
    session
}

fn usage_error(message: &str) -> ! {
    eprintln!("{message}");
    process::exit(1);
}

/// A broken script is the test author's mistake, so it fails loudly and distinctly (exit 2).
fn script_error(message: &str) -> ! {
    eprintln!("fake-claude: {message}");
    process::exit(2);
}

/// Tests assert on the flags and environment cms passed, so every start is recorded.
fn log_invocation(args: &[String]) {
    let Some(path) = std::env::var_os("FAKE_CLAUDE_LOG") else {
        return;
    };
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .filter(|(name, _)| name.starts_with("CMS_") || name.starts_with("FAKE_CLAUDE_"))
        .collect();
    let cwd = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let line = Obj::new()
        .field("argv", args)
        .field("cwd", cwd)
        .field("env", env)
        .field("pid", process::id())
        .end();
    // One write of a whole line keeps concurrent fakes from interleaving their records.
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{}\n", line.0).as_bytes()));
    if let Err(err) = written {
        eprintln!("fake-claude: cannot append to {}: {err}", path.display());
    }
}

fn read_stdin_prompt() -> bool {
    let mut stdin = io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    let mut prompt = String::new();
    stdin.read_to_string(&mut prompt).is_ok() && !prompt.trim().is_empty()
}

fn stdin_is_regular_file() -> bool {
    // SAFETY: fstat only writes into the zeroed stat buffer owned by this frame.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(0, &mut stat) == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFREG
    }
}
