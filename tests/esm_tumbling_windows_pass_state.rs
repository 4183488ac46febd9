//! Tumbling windows: records grouped by the aligned window of their arrival time; each
//! invocation gets the state the previous one returned; each window ends with a final
//! invocation (`isFinalInvokeForWindow`, no records) carrying the aggregate; a response
//! without `state` fails; a state past 1 MB ends the window early; a shard's end closes its
//! window; and the checkpoint stays before an open window, so a consumer stopped mid-window
//! replays it from empty state.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use shardlog::consumer::*;
use shardlog::storage::SimDisk;

/// A handler that counts records per window: `state.count += len(Records)`.
fn counting(event: &Value, _n: usize) -> Invocation {
    let before = event["state"]["count"].as_u64().unwrap_or(0);
    let records = event["Records"].as_array().unwrap().len() as u64;
    Invocation::Returned(Some(json!({"state": {"count": before + records}})))
}

fn summary(events: &[Value]) -> Vec<(usize, u64, bool, bool)> {
    events
        .iter()
        .map(|e| {
            (
                e["Records"].as_array().unwrap().len(),
                e["state"]["count"].as_u64().unwrap_or(0),
                e["isFinalInvokeForWindow"].as_bool().unwrap(),
                e["isWindowTerminatedEarly"].as_bool().unwrap(),
            )
        })
        .collect()
}

const WINDOW_CONFIG: &str =
    r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":2,"TumblingWindowInSeconds":60}"#;

#[test]
fn state_passes_between_invocations_and_each_window_ends_with_a_final_invoke() {
    let disk = SimDisk::new();
    // 10 s into a minute: the first window is [00:00, 01:00) of that minute.
    let clock = ManualClock::at(1_596_128_410_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["a", "b", "c"]);
    clock.advance(Duration::from_secs(60));
    put_all(&stream, "k", &["d"]);
    let recorder = Recorder::new(counting);
    let metrics = esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        WINDOW_CONFIG,
        None,
    )
    .run_until_idle()
    .expect("run");
    let events = recorder.events.lock().unwrap().clone();
    assert_eq!(
        summary(&events),
        vec![
            (2, 0, false, false), // a, b with empty state
            (1, 2, false, false), // c with the state after a, b
            (0, 3, true, false),  // final: the window's aggregate
            (1, 0, false, false), // d opens the next window with empty state
            (0, 1, true, false),
        ]
    );
    let first = &events[0];
    assert_eq!(first["window"]["start"], "2020-07-30T17:00:00Z");
    assert_eq!(first["window"]["end"], "2020-07-30T17:01:00Z");
    assert_eq!(first["shardId"], "shardId-000000000000");
    assert_eq!(
        first["eventSourceARN"],
        "arn:aws:kinesis:us-east-1:000000000000:stream/events"
    );
    assert_eq!(events[3]["window"]["start"], "2020-07-30T17:01:00Z");
    // Key order as Lambda sends it.
    let raw = recorder.raw.lock().unwrap()[2].clone();
    assert!(
        raw.starts_with(r#"{"Records":[],"window":{"start":"#),
        "{raw}"
    );
    assert_eq!(metrics.totals.invocations, 5);
}

#[test]
fn a_response_without_state_is_a_failure() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_596_128_410_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["a"]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("failures.jsonl");
    let recorder = Recorder::new(|event: &Value, _| {
        if event["isFinalInvokeForWindow"] == true {
            Invocation::Returned(None)
        } else {
            Invocation::Returned(Some(json!({"batchItemFailures": []})))
        }
    });
    let config = r#"{"StartingPosition":"TRIM_HORIZON","TumblingWindowInSeconds":60,"MaximumRetryAttempts":1}"#;
    let metrics = esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        config,
        Some(&dest),
    )
    .run_until_idle()
    .expect("run");
    let failures = failure_records(&dest);
    assert_eq!(failures.len(), 1, "discarded after its retry");
    assert_eq!(failures[0]["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(failures[0]["responseContext"]["functionError"], "Unhandled");
    assert_eq!(metrics.totals.errors, 2);
}

#[test]
fn a_state_past_one_mebibyte_ends_the_window_early() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_596_128_410_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["big", "small"]);
    let recorder = Recorder::new(|event: &Value, _| {
        let records = event["Records"].as_array().unwrap();
        let huge = records
            .first()
            .is_some_and(|r| r["kinesis"]["data"] == "Ymln"); // "big"
        let state = if huge {
            json!({"blob": "x".repeat(WINDOW_STATE_BYTES_MAX)})
        } else {
            json!({"seen": records.len()})
        };
        Invocation::Returned(Some(json!({ "state": state })))
    });
    let config =
        r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":1,"TumblingWindowInSeconds":60}"#;
    esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .expect("run");
    let events = recorder.events.lock().unwrap().clone();
    let shape: Vec<(usize, bool, bool, bool)> = events
        .iter()
        .map(|e| {
            (
                e["Records"].as_array().unwrap().len(),
                e["isFinalInvokeForWindow"].as_bool().unwrap(),
                e["isWindowTerminatedEarly"].as_bool().unwrap(),
                e["state"].get("blob").is_some(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (1, false, false, false), // "big" returns an oversized state
            (0, true, true, true),    // the window ends early, handing it over
            (1, false, false, false), // "small" starts afresh
            (0, true, false, false),  // the window's normal end
        ]
    );
    assert_eq!(events[2]["state"], json!({}));
}

#[test]
fn a_shards_end_closes_its_window_and_children_start_fresh() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_596_128_410_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["parent-1", "parent-2"]);
    stream
        .split_shard("shardId-000000000000", &(1u128 << 127).to_string())
        .unwrap();
    // Same aligned window, but in a child shard.
    put_all(&stream, "k", &["child-1"]);
    let recorder = Recorder::new(counting);
    esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        WINDOW_CONFIG,
        None,
    )
    .run_until_idle()
    .expect("run");
    let events = recorder.events.lock().unwrap().clone();
    let by_shard: Vec<(String, usize, u64, bool)> = events
        .iter()
        .map(|e| {
            (
                e["shardId"].as_str().unwrap().to_string(),
                e["Records"].as_array().unwrap().len(),
                e["state"]["count"].as_u64().unwrap_or(0),
                e["isFinalInvokeForWindow"].as_bool().unwrap(),
            )
        })
        .collect();
    let parent = "shardId-000000000000".to_string();
    assert_eq!(by_shard[0], (parent.clone(), 2, 0, false));
    assert_eq!(
        by_shard[1],
        (parent, 0, 2, true),
        "the parent's end closes its window"
    );
    let child = &by_shard[2];
    assert_ne!(child.0, "shardId-000000000000");
    assert_eq!((child.1, child.2, child.3), (1, 0, false), "fresh state");
    assert_eq!(by_shard.len(), 4, "and the child's window closes too");
}

#[test]
fn a_consumer_stopped_mid_window_replays_the_window_from_empty_state() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_596_128_410_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["a", "b", "c", "d"]);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    // The first batch succeeds; during the second the consumer is stopped.
    let first = Recorder::new(move |event: &Value, n| {
        if n >= 2 {
            stopper.store(true, Ordering::SeqCst);
            return Invocation::ServiceError("stopping".into());
        }
        counting(event, n)
    });
    esm_mapping(&stream, &disk, &clock, first.clone(), WINDOW_CONFIG, None)
        .run_until_idle_or_stopped(&stop)
        .expect("first run");
    let second = Recorder::new(counting);
    esm_mapping(&stream, &disk, &clock, second.clone(), WINDOW_CONFIG, None)
        .run_until_idle()
        .expect("second run");
    let events = second.events.lock().unwrap().clone();
    assert_eq!(
        summary(&events),
        vec![
            (2, 0, false, false), // a, b again: the checkpoint stayed before the window
            (2, 2, false, false),
            (0, 4, true, false),
        ]
    );
}
