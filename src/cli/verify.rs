//! `shardlog verify [NAME]`: reads every batch of every shard, checks checksums, footers and
//! index consistency, prints a report, and exits 1 on any finding.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::{reader_store, stream_of, Outcome};

/// Arguments of `shardlog verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Stream name [default: every stream].
    name: Option<String>,
}

/// Runs `shardlog verify`. Works beside a running writer: it takes no lock.
pub fn run(dir: &Path, args: VerifyArgs) -> Outcome {
    let store = reader_store(dir)?;
    let names = match args.name {
        Some(name) => vec![name],
        None => store.list_streams()?,
    };
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(names.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut problems = 0usize;
    for name in &names {
        let stream = stream_of(&store, name)?;
        for (shard, report) in stream.verify()? {
            let verdict = if report.is_ok() {
                "ok".to_string()
            } else {
                format!("{} problems", report.problems.len())
            };
            progress.suspend(|| {
                println!(
                    "{name} {shard}: {} segments, {} records, {} bytes: {verdict}",
                    report.segments, report.records, report.bytes
                );
                for problem in &report.problems {
                    println!("  {problem}");
                }
            });
            problems += report.problems.len();
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!("{} streams checked, {problems} problems", names.len());
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
