//! The write path of a stream: validation (whole request), routing, per-shard batches,
//! per-entry failures (throttling, injected faults, a shard's I/O failure) and retention upkeep.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use super::hash_key::{parse_hash_key, partition_key_hash};
use super::sequence::SequenceNumber;
use super::shard_id::ShardId;
use super::stream::{FaultInjection, Stream, StreamState};
use super::throughput::{Meter, ThroughputLimits};
use super::types::*;
use crate::error::{Error, Result};
use crate::format::batch::RecordIn;
use crate::storage::{Log, SimRng};

/// How often puts trigger a retention pass over the shards.
const MAINTENANCE_INTERVAL_MS: i64 = 1_000;

impl Stream {
    /// Turns seeded failure injection on (`Some`) or off (`None`).
    pub fn set_fault_injection(&self, faults: Option<FaultInjection>) {
        let mut slot = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = faults.map(|f| (f, SimRng::new(f.seed)));
    }

    /// Puts one record. `sequence_number_for_ordering`, if given, must be a sequence number
    /// this stream issued; the new record's number is greater than it.
    pub fn put_record(
        &self,
        entry: PutRecordsEntry,
        sequence_number_for_ordering: Option<&str>,
    ) -> Result<PutRecordOutput> {
        if let Some(text) = sequence_number_for_ordering {
            let ordering = SequenceNumber::parse(text, "sequenceNumberForOrdering")?;
            let state = self.read_state();
            let known = state.shards.get(&ordering.shard_index()).is_some_and(|s| {
                ordering.log_sequence()
                    < s.log
                        .next_sequence()
                        .unwrap_or(0)
                        .max(s.meta.first_log_sequence)
            });
            if !known {
                return Err(Error::InvalidArgument(format!(
                    "ExclusiveMinimumSequenceNumber {text} used in PutRecord on stream {} under account {} is invalid.",
                    self.name, self.options.account
                )));
            }
        }
        let output = self.put_entries(&[entry.as_entry_ref()], true)?;
        let result = output.records.into_iter().next();
        match result {
            Some(PutRecordsResultEntry {
                sequence_number: Some(sequence_number),
                shard_id: Some(shard_id),
                ..
            }) => Ok(PutRecordOutput {
                shard_id,
                sequence_number,
            }),
            Some(PutRecordsResultEntry {
                error_code: Some(code),
                error_message,
                ..
            }) if code == "ProvisionedThroughputExceededException" => Err(
                Error::ProvisionedThroughputExceeded(error_message.unwrap_or_default()),
            ),
            _ => Err(Error::Internal("Internal Service Failure".into())),
        }
    }

    /// Puts 1..=500 records. A request that breaks a rule is rejected whole and writes
    /// nothing; otherwise each entry succeeds or fails on its own, and results are aligned
    /// with the entries.
    pub fn put_records(&self, entries: &[PutRecordsEntry]) -> Result<PutRecordsOutput> {
        let borrowed: Vec<PutRecordsEntryRef<'_>> =
            entries.iter().map(PutRecordsEntry::as_entry_ref).collect();
        self.put_entries(&borrowed, false)
    }

    /// [`Stream::put_records`] for entries that borrow their bytes: the same validation,
    /// routing, results and durability, with no copy of the request made to call it.
    pub fn put_records_ref(&self, entries: &[PutRecordsEntryRef<'_>]) -> Result<PutRecordsOutput> {
        self.put_entries(entries, false)
    }

    fn put_entries(
        &self,
        entries: &[PutRecordsEntryRef<'_>],
        single: bool,
    ) -> Result<PutRecordsOutput> {
        self.check_writer()?;
        let hash_keys = self.validate_put(entries, single)?;
        let now = self.now_ms();
        let mut results: Vec<Option<PutRecordsResultEntry>> = vec![None; entries.len()];
        {
            let state = self.read_state();
            // Fault injection and throughput limits are looked up once per call: locking
            // them per entry made concurrent producers queue on those two mutexes (a third of
            // the cores sat idle in a 4-producer run).
            let faults_on = self
                .faults
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some();
            let limits_on = self
                .limits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some();
            // Group the entries by shard, keeping request order within each shard.
            let mut by_shard: BTreeMap<u32, Vec<(usize, &PutRecordsEntryRef<'_>)>> =
                BTreeMap::new();
            for (i, (entry, hash_key)) in entries.iter().zip(&hash_keys).enumerate() {
                if faults_on {
                    if let Some(failure) = self.injected_put_failure(&state, *hash_key) {
                        set_result(&mut results, i, failure);
                        continue;
                    }
                }
                match state.route(*hash_key) {
                    Some(shard) if limits_on && !self.admit_write(shard, now, entry) => {
                        set_result(&mut results, i, self.throttled(shard));
                    }
                    Some(shard) => by_shard.entry(shard).or_default().push((i, entry)),
                    None => set_result(&mut results, i, internal_failure()),
                }
            }
            // Every shard's batch is written first and waited for after, so that under
            // `Always` the shards' fsyncs overlap rather than queue one after another.
            let mut written = Vec::with_capacity(by_shard.len());
            for (index, members) in by_shard {
                let Some(shard) = state.shards.get(&index) else {
                    continue;
                };
                let records: Vec<RecordIn<'_>> = members
                    .iter()
                    .map(|(_, entry)| RecordIn {
                        timestamp_ms: now,
                        partition_key: entry.partition_key.as_bytes(),
                        explicit_hash_key: entry.explicit_hash_key.and_then(parse_hash_key),
                        data: entry.data,
                    })
                    .collect();
                let outcome = shard
                    .log
                    .writer()
                    .and_then(|log| Ok((log, log.append_deferred(&records, false)?)));
                written.push((index, members, outcome));
            }
            let waits: Vec<_> = written
                .iter()
                .filter_map(|(_, _, outcome)| outcome.as_ref().ok())
                .map(|&(log, (_, pending))| (log, pending))
                .collect();
            let mut synced = Log::wait_durable_all(&waits).into_iter();
            for (index, members, outcome) in written {
                let durable = outcome.and_then(|(_, (appended, _))| {
                    let missing = || Err(Error::Internal("no sync result for a shard".into()));
                    synced.next().unwrap_or_else(missing)?;
                    Ok(appended)
                });
                match durable {
                    Ok(appended) => {
                        // Typed, not formatted: a string per record for the sequence number
                        // and one for the shard id took 5% of a put's CPU.
                        for (offset, (i, _)) in members.iter().enumerate() {
                            let log_sequence = appended.first_sequence + offset as u64;
                            let success = PutRecordsResultEntry {
                                sequence_number: Some(SequenceNumber::new(index, log_sequence)),
                                shard_id: Some(ShardId::new(index)),
                                error_code: None,
                                error_message: None,
                            };
                            set_result(&mut results, *i, success);
                        }
                    }
                    // The shard's log refused the batch (I/O failure, poisoned): its entries
                    // fail as Kinesis reports a service fault; other shards' entries stand.
                    Err(_) => {
                        for (i, _) in &members {
                            set_result(&mut results, *i, internal_failure());
                        }
                    }
                }
            }
        }
        if results
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r.error_code.is_none()))
        {
            self.notify_appended();
        }
        self.maintain(now);
        let records: Vec<PutRecordsResultEntry> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(internal_failure))
            .collect();
        let failed_record_count = records.iter().filter(|r| r.error_code.is_some()).count() as u32;
        Ok(PutRecordsOutput {
            failed_record_count,
            records,
        })
    }

    /// Turns per-shard throughput limits on (`Some`) or off (`None`, the default).
    pub fn set_throughput_limits(&self, limits: Option<ThroughputLimits>) {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner) =
            limits.map(|l| (l, Meter::default()));
    }

    fn admit_write(&self, shard: u32, now: i64, entry: &PutRecordsEntryRef<'_>) -> bool {
        let mut slot = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((limits, meter)) = slot.as_mut() else {
            return true;
        };
        let bytes = (entry.data.len() + entry.partition_key.len()) as u64;
        meter.admit_write(limits, shard, now, bytes)
    }

    fn throttled(&self, shard: u32) -> PutRecordsResultEntry {
        PutRecordsResultEntry {
            sequence_number: None,
            shard_id: None,
            error_code: Some("ProvisionedThroughputExceededException".into()),
            error_message: Some(format!(
                "Rate exceeded for shard {} in stream {} under account {}.",
                shard_id(shard),
                self.name,
                self.options.account
            )),
        }
    }

    fn injected_put_failure(
        &self,
        state: &StreamState,
        hash_key: u128,
    ) -> Option<PutRecordsResultEntry> {
        let mut slot = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let (faults, rng) = slot.as_mut()?;
        let roll = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if roll < faults.put_throttle_rate {
            return Some(self.throttled(state.route(hash_key).unwrap_or_default()));
        }
        if roll < faults.put_throttle_rate + faults.put_internal_failure_rate {
            return Some(internal_failure());
        }
        None
    }

    /// Checks one entry against the rules `put_records` applies to each entry (key length,
    /// record size, hash key), so a producer can fail a bad record alone instead of letting it
    /// reject a whole request.
    pub fn check_entry(&self, entry: &PutRecordsEntry) -> Result<()> {
        self.validate_put(&[entry.as_entry_ref()], true).map(|_| ())
    }

    fn validate_put(&self, entries: &[PutRecordsEntryRef<'_>], single: bool) -> Result<Vec<u128>> {
        let member = if single { "" } else { "records." };
        if !single && (entries.is_empty() || entries.len() > PUT_RECORDS_ENTRIES_MAX) {
            let constraint = if entries.is_empty() {
                "Member must have length greater than or equal to 1"
            } else {
                "Member must have length less than or equal to 500"
            };
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{}' at 'records' failed to satisfy constraint: {constraint}",
                entries.len()
            )));
        }
        let max_record_bytes = self.read_state().manifest.max_record_bytes;
        let mut total: u64 = 0;
        let mut hash_keys = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = |field: &str| {
                if single {
                    field.to_string()
                } else {
                    format!("{member}{}.member.{field}", i + 1)
                }
            };
            let chars = entry.partition_key.chars().count();
            if chars == 0 || chars > PARTITION_KEY_CHARS_MAX {
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member must have length {} {}",
                    entry.partition_key,
                    at("partitionKey"),
                    if chars == 0 { "greater than or equal to" } else { "less than or equal to" },
                    if chars == 0 { 1 } else { PARTITION_KEY_CHARS_MAX }
                )));
            }
            if entry.data.len() as u64 > max_record_bytes {
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length less than or equal to {max_record_bytes}",
                    at("data")
                )));
            }
            let size = entry.data.len() as u64 + entry.partition_key.len() as u64;
            if size > max_record_bytes {
                return Err(Error::InvalidArgument(format!(
                    "Record size {size} (data plus partition key) exceeds the stream's limit of {max_record_bytes} bytes"
                )));
            }
            total += size;
            let hash_key = match entry.explicit_hash_key {
                None => partition_key_hash(entry.partition_key),
                Some(text) => {
                    let pattern_ok = text == "0"
                        || (!text.is_empty()
                            && text.len() <= 39
                            && !text.starts_with('0')
                            && text.bytes().all(|b| b.is_ascii_digit()));
                    if !pattern_ok {
                        return Err(Error::Validation(format!(
                            "1 validation error detected: Value '{text}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}})",
                            at("explicitHashKey")
                        )));
                    }
                    parse_hash_key(text).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
                        ))
                    })?
                }
            };
            hash_keys.push(hash_key);
        }
        if total > PUT_RECORDS_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "Request of {total} bytes (data plus partition keys) exceeds the limit of {PUT_RECORDS_BYTES_MAX}"
            )));
        }
        Ok(hash_keys)
    }

    /// Runs retention over every shard at most once a second.
    fn maintain(&self, now: i64) {
        {
            let mut last = self
                .last_maintenance_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now.saturating_sub(*last) < MAINTENANCE_INTERVAL_MS {
                return;
            }
            *last = now;
        }
        let _ = self.apply_retention();
    }
}

fn set_result(
    results: &mut [Option<PutRecordsResultEntry>],
    i: usize,
    result: PutRecordsResultEntry,
) {
    if let Some(slot) = results.get_mut(i) {
        *slot = Some(result);
    }
}

fn internal_failure() -> PutRecordsResultEntry {
    PutRecordsResultEntry {
        sequence_number: None,
        shard_id: None,
        error_code: Some("InternalFailure".into()),
        error_message: Some("Internal Service Failure".into()),
    }
}
