//! Children start only after their parents are drained and checkpointed at their end; with
//! ParallelizationFactor > 1 batches of one shard run concurrently while each key keeps its
//! order; and a Python handler written for Lambda runs unchanged through ExecFunction,
//! including a partial batch response.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use shardlog::consumer::*;
use shardlog::storage::SimDisk;

#[test]
fn children_wait_for_their_parents() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let before: Vec<String> = (0..50).map(|i| format!("k{}:{i}", i % 5)).collect();
    for d in &before {
        stream
            .put_record(entry(d.split(':').next().unwrap(), d.as_bytes()), None)
            .unwrap();
    }
    stream
        .split_shard("shardId-000000000000", &(1u128 << 127).to_string())
        .unwrap();
    let after: Vec<String> = (50..100).map(|i| format!("k{}:{i}", i % 5)).collect();
    for d in &after {
        stream
            .put_record(entry(d.split(':').next().unwrap(), d.as_bytes()), None)
            .unwrap();
    }
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":7}"#,
        None,
    )
    .run_until_idle()
    .unwrap();
    let delivered = recorder.batches().concat();
    assert_eq!(delivered.len(), 100);
    assert_per_key_order(&delivered);
    let checkpoints =
        CheckpointStore::open("/sim/mappings/m/checkpoints", Arc::new(disk.clone())).unwrap();
    assert!(
        checkpoints.get("shardId-000000000000").unwrap().finished,
        "the parent is checkpointed at its end"
    );
}

#[test]
fn lanes_run_concurrently_and_keep_per_key_order() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    for i in 0..3000 {
        let key = format!("key{}", i % 1000);
        stream
            .put_record(entry(&key, format!("{key}:{i}").as_bytes()), None)
            .unwrap();
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let recorder = Recorder::new(move |_, _| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(3));
        f.fetch_sub(1, Ordering::SeqCst);
        Invocation::Returned(None)
    });
    let started = std::time::Instant::now();
    let config =
        r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":500,"ParallelizationFactor":10}"#;
    esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .unwrap();
    let elapsed = started.elapsed();
    let invocations = recorder.events.lock().unwrap().len();
    eprintln!(
        "ParallelizationFactor 10, 1,000 keys: {invocations} invocations of 3 ms, peak {} at once, {elapsed:?} (serial: {} ms)",
        peak.load(Ordering::SeqCst),
        invocations * 3
    );
    assert!(
        peak.load(Ordering::SeqCst) >= 5,
        "lanes of one shard ran at once"
    );
    let delivered = recorder.batches().concat();
    assert_eq!(delivered.len(), 3000);
    assert_per_key_order(&delivered);
    for batch in recorder.batches() {
        let keys: std::collections::BTreeSet<&str> =
            batch.iter().map(|d| d.split(':').next().unwrap()).collect();
        assert!(keys.len() <= 1000);
    }
}

#[test]
fn a_python_lambda_handler_runs_unchanged() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("python3 is required for this test");
    }
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("handler.py");
    std::fs::write(
        &handler,
        r#"
import base64, json, sys

def lambda_handler(event, context):
    failures = []
    for record in event["Records"]:
        payload = base64.b64decode(record["kinesis"]["data"]).decode()
        if payload == "bad":
            failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
    return {"batchItemFailures": failures}

if __name__ == "__main__":
    print(json.dumps(lambda_handler(json.load(sys.stdin), None)))
"#,
    )
    .unwrap();
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let seqs = put_all(&stream, "k", &["a", "bad", "c"]);
    let dest = dir.path().join("f.jsonl");
    let function = Arc::new(ExecFunction::new(
        format!("python3 {}", handler.display()),
        Duration::from_secs(10),
    ));
    let config = r#"{"StartingPosition":"TRIM_HORIZON","MaximumRetryAttempts":1,"FunctionResponseTypes":["ReportBatchItemFailures"]}"#;
    let metrics = esm_mapping(&stream, &disk, &clock, function, config, Some(&dest))
        .run_until_idle()
        .unwrap();
    assert_eq!(
        metrics.totals.invocations, 2,
        "the batch, then the retry from the failed record"
    );
    let failures = failure_records(&dest);
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0]["KinesisBatchInfo"]["startSequenceNumber"],
        seqs[1]
    );
    assert_eq!(
        failures[0]["KinesisBatchInfo"]["endSequenceNumber"],
        seqs[2]
    );
    assert_eq!(failures[0]["KinesisBatchInfo"]["batchSize"], 2);
}

#[test]
fn exec_function_errors_and_timeouts_are_function_errors() {
    let failing = ExecFunction::new("exit 3", Duration::from_secs(5));
    assert!(matches!(
        failing.invoke(0, "{}"),
        Invocation::FunctionError(_)
    ));
    let slow = ExecFunction::new("sleep 5", Duration::from_millis(200));
    match slow.invoke(0, "{}") {
        Invocation::FunctionError(message) => assert!(message.contains("timed out"), "{message}"),
        other => panic!("{other:?}"),
    }
    let echo = ExecFunction::new("cat", Duration::from_secs(5));
    assert_eq!(
        echo.invoke(0, r#"{"a":1}"#),
        Invocation::Returned(Some(serde_json::json!({"a": 1})))
    );
    let silent = ExecFunction::new("cat > /dev/null", Duration::from_secs(5));
    assert_eq!(silent.invoke(0, "{}"), Invocation::Returned(None));
}

#[test]
fn a_merged_child_waits_for_both_parents() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 2);
    let keys: Vec<String> = (0..8).map(|k| format!("k{k}")).collect();
    let mut n = 0;
    let mut put_round = |stream: &shardlog::stream::Stream| {
        for _ in 0..10 {
            for k in &keys {
                stream
                    .put_record(entry(k, format!("{k}:{n}").as_bytes()), None)
                    .unwrap();
                n += 1;
            }
        }
    };
    put_round(&stream);
    stream
        .merge_shards("shardId-000000000000", "shardId-000000000001")
        .unwrap();
    put_round(&stream);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":3}"#,
        None,
    )
    .run_until_idle()
    .unwrap();
    let delivered = recorder.batches().concat();
    assert_eq!(delivered.len(), 160);
    assert_per_key_order(&delivered);
    let first_child = delivered
        .iter()
        .position(|d| d.split_once(':').unwrap().1.parse::<u32>().unwrap() >= 80)
        .unwrap();
    assert_eq!(
        first_child, 80,
        "nothing of the child before both parents are drained"
    );
}
