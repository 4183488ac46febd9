//! The read-back loops of `shardlog bench`: get_records over every shard, to its end, either
//! with one thread per shard (as a Kinesis consumer reads: a KCL worker or a Lambda poller per
//! shard) or with one thread for all of them.

use std::time::{Duration, Instant};

use shardlog::stream::{ShardIteratorType, Stream};

use crate::cli::Failure;

/// What one read of every shard found.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadBack {
    pub(super) elapsed: Duration,
    pub(super) records: u64,
    /// Bytes of record data, summed from each record's length (the data is not copied).
    pub(super) data_bytes: u64,
}

impl ReadBack {
    /// Records read per second.
    pub(super) fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How the shards are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Readers {
    /// One thread per shard.
    ThreadPerShard,
    /// One thread reads the shards one after another.
    OneThread,
}

/// Reads every shard from TRIM_HORIZON to its end in get_records pages of `page_records`.
pub(super) fn read_every_shard(
    stream: &Stream,
    page_records: usize,
    readers: Readers,
) -> Result<ReadBack, Failure> {
    let shards = stream.list_shards()?;
    let started = Instant::now();
    let totals: Vec<(u64, u64)> = match readers {
        Readers::OneThread => shards
            .iter()
            .map(|shard| read_shard(stream, &shard.shard_id, page_records))
            .collect::<Result<_, _>>()?,
        Readers::ThreadPerShard => std::thread::scope(|scope| {
            let threads: Vec<_> = shards
                .iter()
                .map(|shard| scope.spawn(move || read_shard(stream, &shard.shard_id, page_records)))
                .collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(Failure::usage("bench: a reader panicked")))
                })
                .collect::<Result<Vec<_>, Failure>>()
        })?,
    };
    Ok(ReadBack {
        elapsed: started.elapsed(),
        records: totals.iter().map(|t| t.0).sum(),
        data_bytes: totals.iter().map(|t| t.1).sum(),
    })
}

/// Records and data bytes of one shard, read to its end.
fn read_shard(stream: &Stream, shard_id: &str, page_records: usize) -> Result<(u64, u64), Failure> {
    let (mut records, mut data_bytes) = (0u64, 0u64);
    let mut iterator = Some(stream.get_shard_iterator(shard_id, &ShardIteratorType::TrimHorizon)?);
    while let Some(current) = iterator {
        let page = stream.get_records(&current, page_records)?;
        if page.records.is_empty() && page.millis_behind_latest == 0 {
            break;
        }
        records += page.records.len() as u64;
        data_bytes += page
            .records
            .iter()
            .map(|r| r.data.len() as u64)
            .sum::<u64>();
        iterator = page.next_shard_iterator;
    }
    Ok((records, data_bytes))
}
