//! A store: one directory holding many streams.
//!
//! Layout: `{dir}/streams/{name}/` holds a stream's `manifest`, its `LOCK` and
//! `shards/shardId-NNNNNNNNNNNN/`, each a storage log. A stream name becomes a directory, so
//! names are checked against Kinesis' pattern and `.`/`..` are refused: no path is ever built
//! from unchecked input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use super::hash_key::uniform_ranges;
use super::manifest::{Manifest, ShardMeta};
use super::stream::{compression_setting, durability_setting, shard_dir, Stream, MANIFEST_FILE};
use super::types::{StreamConfig, StreamDescription, SHARDS_PER_STREAM_MAX};
use crate::error::{Error, Result};
use crate::storage::{write_atomically, Clock, Log, RealFs, Vfs, SEGMENT_BYTES_DEFAULT};

/// Settings shared by every stream of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The file system.
    pub vfs: Arc<dyn Vfs>,
    /// The clock (arrival timestamps, iterator expiry, retention).
    pub clock: Clock,
    /// Region named in ARNs.
    pub region: String,
    /// Account named in ARNs and messages.
    pub account: String,
    /// Segment size of every shard's log.
    pub segment_bytes_max: u64,
    /// Whether shard logs complete their seals on a thread (see
    /// [`LogOptions::seal_in_background`](crate::storage::LogOptions::seal_in_background));
    /// simulations turn it off to replay exactly.
    pub seal_in_background: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            vfs: Arc::new(RealFs),
            clock: Clock::system(),
            region: "us-east-1".into(),
            account: "000000000000".into(),
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
            seal_in_background: true,
        }
    }
}

/// A directory of streams. `Send + Sync`: share it between threads.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    options: StoreOptions,
    read_only: bool,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
}

/// Checks a stream name: 1..=128 characters of `[a-zA-Z0-9_.-]`, and not `.` or `..`.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let pattern_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if !pattern_ok || name == "." || name == ".." {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ (1 to 128 characters, not . or ..)"
        )));
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Opens (creating if needed) the store in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::new(dir.as_ref(), options, false)
    }

    /// Opens an existing store to follow it: reads see what writer processes put, roll,
    /// reshard and delete by retention, without reopening. Takes no lock and writes nothing;
    /// writes answer `ReadOnly`.
    pub fn open_read_only(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::new(dir.as_ref(), options, true)
    }

    fn new(dir: &Path, options: StoreOptions, read_only: bool) -> Result<Store> {
        let streams = dir.join("streams");
        let prepared = if read_only {
            options.vfs.list_dir(&streams).map(|_| ())
        } else {
            options.vfs.create_dir_all(&streams)
        };
        prepared.map_err(|e| Error::io(&streams, "open store", e))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            options,
            read_only,
            streams: RwLock::new(BTreeMap::new()),
        })
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn stream_dir(&self, name: &str) -> PathBuf {
        self.dir.join("streams").join(name)
    }

    fn not_found(&self, name: &str) -> Error {
        Error::ResourceNotFound(format!(
            "Stream {name} under account {} not found.",
            self.options.account
        ))
    }

    /// Creates a stream with `config.shard_count` shards splitting the hash-key space equally.
    pub fn create_stream(&self, name: &str, config: &StreamConfig) -> Result<Arc<Stream>> {
        self.check_writable()?;
        validate_stream_name(name)?;
        if config.shard_count == 0 || config.shard_count > SHARDS_PER_STREAM_MAX {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{}' at 'shardCount' failed to satisfy constraint: Member must have value between 1 and {SHARDS_PER_STREAM_MAX}",
                config.shard_count
            )));
        }
        if config.retention.is_zero() {
            return Err(Error::InvalidArgument(
                "Retention must be a positive duration".into(),
            ));
        }
        if !config.compression.is_valid() {
            return Err(Error::InvalidArgument(format!(
                "Compression {:?} is not supported: zstd levels are 1 to 19",
                config.compression
            )));
        }
        if config.max_record_bytes == 0 || config.max_record_bytes > 10 * 1024 * 1024 {
            return Err(Error::Validation(format!(
                "MaxRecordSize of {} bytes is outside 1 byte to 10 MiB",
                config.max_record_bytes
            )));
        }
        let mut streams = self.streams.write().unwrap_or_else(PoisonError::into_inner);
        let vfs = self.options.vfs.as_ref();
        let dir = self.stream_dir(name);
        if streams.contains_key(name) || vfs.read_file(&dir.join(MANIFEST_FILE), 1 << 26).is_ok() {
            return Err(Error::ResourceInUse(format!(
                "Stream {name} under account {} already exists.",
                self.options.account
            )));
        }
        // Files without a manifest are what a crashed create or delete left: never data.
        if vfs.list_dir(&dir).is_ok() {
            vfs.remove_dir_all(&dir)
                .map_err(|e| Error::io(&dir, "remove", e))?;
        }
        vfs.create_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "create dir", e))?;
        let now = self.options.clock.now_ms();
        let manifest = Manifest {
            name: name.to_string(),
            created_ms: now,
            retention_ms: u64::try_from(config.retention.as_millis()).unwrap_or(u64::MAX),
            expired_before_ms: 0,
            compression: compression_setting(config.compression),
            durability: durability_setting(config.durability),
            max_record_bytes: config.max_record_bytes,
            next_shard_index: config.shard_count,
            shards: uniform_ranges(config.shard_count)
                .into_iter()
                .zip(0u32..)
                .map(|(range, index)| ShardMeta {
                    index,
                    hash_start: range.start.to_string(),
                    hash_end: range.end.to_string(),
                    parent: None,
                    adjacent_parent: None,
                    first_log_sequence: 0,
                    closed: None,
                    created_ms: now,
                })
                .collect(),
        };
        // The shards' logs first, the manifest last: a stream exists once its manifest does.
        for meta in &manifest.shards {
            let options = super::stream::log_options(&manifest, meta, &self.options);
            drop(Log::open(shard_dir(&dir, meta.index), options)?);
        }
        let path = dir.join(MANIFEST_FILE);
        write_atomically(vfs, &path, &manifest.encode())
            .map_err(|e| Error::io(&path, "write manifest", e))?;
        let stream = Arc::new(Stream::open(
            dir,
            name,
            self.options.clone(),
            !self.read_only,
        )?);
        streams.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    /// The stream called `name`, opened for writing on first use (its lock held from then on
    /// by this store).
    pub fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        validate_stream_name(name)?;
        if let Some(stream) = self
            .streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(stream.clone());
        }
        let mut streams = self.streams.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(stream) = streams.get(name) {
            return Ok(stream.clone());
        }
        let dir = self.stream_dir(name);
        if self
            .options
            .vfs
            .read_file(&dir.join(MANIFEST_FILE), 1 << 26)
            .is_err()
        {
            return Err(self.not_found(name));
        }
        let stream = Arc::new(Stream::open(
            dir,
            name,
            self.options.clone(),
            !self.read_only,
        )?);
        streams.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    /// The names of the store's streams, sorted.
    pub fn list_streams(&self) -> Result<Vec<String>> {
        let root = self.dir.join("streams");
        let mut names: Vec<String> = self
            .options
            .vfs
            .list_dir(&root)
            .map_err(|e| Error::io(&root, "list", e))?
            .into_iter()
            .filter(|n| validate_stream_name(n).is_ok())
            .filter(|n| {
                self.options
                    .vfs
                    .read_file(&root.join(n).join(MANIFEST_FILE), 1 << 26)
                    .is_ok()
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Describes a stream.
    pub fn describe_stream(&self, name: &str) -> Result<StreamDescription> {
        self.stream(name)?.describe()
    }

    /// Deletes a stream and all its records. Handles to it held elsewhere keep working on
    /// their open files until dropped.
    pub fn delete_stream(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        let stream = self.stream(name)?;
        let mut streams = self.streams.write().unwrap_or_else(PoisonError::into_inner);
        streams.remove(name);
        let dir = stream.dir.clone();
        drop(stream);
        let vfs = self.options.vfs.as_ref();
        // The manifest goes first, durably: from then on the stream does not exist, and a
        // crash during the rest leaves only unreferenced files.
        let manifest = dir.join(MANIFEST_FILE);
        vfs.remove_file(&manifest)
            .map_err(|e| Error::io(&manifest, "remove", e))?;
        vfs.sync_dir(&dir)
            .map_err(|e| Error::io(&dir, "fsync dir", e))?;
        vfs.remove_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "remove", e))?;
        let root = self.dir.join("streams");
        vfs.sync_dir(&root)
            .map_err(|e| Error::io(&root, "fsync dir", e))
    }
}
