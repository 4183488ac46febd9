//! `shardlog reshard NAME split|merge|scale`.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use shardlog::stream::parse_hash_key;

use super::{print_json, stream_of, writer_store, Failure, Outcome};

/// Arguments of `shardlog reshard`.
#[derive(Debug, Args)]
pub struct ReshardArgs {
    /// Stream name.
    name: String,
    #[command(subcommand)]
    command: ReshardCommand,
}

#[derive(Debug, Subcommand)]
enum ReshardCommand {
    /// Split an open shard in two.
    Split {
        /// The shard to split.
        #[arg(long)]
        shard: String,
        /// First hash key of the upper child [default: the middle of the shard's range].
        #[arg(long)]
        new_starting_hash_key: Option<String>,
    },
    /// Merge two adjacent open shards.
    Merge {
        /// The shard to merge.
        #[arg(long)]
        shard: String,
        /// The shard adjacent to it.
        #[arg(long)]
        adjacent_shard: String,
    },
    /// Scale to N open shards with equal ranges (UNIFORM_SCALING).
    Scale {
        /// Target number of open shards.
        #[arg(long)]
        shards: u32,
    },
}

/// Runs `shardlog reshard`; prints the stream's shards afterwards.
pub fn run(dir: &Path, args: ReshardArgs) -> Outcome {
    let store = writer_store(dir)?;
    let stream = stream_of(&store, &args.name)?;
    match args.command {
        ReshardCommand::Split {
            shard,
            new_starting_hash_key,
        } => {
            let key = match new_starting_hash_key {
                Some(key) => key,
                None => {
                    let shards = stream.list_shards()?;
                    let range = shards
                        .iter()
                        .find(|s| s.shard_id == shard || s.shard_id.ends_with(&format!("-{shard:0>12}")))
                        .map(|s| s.hash_key_range.clone())
                        .ok_or_else(|| Failure::usage(format!("ResourceNotFoundException: Shard {shard} in stream {} does not exist", args.name)))?;
                    let start = parse_hash_key(&range.starting_hash_key).unwrap_or_default();
                    let end = parse_hash_key(&range.ending_hash_key).unwrap_or_default();
                    (start + (end - start) / 2 + 1).to_string()
                }
            };
            stream.split_shard(&shard, &key)?;
        }
        ReshardCommand::Merge {
            shard,
            adjacent_shard,
        } => stream.merge_shards(&shard, &adjacent_shard)?,
        ReshardCommand::Scale { shards } => {
            stream.update_shard_count(shards)?;
        }
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Shards {
        shards: Vec<shardlog::stream::ShardDescription>,
    }
    print_json(&Shards {
        shards: stream.list_shards()?,
    });
    Ok(ExitCode::SUCCESS)
}
