//! MaximumRecordAgeInSeconds is checked per record: expired records are split off and reported
//! as RecordAgeExceeded (requestContext, no responseContext) while younger ones are delivered.
//! Filters drop non-matching records, which are counted, never delivered, never retried, and
//! checkpointed past.

mod common;

use common::*;
use shardlog::consumer::Invocation;
use shardlog::storage::SimDisk;

#[test]
fn expired_records_are_split_off_and_reported() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let seqs = put_all(&stream, "k", &["old"]);
    clock.set(1_000_000 + 61_000);
    put_all(&stream, "k", &["y1", "y2", "y3", "y4", "y5"]);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.jsonl");
    let config = r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":10,"MaximumRetryAttempts":0,"MaximumRecordAgeInSeconds":60}"#;
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
    assert_eq!(recorder.batches(), vec![vec!["y1", "y2", "y3", "y4", "y5"]]);
    let failures = failure_records(&dest);
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0]["requestContext"]["condition"],
        "RecordAgeExceeded"
    );
    assert_eq!(failures[0]["requestContext"]["approximateInvokeCount"], 1);
    assert!(failures[0].get("responseContext").is_none());
    assert_eq!(failures[0]["KinesisBatchInfo"]["batchSize"], 1);
    assert_eq!(
        failures[0]["KinesisBatchInfo"]["startSequenceNumber"],
        seqs[0]
    );
}

#[test]
fn a_record_that_ages_out_while_retrying_is_reported_as_too_old() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["poison"]);
    let recorder = Recorder::new(|_, _| Invocation::FunctionError("x".into()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.jsonl");
    let config = r#"{"StartingPosition":"TRIM_HORIZON","MaximumRecordAgeInSeconds":60}"#;
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
    let failures = failure_records(&dest);
    assert_eq!(
        failures[0]["requestContext"]["condition"],
        "RecordAgeExceeded"
    );
    let invocations = recorder.events.lock().unwrap().len() as u64;
    assert!(invocations > 1, "retried (infinitely) until too old");
    assert_eq!(
        failures[0]["requestContext"]["approximateInvokeCount"],
        invocations
    );
}

#[test]
fn filters_drop_count_and_checkpoint_non_matching_records() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(
        &stream,
        "k",
        &[
            r#"{"kind":"click","n":1}"#,
            r#"{"kind":"view","n":2}"#,
            "not json",
            r#"{"kind":"click","n":3}"#,
        ],
    );
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let config = r#"{"StartingPosition":"TRIM_HORIZON","FilterCriteria":{"Filters":[{"Pattern":"{\"data\":{\"kind\":[\"click\"]}}"}]}}"#;
    let metrics = esm_mapping(&stream, &disk, &clock, recorder.clone(), config, None)
        .run_until_idle()
        .expect("run");
    assert_eq!(
        recorder.batches().concat(),
        [r#"{"kind":"click","n":1}"#, r#"{"kind":"click","n":3}"#],
        "original bytes delivered"
    );
    assert_eq!(metrics.totals.filtered_out_event_count, 2);
    assert_eq!(metrics.totals.polled_event_count, 4);
    // Only filtered records arrive next: no invocation, and the checkpoint still advances.
    put_all(&stream, "k", &[r#"{"kind":"view"}"#]);
    let second = Recorder::new(|_, _| Invocation::Returned(None));
    esm_mapping(&stream, &disk, &clock, second.clone(), config, None)
        .run_until_idle()
        .expect("run");
    assert!(second.events.lock().unwrap().is_empty());
    put_all(&stream, "k", &[r#"{"kind":"click","n":9}"#]);
    let third = Recorder::new(|_, _| Invocation::Returned(None));
    esm_mapping(&stream, &disk, &clock, third.clone(), config, None)
        .run_until_idle()
        .expect("run");
    assert_eq!(third.batches().concat(), [r#"{"kind":"click","n":9}"#]);
}
