//! The producer re-puts only the entries that failed, backs off with full jitter, reports
//! every record's outcome (never dropping one silently), and with aggregation packs small
//! records into KPL aggregates that de-aggregate back to every user record in per-key order.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use shardlog::format::kpl::{deaggregate, UserRecord};
use shardlog::producer::{Producer, ProducerConfig, RecordOutcome};
use shardlog::storage::SimDisk;
use shardlog::stream::*;

fn user(i: usize) -> UserRecord {
    UserRecord {
        partition_key: format!("key-{}", i % 37),
        explicit_hash_key: None,
        data: format!("event-{i}").into_bytes(),
    }
}

fn setup(shards: u32) -> (SimDisk, Store, Arc<Stream>) {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let stream = store
        .create_stream(
            "s",
            &StreamConfig {
                shard_count: shards,
                ..Default::default()
            },
        )
        .expect("create");
    (disk, store, stream)
}

fn recording_sleeper() -> (Arc<Mutex<Vec<Duration>>>, shardlog::producer::Sleeper) {
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    let sink = sleeps.clone();
    (sleeps, Arc::new(move |d| sink.lock().unwrap().push(d)))
}

#[test]
fn partial_failures_are_retried_until_everything_lands() {
    let (_disk, _store, stream) = setup(3);
    stream.set_fault_injection(Some(FaultInjection {
        seed: 1,
        put_throttle_rate: 0.3,
        put_internal_failure_rate: 0.1,
        get_throttle_rate: 0.0,
    }));
    let (sleeps, sleeper) = recording_sleeper();
    let config = ProducerConfig {
        max_attempts: 30,
        sleeper,
        ..Default::default()
    };
    let mut producer = Producer::new(stream.clone(), config.clone());
    let records: Vec<UserRecord> = (0..2000).map(user).collect();
    let report = producer.put_all(&records);
    assert_eq!(report.succeeded(), 2000, "{report:?}");
    assert!(
        report.retried_entries > 500,
        "failed entries were re-put: {}",
        report.retried_entries
    );
    assert!(report.put_calls > 4, "more than one call per chunk");
    // Full jitter: every pause within [0, min(max, base * 2^(attempt-1))].
    let sleeps = sleeps.lock().unwrap().clone();
    assert!(!sleeps.is_empty());
    assert!(sleeps.iter().all(|d| *d <= config.backoff_max));
    stream.set_fault_injection(None);
    let stored = read_in_lineage_order(&stream);
    assert_eq!(stored.len(), 2000, "each record exactly once");
    // Every reported sequence number names the record it was reported for.
    let by_seq: BTreeMap<String, &[u8]> = stored
        .iter()
        .map(|r| (r.sequence_number.to_string(), &r.data[..]))
        .collect();
    for (i, outcome) in report.records.iter().enumerate() {
        match outcome {
            Some(RecordOutcome::Put {
                sequence_number, ..
            }) => {
                assert_eq!(
                    by_seq.get(&sequence_number.to_string()).copied(),
                    Some(records[i].data.as_slice())
                );
            }
            other => panic!("record {i}: {other:?}"),
        }
    }
}

#[test]
fn what_finally_fails_is_reported_and_absent() {
    let (_disk, _store, stream) = setup(2);
    stream.set_fault_injection(Some(FaultInjection {
        seed: 9,
        put_throttle_rate: 0.5,
        put_internal_failure_rate: 0.0,
        get_throttle_rate: 0.0,
    }));
    let (_, sleeper) = recording_sleeper();
    let mut producer = Producer::new(
        stream.clone(),
        ProducerConfig {
            max_attempts: 2,
            sleeper,
            ..Default::default()
        },
    );
    let mut records: Vec<UserRecord> = (0..400).map(user).collect();
    records.push(UserRecord {
        partition_key: "big".into(),
        explicit_hash_key: None,
        data: vec![0; 2 * 1024 * 1024],
    });
    let report = producer.put_all(&records);
    assert_eq!(report.records.len(), 401);
    assert!(
        report.records.iter().all(Option::is_some),
        "every record has an outcome"
    );
    assert!(report.failed() > 0 && report.succeeded() > 0);
    stream.set_fault_injection(None);
    let stored: std::collections::BTreeSet<Vec<u8>> = read_in_lineage_order(&stream)
        .into_iter()
        .map(|r| r.data.to_vec())
        .collect();
    assert_eq!(stored.len(), report.succeeded());
    for (record, outcome) in records.iter().zip(&report.records) {
        match outcome {
            Some(RecordOutcome::Put { .. }) => assert!(stored.contains(&record.data)),
            Some(RecordOutcome::Failed {
                error_code,
                attempts,
                ..
            }) => {
                assert!(!stored.contains(&record.data));
                if record.partition_key == "big" {
                    assert_eq!(
                        error_code, "ValidationException",
                        "refused alone, never sent"
                    );
                    assert_eq!(*attempts, 0);
                } else {
                    assert_eq!(error_code, "ProvisionedThroughputExceededException");
                    assert_eq!(*attempts, 2);
                }
            }
            None => unreachable!(),
        }
    }
}

#[test]
fn aggregation_packs_records_that_deaggregate_in_per_key_order() {
    let (_disk, _store, stream) = setup(4);
    let (_, sleeper) = recording_sleeper();
    let mut producer = Producer::new(
        stream.clone(),
        ProducerConfig {
            aggregate: true,
            sleeper,
            ..Default::default()
        },
    );
    let records: Vec<UserRecord> = (0..5000).map(user).collect();
    let report = producer.put_all(&records);
    assert_eq!(report.succeeded(), 5000);
    let stored = read_in_lineage_order(&stream);
    assert!(
        stored.len() < 100,
        "5,000 records in {} Kinesis records",
        stored.len()
    );
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut total = 0;
    for r in &stored {
        assert!(r.data.len() <= 51_200);
        for user in deaggregate(&r.partition_key, None, &r.data) {
            let n: usize = std::str::from_utf8(&user.data)
                .unwrap()
                .trim_start_matches("event-")
                .parse()
                .unwrap();
            assert_eq!(user.partition_key, format!("key-{}", n % 37));
            per_key.entry(user.partition_key).or_default().push(n);
            total += 1;
        }
    }
    assert_eq!(total, 5000);
    for (key, ns) in per_key {
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "order of {key}");
    }
    // Every user record's reported sequence number and sub-sequence number find it.
    let first = report.records[0].clone().unwrap();
    assert!(matches!(
        first,
        RecordOutcome::Put {
            sub_sequence_number: Some(0),
            ..
        }
    ));
}
