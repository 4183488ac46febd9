//! Argument parsing and dispatch. Every failure is one line on stderr and a non-zero exit:
//! 1 when the command ran and found a problem (a failed record, corruption), 2 when it could
//! not run (bad arguments, unknown stream, locked, I/O).

mod bench;
mod consume;
mod dump;
mod get;
mod put;
mod reshard;
mod streams;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shardlog::stream::{Store, StoreOptions, Stream};

/// shardlog: an embeddable log engine with Kinesis streams and Lambda ESM semantics.
#[derive(Debug, Parser)]
#[command(name = "shardlog", version, about)]
struct Cli {
    /// Data directory [default: ./shardlog-data, or $SHARDLOG_DATA_DIR].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete streams, and change their retention.
    Stream(streams::StreamArgs),
    /// Put one record.
    Put(put::PutArgs),
    /// Put every line of stdin as a record, in batches, with retries.
    PutLines(put::PutLinesArgs),
    /// Print a shard's records as JSON lines.
    Get(get::GetArgs),
    /// Run an event source mapping whose function is a command.
    Consume(Box<consume::ConsumeArgs>),
    /// Split, merge or scale shards.
    Reshard(reshard::ReshardArgs),
    /// Read every batch of every shard and check it; exit 1 on corruption.
    Verify(verify::VerifyArgs),
    /// Run a realistic pipeline on generated data and print each figure beside a baseline.
    Bench(bench::BenchArgs),
    /// Print a segment, index or checkpoint file in human-readable form, batch by batch.
    Dump(dump::DumpArgs),
}

/// A command's failure: the one line printed, and whether it ran at all.
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// The command could not run.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

impl From<shardlog::Error> for Failure {
    fn from(e: shardlog::Error) -> Self {
        Failure::usage(e.to_string())
    }
}

/// What a command returns.
pub type Outcome = Result<ExitCode, Failure>;

/// The data directory: `--data-dir`, else `$SHARDLOG_DATA_DIR`, else `./shardlog-data`.
fn data_dir(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone()
        .or_else(|| std::env::var_os("SHARDLOG_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("./shardlog-data"))
}

/// Opens the store for writing.
pub(crate) fn writer_store(dir: &Path) -> Result<Store, Failure> {
    Ok(Store::open(dir)?)
}

/// Opens an existing store to read, without taking any lock.
pub(crate) fn reader_store(dir: &Path) -> Result<Store, Failure> {
    Store::open_read_only(dir, StoreOptions::default()).map_err(|_| {
        Failure::usage(format!(
            "no shardlog data in {}: create a stream first, or pass --data-dir",
            dir.display()
        ))
    })
}

/// A stream of a store.
pub(crate) fn stream_of(store: &Store, name: &str) -> Result<Arc<Stream>, Failure> {
    Ok(store.stream(name)?)
}

/// Prints a JSON value on stdout, one line.
pub(crate) fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("shardlog: cannot print JSON: {e}"),
    }
}

/// Parses the arguments, runs the command and maps its outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Clap's message, kept to its first line: errors are one line.
            let text = e.render().to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "shardlog: {}; see shardlog --help",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let dir = data_dir(&cli.data_dir);
    let result = match cli.command {
        Command::Stream(args) => streams::run(&dir, args),
        Command::Put(args) => put::run_put(&dir, args),
        Command::PutLines(args) => put::run_put_lines(&dir, args),
        Command::Get(args) => get::run(&dir, args),
        Command::Reshard(args) => reshard::run(&dir, args),
        Command::Consume(args) => consume::run(&dir, *args),
        Command::Verify(args) => verify::run(&dir, args),
        Command::Bench(args) => bench::run(args),
        Command::Dump(args) => dump::run(&args).map_err(Failure::usage),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("shardlog: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
