//! `Stream::sync` makes every acknowledged put durable in every shard whatever the stream's
//! durability mode: after it, a power loss that drops every unsynced write loses nothing.

mod common;

use common::*;
use shardlog::storage::{CrashMode, Durability, SimDisk, SimRng};
use shardlog::stream::{Store, StreamConfig};

const STORE: &str = "/sim/store";

fn put_numbered(stream: &shardlog::stream::Stream, from: usize, to: usize) {
    let entries: Vec<_> = (from..to)
        .map(|i| entry(&format!("key-{i}"), format!("record-{i}").as_bytes()))
        .collect();
    let out = stream.put_records(&entries).expect("put_records");
    assert_eq!(out.failed_record_count, 0);
}

#[test]
fn sync_makes_every_shards_puts_survive_power_loss_under_durability_none() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let store = Store::open_with(STORE, sim_store_options(&disk, &clock)).expect("store");
    let config = StreamConfig {
        shard_count: 4,
        durability: Durability::None,
        ..Default::default()
    };
    let stream = store.create_stream("s", &config).expect("create");
    put_numbered(&stream, 0, 200);
    stream.sync().expect("sync");
    put_numbered(&stream, 200, 210);
    disk.crash(CrashMode::DropUnsynced, &mut SimRng::new(11));
    drop((stream, store));

    let store = Store::open_with(STORE, sim_store_options(&disk, &clock)).expect("reopen");
    let stream = store.stream("s").expect("stream");
    let texts: std::collections::BTreeSet<String> = read_in_lineage_order(&stream)
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    for i in 0..200 {
        assert!(
            texts.contains(&format!("record-{i}")),
            "record {i} was synced"
        );
    }
    // The later puts may or may not have been synced by a background checkpoint meanwhile.
    let put: std::collections::BTreeSet<String> = (0..210).map(|i| format!("record-{i}")).collect();
    assert!(texts.is_subset(&put), "nothing invented");
}
