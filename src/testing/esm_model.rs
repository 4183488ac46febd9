//! The `esm_model` harness: an event source mapping over a stream on a [`SimDisk`], whose
//! function answers from a fuzzer-chosen script (success, every success shape, function
//! errors, partial batch failures naming any record, malformed and unknown identifiers,
//! throttles) and whose consumer "crashes" at a chosen invocation (the batch in flight is
//! abandoned, the disk loses what was not synced, a new mapping resumes from the checkpoints).
//!
//! Checked against a model of Lambda's rules:
//! - no record is skipped: each is filtered out, processed by a successful invocation,
//!   reported to the on-failure destination, or counted as dropped;
//! - a filtered-out record never reaches the function; a processed one is never delivered
//!   again (until a crash, and then only past the durable checkpoint);
//! - checkpoints never move backwards and nothing at or before one is delivered;
//! - invocation counts follow the retry rules: `Invocations` counts every attempt that
//!   reached the function, and a batch discarded for exhausted retries carries
//!   `approximateInvokeCount` = MaximumRetryAttempts + 1.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use serde_json::{json, Value};

use super::esm_check::check_final;
use crate::consumer::{
    CheckpointStore, Destination, EsmConfig, EventSourceMapping, Function, Invocation,
    MappingOptions, MetricsSnapshot,
};
use crate::storage::{Clock, CrashMode, SimDisk, SimRng};
use crate::stream::{PutRecordsEntry, Store, StoreOptions, StreamConfig};

const STORE_DIR: &str = "/fuzz/store";
const CHECKPOINTS: &str = "/fuzz/mapping/checkpoints";
const RECORDS_MAX: usize = 40;
const SCRIPT_MAX: usize = 16;
const CRASHES_MAX: usize = 3;
const START_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Arbitrary)]
pub(super) struct Scenario {
    pub(super) shards: bool,
    pub(super) batch_size: u8,
    pub(super) retries: i8,
    pub(super) record_age: u8,
    pub(super) bisect: bool,
    pub(super) report_item_failures: bool,
    pub(super) parallel: bool,
    pub(super) filter_below: Option<u8>,
    pub(super) destination: bool,
    pub(super) tumbling: bool,
    pub(super) spread: bool,
    pub(super) records: Vec<(u8, bool)>,
    pub(super) script: Vec<Outcome>,
    pub(super) crashes: Vec<(u8, u8)>,
}

/// What the function does with one invocation.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub(super) enum Outcome {
    Success,
    /// One of the response shapes Lambda reads as success.
    SuccessShape(u8),
    Error,
    /// `batchItemFailures` naming one or two records of the batch.
    Partial(u8, Option<u8>),
    /// An identifier that is empty, null, unknown, or a malformed response.
    Malformed(u8),
    Throttle,
}

/// What the model knows of one record in the stream.
#[derive(Debug, Clone)]
pub(super) struct Put {
    pub(super) shard: String,
    pub(super) matches: bool,
}

#[derive(Default)]
pub(super) struct Observed {
    /// Attempts per exact batch (first, last, size), to pick the scripted answer.
    pub(super) attempts: BTreeMap<(u128, u128, usize), u32>,
    /// Records a successful invocation processed in this run.
    pub(super) processed_this_run: BTreeSet<u128>,
    pub(super) processed_ever: BTreeSet<u128>,
    /// Highest checkpoint seen per shard.
    pub(super) checkpoints: BTreeMap<String, u128>,
    pub(super) calls: u64,
    pub(super) reached_function: u64,
    pub(super) crash_at: Option<u64>,
}

pub(super) struct ModelFunction {
    pub(super) script: Vec<Outcome>,
    pub(super) puts: BTreeMap<u128, Put>,
    pub(super) report_item_failures: bool,
    pub(super) tumbling: bool,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) checkpoints: Mutex<Arc<CheckpointStore>>,
    pub(super) observed: Mutex<Observed>,
}

/// Runs the scenario `data` decodes to; panics when the mapping breaks a rule of the model.
pub fn esm_model(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(scenario) = Scenario::arbitrary(&mut input) else {
        return;
    };
    if scenario.records.is_empty() {
        return;
    }
    if std::env::var_os("SHARDLOG_FUZZ_TRACE").is_some() {
        eprintln!("{scenario:?}");
    }
    run(&scenario);
}

fn config_json(s: &Scenario) -> String {
    let retries = i64::from(s.retries).clamp(-1, 4);
    // Infinite retries end only when records expire: give them a maximum age then.
    let age = match (retries, s.record_age % 4) {
        (-1, _) | (_, 0) => 60 + i64::from(s.record_age),
        _ => -1,
    };
    let mut config = json!({
        "FunctionName": "model",
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": u32::from(s.batch_size % 10) + 1,
        "MaximumRetryAttempts": retries,
        "MaximumRecordAgeInSeconds": age,
        "BisectBatchOnFunctionError": s.bisect,
        "ParallelizationFactor": if s.parallel { 2 } else { 1 },
        "FunctionResponseTypes": if s.report_item_failures { vec!["ReportBatchItemFailures"] } else { vec![] },
        "TumblingWindowInSeconds": if s.tumbling { 30 } else { 0 },
    });
    if let (Some(below), Some(object)) = (s.filter_below, config.as_object_mut()) {
        let pattern = json!({"data": {"n": [{"numeric": ["<", below % 40]}]}}).to_string();
        object.insert(
            "FilterCriteria".into(),
            json!({"Filters": [{"Pattern": pattern}]}),
        );
    }
    config.to_string()
}

struct World {
    disk: SimDisk,
    now_ms: Arc<AtomicI64>,
}

impl World {
    fn store(&self) -> Store {
        let now = Arc::clone(&self.now_ms);
        let options = StoreOptions {
            vfs: Arc::new(self.disk.clone()),
            clock: Clock::new(move || now.load(Ordering::SeqCst)),
            segment_bytes_max: 4096,
            seal_in_background: false,
            ..StoreOptions::default()
        };
        match Store::open_with(STORE_DIR, options) {
            Ok(store) => store,
            Err(e) => panic!("the store must open: {e}"),
        }
    }

    fn mapping_options(&self) -> MappingOptions {
        let now = Arc::clone(&self.now_ms);
        let advance = Arc::clone(&self.now_ms);
        MappingOptions {
            name: "model".into(),
            clock: Clock::new(move || now.load(Ordering::SeqCst)),
            sleeper: Arc::new(move |d: Duration| {
                advance.fetch_add(
                    i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
                    Ordering::SeqCst,
                );
            }),
            poll_interval: Duration::from_millis(1),
            ..MappingOptions::default()
        }
    }
}

fn run(s: &Scenario) {
    let world = World {
        disk: SimDisk::new(),
        now_ms: Arc::new(AtomicI64::new(START_MS)),
    };
    let store = world.store();
    let shard_count = if s.shards { 2 } else { 1 };
    let create = |name: &str, shard_count: u32| match store.create_stream(
        name,
        &StreamConfig {
            shard_count,
            ..StreamConfig::default()
        },
    ) {
        Ok(stream) => stream,
        Err(e) => panic!("create {name}: {e}"),
    };
    let stream = create("events", shard_count);
    if s.destination {
        create("dlq", 1);
    }
    let mut puts = BTreeMap::new();
    let filter_below = s.filter_below.map(|b| i64::from(b % 40));
    for (n, (key, json_data)) in s.records.iter().take(RECORDS_MAX).enumerate() {
        let data = if *json_data {
            json!({"k": key % 5, "n": n}).to_string()
        } else {
            format!("raw-{n}")
        };
        let matches = match filter_below {
            None => true,
            Some(below) => *json_data && (n as i64) < below,
        };
        let entry = PutRecordsEntry {
            data: data.into_bytes(),
            partition_key: format!("k{}", key % 5),
            explicit_hash_key: None,
        };
        let Ok(out) = stream.put_record(entry, None) else {
            panic!("put on a healthy simulated disk");
        };
        if s.spread {
            // Records 7 s apart span several 30 s tumbling windows.
            world.now_ms.fetch_add(7_000, Ordering::SeqCst);
        }
        let sequence = parse(&out.sequence_number.to_string());
        puts.insert(
            sequence,
            Put {
                shard: out.shard_id.to_string(),
                matches,
            },
        );
    }
    drop(stream);
    drop(store);
    let config = match EsmConfig::from_json(&config_json(s)) {
        Ok(config) => config,
        Err(e) => panic!("the model's config is valid: {e}"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let function = Arc::new(ModelFunction {
        script: s.script.iter().take(SCRIPT_MAX).copied().collect(),
        puts: puts.clone(),
        report_item_failures: s.report_item_failures,
        tumbling: s.tumbling,
        stop: Arc::clone(&stop),
        checkpoints: Mutex::new(open_checkpoints(&world.disk)),
        observed: Mutex::new(Observed::default()),
    });
    let mut crashes: Vec<(u8, u8)> = s.crashes.iter().take(CRASHES_MAX).copied().collect();
    crashes.reverse();
    let mut totals: Vec<MetricsSnapshot> = Vec::new();
    let mut crashed = false;
    loop {
        let store = world.store();
        let (Ok(stream), dlq) = (store.stream("events"), store.stream("dlq")) else {
            panic!("the stream reopens");
        };
        let checkpoints = open_checkpoints(&world.disk);
        *lock(&function.checkpoints) = Arc::clone(&checkpoints);
        let crash = crashes.pop();
        {
            let mut observed = lock(&function.observed);
            observed.processed_this_run.clear();
            observed.crash_at = crash.map(|(at, _)| observed.calls + u64::from(at % 24) + 1);
        }
        stop.store(false, Ordering::SeqCst);
        let destination = match dlq {
            Ok(dlq) if s.destination => Destination::Stream(dlq),
            _ => Destination::None,
        };
        let mapping = match EventSourceMapping::new(
            config.clone(),
            stream,
            Arc::clone(&function) as Arc<dyn Function>,
            destination,
            checkpoints,
            world.mapping_options(),
        ) {
            Ok(mapping) => mapping,
            Err(e) => panic!("the mapping starts: {e}"),
        };
        let metrics = match mapping.run_until_idle_or_stopped(&stop) {
            Ok(metrics) => metrics,
            Err(e) => panic!("the mapping runs: {e}"),
        };
        totals.push(metrics);
        drop(mapping);
        if !stop.load(Ordering::SeqCst) {
            check_final(s, &function, &store, &totals, crashed);
            return;
        }
        // The consumer died mid-batch: the disk keeps only what was synced.
        crashed = true;
        drop(store);
        let mode = match crash.map_or(0, |(_, m)| m % 3) {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::TornPrefix,
            _ => CrashMode::Reorder,
        };
        world
            .disk
            .crash(mode, &mut SimRng::new(totals.len() as u64));
    }
}

fn open_checkpoints(disk: &SimDisk) -> Arc<CheckpointStore> {
    match CheckpointStore::open(CHECKPOINTS, Arc::new(disk.clone())) {
        Ok(store) => Arc::new(store),
        Err(e) => panic!("checkpoints open: {e}"),
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn parse(sequence: &str) -> u128 {
    match sequence.parse() {
        Ok(n) => n,
        Err(_) => panic!("sequence number {sequence} is decimal"),
    }
}

/// The records of an event: (shard, sequence number, data).
fn event_records(event: &str) -> Vec<(String, u128, Vec<u8>)> {
    let Ok(value) = serde_json::from_str::<Value>(event) else {
        panic!("the event is JSON");
    };
    let Some(records) = value.get("Records").and_then(Value::as_array) else {
        panic!("the event has Records");
    };
    records
        .iter()
        .map(|r| {
            let id = r.get("eventID").and_then(Value::as_str).unwrap_or_default();
            let shard = id.split(':').next().unwrap_or_default().to_string();
            let kinesis = r.get("kinesis");
            let sequence = kinesis
                .and_then(|k| k.get("sequenceNumber"))
                .and_then(Value::as_str)
                .map(parse)
                .unwrap_or_default();
            let data = kinesis
                .and_then(|k| k.get("data"))
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .unwrap_or_default();
            (shard, sequence, data)
        })
        .collect()
}

impl Function for ModelFunction {
    fn invoke(&self, _lane: usize, event: &str) -> Invocation {
        let records = event_records(event);
        let mut observed = lock(&self.observed);
        observed.calls += 1;
        let checkpoints = Arc::clone(&lock(&self.checkpoints));
        for (shard, sequence, _) in &records {
            let Some(put) = self.puts.get(sequence) else {
                panic!("delivered {sequence}, which was never put");
            };
            assert!(&put.shard == shard, "{sequence} delivered as {shard}");
            assert!(
                put.matches,
                "{sequence} does not match the filter but was delivered"
            );
            assert!(
                !observed.processed_this_run.contains(sequence),
                "{sequence} was processed and then delivered again"
            );
            let checkpoint = checkpoints
                .get(shard)
                .and_then(|c| c.sequence_number)
                .map_or(0, |c| parse(&c) + 1);
            let highest = observed.checkpoints.entry(shard.clone()).or_default();
            assert!(
                checkpoint >= *highest,
                "the checkpoint of {shard} moved backwards"
            );
            *highest = checkpoint;
            assert!(
                *sequence >= checkpoint,
                "{sequence} delivered although checkpointed"
            );
        }
        if self.stop.load(Ordering::SeqCst) || observed.crash_at == Some(observed.calls) {
            // The consumer dies: this attempt never completes.
            self.stop.store(true, Ordering::SeqCst);
            return Invocation::ServiceError("consumer crashed".into());
        }
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            assert!(
                self.tumbling && event.contains(r#""isFinalInvokeForWindow":true"#),
                "only a window's final invocation carries no records"
            );
            observed.reached_function += 1;
            return Invocation::Returned(Some(json!({"state": {}})));
        };
        let identity = (first.1, last.1, records.len());
        let attempt = {
            let count = observed.attempts.entry(identity).or_default();
            *count += 1;
            *count
        };
        let pick = (first.1 as usize)
            .wrapping_mul(31)
            .wrapping_add(records.len() * 7)
            .wrapping_add(attempt as usize);
        let outcome = match self.script.len() {
            0 => Outcome::Success,
            n => self
                .script
                .get(pick % n)
                .copied()
                .unwrap_or(Outcome::Success),
        };
        let sequence_text = |i: u8| {
            records
                .get(usize::from(i) % records.len())
                .map(|r| r.1.to_string())
                .unwrap_or_default()
        };
        // What the model expects Lambda to make of the answer: records processed.
        let (invocation, processed_upto) = match outcome {
            Outcome::Throttle if attempt <= 2 => {
                return Invocation::ServiceError("throttled".into());
            }
            Outcome::Success | Outcome::Throttle => (Invocation::Returned(None), records.len()),
            Outcome::SuccessShape(shape) => {
                let response = match shape % 6 {
                    0 => Value::Null,
                    1 => json!(""),
                    2 => json!([]),
                    3 => json!({}),
                    4 => json!({"batchItemFailures": []}),
                    _ => json!({"batchItemFailures": null}),
                };
                (Invocation::Returned(Some(response)), records.len())
            }
            Outcome::Error => (Invocation::FunctionError("Unhandled".into()), 0),
            Outcome::Partial(a, b) => {
                let mut items = vec![json!({"itemIdentifier": sequence_text(a)})];
                let mut lowest = usize::from(a) % records.len();
                if let Some(b) = b {
                    items.push(json!({"itemIdentifier": sequence_text(b)}));
                    lowest = lowest.min(usize::from(b) % records.len());
                }
                let processed = if self.report_item_failures {
                    lowest
                } else {
                    records.len()
                };
                (
                    Invocation::Returned(Some(json!({ "batchItemFailures": items }))),
                    processed,
                )
            }
            Outcome::Malformed(kind) => {
                let response = match kind % 5 {
                    0 => json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
                    1 => json!({"batchItemFailures": [{"itemIdentifier": null}]}),
                    2 => json!({"batchItemFailures": [{"itemIdentifier": "123"}]}),
                    3 => json!({"batchItemFailures": "all"}),
                    _ => json!(17),
                };
                let processed = if self.report_item_failures {
                    0
                } else {
                    records.len()
                };
                (Invocation::Returned(Some(response)), processed)
            }
        };
        // Inside a tumbling window Lambda needs an object with a `state`; without one the
        // invocation fails whole.
        let (invocation, processed_upto) = match invocation {
            Invocation::Returned(response) if self.tumbling => {
                match response.unwrap_or_else(|| json!({})) {
                    Value::Object(mut object) => {
                        object.insert("state".into(), json!({"n": records.len()}));
                        (
                            Invocation::Returned(Some(Value::Object(object))),
                            processed_upto,
                        )
                    }
                    other => (Invocation::Returned(Some(other)), 0),
                }
            }
            other => (other, processed_upto),
        };
        observed.reached_function += 1;
        for record in records.iter().take(processed_upto) {
            observed.processed_this_run.insert(record.1);
            observed.processed_ever.insert(record.1);
        }
        invocation
    }
}
