//! `shardlog stream create|list|describe|delete|retention`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use shardlog::format::codec::Compression;
use shardlog::storage::Durability;
use shardlog::stream::StreamConfig;

use super::{print_json, reader_store, stream_of, writer_store, Failure, Outcome};

/// Arguments of `shardlog stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(subcommand)]
    command: StreamCommand,
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create a stream.
    Create {
        /// Stream name: 1-128 characters of [a-zA-Z0-9_.-].
        name: String,
        /// Number of shards.
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// How long records stay readable: 90s, 15m, 24h, 7d...
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        retention: Duration,
        /// Batch compression: none, zstd (level 3) or zstd:LEVEL.
        #[arg(long, default_value = "none", value_parser = parse_compression)]
        compression: Compression,
        /// When puts are acknowledged: always (fdatasync), interval:MS or none.
        #[arg(long, default_value = "always", value_parser = parse_durability)]
        durability: Durability,
    },
    /// List streams.
    List,
    /// Describe a stream and its shards.
    Describe {
        /// Stream name.
        name: String,
    },
    /// Delete a stream and all its records.
    Delete {
        /// Stream name.
        name: String,
    },
    /// Change how long records stay readable (raise or lower at any time).
    Retention {
        /// Stream name.
        name: String,
        /// The new retention: 90s, 15m, 24h, 7d...
        #[arg(value_parser = parse_duration)]
        retention: Duration,
    },
}

/// Parses `90s`, `15m`, `24h`, `7d` and the like; at least one second.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration such as 90s, 15m, 24h or 7d ({e})"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("'{text}' is shorter than the minimum of 1s"));
    }
    Ok(d)
}

pub(crate) fn parse_compression(text: &str) -> Result<Compression, String> {
    match text {
        "none" => Ok(Compression::None),
        "zstd" => Ok(Compression::Zstd { level: 3 }),
        other => other
            .strip_prefix("zstd:")
            .and_then(|l| l.parse().ok())
            .map(|level| Compression::Zstd { level })
            .filter(Compression::is_valid)
            .ok_or_else(|| format!("'{other}' is not none, zstd or zstd:LEVEL (1-19)")),
    }
}

pub(crate) fn parse_durability(text: &str) -> Result<Durability, String> {
    match text {
        "always" => Ok(Durability::Always),
        "none" => Ok(Durability::None),
        other => other
            .strip_prefix("interval:")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(|ms| Durability::Interval(Duration::from_millis(ms)))
            .ok_or_else(|| format!("'{other}' is not always, none or interval:MS")),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Described {
    stream_description: shardlog::stream::StreamDescription,
    /// The exact retention, as shardlog allows any duration.
    retention_period: String,
}

/// Runs `shardlog stream ...`.
pub fn run(dir: &Path, args: StreamArgs) -> Outcome {
    match args.command {
        StreamCommand::Create {
            name,
            shards,
            retention,
            compression,
            durability,
        } => {
            let store = writer_store(dir)?;
            let config = StreamConfig {
                shard_count: shards,
                retention,
                compression,
                durability,
                ..Default::default()
            };
            store.create_stream(&name, &config)?;
        }
        StreamCommand::List => {
            let names = match reader_store(dir) {
                Ok(store) => store.list_streams()?,
                Err(_) => Vec::new(),
            };
            print_json(&serde_json::json!({ "StreamNames": names }));
        }
        StreamCommand::Describe { name } => {
            let store = reader_store(dir)?;
            let description = stream_of(&store, &name)?.describe()?;
            let retention = Duration::from_millis(description.retention_period_ms);
            print_json(&Described {
                stream_description: description,
                retention_period: humantime::format_duration(retention).to_string(),
            });
        }
        StreamCommand::Delete { name } => writer_store(dir)?.delete_stream(&name)?,
        StreamCommand::Retention { name, retention } => {
            let store = writer_store(dir)?;
            stream_of(&store, &name)?.set_retention(retention)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::usage(message)
    }
}
