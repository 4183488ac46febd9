//! Deferred sealing (durability `Interval` and `None`): a roll writes the old segment's footer
//! and moves on; the seal's fsync completes later. A power loss before it leaves a segment
//! whose batches (and footer) may be gone while later segments exist, whole or in part.
//! Recovery must end the log in that segment, drop the later ones, keep everything that was
//! synced, and leave a log that appends and reopens normally.

mod common;

use std::path::Path;

use common::*;
use shardlog::storage::{
    CrashMode, Durability, FaultOp, Log, LogOptions, Retention, SimDisk, SimRng, PENDING_SEALS_MAX,
};

const EVERY_CRASH_MODE: [CrashMode; 3] = [
    CrashMode::DropUnsynced,
    CrashMode::TornPrefix,
    CrashMode::Reorder,
];

fn options(disk: &SimDisk) -> LogOptions {
    LogOptions {
        segment_bytes_max: 4096,
        ..sim_options(disk, Durability::None)
    }
}

/// Appends until the log has `segments` segments; returns the records appended.
fn fill(log: &Log, from: u64, segments: usize) -> u64 {
    let mut n = from;
    while log.segment_count() < segments {
        append_numbered(log, n, 3).expect("append");
        n += 3;
    }
    n
}

#[test]
fn a_power_loss_before_deferred_seals_keeps_the_synced_prefix_and_drops_later_segments() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, options(&disk)).expect("open");
    let synced = fill(&log, 0, 2);
    log.sync().expect("sync");
    let segments_synced = log.segment_count();
    // Rolls from here on leave their seals pending (no sealer thread in simulation).
    let written = fill(&log, synced, 5);
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(7));
    drop(log);

    let log = Log::open(dir, options(&disk)).expect("recover");
    let report = log.recovery_report().clone();
    let records = read_all(&log);
    assert_eq!(
        records.len() as u64,
        synced,
        "exactly the synced records: {report:?}"
    );
    assert_numbered(&records, synced);
    // The segments created after the sync were never synced (only a sync that covers a
    // segment syncs its header): they vanished with the power loss, or recovery dropped them.
    assert_eq!(log.segment_count(), segments_synced, "{report:?}");
    // The log goes on from the recovered end and survives another crash once synced.
    append_numbered(&log, synced, 4).expect("append after recovery");
    log.sync().expect("sync");
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(8));
    drop(log);
    let log = Log::open(dir, options(&disk)).expect("reopen");
    assert_numbered(&read_all(&log), synced + 4);
    assert!(written > synced + 4);
}

#[test]
fn sync_and_explicit_roll_make_pending_seals_durable() {
    for explicit_roll in [false, true] {
        let disk = SimDisk::new();
        let dir = Path::new(DIR);
        let log = Log::open(dir, options(&disk)).expect("open");
        let written = fill(&log, 0, 4);
        if explicit_roll {
            log.roll().expect("roll");
        } else {
            log.sync().expect("sync");
        }
        disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(9));
        drop(log);
        let log = Log::open(dir, options(&disk)).expect("recover");
        assert_numbered(&read_all(&log), written);
        assert_eq!(log.recovery_report().segments_dropped, 0);
    }
}

#[test]
fn a_torn_crash_at_any_point_of_pending_seals_recovers_a_numbered_prefix() {
    let mut seeds_that_dropped_segments = 0;
    for seed in 0..300 {
        let disk = SimDisk::new();
        let dir = Path::new(DIR);
        let log = Log::open(dir, options(&disk)).expect("open");
        let synced = fill(&log, 0, 2);
        log.sync().expect("sync");
        let written = fill(&log, synced, 2 + (seed % 4) as usize);
        let mode = if seed % 2 == 0 {
            CrashMode::TornPrefix
        } else {
            CrashMode::Reorder
        };
        disk.crash(mode, &mut SimRng::new(seed));
        drop(log);
        let log = Log::open(dir, options(&disk)).expect("recover");
        seeds_that_dropped_segments += u32::from(log.recovery_report().segments_dropped > 0);
        let n = read_all(&log).len() as u64;
        assert!(
            (synced..=written).contains(&n),
            "seed {seed}: {n} records, synced {synced}, written {written}"
        );
        assert_numbered(&read_all(&log), n);
        let report = log.verify();
        assert!(report.is_ok(), "seed {seed}: {:?}", report.problems);
    }
    // The crashes must reach the case this file is about.
    assert!(
        seeds_that_dropped_segments > 0,
        "no crash left segments to drop"
    );
}

/// The queue of pending seals is bounded: past `PENDING_SEALS_MAX` a roll completes it
/// itself, and a sync empties it.
#[test]
fn pending_seals_stay_within_their_bound() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, options(&disk)).expect("open");
    let mut n = 0;
    let mut most = 0;
    while log.segment_count() < 3 * PENDING_SEALS_MAX + 2 {
        append_numbered(&log, n, 3).expect("append");
        n += 3;
        most = most.max(log.pending_seals());
    }
    assert_eq!(most, PENDING_SEALS_MAX);
    log.sync().expect("sync");
    assert_eq!(log.pending_seals(), 0);
    drop(log);
    let always = Log::open(dir, sim_options(&disk, Durability::Always)).expect("open");
    fill(&always, n, always.segment_count() + 2);
    assert_eq!(always.pending_seals(), 0, "Always seals at once");
}

/// Bug (performance): a deferred seal also fsynced the segment created by its roll (for its
/// header), which wrote back everything appended to that segment since, on the appenders'
/// time. A seal syncs exactly the rolled segment and its index file.
#[test]
fn a_seal_syncs_the_rolled_segment_and_its_index_only() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, options(&disk)).expect("open");
    let mut n = fill(&log, 0, 1 + PENDING_SEALS_MAX);
    assert_eq!(log.pending_seals(), PENDING_SEALS_MAX);
    let syncs_before = disk.calls(FaultOp::Sync);
    // The next roll finds the queue full and completes it before queueing its own seal.
    let segments = log.segment_count();
    while log.segment_count() == segments {
        append_numbered(&log, n, 3).expect("append");
        n += 3;
    }
    assert_eq!(log.pending_seals(), 1);
    assert_eq!(
        disk.calls(FaultOp::Sync) - syncs_before,
        2 * PENDING_SEALS_MAX as u64,
        "one fsync of each rolled segment and one of its index"
    );
}

/// Until a sync covers the segment a roll created, checkpoints name the rolled segment, whole.
/// After a power loss every record up to the roll is kept and none of them is read again;
/// the segment after it is validated from its header: kept in part, or recreated when its
/// creation did not survive.
#[test]
fn after_a_seal_the_checkpoint_vouches_for_the_rolled_segment() {
    for seed in 0..120u64 {
        let disk = SimDisk::new();
        let dir = Path::new(DIR);
        let log = Log::open(dir, options(&disk)).expect("open");
        let mut written = fill(&log, 0, 2);
        let sealed = written;
        // Seals both segments and checkpoints, naming the second: the third is unsynced.
        log.roll().expect("roll");
        for _ in 0..1 + seed % 3 {
            append_numbered(&log, written, 3).expect("append");
            written += 3;
        }
        assert_eq!(log.segment_count(), 3, "the appends fit in the new segment");
        disk.crash(
            EVERY_CRASH_MODE[(seed % 3) as usize],
            &mut SimRng::new(seed),
        );
        drop(log);
        let log = Log::open(dir, options(&disk)).expect("recover");
        let report = log.recovery_report().clone();
        let records = read_all(&log);
        let n = records.len() as u64;
        assert!(
            (sealed..=written).contains(&n),
            "seed {seed}: {n} records, sealed {sealed}, written {written}: {report:?}"
        );
        assert_numbered(&records, n);
        assert!(
            report.segments_scanned <= 1 && report.indexes_rebuilt <= 1,
            "seed {seed}: the rolled segments are trusted, not read: {report:?}"
        );
        let verified = log.verify();
        assert!(verified.is_ok(), "seed {seed}: {:?}", verified.problems);
    }
}

/// A checkpoint may name a rolled segment that retention deleted before its seal completed
/// (checkpoints name the rolled segment until a sync covers the next one). After a power loss
/// recovery must not take the missing segment for corruption: it validates what follows. (That
/// the seal still syncs the directory is pinned in `storage::atomic`'s unit test.)
#[test]
fn a_checkpoint_naming_a_segment_retention_deleted_recovers() {
    for seed in 0..60u64 {
        let disk = SimDisk::new();
        let dir = Path::new(DIR);
        let keep_nothing_sealed = LogOptions {
            retention: Retention {
                age: None,
                bytes_max: Some(1),
            },
            ..options(&disk)
        };
        let log = Log::open(dir, keep_nothing_sealed.clone()).expect("open");
        let mut n = 0;
        while log.pending_seals() == 0 {
            append_numbered(&log, n, 3).expect("append");
            n += 3;
        }
        // Rolls again: retention deletes both rolled segments before their seals complete,
        // and the checkpoint that follows the seals names the second of them.
        append_numbered(&log, n, 3).expect("append");
        log.roll().expect("roll");
        disk.crash(
            EVERY_CRASH_MODE[(seed % 3) as usize],
            &mut SimRng::new(seed),
        );
        drop(log);
        let log = Log::open(dir, keep_nothing_sealed).unwrap_or_else(|e| {
            panic!("seed {seed}: a crash after retention and seals must recover: {e}")
        });
        let verified = log.verify();
        assert!(verified.is_ok(), "seed {seed}: {:?}", verified.problems);
        append_numbered(&log, log.next_sequence(), 3).expect("the log goes on");
    }
}

/// Bug (performance): a deferred roll wrote the rolled segment's index file by a rename over
/// the partial one checkpoints kept, under the writer lock; ext4 writes such a file back at
/// the rename, which waited up to 124 ms behind the block layer's throttling of earlier
/// seals, with every producer of the shard queued on the lock. A roll renames and syncs
/// nothing; the seal writes the index file first.
#[test]
fn a_deferred_roll_leaves_the_index_file_to_its_seal() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, options(&disk)).expect("open");
    let mut n = fill(&log, 0, 1);
    log.sync().expect("sync");
    let (renames, syncs) = (disk.calls(FaultOp::Rename), disk.calls(FaultOp::Sync));
    while log.segment_count() == 1 {
        append_numbered(&log, n, 3).expect("append");
        n += 3;
    }
    assert_eq!(log.pending_seals(), 1);
    assert_eq!(
        disk.calls(FaultOp::Rename),
        renames,
        "the roll renamed nothing"
    );
    assert_eq!(disk.calls(FaultOp::Sync), syncs, "the roll synced nothing");
    // Seen from this writer, the pending seal's index is whole; the seal then writes it.
    let verified = log.verify();
    assert!(verified.is_ok(), "{:?}", verified.problems);
    log.sync().expect("sync completes the seal");
    assert!(
        disk.calls(FaultOp::Rename) > renames,
        "the seal wrote the index"
    );
    drop(log);
    let log = Log::open(dir, options(&disk)).expect("reopen");
    assert_eq!(
        log.recovery_report().indexes_rebuilt,
        0,
        "the sealed index was whole on disk"
    );
    assert_numbered(&read_all(&log), n);
}

/// Retention deleting a segment whose seal has not written its index file yet: the seal
/// must not write an index file for a segment that is gone.
#[test]
fn retention_before_a_seal_leaves_no_index_file_behind() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(
        dir,
        LogOptions {
            retention: Retention {
                age: None,
                bytes_max: Some(1),
            },
            ..options(&disk)
        },
    )
    .expect("open");
    let mut n = 0;
    while log.pending_seals() < 2 {
        append_numbered(&log, n, 3).expect("append");
        n += 3;
    }
    log.sync().expect("seals complete");
    let files = disk.files_in(dir);
    let indexes: Vec<_> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    for index in &indexes {
        assert!(
            files.contains(&index.with_extension("seg")),
            "{index:?} has no segment: {files:?}"
        );
    }
    assert_eq!(
        log.segment_count(),
        1,
        "retention kept only the active segment"
    );
}
