//! Many threads append and read one log at once: in `Always` mode they share fdatasyncs
//! (group commit), each thread's records keep their order, every acknowledged record is
//! readable, and readers running alongside see only whole, contiguous records.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use shardlog::format::batch::RecordIn;
use shardlog::storage::{CrashMode, Durability, Log, ReadLimits, SimDisk, SimRng};

const THREADS: u64 = 8;
const APPENDS_PER_THREAD: u64 = 60;

#[test]
fn concurrent_durable_appends_share_fsyncs_and_keep_per_thread_order() {
    let disk = SimDisk::new();
    disk.set_sync_delay(Duration::from_millis(2));
    let mut options = sim_options(&disk, Durability::Always);
    options.segment_bytes_max = 1 << 20;
    let log = Arc::new(Log::open(DIR, options).expect("open"));
    let syncs_before = disk.stats().syncs;
    let stop = Arc::new(AtomicBool::new(false));
    // A reader that checks every batch it can see while appends run.
    let reader = {
        let log = log.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let records = log
                    .read(0, ReadLimits::records(100_000))
                    .expect("concurrent read");
                for (i, r) in records.iter().enumerate() {
                    assert_eq!(r.sequence, i as u64, "contiguous");
                    let text = String::from_utf8(r.data.to_vec()).expect("utf8");
                    assert!(text.starts_with("thread-"), "intact record: {text}");
                }
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..APPENDS_PER_THREAD {
                    let data = format!("thread-{t}-append-{i}");
                    let key = format!("t{t}");
                    let appended = log
                        .append(&[RecordIn {
                            timestamp_ms: 5,
                            partition_key: key.as_bytes(),
                            explicit_hash_key: None,
                            data: data.as_bytes(),
                        }])
                        .expect("append");
                    acked.push(appended.first_sequence);
                }
                acked
            })
        })
        .collect();
    let acked: Vec<Vec<u64>> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    stop.store(true, Ordering::SeqCst);
    let reads = reader.join().expect("reader");
    let syncs = disk.stats().syncs - syncs_before;
    let appends = THREADS * APPENDS_PER_THREAD;
    eprintln!("{appends} durable appends from {THREADS} threads took {syncs} fsyncs; reader made {reads} passes");
    assert!(
        syncs * 2 < appends,
        "group commit: {syncs} syncs for {appends} appends"
    );
    assert!(reads > 0);

    let records = log.read(0, ReadLimits::records(100_000)).expect("read");
    assert_eq!(records.len() as u64, appends);
    for (t, seqs) in acked.iter().enumerate() {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "thread {t} order");
        for (i, seq) in seqs.iter().enumerate() {
            assert_eq!(
                records[*seq as usize].data,
                format!("thread-{t}-append-{i}").into_bytes()
            );
        }
    }
    // Everything acknowledged survives a power loss that drops every unsynced write.
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(9));
    drop(log);
    disk.set_sync_delay(Duration::ZERO);
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("reopen");
    assert_eq!(read_all(&log).len() as u64, appends);
}

#[test]
fn interval_mode_syncs_in_the_background() {
    let disk = SimDisk::new();
    let log = Log::open(
        DIR,
        sim_options(&disk, Durability::Interval(Duration::from_millis(5))),
    )
    .expect("open");
    append_numbered(&log, 0, 10).expect("append");
    let syncs = disk.stats().syncs;
    let mut waited = 0;
    while disk.stats().syncs == syncs && waited < 2000 {
        std::thread::sleep(Duration::from_millis(1));
        waited += 1;
    }
    assert!(disk.stats().syncs > syncs, "the background thread synced");
    // Once synced, a power loss that drops all unsynced writes keeps the records.
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(3));
    drop(log);
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("reopen");
    assert_numbered(&read_all(&log), 10);
}

#[test]
fn none_mode_loses_only_unsynced_records_on_power_loss() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    append_numbered(&log, 0, 10).expect("append");
    log.sync().expect("sync");
    append_numbered(&log, 10, 10).expect("append");
    assert_numbered(&read_all(&log), 20);
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(4));
    drop(log);
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("reopen");
    assert_numbered(&read_all(&log), 10);
}
