//! After a clean close, opening reads only footers (64 bytes per sealed segment) and the active
//! segment's header: no batch is scanned and nothing is mapped. After a crash, only the bytes
//! after the recovery point are read.

mod common;

use std::path::Path;

use common::*;
use shardlog::storage::{CrashMode, Durability, Log, SimDisk, SimRng};

fn seg_bytes_read(disk: &SimDisk) -> u64 {
    disk.stats()
        .bytes_read
        .iter()
        .filter(|(name, _)| name.ends_with(".seg"))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn clean_reopen_reads_footers_only() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    let mut n = 0;
    while log.segment_count() < 5 {
        append_numbered(&log, n, 3).expect("append");
        n += 3;
    }
    log.close().expect("close");
    disk.reset_stats();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().bytes_scanned, 0);
    let stats = disk.stats();
    assert!(
        stats.maps.is_empty(),
        "no segment mapped on open: {:?}",
        stats.maps
    );
    assert_eq!(
        seg_bytes_read(&disk),
        4 * 64 + 64 + 32,
        "4 sealed footers, the active one's footer probe and header"
    );
    assert_eq!(stats.syncs, 0, "a clean reopen writes and syncs nothing");
    assert_numbered(&read_all(&log), n);
}

/// An open that changes nothing keeps the clean mark, so the next open is clean and free
/// too; the first change clears the mark before it touches a byte of the log.
#[test]
fn the_clean_mark_survives_opens_that_change_nothing_and_goes_before_the_first_change() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    append_numbered(&log, 0, 5).expect("append");
    log.close().expect("close");
    disk.reset_stats();
    for round in 0..4 {
        let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("reopen");
        assert!(log.recovery_report().clean_shutdown);
        assert_numbered(&read_all(&log), 5);
        // Dropped after reads only, or lost in a crash: either way nothing changed.
        if round % 2 == 0 {
            drop(log);
        } else {
            disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(3));
        }
    }
    assert_eq!(disk.stats().syncs, 0);
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("reopen");
    append_numbered(&log, 5, 1).expect("append");
    // A crash right after the append: the mark must already be gone from the durable image.
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(4));
    drop(log);
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("recover");
    assert!(
        !log.recovery_report().clean_shutdown,
        "a changed log never opens as clean"
    );
    assert_numbered(&read_all(&log)[..5], 5);
}

#[test]
fn crash_reopen_scans_only_after_the_recovery_point() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, sim_options(&disk, Durability::Always)).expect("open");
    for i in 0..4 {
        append_numbered(&log, i * 2, 2).expect("append");
    }
    // The open wrote a checkpoint at the segment start; force one after the first 4 batches.
    log.roll().expect("roll");
    for i in 4..10 {
        append_numbered(&log, i * 2, 2).expect("append");
    }
    disk.crash(CrashMode::TornPrefix, &mut SimRng::new(1));
    drop(log);
    let active = segment_files(&disk, dir).pop().expect("active");
    let active_len = disk.contents(&active).expect("bytes").len() as u64;
    disk.reset_stats();
    let log = Log::open(dir, sim_options(&disk, Durability::Always)).expect("recover");
    let report = log.recovery_report().clone();
    assert!(!report.clean_shutdown);
    assert_eq!(report.segments_scanned, 1);
    assert_eq!(
        report.bytes_scanned,
        active_len - 32,
        "the active segment after its header"
    );
    let sealed_reads: u64 = disk
        .stats()
        .bytes_read
        .iter()
        .filter(|(name, _)| name.ends_with(".seg") && !active.ends_with(name.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(sealed_reads, 64, "the sealed segment: its footer only");
    assert_numbered(&read_all(&log), 20);
}
