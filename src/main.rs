//! The `shardlog` command line. Commands live in `src/cli/`, one module per command.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
