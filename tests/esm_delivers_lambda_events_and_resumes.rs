//! A mapping delivers the exact Lambda Kinesis event in batches of at most BatchSize, every
//! record once and in shard order, checkpoints durably, and a new run of the same mapping
//! resumes at its checkpoint instead of its starting position.

mod common;

use std::sync::Arc;

use common::*;
use shardlog::consumer::*;
use shardlog::storage::SimDisk;

fn mapping(
    stream: &Arc<shardlog::stream::Stream>,
    disk: &SimDisk,
    clock: &ManualClock,
    function: Arc<dyn Function>,
    config: EsmConfig,
) -> EventSourceMapping {
    let checkpoints = Arc::new(
        CheckpointStore::open("/sim/mappings/m/checkpoints", Arc::new(disk.clone()))
            .expect("checkpoints"),
    );
    EventSourceMapping::new(
        config,
        stream.clone(),
        function,
        Destination::None,
        checkpoints,
        test_mapping_options(clock),
    )
    .expect("mapping")
}

#[test]
fn events_have_lambdas_exact_shape() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_545_084_650_987);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let seqs = put_all(&stream, "1", &["Hello, this is a test."]);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let config = EsmConfig::from_json(r#"{"StartingPosition":"TRIM_HORIZON"}"#).unwrap();
    mapping(&stream, &disk, &clock, recorder.clone(), config)
        .run_until_idle()
        .expect("run");
    let raw = recorder.raw.lock().unwrap();
    let text = raw[0].clone();
    let expected = format!(
        r#"{{"Records":[{{"kinesis":{{"kinesisSchemaVersion":"1.0","partitionKey":"1","sequenceNumber":"{seq}","data":"SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==","approximateArrivalTimestamp":1545084650.987}},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000000:{seq}","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::000000000000:role/test-fn","awsRegion":"us-east-1","eventSourceARN":"arn:aws:kinesis:us-east-1:000000000000:stream/events"}}]}}"#,
        seq = seqs[0]
    );
    assert_eq!(text, expected, "key order and values as AWS sends them");
}

#[test]
fn batches_respect_batch_size_and_runs_resume_at_the_checkpoint() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 2);
    let data: Vec<String> = (0..250).map(|i| format!("r{i}")).collect();
    for (i, d) in data.iter().enumerate() {
        stream
            .put_record(entry(&format!("k{}", i % 10), d.as_bytes()), None)
            .expect("put");
    }
    let config =
        EsmConfig::from_json(r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":40}"#).unwrap();
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let metrics = mapping(&stream, &disk, &clock, recorder.clone(), config.clone())
        .run_until_idle()
        .expect("run");
    let batches = recorder.batches();
    assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 40));
    let mut delivered: Vec<String> = batches.into_iter().flatten().collect();
    assert_eq!(delivered.len(), 250, "every record once");
    delivered.sort();
    let mut want = data.clone();
    want.sort();
    assert_eq!(delivered, want);
    assert_eq!(metrics.totals.polled_event_count, 250);
    assert_eq!(metrics.totals.invoked_event_count, 250);
    assert_eq!(metrics.shards.len(), 2);

    // A second run of the same mapping: nothing new to deliver, then only the new records.
    let again = Recorder::new(|_, _| Invocation::Returned(None));
    mapping(&stream, &disk, &clock, again.clone(), config.clone())
        .run_until_idle()
        .expect("rerun");
    assert!(
        again.events.lock().unwrap().is_empty(),
        "resumed at the checkpoint"
    );
    put_all(&stream, "k1", &["late-1", "late-2"]);
    let third = Recorder::new(|_, _| Invocation::Returned(None));
    mapping(&stream, &disk, &clock, third.clone(), config)
        .run_until_idle()
        .expect("third run");
    assert_eq!(third.batches().concat(), ["late-1", "late-2"]);
}

#[test]
fn latest_starts_after_the_existing_records() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["old"]);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let config = EsmConfig::from_json(r#"{"StartingPosition":"LATEST"}"#).unwrap();
    let m = mapping(&stream, &disk, &clock, recorder.clone(), config);
    m.run_until_idle().expect("run");
    assert!(recorder.events.lock().unwrap().is_empty());
}

#[test]
fn a_batch_never_passes_six_megabytes() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let big = "x".repeat(1_000_000);
    for _ in 0..10 {
        put_all(&stream, "k", &[&big]);
    }
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = sizes.clone();
    let function = move |event: &str| {
        sink.lock().unwrap().push(event.len());
        Invocation::Returned(None)
    };
    let config =
        EsmConfig::from_json(r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":100}"#).unwrap();
    mapping(&stream, &disk, &clock, Arc::new(function), config)
        .run_until_idle()
        .expect("run");
    let sizes = sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|s| *s <= 6_000_000), "{sizes:?}");
    assert!(
        sizes.len() >= 3,
        "1 MB records base64 to 1.33 MB: at most 4 per invocation: {sizes:?}"
    );
}

#[test]
fn the_batching_window_gathers_records_until_it_ends() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["a", "b", "c"]);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let config = EsmConfig::from_json(
        r#"{"StartingPosition":"TRIM_HORIZON","MaximumBatchingWindowInSeconds":5}"#,
    )
    .unwrap();
    let started = clock.now();
    mapping(&stream, &disk, &clock, recorder.clone(), config)
        .run_until_idle()
        .expect("run");
    assert_eq!(recorder.batches(), vec![vec!["a", "b", "c"]]);
    assert!(clock.now() - started >= 5_000, "waited for the window");
}

/// The poller reads large pages (up to 10,000 records) and cuts batches of exactly BatchSize
/// from them, checkpointing after each: a run stopped after its third batch resumes at the
/// fourth, not at the start of the page it was cut from.
#[test]
fn batches_are_cut_at_batch_size_from_a_large_page_and_each_is_checkpointed() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let data: Vec<String> = (0..250).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = data.iter().map(String::as_str).collect();
    put_all(&stream, "k", &refs);
    let config =
        EsmConfig::from_json(r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":40}"#).unwrap();
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    mapping(&stream, &disk, &clock, recorder.clone(), config.clone())
        .run_until_idle()
        .expect("run");
    let sizes: Vec<usize> = recorder.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, [40, 40, 40, 40, 40, 40, 10]);
    assert_eq!(recorder.batches().concat(), data, "in order, each once");

    // A new mapping (fresh checkpoints) stopped by its function during the third batch.
    let disk = SimDisk::new();
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &refs);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = stop.clone();
    let first = Recorder::new(move |_, n| {
        if n == 3 {
            stopper.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Invocation::Returned(None)
    });
    mapping(&stream, &disk, &clock, first.clone(), config.clone())
        .run_until_idle_or_stopped(&stop)
        .expect("stopped run");
    assert_eq!(first.batches().len(), 3, "stopped after the third batch");
    let second = Recorder::new(|_, _| Invocation::Returned(None));
    mapping(&stream, &disk, &clock, second.clone(), config)
        .run_until_idle()
        .expect("resumed run");
    let resumed = second.batches().concat();
    assert_eq!(resumed.first().map(String::as_str), Some("r120"));
    assert_eq!(resumed.len(), 130);
}
