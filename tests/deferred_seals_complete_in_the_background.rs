//! On the real file system, with seals completed by sealer threads (the default): the seals
//! of rolls made by appends become durable without any call from the writer, and closing a
//! log waits for its sealers, so the directory can be reopened at once.

use std::time::{Duration, Instant};

use shardlog::format::batch::RecordIn;
use shardlog::storage::{Durability, Log, LogOptions};

fn options() -> LogOptions {
    LogOptions {
        durability: Durability::None,
        segment_bytes_max: 4096,
        ..LogOptions::default()
    }
}

fn append(log: &Log, n: u64) {
    let data = vec![b'x'; 500];
    let key = format!("k{n}");
    let record = RecordIn {
        timestamp_ms: 1_000_000,
        partition_key: key.as_bytes(),
        explicit_hash_key: None,
        data: &data,
    };
    log.append(&[record]).expect("append");
}

#[test]
fn sealer_threads_complete_every_seal_without_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), options()).expect("open");
    let mut n = 0;
    while log.segment_count() < 6 {
        append(&log, n);
        n += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.pending_seals() > 0 {
        assert!(Instant::now() < deadline, "seals still pending after 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = log.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.records, n);
}

#[test]
fn closing_waits_for_sealers_so_a_reopen_finds_the_log_unlocked_and_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for round in 0..20 {
        let log = Log::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        assert_eq!(log.next_sequence(), n, "round {round}");
        let rolls = log.segment_count() + 2;
        while log.segment_count() < rolls {
            append(&log, n);
            n += 1;
        }
        // Dropped with seals just queued: the close completes them.
        drop(log);
    }
    let log = Log::open(dir.path(), options()).expect("final reopen");
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.verify().records, n);
}
