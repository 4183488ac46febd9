//! With a virtual clock, a fixed seed and a deterministic function, a mapping's decision log
//! (every invocation, outcome, backoff, bisect, discard and checkpoint) is identical when the
//! same scenario is replayed, and it records what the rules say happened.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use shardlog::consumer::*;
use shardlog::storage::SimDisk;

/// A scenario with retries, a bisect, a partial failure and discards.
fn run_scenario(seed: u64) -> (Vec<Decision>, Vec<serde_json::Value>) {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_700_000_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let data: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = data.iter().map(String::as_str).collect();
    put_all(&stream, "k", &refs);
    let recorder = Recorder::new(|event: &serde_json::Value, _| {
        let records = event["Records"].as_array().unwrap();
        let texts: Vec<String> = records.iter().map(record_text).collect();
        if texts.iter().any(|t| t == "r3") {
            return Invocation::FunctionError("poison".into());
        }
        if let Some(i) = texts.iter().position(|t| t == "r9") {
            let seq = records[i]["kinesis"]["sequenceNumber"].clone();
            return Invocation::Returned(Some(
                json!({"batchItemFailures": [{"itemIdentifier": seq}]}),
            ));
        }
        Invocation::Returned(None)
    });
    let log = Arc::new(DecisionLog::default());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("failures.jsonl");
    let config = r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":6,"MaximumRetryAttempts":2,
        "BisectBatchOnFunctionError":true,"MaximumRecordAgeInSeconds":60,
        "FunctionResponseTypes":["ReportBatchItemFailures"]}"#;
    let options = MappingOptions {
        seed,
        retry_backoff_base: std::time::Duration::from_secs(5),
        decision_log: Some(log.clone()),
        ..test_mapping_options(&clock)
    };
    esm_mapping_with(&stream, &disk, recorder, config, Some(&dest), options)
        .run_until_idle()
        .unwrap();
    (log.entries(), failure_records(&dest))
}

fn count(log: &[Decision], kind: fn(&Decision) -> bool) -> usize {
    log.iter().filter(|d| kind(d)).count()
}

#[test]
fn replaying_a_scenario_gives_the_identical_decision_log() {
    let (first, first_failures) = run_scenario(42);
    let (second, second_failures) = run_scenario(42);
    assert_eq!(first, second, "decision logs differ between replays");
    // Failure records carry the same request ids and timestamps too.
    assert_eq!(first_failures, second_failures);

    assert!(count(&first, |d| matches!(d, Decision::Bisect { .. })) >= 2);
    assert!(count(&first, |d| matches!(d, Decision::Backoff { .. })) >= 2);
    let discards: Vec<&Decision> = first
        .iter()
        .filter(|d| matches!(d, Decision::Discard { .. }))
        .collect();
    assert!(!discards.is_empty(), "{first:#?}");
    assert!(discards
        .iter()
        .all(|d| matches!(d, Decision::Discard { reported: true, .. })));
    assert!(first.iter().any(|d| matches!(
        d,
        Decision::Outcome { outcome, .. } if outcome.starts_with("RetryFrom(")
    )));
    assert!(matches!(
        first.last(),
        Some(Decision::Checkpoint {
            finished: false,
            ..
        })
    ));

    // Another seed changes the jitter, so the backoff pauses differ.
    let (other, _) = run_scenario(7);
    let pauses = |log: &[Decision]| -> Vec<u64> {
        log.iter()
            .filter_map(|d| match d {
                Decision::Backoff { pause_us, .. } => Some(*pause_us),
                _ => None,
            })
            .collect()
    };
    assert_ne!(pauses(&first), pauses(&other));
}
