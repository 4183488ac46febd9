//! A poller whose shard iterator expires (more than 5 minutes without a read, here by a jump
//! of the clock) re-acquires it by sequence number, never from the mapping's starting
//! position: with TRIM_HORIZON a re-acquire from the start would deliver every record again.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use shardlog::consumer::*;
use shardlog::storage::SimDisk;

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_expired_iterator_resumes_after_the_last_record_read() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000_000);
    let (_store, stream) = esm_stream(&disk, &clock, 1);
    put_all(&stream, "k", &["r0", "r1"]);
    let recorder = Recorder::new(|_, _| Invocation::Returned(None));
    let mapping = esm_mapping(
        &stream,
        &disk,
        &clock,
        recorder.clone(),
        r#"{"StartingPosition":"TRIM_HORIZON"}"#,
        None,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = |r: &Arc<Recorder<_>>| r.batches().concat();
    std::thread::scope(|scope| {
        let runner = scope.spawn(|| mapping.run(&stop));
        wait_for("r0 and r1", || delivered(&recorder).len() >= 2);
        // Every iterator the poller holds is now past its 5-minute lifetime.
        clock.advance(Duration::from_secs(6 * 60));
        std::thread::sleep(Duration::from_millis(300));
        put_all(&stream, "k", &["r2"]);
        wait_for("r2", || delivered(&recorder).len() >= 3);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        runner.join().unwrap().expect("run");
    });
    assert_eq!(delivered(&recorder), vec!["r0", "r1", "r2"]);
}
