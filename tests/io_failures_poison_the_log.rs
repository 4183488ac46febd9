//! A failed write or fsync poisons the log: the failing call returns a typed error, every
//! later append fails with `Poisoned` (never a silent retry), the log stays readable, the
//! clean-shutdown mark is never written, and reopening recovers and appends again. ENOSPC in
//! particular comes back as `DiskFull` and the log works once space returns.

mod common;

use std::io::ErrorKind;
use std::path::Path;

use common::*;
use shardlog::format::checkpoint::Checkpoint;
use shardlog::storage::{Durability, FaultOp, Log, SimDisk, CHECKPOINT_FILE};
use shardlog::Error;

fn checkpoint(disk: &SimDisk) -> Checkpoint {
    let bytes = disk
        .contents(&Path::new(DIR).join(CHECKPOINT_FILE))
        .expect("checkpoint");
    Checkpoint::decode(&bytes).expect("valid checkpoint")
}

#[test]
fn disk_full_is_a_typed_error_and_the_log_recovers_when_space_returns() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("open");
    append_numbered(&log, 0, 10).expect("append");
    let used: u64 = disk
        .files_in(Path::new(DIR))
        .iter()
        .map(|p| disk.contents(p).unwrap().len() as u64)
        .sum();
    disk.set_space_limit(Some(used + 100));
    match append_numbered(&log, 10, 10) {
        Err(Error::DiskFull { path }) => assert!(path.to_string_lossy().ends_with(".seg")),
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(matches!(
        append_numbered(&log, 10, 1),
        Err(Error::Poisoned { .. })
    ));
    // Still readable: the acknowledged records are there, the torn batch is not visible.
    assert_numbered(&read_all(&log), 10);
    drop(log);
    assert!(!checkpoint(&disk).clean, "no clean mark after an I/O error");
    disk.set_space_limit(None);
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("reopen");
    assert!(
        log.recovery_report().bytes_truncated > 0,
        "the partial batch was cut"
    );
    assert_numbered(&read_all(&log), 10);
    append_numbered(&log, 10, 10).expect("append once space is back");
    assert_numbered(&read_all(&log), 20);
}

#[test]
fn failed_fsync_poisons_and_is_never_retried() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("open");
    append_numbered(&log, 0, 5).expect("append");
    let syncs = disk.calls(FaultOp::Sync);
    disk.fail_nth(FaultOp::Sync, syncs + 1, ErrorKind::Other);
    match append_numbered(&log, 5, 5) {
        Err(Error::Io { op, .. }) => assert_eq!(op, "fsync"),
        other => panic!("expected the fsync error, got {other:?}"),
    }
    let syncs_after_failure = disk.calls(FaultOp::Sync);
    for _ in 0..3 {
        assert!(matches!(
            append_numbered(&log, 5, 5),
            Err(Error::Poisoned { op: "fsync", .. })
        ));
        assert!(matches!(log.sync(), Err(Error::Poisoned { .. })));
    }
    assert_eq!(
        disk.calls(FaultOp::Sync),
        syncs_after_failure,
        "no fsync retried"
    );
    assert_numbered(&read_all(&log), 5);
    drop(log);
    assert!(!checkpoint(&disk).clean);
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("reopen");
    let n = read_all(&log).len() as u64;
    assert!(
        n == 5 || n == 10,
        "the unacknowledged batch is whole or absent: {n}"
    );
    append_numbered(&log, n, 1).expect("append after reopen");
}

#[test]
fn failed_write_poisons_and_clean_mark_is_withheld() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    append_numbered(&log, 0, 5).expect("append");
    disk.fail_nth(
        FaultOp::Write,
        disk.calls(FaultOp::Write) + 1,
        ErrorKind::Other,
    );
    assert!(matches!(
        append_numbered(&log, 5, 5),
        Err(Error::Io { op: "write", .. })
    ));
    assert!(matches!(log.close(), Err(Error::Poisoned { .. })));
    assert!(!checkpoint(&disk).clean);
}

#[test]
fn clean_mark_is_cleared_before_recovery_changes_anything() {
    // KAFKA-10471: a crash during open, after recovery changed the log, must not leave the
    // clean mark in place.
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    append_numbered(&log, 0, 5).expect("append");
    log.close().expect("close");
    assert!(checkpoint(&disk).clean);
    // Bytes after the clean end (a later writer's torn batch): recovery truncates them.
    let active = segment_files(&disk, std::path::Path::new(DIR))
        .pop()
        .expect("active segment");
    let mut bytes = disk.contents(&active).expect("contents");
    let clean_len = bytes.len();
    bytes.extend_from_slice(b"torn batch bytes");
    disk.set_contents(&active, &bytes);
    // The sync after the truncation fails: the open stops after changing the segment.
    disk.fail_nth(
        FaultOp::Sync,
        disk.calls(FaultOp::Sync) + 2,
        ErrorKind::Other,
    );
    assert!(Log::open(DIR, sim_options(&disk, Durability::None)).is_err());
    assert_eq!(
        disk.contents(&active).expect("contents").len(),
        clean_len,
        "truncated"
    );
    assert!(
        !checkpoint(&disk).clean,
        "the mark went before the truncation"
    );
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    assert!(!log.recovery_report().clean_shutdown);
    assert_numbered(&read_all(&log), 5);
}

#[test]
fn a_second_writer_is_locked_out_and_a_reader_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Default::default()).expect("open");
    match Log::open(dir.path(), Default::default()) {
        Err(e @ Error::Locked { .. }) => {
            let message = e.to_string();
            assert!(message.contains("locked by another writer"), "{message}");
            assert!(
                message.contains(&format!("this process, {}", std::process::id())),
                "{message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    append_numbered(&log, 0, 3).expect("append");
    let reader = shardlog::storage::LogReader::open(
        dir.path(),
        std::sync::Arc::new(shardlog::storage::RealFs),
    )
    .expect("reader");
    assert_eq!(reader.read(0, Default::default()).expect("read").len(), 3);
    drop(log);
    Log::open(dir.path(), Default::default()).expect("the lock is released on close");
}

#[test]
fn a_panic_is_not_a_clean_shutdown() {
    // redb PR #885: a log dropped while its thread unwinds must not write the clean mark.
    let disk = SimDisk::new();
    let options = sim_options(&disk, Durability::None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let log = Log::open(DIR, options.clone()).expect("open");
        append_numbered(&log, 0, 5).expect("append");
        panic!("application bug while the log is open");
    }));
    assert!(result.is_err());
    assert!(!checkpoint(&disk).clean);
    let log = Log::open(DIR, options).expect("reopen");
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(
        log.recovery_report().segments_scanned,
        1,
        "recovery validated the tail"
    );
    assert_numbered(&read_all(&log), 5);
}
