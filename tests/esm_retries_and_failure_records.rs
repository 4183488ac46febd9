//! MaximumRetryAttempts N means N+1 invocations; a discarded batch goes to the destination with
//! AWS's failure record, or counts as dropped without one; the checkpoint moves past it; errors
//! that never reached the function (throttles) are retried without using an attempt.

mod common;

use common::*;
use shardlog::consumer::Invocation;
use shardlog::storage::SimDisk;

#[test]
fn retries_then_a_failure_record_in_aws_shape() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.jsonl");
    for (retries, invocations) in [(0, 1), (3, 4)] {
        let _ = std::fs::remove_file(&dest);
        let clock = ManualClock::at(1_573_691_884_835);
        let disk2 = SimDisk::new();
        let (_s, stream2) = esm_stream(&disk2, &clock, 1);
        let seqs2 = put_all(&stream2, "k", &["a", "b", "c"]);
        let rec = Recorder::new(|_, _| Invocation::FunctionError("always".into()));
        let config =
            format!(r#"{{"StartingPosition":"TRIM_HORIZON","MaximumRetryAttempts":{retries}}}"#);
        let metrics = esm_mapping(&stream2, &disk2, &clock, rec.clone(), &config, Some(&dest))
            .run_until_idle()
            .expect("run");
        assert_eq!(
            rec.events.lock().unwrap().len(),
            invocations,
            "N retries, N+1 invocations"
        );
        assert_eq!(metrics.totals.errors, invocations as u64);
        let failures = failure_records(&dest);
        assert_eq!(failures.len(), 1);
        let f = &failures[0];
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = vec![
            "KinesisBatchInfo",
            "requestContext",
            "responseContext",
            "timestamp",
            "version",
        ];
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(f["version"], "1.0");
        assert_eq!(f["requestContext"]["approximateInvokeCount"], invocations);
        assert_eq!(
            f["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:test-fn"
        );
        assert_eq!(f["requestContext"]["requestId"].as_str().unwrap().len(), 36);
        assert_eq!(f["responseContext"]["statusCode"], 200);
        assert_eq!(f["responseContext"]["executedVersion"], "$LATEST");
        let info = &f["KinesisBatchInfo"];
        assert_eq!(info["shardId"], "shardId-000000000000");
        assert_eq!(info["startSequenceNumber"], seqs2[0]);
        assert_eq!(info["endSequenceNumber"], seqs2[2]);
        assert_eq!(info["batchSize"], 3);
        assert_eq!(
            info["approximateArrivalOfFirstRecord"],
            "2019-11-14T00:38:04.835Z"
        );
        assert_eq!(
            info["streamArn"],
            "arn:aws:kinesis:us-east-1:000000000000:stream/events"
        );
        assert!(f["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn without_a_destination_discarded_records_are_counted_dropped_and_passed() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["bad"]);
    let config = r#"{"StartingPosition":"TRIM_HORIZON","MaximumRetryAttempts":1}"#;
    let failing = Recorder::new(|_, _| Invocation::FunctionError("x".into()));
    let metrics = esm_mapping(&stream, &disk, &clock, failing.clone(), config, None)
        .run_until_idle()
        .expect("run");
    assert_eq!(metrics.totals.dropped_event_count, 1);
    // The checkpoint moved past the discarded record: a later run starts after it.
    put_all(&stream, "k", &["good"]);
    let ok = Recorder::new(|_, _| Invocation::Returned(None));
    esm_mapping(&stream, &disk, &clock, ok.clone(), config, None)
        .run_until_idle()
        .expect("run");
    assert_eq!(ok.batches(), vec![vec!["good"]]);
}

#[test]
fn throttles_do_not_use_retry_attempts() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["a"]);
    let recorder = Recorder::new(|_, n| {
        if n <= 3 {
            Invocation::ServiceError("TooManyRequestsException".into())
        } else {
            Invocation::Returned(None)
        }
    });
    let config = r#"{"StartingPosition":"TRIM_HORIZON","MaximumRetryAttempts":0}"#;
    let metrics = esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .expect("run");
    assert_eq!(metrics.totals.throttles, 3);
    assert_eq!(
        metrics.totals.invocations, 1,
        "only the invocation that reached the function"
    );
    assert_eq!(
        metrics.totals.dropped_event_count, 0,
        "delivered, not discarded"
    );
}
