//! A sharing read (`Log::scan_shared`, and so `get_records`) hands out record data as slices
//! of the stored batch's bytes: the mapped segment for raw batches, sealed or active, and one
//! buffer per batch for compressed ones. The records are the same as a copying read's, they
//! share memory instead of owning a copy each, and they stay valid after the log is closed and
//! their segment file deleted.

mod common;

use bytes::Bytes;
use common::*;
use shardlog::format::codec::Compression;
use shardlog::storage::{Durability, Log, LogOptions, ReadLimits, Retention, SimDisk};

/// Every record from `from`, through the sharing scan: (sequence, data).
fn shared_records(log: &Log, from: u64) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    log.scan_shared(from, ReadLimits::records(usize::MAX), |r| {
        out.push((r.record.sequence, r.data()));
        true
    })
    .expect("scan_shared");
    out
}

/// Appends batches of 5 records until the log has sealed segments and an active one.
fn fill(log: &Log) -> u64 {
    let mut n = 0;
    while log.segment_count() < 3 {
        append_numbered(log, n, 5).expect("append");
        n += 5;
    }
    append_numbered(log, n, 5).expect("append to the active segment");
    n + 5
}

fn assert_same_as_copying_read(log: &Log, n: u64) {
    let shared = shared_records(log, 0);
    let copied = read_all(log);
    assert_eq!(shared.len() as u64, n);
    assert_eq!(shared.len(), copied.len());
    for ((sequence, data), record) in shared.iter().zip(&copied) {
        assert_eq!(*sequence, record.sequence);
        assert_eq!(&data[..], &record.data[..], "record {sequence}");
    }
}

#[test]
fn shared_reads_return_what_copying_reads_return_raw_and_zstd() {
    for compression in [Compression::None, Compression::Zstd { level: 1 }] {
        let disk = SimDisk::new();
        let mut options = sim_options(&disk, Durability::None);
        options.compression = compression;
        let log = Log::open(DIR, options).expect("open");
        let n = fill(&log);
        assert_same_as_copying_read(&log, n);
        // From the middle of a batch, too.
        let from_middle = shared_records(&log, 7);
        assert_eq!(from_middle.first().map(|r| r.0), Some(7));
        assert_eq!(from_middle.len() as u64, n - 7);
    }
}

#[test]
fn records_of_one_batch_share_one_buffer_instead_of_a_copy_each() {
    for compression in [Compression::None, Compression::Zstd { level: 1 }] {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = LogOptions {
            segment_bytes_max: 4096,
            durability: Durability::None,
            compression,
            ..LogOptions::default()
        };
        let log = Log::open(dir.path(), options).expect("open");
        let n = fill(&log);
        let records = shared_records(&log, 0);
        assert_eq!(records.len() as u64, n);
        // A copy is the only owner of its buffer; a slice of a shared batch never is (raw
        // batches share the mapping, which counts as never unique).
        for (sequence, data) in &records {
            assert!(
                !data.is_unique(),
                "{compression:?}: record {sequence} owns a copy"
            );
        }
        // The copying scan's records are owned copies, for contrast.
        let copies = read_all(&log);
        assert_eq!(copies.len() as u64, n);
    }
}

#[test]
fn shared_records_outlive_their_deleted_segment_and_the_closed_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions {
        segment_bytes_max: 4096,
        durability: Durability::None,
        ..LogOptions::default()
    };
    let log = Log::open(dir.path(), options).expect("open");
    let n = fill(&log);
    let kept = shared_records(&log, 0);
    assert_eq!(kept.len() as u64, n);
    log.set_retention(Retention {
        age: None,
        bytes_max: Some(1),
    });
    let report = log.apply_retention().expect("retention");
    assert!(report.segments_deleted > 0, "retention deleted segments");
    assert!(
        shared_records(&log, 0).len() < kept.len(),
        "the oldest records are gone from the log"
    );
    log.close().expect("close");
    for (sequence, data) in &kept {
        assert_eq!(&data[..], &payload(*sequence)[..], "record {sequence}");
    }
}
