//! The `stream_model` harness: a structured sequence of stream operations — puts,
//! put_records, reads, splits, merges, retention changes, clock jumps, planned I/O faults and
//! simulated crashes with torn or reordered writes — run against a stream on a [`SimDisk`] and
//! checked after every step against a small in-memory model of what each shard must hold.
//!
//! The model keeps, per shard, every record a put acknowledged (or left in doubt by an I/O
//! failure) with its sequence number. What a shard returns must be one contiguous run of
//! that list: records may be missing only at the front, and only once retention allows it;
//! they may be missing at the back only after a crash, and then only records that were never
//! synced; nothing is invented, duplicated or reordered, and sequence numbers never change.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use super::shard_check::{check_shard, list, parse_sequence, range_of, read_shard};
use crate::format::codec::Compression;
use crate::storage::{Clock, CrashMode, Durability, FaultOp, SimDisk, SimRng};
use crate::stream::{
    partition_key_hash, PutRecordsEntry, PutRecordsOutput, ShardDescription, ShardIteratorType,
    Store, StoreOptions, Stream, StreamConfig,
};

const STORE_DIR: &str = "/fuzz/store";
const STREAM: &str = "model";
/// Bounds one input's work so every execution stays fast.
const OPS_MAX: usize = 48;
const PUT_RECORDS_ENTRIES_MAX: usize = 24;
const KEYS: u8 = 24;
const START_MS: i64 = 1_700_000_000_000;

/// The scenario a fuzz input decodes to.
#[derive(Debug, Arbitrary)]
struct Scenario {
    shard_count: u8,
    zstd: bool,
    always: bool,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Put { key: u8, len: u8 },
    PutRecords { entries: Vec<(u8, u8)> },
    Read { shard: u8, from: u8 },
    Split { shard: u8, at: u16 },
    Merge { shard: u8 },
    SetRetention { seconds: u16 },
    AdvanceClock { seconds: u16 },
    Crash { mode: u8, seed: u64 },
    CleanReopen,
    FailNext { op: u8, nth: u8 },
    DiskFull { bytes_left: u16 },
}

/// One record the model expects a shard to hold.
#[derive(Debug, Clone)]
pub(super) struct Expected {
    pub(super) sequence: u128,
    pub(super) partition_key: String,
    pub(super) data: Vec<u8>,
    pub(super) arrival_ms: i64,
    /// Written and synced: must survive a crash unless retention removed it.
    pub(super) durable: bool,
    /// Its put failed with an I/O error: it may or may not be there.
    pub(super) in_doubt: bool,
    /// Retention has allowed its removal at some point.
    pub(super) expirable: bool,
}

struct Harness {
    disk: SimDisk,
    now_ms: Arc<AtomicI64>,
    always: bool,
    store: Option<Store>,
    stream: Option<Arc<Stream>>,
    shards: BTreeMap<String, Vec<Expected>>,
    map: Vec<ShardDescription>,
    retention_ms: i64,
    fault_planned: bool,
    records_put: u64,
}

/// Runs the scenario `data` decodes to; panics when the stream and the model disagree.
pub fn stream_model(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(scenario) = Scenario::arbitrary(&mut input) else {
        return;
    };
    let trace = std::env::var_os("SHARDLOG_FUZZ_TRACE").is_some();
    if trace {
        eprintln!(
            "shards {} zstd {} always {}",
            scenario.shard_count % 4 + 1,
            scenario.zstd,
            scenario.always
        );
    }
    let Some(mut harness) = Harness::start(&scenario) else {
        return;
    };
    for op in scenario.ops.iter().take(OPS_MAX) {
        if trace {
            eprintln!("{op:?}");
        }
        harness.step(op);
    }
    harness.crash(CrashMode::TornPrefix, 7);
}

impl Harness {
    fn start(scenario: &Scenario) -> Option<Harness> {
        let disk = SimDisk::new();
        let now_ms = Arc::new(AtomicI64::new(START_MS));
        let config = StreamConfig {
            shard_count: u32::from(scenario.shard_count % 4) + 1,
            retention: Duration::from_secs(3600),
            compression: if scenario.zstd {
                Compression::Zstd { level: 1 }
            } else {
                Compression::None
            },
            durability: if scenario.always {
                Durability::Always
            } else {
                Durability::None
            },
            ..StreamConfig::default()
        };
        let mut harness = Harness {
            disk,
            now_ms,
            always: scenario.always,
            store: None,
            stream: None,
            shards: BTreeMap::new(),
            map: Vec::new(),
            retention_ms: 3_600_000,
            fault_planned: false,
            records_put: 0,
        };
        let store = harness.open_store();
        let Ok(stream) = store.create_stream(STREAM, &config) else {
            panic!("creating a stream on an empty simulated disk must work");
        };
        harness.map = list(&stream);
        harness.store = Some(store);
        harness.stream = Some(stream);
        Some(harness)
    }

    fn options(&self) -> StoreOptions {
        let now = Arc::clone(&self.now_ms);
        StoreOptions {
            vfs: Arc::new(self.disk.clone()),
            clock: Clock::new(move || now.load(Ordering::SeqCst)),
            segment_bytes_max: 1024,
            seal_in_background: false,
            ..StoreOptions::default()
        }
    }

    fn open_store(&self) -> Store {
        match Store::open_with(STORE_DIR, self.options()) {
            Ok(store) => store,
            Err(e) => panic!("the store must open on the simulated disk: {e}"),
        }
    }

    fn stream(&self) -> Arc<Stream> {
        match &self.stream {
            Some(stream) => Arc::clone(stream),
            None => panic!("the harness always holds an open stream"),
        }
    }

    fn now(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Put { key, len } => self.put(&[(*key, *len)], true),
            Op::PutRecords { entries } => {
                let entries: Vec<(u8, u8)> = entries
                    .iter()
                    .take(PUT_RECORDS_ENTRIES_MAX)
                    .copied()
                    .collect();
                if !entries.is_empty() {
                    self.put(&entries, false);
                }
            }
            Op::Read { shard, from } => self.read_from(*shard, *from),
            Op::Split { shard, at } => self.split(*shard, *at),
            Op::Merge { shard } => self.merge(*shard),
            Op::SetRetention { seconds } => {
                let seconds = u64::from(*seconds).max(1);
                match self.stream().set_retention(Duration::from_secs(seconds)) {
                    Ok(()) => self.retention_ms = i64::try_from(seconds * 1000).unwrap_or(0),
                    Err(e) => assert!(self.fault_planned, "set_retention failed: {e}"),
                }
                self.mark_expirable();
            }
            Op::AdvanceClock { seconds } => {
                self.now_ms
                    .fetch_add(i64::from(*seconds) * 1000, Ordering::SeqCst);
                self.mark_expirable();
            }
            Op::Crash { mode, seed } => {
                let mode = match mode % 3 {
                    0 => CrashMode::DropUnsynced,
                    1 => CrashMode::TornPrefix,
                    _ => CrashMode::Reorder,
                };
                self.crash(mode, *seed);
            }
            Op::CleanReopen => self.clean_reopen(),
            Op::FailNext { op, nth } => {
                let op = match op % 4 {
                    0 => FaultOp::Write,
                    1 => FaultOp::Sync,
                    2 => FaultOp::Rename,
                    _ => FaultOp::Create,
                };
                let nth = self.disk.calls(op) + u64::from(*nth % 8) + 1;
                self.disk.fail_nth(op, nth, ErrorKind::Other);
                self.fault_planned = true;
            }
            Op::DiskFull { bytes_left } => {
                let used: u64 = self
                    .disk
                    .files_in(Path::new(STORE_DIR))
                    .iter()
                    .filter_map(|p| self.disk.contents(p))
                    .map(|c| c.len() as u64)
                    .sum();
                self.disk
                    .set_space_limit(Some(used + u64::from(*bytes_left)));
                self.fault_planned = true;
            }
        }
    }

    fn put(&mut self, entries: &[(u8, u8)], single: bool) {
        let now = self.now();
        let requests: Vec<PutRecordsEntry> = entries
            .iter()
            .map(|(key, len)| {
                self.records_put += 1;
                let mut data = format!("r{}:", self.records_put).into_bytes();
                data.resize(data.len() + usize::from(*len), b'a' + key % 26);
                PutRecordsEntry {
                    data,
                    partition_key: format!("k{}", key % KEYS),
                    explicit_hash_key: None,
                }
            })
            .collect();
        let stream = self.stream();
        let output = if single {
            let request = requests.first().cloned();
            request.map(|r| {
                stream.put_record(r, None).map(|o| PutRecordsOutput {
                    failed_record_count: 0,
                    records: vec![crate::stream::PutRecordsResultEntry {
                        sequence_number: Some(o.sequence_number),
                        shard_id: Some(o.shard_id),
                        error_code: None,
                        error_message: None,
                    }],
                })
            })
        } else {
            Some(stream.put_records(&requests))
        };
        let output = match output {
            Some(Ok(output)) => output,
            Some(Err(e)) => {
                assert!(
                    self.fault_planned,
                    "a put failed with no fault planned: {e}"
                );
                // A failed single put may have reached the disk.
                self.note_unknown_outcome(&requests, now);
                return;
            }
            None => return,
        };
        assert_eq!(output.records.len(), requests.len(), "one result per entry");
        let mut failed = Vec::new();
        for (request, result) in requests.iter().zip(&output.records) {
            match (&result.shard_id, &result.sequence_number) {
                (Some(shard_id), Some(sequence)) => {
                    // Checked through their text, as a client of the JSON API sees them.
                    let shard_id = shard_id.to_string();
                    self.check_routing(&shard_id, &request.partition_key);
                    let sequence = parse_sequence(&sequence.to_string());
                    let list = self.shards.entry(shard_id).or_default();
                    if let Some(last) = list.last() {
                        assert!(
                            sequence > last.sequence,
                            "sequence numbers increase within a shard"
                        );
                    }
                    list.push(Expected {
                        sequence,
                        partition_key: request.partition_key.clone(),
                        data: request.data.clone(),
                        arrival_ms: now,
                        durable: self.always,
                        in_doubt: false,
                        expirable: false,
                    });
                }
                _ => {
                    assert!(
                        self.fault_planned,
                        "an entry failed with no fault planned: {result:?}"
                    );
                    failed.push(request.clone());
                }
            }
        }
        // Entries whose shard refused the batch may still be on disk (the write landed and
        // the sync failed).
        self.note_unknown_outcome(&failed, now);
    }

    /// Records `requests` as in doubt in the shards they route to: present or not, only a
    /// crash and reopen will tell.
    fn note_unknown_outcome(&mut self, requests: &[PutRecordsEntry], now: i64) {
        for request in requests {
            let hash = partition_key_hash(&request.partition_key);
            let Some(shard) = self.map.iter().find(|s| {
                s.sequence_number_range.ending_sequence_number.is_none()
                    && range_of(s).is_some_and(|(start, end)| start <= hash && hash <= end)
            }) else {
                continue;
            };
            self.shards
                .entry(shard.shard_id.clone())
                .or_default()
                .push(Expected {
                    sequence: 0,
                    partition_key: request.partition_key.clone(),
                    data: request.data.clone(),
                    arrival_ms: now,
                    durable: false,
                    in_doubt: true,
                    expirable: false,
                });
        }
    }

    fn check_routing(&self, shard_id: &str, partition_key: &str) {
        let hash = partition_key_hash(partition_key);
        let Some(shard) = self.map.iter().find(|s| s.shard_id == shard_id) else {
            panic!("a put landed in {shard_id}, which the shard map does not name");
        };
        assert!(
            shard.sequence_number_range.ending_sequence_number.is_none(),
            "a put landed in closed shard {shard_id}"
        );
        assert!(
            range_of(shard).is_some_and(|(start, end)| start <= hash && hash <= end),
            "key {partition_key} routed to {shard_id}, which does not own its hash"
        );
    }

    fn mark_expirable(&mut self) {
        let now = self.now();
        let retention = self.retention_ms;
        for record in self.shards.values_mut().flatten() {
            if record.arrival_ms.saturating_add(retention) <= now {
                record.expirable = true;
            }
        }
    }

    fn open_shards(&self) -> Vec<ShardDescription> {
        let mut open: Vec<ShardDescription> = self
            .map
            .iter()
            .filter(|s| s.sequence_number_range.ending_sequence_number.is_none())
            .cloned()
            .collect();
        open.sort_by_key(|s| range_of(s).map(|(start, _)| start));
        open
    }

    fn split(&mut self, pick: u8, at: u16) {
        let open = self.open_shards();
        let Some(shard) = open.get(usize::from(pick) % open.len().max(1)) else {
            return;
        };
        let Some((start, end)) = range_of(shard) else {
            return;
        };
        if end <= start {
            return;
        }
        let new_start = start + 1 + (end - start - 1) / 65_536 * u128::from(at);
        let result = self
            .stream()
            .split_shard(&shard.shard_id, &new_start.to_string());
        self.after_reshard(result, open.len() + 1);
    }

    fn merge(&mut self, pick: u8) {
        let open = self.open_shards();
        if open.len() < 2 {
            return;
        }
        let i = usize::from(pick) % (open.len() - 1);
        let (Some(a), Some(b)) = (open.get(i), open.get(i + 1)) else {
            return;
        };
        let result = self.stream().merge_shards(&a.shard_id, &b.shard_id);
        self.after_reshard(result, open.len() - 1);
    }

    /// A reshard that succeeded shows in the map; one that failed without a planned fault
    /// changed nothing; one that failed on a fault is settled by crashing at once and
    /// accepting the old map or the complete new one.
    fn after_reshard(&mut self, result: crate::Result<()>, open_after_success: usize) {
        let open_before = self.open_shards().len();
        match result {
            Ok(()) => {
                self.map = list(&self.stream());
                // A split closes one shard and opens two; a merge closes two and opens one.
                // (Closed shards past retention may leave the list at any time.)
                assert_eq!(
                    self.open_shards().len(),
                    open_after_success,
                    "a reshard changes the open shard count by one"
                );
            }
            Err(e) if !self.fault_planned => {
                let open_before: Vec<ShardDescription> = self.open_shards();
                self.map = list(&self.stream());
                assert_eq!(
                    self.open_shards(),
                    open_before,
                    "a refused reshard changes nothing: {e}"
                );
            }
            Err(_) => {
                self.crash(CrashMode::TornPrefix, open_before as u64);
                let open_after = self.open_shards().len();
                assert!(
                    open_after == open_before || open_after == open_after_success,
                    "after a failed reshard and a crash the map is the old one or the new one"
                );
            }
        }
    }

    fn read_from(&mut self, pick: u8, from: u8) {
        let Some(shard) = self.map.get(usize::from(pick) % self.map.len().max(1)) else {
            return;
        };
        let shard_id = shard.shard_id.clone();
        let expected = self.shards.get(&shard_id).cloned().unwrap_or_default();
        let settled: Vec<&Expected> = expected.iter().filter(|e| !e.in_doubt).collect();
        let start = settled.get(usize::from(from) % settled.len().max(1));
        match start {
            Some(first) if !first.expirable => {
                let kind = ShardIteratorType::AtSequenceNumber(first.sequence.to_string());
                let got = match read_shard(&self.stream(), &shard_id, &kind) {
                    Ok(got) => got,
                    Err(e) => {
                        assert!(self.fault_planned, "read of {shard_id} failed: {e}");
                        return;
                    }
                };
                let tail: Vec<Expected> = expected
                    .iter()
                    .skip_while(|e| e.sequence != first.sequence)
                    .cloned()
                    .collect();
                check_shard(&shard_id, &got, &tail, false);
            }
            _ => self.check_all(false),
        }
    }

    /// Reads every shard from its trim horizon and compares it with the model.
    fn check_all(&mut self, after_crash: bool) {
        let stream = self.stream();
        let listed = list(&stream);
        for (shard_id, expected) in &self.shards {
            if !listed.iter().any(|s| &s.shard_id == shard_id) {
                assert!(
                    expected.iter().all(|e| e.expirable || e.in_doubt),
                    "{shard_id} left the shard list while holding unexpired records"
                );
                continue;
            }
            match read_shard(&stream, shard_id, &ShardIteratorType::TrimHorizon) {
                Ok(got) => check_shard(shard_id, &got, expected, after_crash),
                Err(e) => assert!(
                    self.fault_planned && !after_crash,
                    "read of {shard_id} failed: {e}"
                ),
            }
        }
    }

    /// Crashes the simulated disk, reopens the store and checks every shard; then the model
    /// adopts what survived.
    fn crash(&mut self, mode: CrashMode, seed: u64) {
        self.disk.crash(mode, &mut SimRng::new(seed));
        self.reopen(true);
    }

    fn clean_reopen(&mut self) {
        // Closed shards past retention leave the list as time passes.
        self.map = list(&self.stream());
        self.stream = None;
        self.store = None;
        if self.fault_planned {
            // A poisoned shard does not close cleanly: settle it with a crash instead.
            self.disk.crash(CrashMode::TornPrefix, &mut SimRng::new(1));
            self.reopen(true);
            return;
        }
        self.reopen(false);
    }

    fn reopen(&mut self, after_crash: bool) {
        self.stream = None;
        self.store = None;
        self.fault_planned = false;
        self.disk.set_space_limit(None);
        let store = self.open_store();
        let stream = match store.stream(STREAM) {
            Ok(stream) => stream,
            Err(e) => panic!("the stream must reopen: {e}"),
        };
        self.store = Some(store);
        self.stream = Some(Arc::clone(&stream));
        let listed = list(&stream);
        if !after_crash {
            assert_eq!(listed, self.map, "a clean reopen keeps the shard map");
        }
        self.map = listed;
        self.check_all(after_crash);
        // Adopt the survivors: what is on disk after a reopen is durable.
        let mut survivors = BTreeMap::new();
        for shard in &self.map {
            let Ok(got) = read_shard(&stream, &shard.shard_id, &ShardIteratorType::TrimHorizon)
            else {
                panic!("{} must read after a reopen", shard.shard_id);
            };
            let old = self.shards.remove(&shard.shard_id).unwrap_or_default();
            let kept: Vec<Expected> = got
                .iter()
                .map(|r| {
                    let arrival_ms = old
                        .iter()
                        .find(|e| e.data == r.data)
                        .map_or(r.approximate_arrival_timestamp_ms, |e| e.arrival_ms);
                    Expected {
                        sequence: parse_sequence(&r.sequence_number),
                        partition_key: r.partition_key.clone(),
                        data: r.data.clone(),
                        arrival_ms,
                        durable: true,
                        in_doubt: false,
                        expirable: false,
                    }
                })
                .collect();
            survivors.insert(shard.shard_id.clone(), kept);
        }
        self.shards = survivors;
        self.mark_expirable();
    }
}
