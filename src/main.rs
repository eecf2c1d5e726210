//! The `cms` binary: parse, run, exit with the code cli::run returns.

fn main() -> std::process::ExitCode {
    cms::cli::panic::install();
    // `COMPLETE=<shell> cms -- <words>` is the shell asking for completions (see `cms
    // completions`); it answers and exits before anything else runs.
    cms::cli::complete_from_env();
    let code = match cms::cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cms::cli::run(cli),
        Err(code) => code,
    };
    std::process::ExitCode::from(code)
}
