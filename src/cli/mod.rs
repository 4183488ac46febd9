//! Argument parsing and dispatch. Every failure is one line on stderr and a non-zero exit.

mod dump;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// shardlog: an embeddable log engine with Kinesis streams and Lambda ESM semantics.
#[derive(Debug, Parser)]
#[command(name = "shardlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a segment, index or checkpoint file in human-readable form, batch by batch.
    Dump(dump::DumpArgs),
}

/// Parses the arguments, runs the command and maps its outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump(args) => dump::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("shardlog: {message}");
            ExitCode::from(2)
        }
    }
}
