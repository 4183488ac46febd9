//! Helpers shared by the behaviour tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use shardlog::format::batch::RecordIn;
use shardlog::storage::{Clock, Durability, Log, LogOptions, ReadLimits, Record, SimDisk};

/// A log directory on a simulated disk.
pub const DIR: &str = "/sim/log";

/// A clock tests move by hand.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Clock::new(move || now.load(Ordering::SeqCst))
    }
}

/// Options for a log on `disk` with small segments, so tests see rolls.
pub fn sim_options(disk: &SimDisk, durability: Durability) -> LogOptions {
    LogOptions {
        vfs: Arc::new(disk.clone()),
        durability,
        segment_bytes_max: 16 * 1024,
        index_interval_bytes: 512,
        clock: ManualClock::at(1_000_000).clock(),
        // Seals complete at the next sync, checkpoint, explicit roll or close, not on a
        // thread: a seeded simulation replays exactly, and crashes find seals pending.
        seal_in_background: false,
        ..LogOptions::default()
    }
}

/// The payload of record `n`: self-describing, so a test can check any record's bytes.
pub fn payload(n: u64) -> Vec<u8> {
    let len = 20 + (n % 7) as usize * 30;
    let mut data = format!("record-{n:08}-").into_bytes();
    data.resize(len, b'a' + (n % 26) as u8);
    data
}

/// Appends `count` records as one batch whose first record is number `first`.
pub fn append_numbered(
    log: &Log,
    first: u64,
    count: u64,
) -> shardlog::Result<shardlog::storage::Appended> {
    let payloads: Vec<Vec<u8>> = (first..first + count).map(payload).collect();
    let keys: Vec<String> = (first..first + count)
        .map(|n| format!("key-{}", n % 5))
        .collect();
    let records: Vec<RecordIn<'_>> = payloads
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (data, key))| RecordIn {
            timestamp_ms: 1_000_000 + (first + i as u64) as i64,
            partition_key: key.as_bytes(),
            explicit_hash_key: if (first + i as u64) % 3 == 0 {
                Some(u128::from(first) << 64)
            } else {
                None
            },
            data,
        })
        .collect();
    log.append(&records)
}

/// Every record of the log from its first sequence.
pub fn read_all(log: &Log) -> Vec<Record> {
    let mut out = Vec::new();
    let mut from = log.first_sequence();
    loop {
        let page = log.read(from, ReadLimits::records(1000)).expect("read");
        let Some(last) = page.last() else { break };
        from = last.sequence + 1;
        out.extend(page);
    }
    out
}

/// Asserts that `records` are records `0..n` as [`append_numbered`] wrote them.
pub fn assert_numbered(records: &[Record], n: u64) {
    assert_eq!(records.len() as u64, n, "record count");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.sequence, i as u64, "sequence of record {i}");
        assert_eq!(r.data, payload(i as u64), "data of record {i}");
        assert_eq!(
            r.timestamp_ms,
            1_000_000 + i as i64,
            "timestamp of record {i}"
        );
    }
}

/// The segment file paths of a log on a simulated disk, oldest first.
pub fn segment_files(disk: &SimDisk, dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = disk
        .files_in(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Store options on a simulated disk with a hand-driven clock.
pub fn sim_store_options(disk: &SimDisk, clock: &ManualClock) -> shardlog::stream::StoreOptions {
    shardlog::stream::StoreOptions {
        vfs: Arc::new(disk.clone()),
        clock: clock.clock(),
        segment_bytes_max: 64 * 1024,
        seal_in_background: false,
        ..Default::default()
    }
}

/// One `put_records` entry.
pub fn entry(key: &str, data: &[u8]) -> shardlog::stream::PutRecordsEntry {
    shardlog::stream::PutRecordsEntry {
        data: data.to_vec(),
        partition_key: key.to_string(),
        explicit_hash_key: None,
    }
}

/// Every record of one shard from its trim horizon to its end (closed) or its tip (open).
pub fn read_shard(
    stream: &shardlog::stream::Stream,
    shard: &str,
) -> Vec<shardlog::stream::KinesisRecord> {
    use shardlog::stream::ShardIteratorType;
    let mut iterator = Some(
        stream
            .get_shard_iterator(shard, &ShardIteratorType::TrimHorizon)
            .expect("iterator"),
    );
    let mut out = Vec::new();
    while let Some(it) = iterator {
        let page = stream.get_records(&it, 1000).expect("get_records");
        let empty = page.records.is_empty();
        out.extend(page.records);
        iterator = page.next_shard_iterator;
        if empty && page.millis_behind_latest == 0 {
            break;
        }
    }
    out
}

/// Every record of a stream, reading each shard only after all its parents (as a Kinesis
/// consumer must), returned in that order.
pub fn read_in_lineage_order(
    stream: &shardlog::stream::Stream,
) -> Vec<shardlog::stream::KinesisRecord> {
    let shards = stream.list_shards().expect("list_shards");
    let mut done: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    while done.len() < shards.len() {
        let ready: Vec<_> = shards
            .iter()
            .filter(|s| !done.contains(&s.shard_id))
            .filter(|s| {
                s.parent_shard_id
                    .iter()
                    .chain(&s.adjacent_parent_shard_id)
                    .all(|p| done.contains(p) || !shards.iter().any(|x| &x.shard_id == p))
            })
            .map(|s| s.shard_id.clone())
            .collect();
        assert!(!ready.is_empty(), "lineage has a cycle");
        for shard in ready {
            out.extend(read_shard(stream, &shard));
            done.insert(shard);
        }
    }
    out
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
    /// The time now.
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Mapping options for tests: no real sleeping; sleeps advance the hand-driven clock.
pub fn test_mapping_options(clock: &ManualClock) -> shardlog::consumer::MappingOptions {
    let advance = clock.clone();
    shardlog::consumer::MappingOptions {
        name: "test-fn".into(),
        clock: clock.clock(),
        sleeper: Arc::new(move |d| advance.advance(d)),
        poll_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    }
}

/// Records every event a function receives and answers with `respond`.
pub struct Recorder<F> {
    pub events: std::sync::Mutex<Vec<serde_json::Value>>,
    pub raw: std::sync::Mutex<Vec<String>>,
    pub respond: F,
}

impl<F> Recorder<F>
where
    F: Fn(&serde_json::Value, usize) -> shardlog::consumer::Invocation + Send + Sync,
{
    pub fn new(respond: F) -> Arc<Self> {
        Arc::new(Recorder {
            events: std::sync::Mutex::new(Vec::new()),
            raw: std::sync::Mutex::new(Vec::new()),
            respond,
        })
    }
    /// Data of every record delivered, in delivery order, per invocation.
    pub fn batches(&self) -> Vec<Vec<String>> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                e["Records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(record_text)
                    .collect()
            })
            .collect()
    }
}

impl<F> shardlog::consumer::Function for Recorder<F>
where
    F: Fn(&serde_json::Value, usize) -> shardlog::consumer::Invocation + Send + Sync,
{
    fn invoke(&self, _lane: usize, event: &str) -> shardlog::consumer::Invocation {
        let value: serde_json::Value = serde_json::from_str(event).expect("event JSON");
        self.raw.lock().unwrap().push(event.to_string());
        let n = {
            let mut events = self.events.lock().unwrap();
            events.push(value.clone());
            events.len()
        };
        (self.respond)(&value, n)
    }
}

/// A store with one stream on a simulated disk.
pub fn esm_stream(
    disk: &SimDisk,
    clock: &ManualClock,
    shards: u32,
) -> (shardlog::stream::Store, Arc<shardlog::stream::Stream>) {
    let store = shardlog::stream::Store::open_with("/sim/store", sim_store_options(disk, clock))
        .expect("store");
    let stream = store
        .create_stream(
            "events",
            &shardlog::stream::StreamConfig {
                shard_count: shards,
                ..Default::default()
            },
        )
        .expect("create");
    (store, stream)
}

/// Puts records `data` with key `key`, one put each.
pub fn put_all(stream: &shardlog::stream::Stream, key: &str, data: &[&str]) -> Vec<String> {
    data.iter()
        .map(|d| {
            stream
                .put_record(entry(key, d.as_bytes()), None)
                .expect("put")
                .sequence_number
                .to_string()
        })
        .collect()
}

/// The payload of one event record (`kinesis.data`, base64), as text.
pub fn record_text(record: &serde_json::Value) -> String {
    String::from_utf8(record_bytes(record)).expect("UTF-8 data")
}

/// The payload of one event record (`kinesis.data`, base64).
pub fn record_bytes(record: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(record["kinesis"]["data"].as_str().expect("data"))
        .expect("base64 data")
}

/// A mapping over `stream` with a file destination (if `dest` is given) and test options.
pub fn esm_mapping(
    stream: &Arc<shardlog::stream::Stream>,
    disk: &SimDisk,
    clock: &ManualClock,
    function: Arc<dyn shardlog::consumer::Function>,
    config_json: &str,
    dest: Option<&Path>,
) -> shardlog::consumer::EventSourceMapping {
    esm_mapping_with(
        stream,
        disk,
        function,
        config_json,
        dest,
        test_mapping_options(clock),
    )
}

/// Like [`esm_mapping`], with the given options.
pub fn esm_mapping_with(
    stream: &Arc<shardlog::stream::Stream>,
    disk: &SimDisk,
    function: Arc<dyn shardlog::consumer::Function>,
    config_json: &str,
    dest: Option<&Path>,
    options: shardlog::consumer::MappingOptions,
) -> shardlog::consumer::EventSourceMapping {
    use shardlog::consumer::*;
    let checkpoints = Arc::new(
        CheckpointStore::open("/sim/mappings/m/checkpoints", Arc::new(disk.clone()))
            .expect("checkpoints"),
    );
    let destination = dest.map_or(Destination::None, Destination::file);
    let config = EsmConfig::from_json(config_json).expect("config");
    EventSourceMapping::new(
        config,
        stream.clone(),
        function,
        destination,
        checkpoints,
        options,
    )
    .expect("mapping")
}

/// The failure records written to a JSON-lines destination file.
pub fn failure_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("failure record JSON"))
        .collect()
}

/// Asserts that records written as `KEY:N` with increasing N arrive in increasing N per key.
pub fn assert_per_key_order(delivered: &[String]) {
    let mut per_key: std::collections::BTreeMap<&str, Vec<u64>> = std::collections::BTreeMap::new();
    for d in delivered {
        let (k, n) = d.split_once(':').expect("KEY:N");
        per_key.entry(k).or_default().push(n.parse().expect("N"));
    }
    for (k, ns) in per_key {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "key {k} out of order: {ns:?}"
        );
    }
}
