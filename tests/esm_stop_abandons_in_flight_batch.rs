//! Stopping a mapping while a batch is being retried abandons that batch between attempts
//! without checkpointing past it: the next run of the mapping delivers it again, and records
//! processed before the stop are not delivered again.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use shardlog::consumer::*;
use shardlog::storage::SimDisk;

#[test]
fn a_stopped_mapping_leaves_its_in_flight_batch_for_the_next_run() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    let data: Vec<String> = (0..6).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = data.iter().map(String::as_str).collect();
    put_all(&stream, "k", &refs);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    // Batch 1 succeeds; batch 2 fails, and while it waits to be retried the mapping stops.
    let first_run = Recorder::new(move |_, n| {
        if n == 1 {
            Invocation::Returned(None)
        } else {
            stopper.store(true, Ordering::SeqCst);
            Invocation::FunctionError("Unhandled".into())
        }
    });
    let config = r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":2}"#;
    let mapping = esm_mapping(&stream, &disk, &clock, first_run.clone(), config, None);
    let metrics = mapping.run_until_idle_or_stopped(&stop).expect("run");
    assert_eq!(
        first_run.batches(),
        vec![vec!["r0", "r1"], vec!["r2", "r3"]],
        "the failed batch was not retried after the stop"
    );
    assert_eq!(metrics.totals.dropped_event_count, 0);

    let second_run = Recorder::new(|_, _| Invocation::Returned(None));
    esm_mapping(&stream, &disk, &clock, second_run.clone(), config, None)
        .run_until_idle()
        .expect("second run");
    assert_eq!(
        second_run.batches(),
        vec![vec!["r2", "r3"], vec!["r4", "r5"]],
        "the abandoned batch comes again, the processed one does not"
    );
}
