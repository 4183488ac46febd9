//! One test per bug found, each naming the bug and how it was found.

mod common;

use std::path::Path;

use common::*;
use shardlog::format::segment::{SegmentHeader, SEGMENT_HEADER_LEN};
use shardlog::storage::{segment_file_name, Durability, Log, SimDisk};

/// Bug: a segment whose creation was torn by a crash, leaving the magic but a zero version
/// byte, made open fail with "format version 0 is not supported" instead of recreating the
/// empty segment. Found by the crash simulation (seed 681, a DiskFull fault during a roll).
/// Fix: a bad header with nothing after it is a torn creation, whatever the error.
#[test]
fn torn_segment_header_is_not_mistaken_for_a_newer_version() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("open");
    append_numbered(&log, 0, 4).expect("append");
    log.roll().expect("roll");
    drop(log);
    let active = Path::new(DIR).join(segment_file_name(4));
    let header = SegmentHeader {
        base_sequence: 4,
        created_ms: 7,
    }
    .encode();
    for torn in [5usize, 12, SEGMENT_HEADER_LEN - 1] {
        let mut bytes = header[..torn].to_vec();
        bytes.resize(SEGMENT_HEADER_LEN, 0);
        disk.set_contents(&active, &bytes);
        let log = Log::open(DIR, sim_options(&disk, Durability::Always))
            .unwrap_or_else(|e| panic!("torn header of {torn} bytes: {e}"));
        assert_numbered(&read_all(&log), 4);
        assert_eq!(
            append_numbered(&log, 4, 1).expect("append").first_sequence,
            4
        );
        drop(log);
    }
}

/// Bug: lengthening a stream's retention made records that had already expired readable
/// again whenever their segment had not been deleted yet, where Kinesis'
/// IncreaseStreamRetentionPeriod keeps expired data inaccessible. Found by the `stream_model`
/// fuzz target (put, let the records expire, raise retention, read from TRIM_HORIZON).
/// Fix: the manifest (version 2) keeps `expired_before_ms`, the expiry cutoff at the moment
/// retention changed, and the trim horizon never goes below it, across reopens too.
#[test]
fn lengthened_retention_does_not_bring_back_expired_records() {
    use shardlog::stream::{Store, StreamConfig};
    use std::time::Duration;

    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).unwrap();
    let stream = store
        .create_stream(
            "s",
            &StreamConfig {
                retention: Duration::from_secs(3600),
                ..Default::default()
            },
        )
        .unwrap();
    stream.put_record(entry("k", b"old"), None).unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    stream.put_record(entry("k", b"new"), None).unwrap();
    let shard = "shardId-000000000000";
    let visible = |stream: &shardlog::stream::Stream| -> Vec<Vec<u8>> {
        read_shard(stream, shard)
            .into_iter()
            .map(|r| r.data.to_vec())
            .collect()
    };
    assert_eq!(visible(&stream), vec![b"new".to_vec()]);
    stream
        .set_retention(Duration::from_secs(10 * 3600))
        .unwrap();
    assert_eq!(visible(&stream), vec![b"new".to_vec()], "raised retention");
    drop(stream);
    drop(store);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).unwrap();
    let stream = store.stream("s").unwrap();
    assert_eq!(visible(&stream), vec![b"new".to_vec()], "after a reopen");
    // Records that arrive after the raise live by the new period.
    stream.put_record(entry("k", b"newer"), None).unwrap();
    clock.advance(Duration::from_secs(5 * 3600));
    assert_eq!(visible(&stream), vec![b"new".to_vec(), b"newer".to_vec()]);
}

/// Bug: with the clean-shutdown mark cleared lazily (before the first change), opening a
/// cleanly closed log that still held a leftover `checkpoint.tmp` failed with "remove
/// checkpoint.tmp: not found": removing the leftover was the first change, clearing the mark
/// wrote the checkpoint through that same temporary name and renamed it away, and the removal
/// then found nothing. Found by the crash simulation (seed 86, after clean restarts were
/// added to it). Fix: a leftover that is already gone counts as removed.
#[test]
fn a_leftover_checkpoint_temp_file_does_not_stop_a_clean_open() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).unwrap();
    append_numbered(&log, 0, 3).unwrap();
    log.close().unwrap();
    disk.set_contents(&Path::new(DIR).join("checkpoint.tmp"), b"half-written");
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    assert_numbered(&read_all(&log), 3);
    assert!(disk
        .contents(&Path::new(DIR).join("checkpoint.tmp"))
        .is_none());
}
