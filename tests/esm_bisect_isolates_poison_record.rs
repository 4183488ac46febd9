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
    assert_eq!(metrics.totals.bisects, 3, "10 -> 5+5, 5 -> 2+3, 2 -> 1+1");
    assert_eq!(metrics.totals.retries, 2);
}

#[test]
fn a_failing_shard_stalls_alone() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 2);
    // Route explicitly: shard 0 gets a poison record first, shard 1 gets good records.
    let put = |hash: u128, data: &str| {
        let mut e = entry("k", data.as_bytes());
        e.explicit_hash_key = Some(hash.to_string());
        stream.put_record(e, None).unwrap();
    };
    put(0, "poison");
    put(0, "after-poison");
    for i in 0..20 {
        put(u128::MAX, &format!("good-{i}"));
    }
    let recorder = Recorder::new(|event, _| {
        let poisoned = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kinesis"]["data"] == "cG9pc29u");
        if poisoned {
            // Real time, so the two pollers overlap whatever the scheduler does.
            std::thread::sleep(std::time::Duration::from_millis(5));
            Invocation::FunctionError("boom".into())
        } else {
            Invocation::Returned(None)
        }
    });
    // A long retry budget stands in for the infinite default, which would never go idle.
    let config = r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":5,"MaximumRetryAttempts":30}"#;
    let metrics = esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .expect("run");
    let delivered: Vec<String> = recorder
        .batches()
        .into_iter()
        .filter(|b| !b.contains(&"poison".to_string()))
        .flatten()
        .collect();
    let good = delivered.iter().filter(|d| d.starts_with("good-")).count();
    assert_eq!(good, 20, "the healthy shard flowed while the other retried");
    let batches = recorder.batches();
    let first_good = batches
        .iter()
        .position(|b| b.iter().any(|d| d.starts_with("good-")))
        .unwrap();
    let last_poison = batches
        .iter()
        .rposition(|b| b.contains(&"poison".to_string()))
        .unwrap();
    assert!(
        first_good < last_poison,
        "not merely after the retries ended"
    );
    let poisoned_shard = &metrics.shards["shardId-000000000000"];
    assert_eq!(
        poisoned_shard.retries, 30,
        "the failing shard kept retrying: {poisoned_shard:?}"
    );
    assert_eq!(metrics.shards["shardId-000000000001"].retries, 0);
}
