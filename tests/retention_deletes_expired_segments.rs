//! Retention by age deletes exactly the sealed segments whose newest record is older than the
//! limit; retention by size deletes the oldest sealed segments until the log fits; neither ever
//! deletes the active segment, and a reader holding a deleted segment's mapping keeps working.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use shardlog::format::batch::RecordIn;
use shardlog::storage::{Durability, Log, ReadLimits, Retention, SimDisk};

#[test]
fn age_retention_deletes_exactly_the_expired_sealed_segments() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(0);
    let mut options = sim_options(&disk, Durability::None);
    options.clock = clock.clock();
    options.retention = Retention {
        age: Some(Duration::from_secs(60)),
        bytes_max: None,
    };
    let log = Log::open(DIR, options).expect("open");
    // Segment k holds records stamped k minutes; each segment is sealed by an explicit roll.
    for minute in 0..5i64 {
        let data = vec![b'x'; 100];
        let records: Vec<_> = (0..10)
            .map(|i| RecordIn {
                timestamp_ms: minute * 60_000 + i,
                partition_key: b"k",
                explicit_hash_key: None,
                data: &data,
            })
            .collect();
        log.append(&records).expect("append");
        log.roll().expect("roll");
    }
    // A last batch in the active segment, stamped long ago: the active segment is never deleted.
    log.append(&[RecordIn {
        timestamp_ms: 0,
        partition_key: b"k",
        explicit_hash_key: None,
        data: b"old",
    }])
    .expect("append");
    assert_eq!(log.segment_count(), 6);
    // At 3m30s with 60 s retention, segments whose newest record is before 2m30s go: 0, 1, 2.
    clock.set(3 * 60_000 + 30_000);
    let report = log.apply_retention().expect("retention");
    assert_eq!(report.segments_deleted, 2 + 1);
    assert_eq!(report.first_sequence, 30);
    assert_eq!(log.first_sequence(), 30);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(segment_files(&disk, Path::new(DIR)).len(), 3);
    let records = log
        .read(0, ReadLimits::default())
        .expect("read from a trimmed position");
    assert_eq!(
        records.first().map(|r| r.sequence),
        Some(30),
        "reads start at the trim horizon"
    );
    // Far in the future every sealed segment expires, the active one stays.
    clock.set(i64::MAX / 2);
    log.apply_retention().expect("retention");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.first_sequence(), 50);
    assert_eq!(
        log.read(0, ReadLimits::default()).expect("read")[0].data,
        b"old"
    );
}

#[test]
fn size_retention_keeps_the_log_under_its_bound() {
    let disk = SimDisk::new();
    let mut options = sim_options(&disk, Durability::None);
    options.retention = Retention {
        age: None,
        bytes_max: Some(40 * 1024),
    };
    let log = Log::open(DIR, options).expect("open");
    let mut n = 0;
    for _ in 0..400 {
        append_numbered(&log, n, 5).expect("append");
        n += 5;
        // Retention runs at each roll; between rolls the log may exceed by one segment.
        assert!(
            log.size_bytes() <= 40 * 1024 + 16 * 1024,
            "size {}",
            log.size_bytes()
        );
    }
    assert!(log.first_sequence() > 0);
    let records = log.read(0, ReadLimits::records(1_000_000)).expect("read");
    assert_eq!(records.len() as u64, n - log.first_sequence());
    assert_eq!(records.last().map(|r| r.sequence), Some(n - 1));
}

#[test]
fn a_reader_holding_a_deleted_segment_keeps_its_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = shardlog::storage::LogOptions {
        durability: Durability::None,
        segment_bytes_max: 8 * 1024,
        ..Default::default()
    };
    let log = Log::open(dir.path(), options).expect("open");
    let mut n = 0;
    while log.segment_count() < 4 {
        append_numbered(&log, n, 5).expect("append");
        n += 5;
    }
    // Read part of the first segment through a visitor, delete it mid-read, continue reading.
    let mut seen = Vec::new();
    let mut deleted = false;
    log.scan(0, ReadLimits::records(1_000_000), |r| {
        if !deleted {
            let first = dir.path().join(shardlog::storage::segment_file_name(0));
            std::fs::remove_file(first).expect("delete under the reader");
            deleted = true;
        }
        seen.push((r.sequence, r.data.to_vec()));
        true
    })
    .expect("scan survives the deletion");
    assert_eq!(seen.len() as u64, n);
    for (seq, data) in seen {
        assert_eq!(data, payload(seq));
    }
}
