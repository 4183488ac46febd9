//! One stream: its shards' logs, routing, puts, iterators and reads.
//!
//! The shard map sits behind one `RwLock`: puts and reads hold it shared (shards append in
//! parallel, each through its own log), resharding holds it exclusive, so a put racing a
//! reshard lands in exactly one shard, before or after the change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::hash_key::{parse_hash_key, partition_key_hash, HashKeyRange};
use super::iterator::IteratorToken;
use super::manifest::{CompressionSetting, DurabilitySetting, Manifest, ManifestError, ShardMeta};
use super::sequence::SequenceNumber;
use super::shard_log::ShardLog;
use super::store::StoreOptions;
use super::throughput::{Meter, ThroughputLimits};
use super::types::*;
use crate::error::{Error, Result};
use crate::format::batch::RecordIn;
use crate::format::codec::Compression;
use crate::storage::{
    write_atomically, DirLock, Durability, Log, LogOptions, ReadLimits, Retention, SimRng,
};

/// Name of a stream's manifest file.
pub const MANIFEST_FILE: &str = "manifest";
/// How often puts trigger a retention pass over the shards.
const MAINTENANCE_INTERVAL_MS: i64 = 1_000;

/// One shard: its manifest entry, its range and its log.
#[derive(Debug)]
pub(crate) struct Shard {
    pub meta: ShardMeta,
    pub range: HashKeyRange,
    pub log: Arc<ShardLog>,
}

impl Shard {
    pub(crate) fn is_open(&self) -> bool {
        self.meta.closed.is_none()
    }
}

#[derive(Debug)]
pub(crate) struct StreamState {
    pub manifest: Manifest,
    pub shards: BTreeMap<u32, Shard>,
    /// Open shards ordered by range start, for routing.
    pub open: Vec<(HashKeyRange, u32)>,
}

impl StreamState {
    pub(crate) fn reindex(&mut self) {
        self.open = self
            .shards
            .values()
            .filter(|s| s.is_open())
            .map(|s| (s.range, s.meta.index))
            .collect();
        self.open.sort();
    }

    fn route(&self, hash_key: u128) -> Option<u32> {
        let after = self
            .open
            .partition_point(|(range, _)| range.start <= hash_key);
        let (range, index) = self.open.get(after.checked_sub(1)?)?;
        range.contains(hash_key).then_some(*index)
    }
}

/// Seeded failure injection for testing producers and consumers against partial failures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultInjection {
    /// Seed of the failure pattern: the same seed and calls give the same failures.
    pub seed: u64,
    /// Fraction (0..=1) of `put_records` entries that fail with
    /// `ProvisionedThroughputExceededException`.
    pub put_throttle_rate: f64,
    /// Fraction (0..=1) of `put_records` entries that fail with `InternalFailure`.
    pub put_internal_failure_rate: f64,
    /// Fraction (0..=1) of `get_records` calls that fail with
    /// `ProvisionedThroughputExceededException`.
    pub get_throttle_rate: f64,
}

/// A stream of shards in a store directory, open for writing by this process.
#[derive(Debug)]
pub struct Stream {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) options: StoreOptions,
    pub(crate) state: RwLock<StreamState>,
    faults: Mutex<Option<(FaultInjection, SimRng)>>,
    limits: Mutex<Option<(ThroughputLimits, Meter)>>,
    last_maintenance_ms: Mutex<i64>,
    manifest_digest: Mutex<u64>,
    _lock: Option<Box<dyn DirLock>>,
}

pub(crate) fn shards_dir(stream_dir: &Path) -> PathBuf {
    stream_dir.join("shards")
}

fn compression_of(setting: CompressionSetting) -> Compression {
    match setting {
        CompressionSetting::None => Compression::None,
        CompressionSetting::Zstd { level } => Compression::Zstd { level },
    }
}

pub(crate) fn compression_setting(compression: Compression) -> CompressionSetting {
    match compression {
        Compression::None => CompressionSetting::None,
        Compression::Zstd { level } => CompressionSetting::Zstd { level },
    }
}

fn durability_of(setting: DurabilitySetting) -> Durability {
    match setting {
        DurabilitySetting::Always => Durability::Always,
        DurabilitySetting::Interval { interval_ms } => {
            Durability::Interval(Duration::from_millis(interval_ms.max(1)))
        }
        DurabilitySetting::None => Durability::None,
    }
}

pub(crate) fn durability_setting(durability: Durability) -> DurabilitySetting {
    match durability {
        Durability::Always => DurabilitySetting::Always,
        Durability::Interval(d) => DurabilitySetting::Interval {
            interval_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        },
        Durability::None => DurabilitySetting::None,
    }
}

impl Stream {
    /// Opens a stream directory whose manifest exists. A writer takes the stream's lock (a
    /// second writer gets `Locked`); a follower takes none and follows the writer's changes.
    pub(crate) fn open(
        dir: PathBuf,
        name: &str,
        options: StoreOptions,
        writable: bool,
    ) -> Result<Stream> {
        let vfs = options.vfs.clone();
        let lock = if writable {
            Some(
                vfs.try_lock_dir(&dir)
                    .map_err(|e| Error::io(dir.join("LOCK"), "lock", e))?
                    .ok_or_else(|| Error::Locked {
                        holder_pid: vfs.lock_holder(&dir),
                        path: dir.clone(),
                    })?,
            )
        } else {
            None
        };
        let (manifest, digest) = read_manifest(vfs.as_ref(), &dir)?;
        let shards = open_shards(&dir, &manifest, &options, writable, &BTreeMap::new())?;
        if writable {
            remove_orphan_shards(vfs.as_ref(), &dir, &manifest)?;
        }
        let mut state = StreamState {
            manifest,
            shards,
            open: Vec::new(),
        };
        state.reindex();
        Ok(Stream {
            name: name.to_string(),
            dir,
            options,
            state: RwLock::new(state),
            faults: Mutex::new(None),
            limits: Mutex::new(None),
            last_maintenance_ms: Mutex::new(i64::MIN),
            manifest_digest: Mutex::new(digest),
            _lock: lock,
        })
    }

    /// Whether this handle writes the stream (else it follows another process's writes).
    pub fn is_writer(&self) -> bool {
        self._lock.is_some()
    }

    /// `ReadOnly` unless this handle writes the stream.
    pub(crate) fn check_writer(&self) -> Result<()> {
        if self.is_writer() {
            Ok(())
        } else {
            Err(Error::ReadOnly {
                path: self.dir.clone(),
            })
        }
    }

    /// For a follower: picks up the writer's reshards and retention changes.
    fn refresh(&self) -> Result<()> {
        if self.is_writer() {
            return Ok(());
        }
        let (manifest, digest) = read_manifest(self.options.vfs.as_ref(), &self.dir)?;
        let mut known = self
            .manifest_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *known == digest {
            return Ok(());
        }
        let mut state = self.write_state();
        let shards = open_shards(&self.dir, &manifest, &self.options, false, &state.shards)?;
        state.shards = shards;
        state.manifest = manifest;
        state.reindex();
        *known = digest;
        Ok(())
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream's ARN: `arn:aws:kinesis:{region}:{account}:stream/{name}`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            self.options.region, self.options.account, self.name
        )
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, StreamState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, StreamState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.options.clock.now_ms()
    }

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
        let output = self.put_entries(std::slice::from_ref(&entry), true)?;
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
        self.put_entries(entries, false)
    }

    fn put_entries(&self, entries: &[PutRecordsEntry], single: bool) -> Result<PutRecordsOutput> {
        self.check_writer()?;
        let hash_keys = self.validate_put(entries, single)?;
        let now = self.now_ms();
        let mut results: Vec<Option<PutRecordsResultEntry>> = vec![None; entries.len()];
        {
            let state = self.read_state();
            // Group the entries by shard, keeping request order within each shard.
            let mut by_shard: BTreeMap<u32, Vec<(usize, &PutRecordsEntry)>> = BTreeMap::new();
            for (i, (entry, hash_key)) in entries.iter().zip(&hash_keys).enumerate() {
                if let Some(failure) = self.injected_put_failure(&state, *hash_key) {
                    set_result(&mut results, i, failure);
                    continue;
                }
                match state.route(*hash_key) {
                    Some(shard) if !self.admit_write(shard, now, entry) => {
                        set_result(&mut results, i, self.throttled(shard));
                    }
                    Some(shard) => by_shard.entry(shard).or_default().push((i, entry)),
                    None => set_result(&mut results, i, internal_failure()),
                }
            }
            for (index, members) in by_shard {
                let Some(shard) = state.shards.get(&index) else {
                    continue;
                };
                let records: Vec<RecordIn<'_>> = members
                    .iter()
                    .map(|(_, entry)| RecordIn {
                        timestamp_ms: now,
                        partition_key: entry.partition_key.as_bytes(),
                        explicit_hash_key: entry
                            .explicit_hash_key
                            .as_deref()
                            .and_then(parse_hash_key),
                        data: &entry.data,
                    })
                    .collect();
                match shard.log.writer().and_then(|log| log.append(&records)) {
                    Ok(appended) => {
                        for (offset, (i, _)) in members.iter().enumerate() {
                            let log_sequence = appended.first_sequence + offset as u64;
                            let success = PutRecordsResultEntry {
                                sequence_number: Some(
                                    SequenceNumber::new(index, log_sequence).to_string(),
                                ),
                                shard_id: Some(shard_id(index)),
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

    fn admit_write(&self, shard: u32, now: i64, entry: &PutRecordsEntry) -> bool {
        let mut slot = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((limits, meter)) = slot.as_mut() else {
            return true;
        };
        let bytes = (entry.data.len() + entry.partition_key.len()) as u64;
        meter.admit_write(limits, shard, now, bytes)
    }

    fn admit_read(&self, shard: u32, now: i64) -> Result<()> {
        let mut slot = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((limits, meter)) = slot.as_mut() else {
            return Ok(());
        };
        if meter.admit_read(limits, shard, now) {
            return Ok(());
        }
        Err(Error::ProvisionedThroughputExceeded(format!(
            "Rate exceeded for shard {} in stream {} under account {}.",
            shard_id(shard),
            self.name,
            self.options.account
        )))
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
        self.validate_put(std::slice::from_ref(entry), true)
            .map(|_| ())
    }

    fn validate_put(&self, entries: &[PutRecordsEntry], single: bool) -> Result<Vec<u128>> {
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
            let hash_key = match &entry.explicit_hash_key {
                None => partition_key_hash(&entry.partition_key),
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

    /// Deletes expired sealed segments of every shard; returns how many were deleted.
    pub fn apply_retention(&self) -> Result<u64> {
        self.check_writer()?;
        let state = self.read_state();
        let mut deleted = 0;
        for shard in state.shards.values() {
            deleted += shard.log.writer()?.apply_retention()?.segments_deleted;
        }
        Ok(deleted)
    }

    fn retention_ms(state: &StreamState) -> u64 {
        state.manifest.retention_ms
    }

    /// The oldest readable log sequence of a shard: past retention deletions and past
    /// records older than the retention period.
    fn trim_horizon(&self, state: &StreamState, shard: &Shard) -> Result<u64> {
        let retention = i64::try_from(Self::retention_ms(state)).unwrap_or(i64::MAX);
        let cutoff = self.now_ms().saturating_sub(retention);
        let by_age = shard.log.sequence_at_timestamp(cutoff)?;
        Ok(by_age.max(shard.log.first_sequence()?))
    }

    fn find_shard<'s>(&self, state: &'s StreamState, shard: &str) -> Result<&'s Shard> {
        parse_shard_id(shard)
            .and_then(|index| state.shards.get(&index))
            .filter(|s| !self.is_expired(state, s))
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "Shard {shard} in stream {} under account {} does not exist",
                    self.name, self.options.account
                ))
            })
    }

    /// Whether a closed shard's data has all passed retention.
    fn is_expired(&self, state: &StreamState, shard: &Shard) -> bool {
        let retention = i64::try_from(Self::retention_ms(state)).unwrap_or(i64::MAX);
        shard
            .meta
            .closed
            .is_some_and(|c| self.now_ms().saturating_sub(c.closed_ms) > retention)
    }

    /// A shard iterator: an opaque token valid for five minutes.
    pub fn get_shard_iterator(&self, shard: &str, kind: &ShardIteratorType) -> Result<String> {
        self.refresh()?;
        let state = self.read_state();
        let target = self.find_shard(&state, shard)?;
        let index = target.meta.index;
        let end = target.meta.closed.map(|c| c.next_log_sequence);
        let own = |text: &str| -> Result<SequenceNumber> {
            let number = SequenceNumber::parse(text, "startingSequenceNumber")?;
            if number.shard_index() != index {
                return Err(Error::InvalidArgument(format!(
                    "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                    shard_id(number.shard_index()),
                    shard_id(index)
                )));
            }
            Ok(number)
        };
        let position = match kind {
            ShardIteratorType::TrimHorizon => self.trim_horizon(&state, target)?,
            ShardIteratorType::Latest => match end {
                Some(end) => end,
                None => target.log.next_sequence()?,
            },
            ShardIteratorType::AtSequenceNumber(text) => own(text)?.log_sequence(),
            ShardIteratorType::AfterSequenceNumber(text) => {
                own(text)?.log_sequence().saturating_add(1)
            }
            ShardIteratorType::AtTimestamp(ts) => {
                let now = self.now_ms();
                if *ts > now {
                    return Err(Error::InvalidArgument(format!(
                        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {ts}, currentTimestampInMillis: {now}"
                    )));
                }
                target.log.sequence_at_timestamp(*ts)?
            }
        };
        Ok(IteratorToken {
            shard_index: index,
            log_sequence: position,
            issued_ms: self.now_ms(),
        }
        .encode(&self.name))
    }

    /// Reads up to `limit` (1..=10,000) records and 10 MiB from an iterator's position.
    pub fn get_records(&self, iterator: &str, limit: usize) -> Result<GetRecordsOutput> {
        if limit == 0 || limit > GET_RECORDS_LIMIT_MAX {
            return Err(Error::InvalidArgument(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {GET_RECORDS_LIMIT_MAX}"
            )));
        }
        let now = self.now_ms();
        let token = IteratorToken::decode(iterator, &self.name, now)?;
        self.injected_get_failure(token.shard_index)?;
        self.refresh()?;
        let state = self.read_state();
        let shard = self.find_shard(&state, &shard_id(token.shard_index))?;
        self.admit_read(token.shard_index, now)?;
        let from = token.log_sequence.max(self.trim_horizon(&state, shard)?);
        let end = shard.meta.closed.map(|c| c.next_log_sequence);
        let mut records = Vec::new();
        let limits = ReadLimits {
            records_max: limit,
            bytes_max: GET_RECORDS_BYTES_MAX,
        };
        let index = token.shard_index;
        let next = shard.log.scan(from, limits, |r| {
            if end.is_some_and(|end| r.sequence >= end) {
                return false;
            }
            records.push(KinesisRecord {
                sequence_number: SequenceNumber::new(index, r.sequence).to_string(),
                approximate_arrival_timestamp_ms: r.timestamp_ms,
                data: r.data.to_vec(),
                partition_key: String::from_utf8_lossy(r.partition_key).into_owned(),
            });
            true
        })?;
        let next = next.max(from);
        let latest = shard.log.next_sequence()?;
        let millis_behind_latest = if next >= latest {
            0
        } else {
            records.last().map_or(0, |r| {
                now.saturating_sub(r.approximate_arrival_timestamp_ms)
                    .max(0) as u64
            })
        };
        let finished = end.is_some_and(|end| next >= end);
        let (next_shard_iterator, child_shards) = if finished {
            (None, children_of(&state, index))
        } else {
            let token = IteratorToken {
                shard_index: index,
                log_sequence: next,
                issued_ms: now,
            };
            (Some(token.encode(&self.name)), Vec::new())
        };
        let bytes: usize = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        if let Some((_, meter)) = self
            .limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            meter.record_read_bytes(index, now, bytes as u64);
        }
        Ok(GetRecordsOutput {
            records,
            next_shard_iterator,
            millis_behind_latest,
            child_shards,
        })
    }

    fn injected_get_failure(&self, shard_index: u32) -> Result<()> {
        let mut slot = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((faults, rng)) = slot.as_mut() else {
            return Ok(());
        };
        let roll = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if roll < faults.get_throttle_rate {
            return Err(Error::ProvisionedThroughputExceeded(format!(
                "Rate exceeded for shard {} in stream {} under account {}.",
                shard_id(shard_index),
                self.name,
                self.options.account
            )));
        }
        Ok(())
    }

    /// Reads and checks every batch of every shard (see [`Log::verify`]); one report per
    /// shard, in shard-id order.
    pub fn verify(&self) -> Result<Vec<(String, crate::storage::VerifyReport)>> {
        self.refresh()?;
        let state = self.read_state();
        state
            .shards
            .values()
            .map(|s| Ok((shard_id(s.meta.index), s.log.verify()?)))
            .collect()
    }

    /// Every shard within retention, open and closed, in shard-id order.
    pub fn list_shards(&self) -> Result<Vec<ShardDescription>> {
        self.refresh()?;
        let state = self.read_state();
        Ok(state
            .shards
            .values()
            .filter(|s| !self.is_expired(&state, s))
            .map(describe_shard)
            .collect())
    }

    /// The stream's settings and shards.
    pub fn describe(&self) -> Result<StreamDescription> {
        let shards = self.list_shards()?;
        let state = self.read_state();
        let retention_ms = state.manifest.retention_ms;
        Ok(StreamDescription {
            stream_name: self.name.clone(),
            stream_arn: self.arn(),
            stream_status: "ACTIVE".into(),
            retention_period_hours: retention_ms.div_ceil(3_600_000),
            retention_period_ms: retention_ms,
            stream_creation_timestamp_ms: state.manifest.created_ms,
            open_shard_count: state.open.len() as u32,
            shards,
        })
    }

    /// Changes how long records stay readable. Shortening hides older records at once and
    /// deletes their segments at the next retention pass; lengthening does not bring back
    /// records already deleted.
    pub fn set_retention(&self, retention: Duration) -> Result<()> {
        self.check_writer()?;
        if retention.is_zero() {
            return Err(Error::InvalidArgument(
                "Retention must be a positive duration".into(),
            ));
        }
        let mut state = self.write_state();
        let mut manifest = state.manifest.clone();
        manifest.retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        self.commit(&manifest)?;
        for shard in state.shards.values() {
            shard.log.writer()?.set_retention(Retention {
                age: Some(retention),
                bytes_max: None,
            });
        }
        state.manifest = manifest;
        drop(state);
        self.apply_retention().map(|_| ())
    }

    /// Writes a manifest atomically: the commit point of every change to the shard map.
    pub(crate) fn commit(&self, manifest: &Manifest) -> Result<()> {
        let path = self.dir.join(MANIFEST_FILE);
        write_atomically(self.options.vfs.as_ref(), &path, &manifest.encode())
            .map_err(|e| Error::io(&path, "write manifest", e))
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

pub(crate) fn range_text(range: HashKeyRange) -> HashKeyRangeText {
    HashKeyRangeText {
        starting_hash_key: range.start.to_string(),
        ending_hash_key: range.end.to_string(),
    }
}

fn describe_shard(shard: &Shard) -> ShardDescription {
    let index = shard.meta.index;
    let first = shard.meta.first_log_sequence;
    ShardDescription {
        shard_id: shard_id(index),
        parent_shard_id: shard.meta.parent.map(shard_id),
        adjacent_parent_shard_id: shard.meta.adjacent_parent.map(shard_id),
        hash_key_range: range_text(shard.range),
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: SequenceNumber::new(index, first).to_string(),
            ending_sequence_number: shard.meta.closed.map(|c| {
                SequenceNumber::new(index, c.next_log_sequence.saturating_sub(1).max(first))
                    .to_string()
            }),
        },
    }
}

fn children_of(state: &StreamState, parent: u32) -> Vec<ChildShard> {
    state
        .shards
        .values()
        .filter(|s| s.meta.parent == Some(parent) || s.meta.adjacent_parent == Some(parent))
        .map(|s| ChildShard {
            shard_id: shard_id(s.meta.index),
            parent_shards: s
                .meta
                .parent
                .into_iter()
                .chain(s.meta.adjacent_parent)
                .map(shard_id)
                .collect(),
            hash_key_range: range_text(s.range),
        })
        .collect()
}

pub(crate) fn shard_dir(stream_dir: &Path, index: u32) -> PathBuf {
    shards_dir(stream_dir).join(shard_id(index))
}

pub(crate) fn log_options(
    manifest: &Manifest,
    meta: &ShardMeta,
    options: &StoreOptions,
) -> LogOptions {
    LogOptions {
        durability: durability_of(manifest.durability),
        compression: compression_of(manifest.compression),
        retention: Retention {
            age: Some(Duration::from_millis(manifest.retention_ms)),
            bytes_max: None,
        },
        initial_sequence: meta.first_log_sequence,
        segment_bytes_max: options.segment_bytes_max,
        vfs: options.vfs.clone(),
        clock: options.clock.clone(),
        ..LogOptions::default()
    }
}

pub(crate) fn read_manifest(vfs: &dyn crate::storage::Vfs, dir: &Path) -> Result<(Manifest, u64)> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = vfs
        .read_file(&path, super::manifest::MANIFEST_BYTES_MAX)
        .map_err(|e| Error::io(&path, "read manifest", e))?;
    let digest = xxhash_rust::xxh3::xxh3_64(&bytes);
    let manifest = Manifest::decode(&bytes).map_err(|e| match e {
        ManifestError::UnsupportedVersion(found) => Error::UnsupportedFormat {
            path: path.clone(),
            found,
            supported: super::manifest::MANIFEST_VERSION,
        },
        ManifestError::Corrupt(reason) => {
            Error::corrupt(&path, 0, crate::error::CorruptReason::Footer(reason))
        }
    })?;
    Ok((manifest, digest))
}

/// Opens the log of every shard in `manifest`, reusing the already-open ones in `known`.
fn open_shards(
    dir: &Path,
    manifest: &Manifest,
    options: &StoreOptions,
    writable: bool,
    known: &BTreeMap<u32, Shard>,
) -> Result<BTreeMap<u32, Shard>> {
    let mut shards = BTreeMap::new();
    for meta in &manifest.shards {
        let range = meta.range().ok_or_else(|| {
            Error::corrupt(
                dir.join(MANIFEST_FILE),
                0,
                crate::error::CorruptReason::Footer("bad hash range"),
            )
        })?;
        let log = match known.get(&meta.index) {
            Some(shard) => shard.log.clone(),
            None if writable => Arc::new(ShardLog::Writer(Log::open(
                shard_dir(dir, meta.index),
                log_options(manifest, meta, options),
            )?)),
            None => {
                let path = shard_dir(dir, meta.index);
                let reader = crate::storage::LogReader::open(&path, options.vfs.clone())?;
                Arc::new(ShardLog::Reader(reader, path))
            }
        };
        shards.insert(
            meta.index,
            Shard {
                meta: meta.clone(),
                range,
                log,
            },
        );
    }
    Ok(shards)
}

/// Shard directories that no manifest names were created by a reshard that crashed before
/// its commit point; they hold no acknowledged record.
fn remove_orphan_shards(
    vfs: &dyn crate::storage::Vfs,
    dir: &Path,
    manifest: &Manifest,
) -> Result<()> {
    let shards = shards_dir(dir);
    let Ok(names) = vfs.list_dir(&shards) else {
        return Ok(());
    };
    for name in names {
        let known = parse_shard_id(&name)
            .is_some_and(|index| manifest.shards.iter().any(|s| s.index == index));
        if !known {
            let path = shards.join(&name);
            vfs.remove_dir_all(&path)
                .map_err(|e| Error::io(&path, "remove orphan shard", e))?;
        }
    }
    Ok(())
}
