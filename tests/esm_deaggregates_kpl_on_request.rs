//! KPL-aggregated records reach the function as Lambda delivers them (one event record, the
//! aggregate's bytes) unless the mapping sets the shardlog extension `DeaggregateRecords`:
//! then each user record is an event record of its own with the outer sequence number and a
//! `subSequenceNumber`, filters see user records, and a partial failure naming the aggregate
//! retries all of its user records.

mod common;

use common::*;
use serde_json::{json, Value};
use shardlog::consumer::*;
use shardlog::format::kpl::{aggregate, UserRecord};
use shardlog::storage::SimDisk;

fn user(key: &str, data: &str) -> UserRecord {
    UserRecord {
        partition_key: key.into(),
        explicit_hash_key: None,
        data: data.as_bytes().to_vec(),
    }
}

/// Puts one aggregate of three user records, then one plain record.
fn setup(
    disk: &SimDisk,
    clock: &ManualClock,
) -> (
    shardlog::stream::Store,
    std::sync::Arc<shardlog::stream::Stream>,
    Vec<u8>,
) {
    let (store, stream) = esm_stream(disk, clock, 1);
    let packed = aggregate(&[
        user("u1", r#"{"n":1}"#),
        user("u2", r#"{"n":2}"#),
        user("u3", r#"{"n":3}"#),
    ]);
    stream.put_record(entry("agg", &packed), None).unwrap();
    stream
        .put_record(entry("plain", br#"{"n":4}"#), None)
        .unwrap();
    (store, stream, packed)
}

#[test]
fn aggregates_are_delivered_whole_by_default() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream, packed) = setup(&disk, &clock);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        r#"{"StartingPosition":"TRIM_HORIZON"}"#,
        None,
    )
    .run_until_idle()
    .unwrap();
    let events = recorder.events.lock().unwrap().clone();
    let records = events[0]["Records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 2);
    assert_eq!(
        record_bytes(&records[0]),
        packed,
        "the aggregate's bytes, untouched"
    );
    assert!(records[0]["kinesis"].get("subSequenceNumber").is_none());
}

#[test]
fn opted_in_mappings_deliver_user_records() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream, _) = setup(&disk, &clock);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let config = r#"{"StartingPosition":"TRIM_HORIZON","DeaggregateRecords":true}"#;
    esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .unwrap();
    let events = recorder.events.lock().unwrap().clone();
    let records = events[0]["Records"].as_array().unwrap().clone();
    let seen: Vec<(String, String, Option<u64>)> = records
        .iter()
        .map(|r| {
            (
                r["kinesis"]["partitionKey"].as_str().unwrap().to_string(),
                record_text(r),
                r["kinesis"]["subSequenceNumber"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("u1".into(), r#"{"n":1}"#.into(), Some(0)),
            ("u2".into(), r#"{"n":2}"#.into(), Some(1)),
            ("u3".into(), r#"{"n":3}"#.into(), Some(2)),
            ("plain".into(), r#"{"n":4}"#.into(), None),
        ]
    );
    let outer = records[0]["kinesis"]["sequenceNumber"].clone();
    assert!(records[..3]
        .iter()
        .all(|r| r["kinesis"]["sequenceNumber"] == outer));
}

#[test]
fn filters_see_user_records_and_batch_size_counts_stream_records() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream, _) = setup(&disk, &clock);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let config = r#"{"StartingPosition":"TRIM_HORIZON","DeaggregateRecords":true,"BatchSize":1,
        "FilterCriteria":{"Filters":[{"Pattern":"{\"data\":{\"n\":[{\"numeric\":[\">=\",2]}]}}"}]}}"#;
    let metrics = esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .unwrap();
    assert_eq!(
        recorder.batches(),
        vec![
            vec![r#"{"n":2}"#.to_string(), r#"{"n":3}"#.to_string()],
            vec![r#"{"n":4}"#.to_string()]
        ],
        "the aggregate is one batch of its matching user records"
    );
    assert_eq!(metrics.totals.filtered_out_event_count, 1);
}

#[test]
fn a_partial_failure_naming_the_aggregate_retries_all_its_user_records() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream, _) = setup(&disk, &clock);
    let recorder = Recorder::new(|event: &Value, n| {
        if n == 1 {
            // Fail the second user record of the aggregate (same sequence number as all).
            let seq = event["Records"][1]["kinesis"]["sequenceNumber"].clone();
            Invocation::Returned(Some(
                json!({"batchItemFailures": [{"itemIdentifier": seq}]}),
            ))
        } else {
            Invocation::Returned(None)
        }
    });
    let config = r#"{"StartingPosition":"TRIM_HORIZON","DeaggregateRecords":true,
        "FunctionResponseTypes":["ReportBatchItemFailures"]}"#;
    esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .unwrap();
    let batches = recorder.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        batches[1], batches[0],
        "the retry resends the whole aggregate and what follows"
    );
}
