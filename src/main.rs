//! The `cms` binary: parse the command line, run it, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cms::cli::Cli::parse();
    std::process::ExitCode::from(cms::cli::run(cli))
}
