//! One stream: its shards' logs and shard map, settings and listings. Writes live in `put.rs`,
//! reads in `read.rs`, reshards in `reshard.rs`.
//!
//! The shard map sits behind one `RwLock`: puts and reads hold it shared (shards append in
//! parallel, each through its own log), resharding holds it exclusive, so a put racing a
//! reshard lands in exactly one shard, before or after the change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::hash_key::HashKeyRange;
use super::manifest::{CompressionSetting, DurabilitySetting, Manifest, ManifestError, ShardMeta};
use super::sequence::SequenceNumber;
use super::shard_log::ShardLog;
use super::store::StoreOptions;
use super::throughput::{Meter, ThroughputLimits};
use super::types::*;
use crate::error::{Error, Result};
use crate::format::codec::Compression;
use crate::storage::{write_atomically, DirLock, Durability, Log, LogOptions, Retention, SimRng};

/// Name of a stream's manifest file.
pub const MANIFEST_FILE: &str = "manifest";

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

    pub(super) fn route(&self, hash_key: u128) -> Option<u32> {
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
    pub(super) faults: Mutex<Option<(FaultInjection, SimRng)>>,
    pub(super) limits: Mutex<Option<(ThroughputLimits, Meter)>>,
    pub(super) last_maintenance_ms: Mutex<i64>,
    /// Counts successful puts; pollers in this process wait on it instead of sleeping.
    pub(super) appended: (Mutex<u64>, std::sync::Condvar),
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
            appended: (Mutex::new(0), std::sync::Condvar::new()),
            manifest_digest: Mutex::new(digest),
            _lock: lock,
        })
    }

    /// Whether this handle writes the stream (else it follows another process's writes).
    pub fn is_writer(&self) -> bool {
        self._lock.is_some()
    }

    /// How many puts this handle has stored (a wake-up counter for consumers).
    pub fn appends(&self) -> u64 {
        *self
            .appended
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a put stores records after the counter read `seen`, or `timeout` passes.
    /// A follower of another process's writes cannot see its puts and waits out the timeout.
    pub fn wait_for_append(&self, seen: u64, timeout: Duration) {
        let guard = self
            .appended
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .appended
            .1
            .wait_timeout_while(guard, timeout, |count| *count <= seen)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Wakes every consumer waiting on this stream, as a put would (so a mapping that was
    /// told to stop notices at once instead of after its poll interval).
    pub fn wake_consumers(&self) {
        self.notify_appended();
    }

    pub(super) fn notify_appended(&self) {
        *self
            .appended
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        self.appended.1.notify_all();
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
    pub(super) fn refresh(&self) -> Result<()> {
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

    /// Makes every record acknowledged so far durable in every shard (fdatasync), whatever
    /// the stream's durability mode: the explicit flush for `None` and `Interval` streams.
    pub fn sync(&self) -> Result<()> {
        self.check_writer()?;
        let state = self.read_state();
        for shard in state.shards.values() {
            shard.log.writer()?.sync()?;
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

    /// What recovery found and did when each shard's log was opened by this writer, in
    /// shard-id order (empty for a follower, which recovers nothing).
    pub fn recovery_reports(&self) -> Vec<(String, crate::storage::RecoveryReport)> {
        let state = self.read_state();
        state
            .shards
            .values()
            .filter_map(|s| {
                let log = s.log.writer().ok()?;
                Some((shard_id(s.meta.index), log.recovery_report().clone()))
            })
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
    /// deletes their segments at the next retention pass; lengthening keeps readable only
    /// records that had not yet expired (as Kinesis' IncreaseStreamRetentionPeriod does),
    /// even where their segments still exist.
    pub fn set_retention(&self, retention: Duration) -> Result<()> {
        self.check_writer()?;
        if retention.is_zero() {
            return Err(Error::InvalidArgument(
                "Retention must be a positive duration".into(),
            ));
        }
        let mut state = self.write_state();
        let mut manifest = state.manifest.clone();
        manifest.expired_before_ms = self.expiry_cutoff_ms(&state);
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
        seal_in_background: options.seal_in_background,
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
