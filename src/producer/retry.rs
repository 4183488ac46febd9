//! A producer that never drops a record silently: it puts in `put_records` batches, re-puts
//! only the entries that failed, backs off exponentially with full jitter between attempts,
//! and reports every record's outcome: its sequence number, or the error it finally got.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::aggregator::{pack, Packed, AGGREGATION_BYTES_DEFAULT};
use crate::error::Error;
use crate::format::kpl::UserRecord;
use crate::storage::SimRng;
use crate::stream::{
    parse_hash_key, PutRecordsEntry, PutRecordsEntryRef, SequenceNumber, ShardId, Stream,
    PUT_RECORDS_BYTES_MAX, PUT_RECORDS_ENTRIES_MAX,
};

/// Sleeps between attempts; replaceable so tests run without waiting.
pub type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// How a [`Producer`] retries and batches.
#[derive(Clone)]
pub struct ProducerConfig {
    /// Most attempts per record, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each attempt (full jitter: a uniform
    /// random sleep between zero and the doubled value).
    pub backoff_base: Duration,
    /// Cap of the backoff.
    pub backoff_max: Duration,
    /// Time after which a `put_all` stops retrying and reports what is left as failed.
    pub deadline: Duration,
    /// Pack small records into KPL aggregated records.
    pub aggregate: bool,
    /// Largest aggregated record (KPL's `AggregationMaxSize`).
    pub aggregation_max_bytes: usize,
    /// Seed of the jitter.
    pub seed: u64,
    /// How to sleep.
    pub sleeper: Sleeper,
}

impl std::fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("deadline", &self.deadline)
            .field("aggregate", &self.aggregate)
            .field("aggregation_max_bytes", &self.aggregation_max_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            max_attempts: 10,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
            aggregate: false,
            aggregation_max_bytes: AGGREGATION_BYTES_DEFAULT,
            seed: 0x5eed,
            sleeper: Arc::new(std::thread::sleep),
        }
    }
}

/// What happened to one user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Stored.
    Put {
        /// Its shard.
        shard_id: ShardId,
        /// Its (outer) sequence number.
        sequence_number: SequenceNumber,
        /// Its position in the aggregate, if it was aggregated.
        sub_sequence_number: Option<u64>,
    },
    /// Not stored, after `attempts` tries (0: refused before sending, as invalid).
    Failed {
        /// The last error's Kinesis name.
        error_code: String,
        /// The last error's message.
        error_message: String,
        /// How many times it was tried.
        attempts: u32,
    },
}

/// The outcome of a `put_all`, one entry per user record in input order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerReport {
    /// Per user record, in input order.
    pub records: Vec<Option<RecordOutcome>>,
    /// `put_records` calls made.
    pub put_calls: u64,
    /// Entries sent again after a failure.
    pub retried_entries: u64,
}

impl ProducerReport {
    /// Records that were stored.
    pub fn succeeded(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, Some(RecordOutcome::Put { .. })))
            .count()
    }

    /// Records that finally failed.
    pub fn failed(&self) -> usize {
        self.records.len() - self.succeeded()
    }
}

/// Puts records into one stream with retries (and optional KPL aggregation).
#[derive(Debug)]
pub struct Producer {
    stream: Arc<Stream>,
    config: ProducerConfig,
    rng: SimRng,
}

fn retryable(error: &Error) -> bool {
    matches!(
        error,
        Error::ProvisionedThroughputExceeded(_)
            | Error::Internal(_)
            | Error::Io { .. }
            | Error::DiskFull { .. }
            | Error::Poisoned { .. }
    )
}

impl Producer {
    /// A producer for `stream`.
    pub fn new(stream: Arc<Stream>, config: ProducerConfig) -> Self {
        let rng = SimRng::new(config.seed);
        Producer {
            stream,
            config,
            rng,
        }
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.config.backoff_max);
        let cap_us = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.below(cap_us.saturating_add(1)))
    }

    fn packed(&self, records: &[UserRecord]) -> Vec<Packed> {
        if !self.config.aggregate {
            return records
                .iter()
                .enumerate()
                .map(|(i, r)| Packed {
                    entry: PutRecordsEntry {
                        data: r.data.clone(),
                        partition_key: r.partition_key.clone(),
                        explicit_hash_key: r.explicit_hash_key.clone(),
                    },
                    members: vec![i],
                    aggregated: false,
                })
                .collect();
        }
        // Predict shards from the open shards' ranges, as the KPL does from ListShards.
        let ranges: Vec<(u128, u128, u32)> = self
            .stream
            .list_shards()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.sequence_number_range.ending_sequence_number.is_none())
            .filter_map(|s| {
                let start = parse_hash_key(&s.hash_key_range.starting_hash_key)?;
                let end = parse_hash_key(&s.hash_key_range.ending_hash_key)?;
                let index = crate::stream::parse_shard_id(&s.shard_id)?;
                Some((start, end, index))
            })
            .collect();
        let shard_of = |h: u128| {
            ranges
                .iter()
                .find(|(s, e, _)| *s <= h && h <= *e)
                .map_or(u32::MAX, |(_, _, i)| *i)
        };
        pack(records, self.config.aggregation_max_bytes, shard_of)
    }

    /// Puts every record, retrying failures; returns each record's outcome. Never drops a
    /// record without saying so.
    pub fn put_all(&mut self, records: &[UserRecord]) -> ProducerReport {
        let started = Instant::now();
        let units = self.packed(records);
        let mut report = ProducerReport {
            records: vec![None; records.len()],
            ..ProducerReport::default()
        };
        let mut chunk: Vec<&Packed> = Vec::new();
        let mut chunk_bytes = 0u64;
        for unit in &units {
            // A record that breaks a rule would reject its whole request: fail it alone.
            if let Err(error) = self.stream.check_entry(&unit.entry) {
                let reason = (error.kinesis_name().to_string(), error.to_string());
                self.fail(&[unit], &reason, 0, &mut report);
                continue;
            }
            let size = (unit.entry.data.len() + unit.entry.partition_key.len()) as u64;
            if !chunk.is_empty()
                && (chunk.len() == PUT_RECORDS_ENTRIES_MAX
                    || chunk_bytes + size > PUT_RECORDS_BYTES_MAX)
            {
                self.put_chunk(&std::mem::take(&mut chunk), started, &mut report);
                chunk_bytes = 0;
            }
            chunk.push(unit);
            chunk_bytes += size;
        }
        if !chunk.is_empty() {
            self.put_chunk(&chunk, started, &mut report);
        }
        report
    }

    fn put_chunk(&mut self, chunk: &[&Packed], started: Instant, report: &mut ProducerReport) {
        let mut pending: Vec<&Packed> = chunk.to_vec();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Borrowed, not cloned: a copy of every record's data per attempt was the
            // producer's largest cost after the write itself.
            let entries: Vec<PutRecordsEntryRef<'_>> =
                pending.iter().map(|p| p.entry.as_entry_ref()).collect();
            report.put_calls += 1;
            let mut still = Vec::new();
            let mut last_error = (String::new(), String::new());
            match self.stream.put_records_ref(&entries) {
                Ok(out) => {
                    for (unit, result) in pending.iter().zip(out.records) {
                        match (result.sequence_number, result.shard_id) {
                            (Some(sequence_number), Some(shard_id)) => {
                                for (sub, &member) in unit.members.iter().enumerate() {
                                    if let Some(slot) = report.records.get_mut(member) {
                                        *slot = Some(RecordOutcome::Put {
                                            shard_id,
                                            sequence_number,
                                            sub_sequence_number: unit
                                                .aggregated
                                                .then_some(sub as u64),
                                        });
                                    }
                                }
                            }
                            _ => {
                                last_error = (
                                    result.error_code.unwrap_or_default(),
                                    result.error_message.unwrap_or_default(),
                                );
                                still.push(*unit);
                            }
                        }
                    }
                }
                Err(error) => {
                    last_error = (error.kinesis_name().to_string(), error.to_string());
                    if !retryable(&error) {
                        self.fail(&pending, &last_error, attempt, report);
                        return;
                    }
                    still = pending.clone();
                }
            }
            if still.is_empty() {
                return;
            }
            let out_of_time = started.elapsed() >= self.config.deadline;
            if attempt >= self.config.max_attempts || out_of_time {
                self.fail(&still, &last_error, attempt, report);
                return;
            }
            report.retried_entries += still.len() as u64;
            let pause = self.backoff(attempt);
            (self.config.sleeper)(pause);
            pending = still;
        }
    }

    fn fail(
        &self,
        units: &[&Packed],
        error: &(String, String),
        attempts: u32,
        report: &mut ProducerReport,
    ) {
        for unit in units {
            for &member in &unit.members {
                if let Some(slot) = report.records.get_mut(member) {
                    *slot = Some(RecordOutcome::Failed {
                        error_code: error.0.clone(),
                        error_message: error.1.clone(),
                        attempts,
                    });
                }
            }
        }
    }
}
