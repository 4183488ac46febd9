//! Splits, merges and uniform scaling while writers put: nothing is lost or duplicated, every
//! write lands in exactly one shard, reading parents before children yields each key's records
//! in order, and lineage (parents, ranges, sequence ranges) is as Kinesis describes it.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use shardlog::storage::Durability;
use shardlog::stream::*;
use shardlog::Error;

#[test]
fn split_and_merge_set_lineage_as_kinesis_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let stream = store
        .create_stream(
            "s",
            &StreamConfig {
                shard_count: 2,
                ..Default::default()
            },
        )
        .expect("create");
    stream.put_record(entry("before", b"x"), None).expect("put");
    let half = (1u128 << 126).to_string();
    stream
        .split_shard("shardId-000000000000", &half)
        .expect("split");
    let shards = stream.list_shards().expect("list_shards");
    let ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    let parent = &shards[0];
    assert!(
        parent
            .sequence_number_range
            .ending_sequence_number
            .is_some(),
        "closed parent has an end"
    );
    assert!(
        shards[1]
            .sequence_number_range
            .ending_sequence_number
            .is_none(),
        "open shard has none"
    );
    for child in &shards[2..] {
        assert_eq!(
            child.parent_shard_id.as_deref(),
            Some("shardId-000000000000")
        );
        assert_eq!(child.adjacent_parent_shard_id, None);
        let start: u128 = child
            .sequence_number_range
            .starting_sequence_number
            .parse()
            .unwrap();
        let parent_end: u128 = parent
            .sequence_number_range
            .ending_sequence_number
            .as_ref()
            .unwrap()
            .parse()
            .unwrap();
        assert!(start > parent_end, "child numbers exceed the parent's");
    }
    assert_eq!(
        shards[2].hash_key_range.ending_hash_key,
        ((1u128 << 126) - 1).to_string()
    );
    assert_eq!(shards[3].hash_key_range.starting_hash_key, half);
    // Splitting a closed shard, or at a key outside it, is refused.
    assert!(matches!(
        stream.split_shard("shardId-000000000000", &half),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        stream.split_shard("shardId-000000000002", "1"),
        Err(Error::InvalidArgument(_))
    ));
    // Merge the two children back; non-adjacent shards are refused.
    assert!(matches!(
        stream.merge_shards("shardId-000000000002", "shardId-000000000001"),
        Err(Error::InvalidArgument(_))
    ));
    stream
        .merge_shards("shardId-000000000003", "shardId-000000000002")
        .expect("merge");
    let merged = stream
        .list_shards()
        .expect("list_shards")
        .into_iter()
        .find(|s| s.shard_id == "shardId-000000000004")
        .expect("child");
    assert_eq!(
        merged.parent_shard_id.as_deref(),
        Some("shardId-000000000003")
    );
    assert_eq!(
        merged.adjacent_parent_shard_id.as_deref(),
        Some("shardId-000000000002")
    );
    assert_eq!(merged.hash_key_range.starting_hash_key, "0");
    assert_eq!(
        merged.hash_key_range.ending_hash_key,
        ((1u128 << 127) - 1).to_string()
    );
    // A closed shard read to its end names its children and gives no next iterator.
    let it = stream
        .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
        .expect("it");
    let page = stream.get_records(&it, 100).expect("get");
    assert_eq!(
        page.records.len(),
        usize::from(partition_key_hash("before") < 1u128 << 127)
    );
    assert_eq!(page.next_shard_iterator, None);
    let children: Vec<&str> = page
        .child_shards
        .iter()
        .map(|c| c.shard_id.as_str())
        .collect();
    assert_eq!(children, ["shardId-000000000002", "shardId-000000000003"]);
    // Lineage survives a reopen.
    let before = stream.list_shards().expect("list_shards");
    drop(stream);
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store
            .stream("s")
            .expect("s")
            .list_shards()
            .expect("list_shards"),
        before
    );
}

#[test]
fn uniform_scaling_partitions_the_space_evenly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let stream = store
        .create_stream(
            "s",
            &StreamConfig {
                shard_count: 3,
                ..Default::default()
            },
        )
        .expect("create");
    for (target, expect_ranges) in [
        (5u32, uniform_ranges(5)),
        (6, uniform_ranges(6)),
        (3, uniform_ranges(3)),
        (2, uniform_ranges(2)),
    ] {
        let out = stream.update_shard_count(target).expect("scale");
        assert_eq!(out.target_shard_count, target);
        let mut open: Vec<(u128, u128)> = stream
            .list_shards()
            .expect("list_shards")
            .into_iter()
            .filter(|s| s.sequence_number_range.ending_sequence_number.is_none())
            .map(|s| {
                (
                    s.hash_key_range.starting_hash_key.parse().unwrap(),
                    s.hash_key_range.ending_hash_key.parse().unwrap(),
                )
            })
            .collect();
        open.sort();
        let want: Vec<(u128, u128)> = expect_ranges.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(open, want, "target {target}");
    }
    assert!(
        matches!(stream.update_shard_count(5), Err(Error::LimitExceeded(_))),
        "more than double"
    );
    assert!(matches!(
        stream.update_shard_count(0),
        Err(Error::Validation(_))
    ));
}

#[test]
fn resharding_while_writing_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let config = StreamConfig {
        shard_count: 2,
        durability: Durability::None,
        ..Default::default()
    };
    let stream = store.create_stream("s", &config).expect("create");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let stream = Arc::clone(&stream);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut acked: Vec<(String, String)> = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) || i < 200 {
                    let key = format!("w{t}-k{}", i % 10);
                    let data = format!("{key}-{i}");
                    let put = stream
                        .put_record(entry(&key, data.as_bytes()), None)
                        .expect("put");
                    acked.push((key, data));
                    let _ = put;
                    i += 1;
                }
                acked
            })
        })
        .collect();
    let half = (1u128 << 126).to_string();
    stream
        .split_shard("shardId-000000000000", &half)
        .expect("split");
    stream.update_shard_count(6).expect("scale up");
    stream.update_shard_count(3).expect("scale down");
    let open: Vec<_> = stream
        .list_shards()
        .expect("list_shards")
        .into_iter()
        .filter(|s| s.sequence_number_range.ending_sequence_number.is_none())
        .collect();
    stream
        .merge_shards(&open[0].shard_id, &open[1].shard_id)
        .expect("merge");
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<(String, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    let records = read_in_lineage_order(&stream);
    assert_eq!(records.len(), acked.len(), "nothing lost or duplicated");
    let mut read_per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        read_per_key
            .entry(r.partition_key.to_string())
            .or_default()
            .push(String::from_utf8(r.data.to_vec()).unwrap());
    }
    let mut put_per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, data) in acked {
        put_per_key.entry(key).or_default().push(data);
    }
    assert_eq!(
        read_per_key, put_per_key,
        "per-key order across the lineage"
    );
}
