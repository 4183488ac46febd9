//! A crash at any point of a split or merge leaves a consistent stream: after reopening, the
//! shard map is the old one or the new one (never a mix), no shard directory is left that the
//! manifest does not name, every acknowledged record is readable, and resharding works again.

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::Path;

use common::*;
use shardlog::storage::{CrashMode, FaultOp, SimDisk, SimRng};
use shardlog::stream::*;

fn shard_dirs(disk: &SimDisk) -> BTreeSet<String> {
    disk.files_in(Path::new("/sim/store/streams/s/shards"))
        .iter()
        .filter_map(|p| p.strip_prefix("/sim/store/streams/s/shards").ok())
        .filter_map(|p| p.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

/// Runs a split (or merge) with a fault on the `nth` call of `op`, crashes, reopens and checks.
/// Returns whether the fault was hit.
fn crash_during_reshard(op: FaultOp, nth: u64, merge: bool, seed: u64) -> bool {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let stream = store
        .create_stream(
            "s",
            &StreamConfig {
                shard_count: 2,
                ..Default::default()
            },
        )
        .expect("create");
    let mut acked = Vec::new();
    for i in 0..40 {
        let data = format!("r{i}");
        stream
            .put_record(entry(&format!("k{i}"), data.as_bytes()), None)
            .expect("put");
        acked.push(data);
    }
    let before = stream.list_shards().expect("list_shards");
    disk.fail_nth(op, disk.calls(op) + nth, ErrorKind::Other);
    let result = if merge {
        stream.merge_shards("shardId-000000000000", "shardId-000000000001")
    } else {
        stream.split_shard("shardId-000000000000", &(1u128 << 126).to_string())
    };
    let hit = result.is_err();
    disk.crash(CrashMode::TornPrefix, &mut SimRng::new(seed));
    drop(stream);
    drop(store);

    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock))
        .expect("reopen after crash");
    let stream = store.stream("s").expect("stream");
    let after = stream.list_shards().expect("list_shards");
    let open_after = after
        .iter()
        .filter(|s| s.sequence_number_range.ending_sequence_number.is_none())
        .count();
    if after.len() == before.len() {
        assert_eq!(after, before, "{op:?} #{nth}: the old map, unchanged");
    } else {
        assert!(!hit || after.len() > before.len(), "{op:?} #{nth}");
        assert_eq!(
            open_after,
            if merge { 1 } else { 3 },
            "{op:?} #{nth}: the new map"
        );
    }
    let named: BTreeSet<String> = after.iter().map(|s| s.shard_id.clone()).collect();
    assert_eq!(
        shard_dirs(&disk),
        named,
        "{op:?} #{nth}: no orphan shard directories"
    );
    let read: BTreeSet<String> = read_in_lineage_order(&stream)
        .into_iter()
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect();
    for data in &acked {
        assert!(
            read.contains(data),
            "{op:?} #{nth}: acknowledged {data} lost"
        );
    }
    // The stream takes writes and reshards again.
    stream
        .put_record(entry("after", b"after"), None)
        .expect("put after recovery");
    let open: Vec<_> = after
        .iter()
        .filter(|s| s.sequence_number_range.ending_sequence_number.is_none())
        .collect();
    let range = &open[0].hash_key_range;
    let start: u128 = range.starting_hash_key.parse().unwrap();
    let end: u128 = range.ending_hash_key.parse().unwrap();
    stream
        .split_shard(&open[0].shard_id, &(start + (end - start) / 2).to_string())
        .expect("split after recovery");
    hit
}

#[test]
fn a_crash_at_any_io_step_of_a_reshard_leaves_a_consistent_stream() {
    let mut points = 0;
    for merge in [false, true] {
        for op in [
            FaultOp::Sync,
            FaultOp::SyncDir,
            FaultOp::Rename,
            FaultOp::Create,
            FaultOp::Write,
        ] {
            for nth in 1..200 {
                let hit = crash_during_reshard(op, nth, merge, nth * 31 + u64::from(merge));
                points += 1;
                if !hit {
                    break;
                }
            }
        }
    }
    eprintln!("{points} crash points across splits and merges");
    assert!(points > 30);
}
