//! Checkpoint writes (each a file write, an fsync and a rename) are coalesced to at most one
//! per `checkpoint_interval` per shard, and the latest progress is always written when the
//! poller goes idle; with an interval of zero every batch is checkpointed, as Lambda does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use shardlog::consumer::*;
use shardlog::storage::SimDisk;

/// Runs a mapping over 200 records in batches of 10; returns the checkpoint writes and the
/// sequence number of the last record.
fn checkpoint_writes(interval: Duration) -> (Vec<Option<String>>, String, Option<String>) {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let data: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = data.iter().map(String::as_str).collect();
    let last = put_all(&stream, "k", &refs).pop().unwrap();
    let log = Arc::new(DecisionLog::default());
    let options = MappingOptions {
        checkpoint_interval: interval,
        decision_log: Some(log.clone()),
        ..test_mapping_options(&clock)
    };
    esm_mapping_with(
        &stream,
        &disk,
        Recorder::new(|_, _| Invocation::Returned(None)),
        r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":10}"#,
        None,
        options,
    )
    .run_until_idle()
    .unwrap();
    let writes = log
        .entries()
        .into_iter()
        .filter_map(|d| match d {
            Decision::Checkpoint { sequence, .. } => Some(sequence),
            _ => None,
        })
        .collect();
    // Read back from the disk, as the next run of the mapping would.
    let stored = CheckpointStore::open("/sim/mappings/m/checkpoints", Arc::new(disk.clone()))
        .unwrap()
        .get("shardId-000000000000")
        .and_then(|c| c.sequence_number);
    (writes, last, stored)
}

#[test]
fn checkpoints_are_coalesced_and_flushed_when_idle() {
    let (writes, last, stored) = checkpoint_writes(Duration::from_secs(1));
    // The clock stands still, so only the first batch's write is due; the rest is flushed
    // once at the end.
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes.last().cloned().flatten(), Some(last.clone()));
    assert_eq!(stored, Some(last));
}

#[test]
fn an_interval_of_zero_checkpoints_every_batch() {
    let (writes, last, stored) = checkpoint_writes(Duration::ZERO);
    assert!(writes.len() >= 20, "{} writes", writes.len());
    assert_eq!(stored, Some(last));
}
