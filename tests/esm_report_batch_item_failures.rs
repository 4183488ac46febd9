//! ReportBatchItemFailures: the lowest reported sequence number is the checkpoint and the retry
//! resends from it to the end of the batch; AWS's recorded run (BatchSize 3, six records, the
//! last reported failed, MaximumRetryAttempts 3) is reproduced; malformed responses retry the
//! whole batch.

mod common;

use common::*;
use shardlog::consumer::Invocation;
use shardlog::storage::SimDisk;

fn failing_items(event: &serde_json::Value, failing: &[&str]) -> Invocation {
    let failures: Vec<serde_json::Value> = event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            use base64::Engine;
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["kinesis"]["data"].as_str().unwrap())
                .unwrap();
            failing.contains(&std::str::from_utf8(&data).unwrap())
        })
        .map(|r| serde_json::json!({"itemIdentifier": r["kinesis"]["sequenceNumber"]}))
        .collect();
    Invocation::Returned(Some(serde_json::json!({ "batchItemFailures": failures })))
}

#[test]
fn the_aws_recorded_partial_failure_run() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let seqs = put_all(&stream, "k", &["1", "2", "3", "4", "5", "6"]);
    let recorder = Recorder::new(|event, _| failing_items(event, &["6"]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.jsonl");
    let config = r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":3,"MaximumBatchingWindowInSeconds":1,"MaximumRetryAttempts":3,"FunctionResponseTypes":["ReportBatchItemFailures"]}"#;
    esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        config,
        Some(&dest),
    )
    .run_until_idle()
    .expect("run");
    let delivered: Vec<String> = recorder.batches().concat();
    for r in ["1", "2", "3", "4", "5"] {
        assert_eq!(
            delivered.iter().filter(|d| *d == r).count(),
            1,
            "record {r} delivered once"
        );
    }
    assert_eq!(
        delivered.iter().filter(|d| *d == "6").count(),
        4,
        "record 6: first try plus 3 retries"
    );
    let last_batches: Vec<Vec<String>> = recorder.batches().into_iter().skip(2).collect();
    assert!(
        last_batches.iter().all(|b| b == &vec!["6".to_string()]),
        "retried alone: {last_batches:?}"
    );
    let failures = failure_records(&dest);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["KinesisBatchInfo"]["batchSize"], 1);
    assert_eq!(
        failures[0]["KinesisBatchInfo"]["startSequenceNumber"],
        seqs[5]
    );
    assert_eq!(
        failures[0]["KinesisBatchInfo"]["endSequenceNumber"],
        seqs[5]
    );
    assert_eq!(failures[0]["requestContext"]["approximateInvokeCount"], 4);
    assert!(failures[0]["responseContext"]["functionError"].is_null());
}

#[test]
fn the_retry_resends_from_the_lowest_failure_to_the_end() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["a", "b", "c", "d", "e"]);
    let recorder = Recorder::new(|event, n| {
        if n == 1 {
            failing_items(event, &["d", "b"])
        } else {
            Invocation::Returned(None)
        }
    });
    let config = r#"{"StartingPosition":"TRIM_HORIZON","FunctionResponseTypes":["ReportBatchItemFailures"]}"#;
    esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .expect("run");
    assert_eq!(
        recorder.batches(),
        vec![vec!["a", "b", "c", "d", "e"], vec!["b", "c", "d", "e"]]
    );
}

#[test]
fn malformed_responses_retry_the_whole_batch_and_count_attempts() {
    for bad in [
        r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
        r#"{"batchItemFailures":[{"foo":1}]}"#,
        r#"{"batchItemFailures":[{"itemIdentifier":"123"}]}"#,
    ] {
        let disk = SimDisk::new();
        let clock = ManualClock::at(1_000_000);
        let (_store, stream) = esm_stream(&disk, &clock, 1);
        put_all(&stream, "k", &["a", "b"]);
        let response: serde_json::Value = serde_json::from_str(bad).unwrap();
        let recorder = Recorder::new(move |_, _| Invocation::Returned(Some(response.clone())));
        let config = r#"{"StartingPosition":"TRIM_HORIZON","MaximumRetryAttempts":1,"FunctionResponseTypes":["ReportBatchItemFailures"]}"#;
        let metrics = esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
            .run_until_idle()
            .expect("run");
        assert_eq!(
            recorder.batches(),
            vec![vec!["a", "b"], vec!["a", "b"]],
            "{bad}"
        );
        assert_eq!(metrics.totals.dropped_event_count, 2, "{bad}");
    }
    // Without ReportBatchItemFailures the response is ignored: success.
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["a"]);
    let recorder = Recorder::new(|_, _| {
        Invocation::Returned(Some(
            serde_json::json!({"batchItemFailures":[{"itemIdentifier":""}]}),
        ))
    });
    esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        r#"{"StartingPosition":"TRIM_HORIZON"}"#,
        None,
    )
    .run_until_idle()
    .expect("run");
    assert_eq!(recorder.batches().len(), 1);
}
