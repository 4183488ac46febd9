//! `shardlog put` and `shardlog put-lines`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::Args;
use shardlog::format::kpl::UserRecord;
use shardlog::producer::{Producer, ProducerConfig, RecordOutcome};
use shardlog::stream::{PutRecordsEntry, PUT_RECORDS_BYTES_MAX, PUT_RECORDS_ENTRIES_MAX};

use super::{print_json, stream_of, writer_store, Failure, Outcome};

/// Arguments of `shardlog put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Stream name.
    name: String,
    /// Partition key.
    #[arg(long)]
    partition_key: String,
    /// Decimal hash key overriding the partition key's MD5.
    #[arg(long)]
    explicit_hash_key: Option<String>,
    /// The record's data as a string.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    data: Option<String>,
    /// Read the record's data from a file.
    #[arg(long)]
    file: Option<PathBuf>,
}

/// Runs `shardlog put`.
pub fn run_put(dir: &Path, args: PutArgs) -> Outcome {
    let data = match (&args.data, &args.file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?,
        (None, None) => return Err(Failure::usage("give --data or --file")),
    };
    let store = writer_store(dir)?;
    let stream = stream_of(&store, &args.name)?;
    let entry = PutRecordsEntry {
        data,
        partition_key: args.partition_key,
        explicit_hash_key: args.explicit_hash_key,
    };
    print_json(&stream.put_record(entry, None)?);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `shardlog put-lines`.
#[derive(Debug, Args)]
pub struct PutLinesArgs {
    /// Stream name.
    name: String,
    /// The partition key of every line.
    #[arg(
        long,
        conflicts_with = "partition_key_field",
        required_unless_present = "partition_key_field"
    )]
    partition_key: Option<String>,
    /// Take each line's partition key from this field of the line's JSON object.
    #[arg(long)]
    partition_key_field: Option<String>,
    /// Pack lines into KPL aggregated records.
    #[arg(long)]
    aggregate: bool,
}

/// How long a buffered line may wait before its batch is sent.
const LINGER: Duration = Duration::from_millis(100);

fn key_of(line: &str, args: &PutLinesArgs) -> Result<String, String> {
    if let Some(key) = &args.partition_key {
        return Ok(key.clone());
    }
    let field = args.partition_key_field.as_deref().unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("line is not JSON ({e})"))?;
    match value.get(field) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string()),
        _ => Err(format!(
            "line has no non-empty string or number field '{field}'"
        )),
    }
}

/// Runs `shardlog put-lines`: batches at 500 records, 5 MiB or 100 ms after the first buffered
/// line; prints a JSON summary; exits 1 if any record finally failed.
pub fn run_put_lines(dir: &Path, args: PutLinesArgs) -> Outcome {
    // The writer lock is taken here and held until exit.
    let store = writer_store(dir)?;
    let stream = stream_of(&store, &args.name)?;
    let mut producer = Producer::new(
        stream,
        ProducerConfig {
            aggregate: args.aggregate,
            ..Default::default()
        },
    );
    let (tx, rx) = mpsc::sync_channel::<String>(PUT_RECORDS_ENTRIES_MAX * 4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let (mut records, mut bytes, mut failed, mut line_number) = (0u64, 0u64, 0u64, 0u64);
    let mut batch: Vec<UserRecord> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut first_buffered: Option<Instant> = None;
    let mut flush = |batch: &mut Vec<UserRecord>, failed: &mut u64| {
        if batch.is_empty() {
            return;
        }
        let report = producer.put_all(batch);
        for outcome in report.records.iter().flatten() {
            if let RecordOutcome::Failed {
                error_code,
                error_message,
                ..
            } = outcome
            {
                *failed += 1;
                eprintln!("shardlog: record failed: {error_code}: {error_message}");
            }
        }
        batch.clear();
    };
    loop {
        let wait = first_buffered.map_or(Duration::from_secs(3600), |t| {
            LINGER.saturating_sub(t.elapsed())
        });
        match rx.recv_timeout(wait) {
            Ok(line) => {
                line_number += 1;
                match key_of(&line, &args) {
                    Ok(partition_key) => {
                        records += 1;
                        bytes += line.len() as u64;
                        batch_bytes += line.len() + partition_key.len();
                        batch.push(UserRecord {
                            partition_key,
                            explicit_hash_key: None,
                            data: line.into_bytes(),
                        });
                        first_buffered.get_or_insert_with(Instant::now);
                    }
                    Err(reason) => {
                        failed += 1;
                        eprintln!("shardlog: line {line_number} skipped: {reason}");
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let lingered = first_buffered.is_some_and(|t| t.elapsed() >= LINGER);
        if batch.len() >= PUT_RECORDS_ENTRIES_MAX
            || batch_bytes as u64 >= PUT_RECORDS_BYTES_MAX
            || lingered
        {
            flush(&mut batch, &mut failed);
            batch_bytes = 0;
            first_buffered = None;
            progress.set_message(format!("{records} records"));
            progress.tick();
        }
    }
    flush(&mut batch, &mut failed);
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    print_json(&serde_json::json!({
        "Records": records,
        "Bytes": bytes,
        "FailedRecordCount": failed,
        "RecordsPerSecond": (records as f64 / seconds).round(),
    }));
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
