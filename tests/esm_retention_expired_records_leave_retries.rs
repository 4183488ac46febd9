//! With infinite retries and no record age limit, a batch that keeps failing is retried until
//! retention removes its records from the stream; then the mapping moves on, as Lambda does:
//! no failure record, not counted as dropped, and the records after it are delivered.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use shardlog::consumer::*;
use shardlog::storage::SimDisk;
use shardlog::stream::StreamConfig;

#[test]
fn records_retention_removes_while_retrying_are_left_behind() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000_000);
    let store =
        shardlog::stream::Store::open_with("/sim/store", sim_store_options(&disk, &clock)).unwrap();
    let stream = store
        .create_stream(
            "events",
            &StreamConfig {
                retention: Duration::from_secs(3600),
                ..Default::default()
            },
        )
        .unwrap();
    put_all(&stream, "k", &["poison"]);
    // Arrives 30 minutes later: still retained when the poison record expires.
    clock.advance(Duration::from_secs(30 * 60));
    put_all(&stream, "k", &["fine"]);
    let recorder = Recorder::new(|event: &serde_json::Value, _| {
        if event.to_string().contains("cG9pc29u") {
            // base64 of "poison"
            Invocation::FunctionError("poison".into())
        } else {
            Invocation::Returned(None)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("failures.jsonl");
    let log = Arc::new(DecisionLog::default());
    let options = MappingOptions {
        retry_backoff_max: Duration::from_secs(120),
        decision_log: Some(log.clone()),
        ..test_mapping_options(&clock)
    };
    // BatchSize 1: the poison record is retried alone.
    let metrics = esm_mapping_with(
        &stream,
        &disk,
        recorder.clone(),
        r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":1}"#,
        Some(&dest),
        options,
    )
    .run_until_idle()
    .unwrap();
    let batches = recorder.batches();
    assert!(batches.len() > 10, "retried until it expired");
    assert_eq!(batches.last().unwrap(), &vec!["fine".to_string()]);
    assert!(failure_records(&dest).is_empty(), "no failure record");
    assert_eq!(metrics.totals.dropped_event_count, 0);
    assert!(log
        .entries()
        .iter()
        .any(|d| matches!(d, Decision::Expired { records: 1, .. })));
}
