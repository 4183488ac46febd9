//! `shardlog get`: a shard's records as JSON lines, optionally following new records across
//! shard closes into the children, and de-aggregating KPL records.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::{Args, ValueEnum};
use serde::Serialize;
use shardlog::format::kpl::deaggregate;
use shardlog::stream::{KinesisRecord, ShardIteratorType, GET_RECORDS_LIMIT_MAX};

use super::{reader_store, stream_of, Failure, Outcome};

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum IteratorType {
    TrimHorizon,
    Latest,
    AtSequenceNumber,
    AfterSequenceNumber,
    AtTimestamp,
}

/// Arguments of `shardlog get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Stream name.
    name: String,
    /// Shard id (shardId-000000000000, or its index).
    #[arg(long)]
    shard: String,
    /// Where to start.
    #[arg(long, value_enum, default_value = "TRIM_HORIZON")]
    iterator_type: IteratorType,
    /// The sequence number for AT_SEQUENCE_NUMBER / AFTER_SEQUENCE_NUMBER.
    #[arg(long)]
    sequence_number: Option<String>,
    /// The time for AT_TIMESTAMP: ISO-8601, or epoch seconds with a fraction.
    #[arg(long)]
    timestamp: Option<String>,
    /// Print at most this many records.
    #[arg(long)]
    limit: Option<u64>,
    /// Keep printing new records, into child shards when the shard closes, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Expand KPL aggregated records into their user records.
    #[arg(long)]
    deaggregate: bool,
    /// Print Data as UTF-8 text instead of base64.
    #[arg(long)]
    decode: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Line<'a> {
    sequence_number: &'a shardlog::stream::SequenceNumber,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_sequence_number: Option<u64>,
    approximate_arrival_timestamp: f64,
    partition_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    explicit_hash_key: Option<&'a str>,
    data: String,
}

/// Parses ISO-8601 or epoch seconds (with a fraction) into epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Result<i64, Failure> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok((seconds * 1000.0).round() as i64);
        }
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        Failure::usage(format!(
            "--timestamp '{text}' is neither ISO-8601 (2024-05-01T12:00:00Z) nor epoch seconds"
        ))
    })?;
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Failure::usage(format!("--timestamp '{text}' is before 1970")))?
        .as_millis();
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn iterator_kind(args: &GetArgs) -> Result<ShardIteratorType, Failure> {
    let pairing = |kind: &str, has: bool| {
        Failure::usage(format!(
            "InvalidArgumentException: Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and {} StartingSequenceNumber.",
            if has { "also a" } else { "no" }
        ))
    };
    let seq = args.sequence_number.clone();
    Ok(match (args.iterator_type, seq) {
        (IteratorType::TrimHorizon, None) => ShardIteratorType::TrimHorizon,
        (IteratorType::Latest, None) => ShardIteratorType::Latest,
        (IteratorType::TrimHorizon, Some(_)) => return Err(pairing("TRIM_HORIZON", true)),
        (IteratorType::Latest, Some(_)) => return Err(pairing("LATEST", true)),
        (IteratorType::AtSequenceNumber, Some(s)) => ShardIteratorType::AtSequenceNumber(s),
        (IteratorType::AfterSequenceNumber, Some(s)) => ShardIteratorType::AfterSequenceNumber(s),
        (IteratorType::AtSequenceNumber, None) => return Err(pairing("AT_SEQUENCE_NUMBER", false)),
        (IteratorType::AfterSequenceNumber, None) => {
            return Err(pairing("AFTER_SEQUENCE_NUMBER", false))
        }
        (IteratorType::AtTimestamp, _) => {
            let text = args.timestamp.as_deref().ok_or_else(|| {
                Failure::usage("InvalidArgumentException: Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP (give --timestamp)")
            })?;
            ShardIteratorType::AtTimestamp(parse_timestamp(text)?)
        }
    })
}

/// Writes the lines of one record; `false` once stdout is gone (e.g. `| head`).
fn print_record(out: &mut impl Write, record: &KinesisRecord, args: &GetArgs) -> bool {
    let data_text = |data: &[u8]| {
        if args.decode {
            String::from_utf8_lossy(data).into_owned()
        } else {
            STANDARD.encode(data)
        }
    };
    let timestamp = record.approximate_arrival_timestamp_ms as f64 / 1000.0;
    let lines: Vec<String> = if args.deaggregate {
        deaggregate(&record.partition_key, None, &record.data)
            .iter()
            .filter_map(|user| {
                serde_json::to_string(&Line {
                    sequence_number: &record.sequence_number,
                    sub_sequence_number: user.sub_sequence_number,
                    approximate_arrival_timestamp: timestamp,
                    partition_key: &user.partition_key,
                    explicit_hash_key: user.explicit_hash_key.as_deref(),
                    data: data_text(&user.data),
                })
                .ok()
            })
            .collect()
    } else {
        serde_json::to_string(&Line {
            sequence_number: &record.sequence_number,
            sub_sequence_number: None,
            approximate_arrival_timestamp: timestamp,
            partition_key: &record.partition_key,
            explicit_hash_key: None,
            data: data_text(&record.data),
        })
        .into_iter()
        .collect()
    };
    lines.iter().all(|line| writeln!(out, "{line}").is_ok())
}

/// Runs `shardlog get`.
pub fn run(dir: &Path, args: GetArgs) -> Outcome {
    let kind = iterator_kind(&args)?;
    let store = reader_store(dir)?;
    let stream = stream_of(&store, &args.name)?;
    let first = stream.get_shard_iterator(&args.shard, &kind)?;
    let mut queue: VecDeque<(String, String)> = VecDeque::from([(args.shard.clone(), first)]);
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut idle_rounds = 0usize;
    while let Some((shard, iterator)) = queue.pop_front() {
        let want = args
            .limit
            .map_or(GET_RECORDS_LIMIT_MAX as u64, |l| l.saturating_sub(printed));
        if want == 0 {
            break;
        }
        let page =
            stream.get_records(&iterator, want.min(GET_RECORDS_LIMIT_MAX as u64) as usize)?;
        for record in &page.records {
            if !print_record(&mut out, record, &args) {
                return Ok(ExitCode::SUCCESS);
            }
        }
        printed += page.records.len() as u64;
        let _ = out.flush();
        let caught_up = page.records.is_empty() && page.millis_behind_latest == 0;
        match page.next_shard_iterator {
            Some(next) if args.follow || !caught_up => queue.push_back((shard, next)),
            Some(_) => {}
            None if args.follow => {
                for child in &page.child_shards {
                    let it = stream
                        .get_shard_iterator(&child.shard_id, &ShardIteratorType::TrimHorizon)?;
                    queue.push_back((child.shard_id.clone(), it));
                }
            }
            None => {}
        }
        if args.follow {
            idle_rounds = if page.records.is_empty() {
                idle_rounds + 1
            } else {
                0
            };
            if idle_rounds >= queue.len().max(1) {
                std::thread::sleep(Duration::from_millis(200));
                idle_rounds = 0;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
