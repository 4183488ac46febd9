//! With BisectBatchOnFunctionError a failing batch is halved until the poison record stands
//! alone; splits are not retries; the poison record alone goes to the destination after its
//! retries, with `batchSize: 1`, and every other record is delivered.

mod common;

use common::*;
use shardlog::consumer::Invocation;
use shardlog::storage::SimDisk;

#[test]
fn bisect_isolates_the_poison_record() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let data: Vec<String> = (0..10)
        .map(|i| {
            if i == 6 {
                "poison".to_string()
            } else {
                format!("ok-{i}")
            }
        })
        .collect();
    let refs: Vec<&str> = data.iter().map(String::as_str).collect();
    let seqs = put_all(&stream, "k", &refs);
    let recorder = Recorder::new(|event, _| {
        let poisoned = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kinesis"]["data"] == "cG9pc29u");
        if poisoned {
            Invocation::FunctionError("boom".into())
        } else {
            Invocation::Returned(None)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("failures.jsonl");
    let config = r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":10,"BisectBatchOnFunctionError":true,"MaximumRetryAttempts":2}"#;
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
    let batches = recorder.batches();
    // 10 -> 5+5; [5..10) fails -> [5,6] + [7,8,9]; [5,6] -> [5] + [6]; [6] tried 3 times.
    let singleton_poison = batches
        .iter()
        .filter(|b| b.as_slice() == ["poison"])
        .count();
    assert_eq!(
        singleton_poison, 3,
        "MaximumRetryAttempts 2: three invocations of the isolated record"
    );
    let delivered_ok: Vec<&String> = batches
        .iter()
        .filter(|b| !b.contains(&"poison".to_string()))
        .flatten()
        .collect();
    assert_eq!(
        delivered_ok.len(),
        9,
        "every good record delivered once: {batches:?}"
    );
    let failures = failure_records(&dest);
    assert_eq!(failures.len(), 1);
    let info = &failures[0]["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["startSequenceNumber"], seqs[6]);
    assert_eq!(info["endSequenceNumber"], seqs[6]);
    assert_eq!(
        failures[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(failures[0]["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(failures[0]["responseContext"]["functionError"], "Unhandled");
    assert_eq!(
        metrics.totals.on_failure_destination_delivered_event_count,
        1
    );
    assert_eq!(metrics.totals.dropped_event_count, 0);
}
