//! `Log::append_deferred` writes a batch and leaves the fsync to `Log::wait_durable` (or
//! `Log::wait_durable_all` for several logs, whose syncs then overlap). Under `Always` the batch
//! is neither visible to readers nor acknowledged until that wait succeeds; a failed fsync
//! fails the wait of that log only; and what the waits acknowledged survives a power loss.

mod common;

use common::*;
use shardlog::format::batch::RecordIn;
use shardlog::storage::{
    Appended, CrashMode, Durability, FaultOp, Log, PendingSync, SimDisk, SimRng,
};

fn log_dir(i: usize) -> String {
    format!("/sim/logs/{i}")
}

/// `count` logs under `Always` in their own directories.
fn open_logs(disk: &SimDisk, count: usize) -> Vec<Log> {
    (0..count)
        .map(|i| Log::open(log_dir(i), sim_options(disk, Durability::Always)).expect("open"))
        .collect()
}

fn deferred(log: &Log, text: &str) -> (Appended, PendingSync) {
    let record = RecordIn {
        timestamp_ms: 1_000_000,
        partition_key: b"k",
        explicit_hash_key: None,
        data: text.as_bytes(),
    };
    log.append_deferred(&[record], false).expect("write")
}

#[test]
fn a_deferred_batch_is_invisible_until_its_wait_makes_it_durable() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("open");
    let syncs_before = disk.stats().syncs;
    let (appended, pending) = deferred(&log, "first");
    assert_eq!(appended.first_sequence, 0);
    assert!(
        read_all(&log).is_empty(),
        "unsynced under Always: not readable"
    );
    assert_eq!(disk.stats().syncs, syncs_before, "writing did not sync");
    log.wait_durable(pending).expect("sync");
    assert!(disk.stats().syncs > syncs_before, "the wait synced");
    let records = read_all(&log);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data, b"first");
}

#[test]
fn waits_on_several_logs_acknowledge_each_and_survive_power_loss() {
    let disk = SimDisk::new();
    let logs = open_logs(&disk, 4);
    for round in 0..3 {
        let pending: Vec<(&Log, PendingSync)> = logs
            .iter()
            .enumerate()
            .map(|(i, log)| (log, deferred(log, &format!("log-{i}-round-{round}")).1))
            .collect();
        let results = Log::wait_durable_all(&pending);
        assert_eq!(results.len(), 4);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(5));
    drop(logs);
    for i in 0..4 {
        let log = Log::open(log_dir(i), sim_options(&disk, Durability::Always)).expect("reopen");
        let texts: Vec<String> = read_all(&log)
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect();
        let expected: Vec<String> = (0..3).map(|r| format!("log-{i}-round-{r}")).collect();
        assert_eq!(texts, expected, "log {i}");
    }
}

/// The logs' syncs run at the same time, not one after another: the waiting thread leads
/// one and the logs' background threads the others (they were threads spawned per wait).
#[test]
fn waits_on_several_logs_overlap_their_syncs() {
    let disk = SimDisk::new();
    let logs = open_logs(&disk, 4);
    disk.set_sync_delay(std::time::Duration::from_millis(50));
    disk.reset_stats();
    let pending: Vec<(&Log, PendingSync)> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| (log, deferred(log, &format!("log-{i}")).1))
        .collect();
    let results = Log::wait_durable_all(&pending);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = disk.stats();
    assert!(stats.syncs >= 4, "each log synced: {stats:?}");
    assert!(
        stats.syncs_in_flight_max >= 2,
        "the syncs overlapped: {stats:?}"
    );
    for log in &logs {
        assert_eq!(read_all(log).len(), 1, "acknowledged and readable");
    }
    disk.set_sync_delay(std::time::Duration::ZERO);
}

#[test]
fn a_failed_fsync_fails_only_that_logs_wait() {
    let disk = SimDisk::new();
    let logs = open_logs(&disk, 3);
    let pending: Vec<(&Log, PendingSync)> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| (log, deferred(log, &format!("log-{i}")).1))
        .collect();
    // The next sync to run fails, whichever log it belongs to.
    let next_sync = disk.calls(FaultOp::Sync) + 1;
    disk.fail_nth(FaultOp::Sync, next_sync, std::io::ErrorKind::Other);
    let results = Log::wait_durable_all(&pending);
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "{results:?}"
    );
    for (result, (log, _)) in results.iter().zip(&pending) {
        match result {
            Ok(()) => assert_eq!(read_all(log).len(), 1, "acknowledged and readable"),
            Err(_) => assert!(
                deferred_fails(log),
                "the failed log is poisoned: later appends fail"
            ),
        }
    }
}

fn deferred_fails(log: &Log) -> bool {
    let record = RecordIn {
        timestamp_ms: 1_000_000,
        partition_key: b"k",
        explicit_hash_key: None,
        data: b"later",
    };
    log.append_deferred(&[record], false).is_err()
}
