//! The `cms` binary; `cms::main` (cli/mod.rs) is all of it.

fn main() -> std::process::ExitCode {
    cms::main()
}
