//! Streams route records by MD5 of the partition key (or the explicit hash key) to the shard
//! owning that hash key, number them with increasing sequence numbers, and read them back
//! through every iterator type, as Kinesis does.

mod common;

use common::*;
use shardlog::storage::SimDisk;
use shardlog::stream::*;
use shardlog::Error;

fn setup(shards: u32) -> (SimDisk, ManualClock, Store, std::sync::Arc<Stream>) {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_700_000_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let stream = store
        .create_stream(
            "orders",
            &StreamConfig {
                shard_count: shards,
                ..Default::default()
            },
        )
        .expect("create");
    (disk, clock, store, stream)
}

#[test]
fn records_land_in_the_shard_owning_their_hash_key() {
    let (_disk, _clock, _store, stream) = setup(4);
    let shards = stream.list_shards().expect("list_shards");
    assert_eq!(shards.len(), 4);
    assert_eq!(shards[0].hash_key_range.starting_hash_key, "0");
    assert_eq!(
        shards[3].hash_key_range.ending_hash_key,
        HASH_KEY_MAX.to_string()
    );
    for i in 0..200 {
        let key = format!("user-{i}");
        let put = stream.put_record(entry(&key, b"x"), None).expect("put");
        let hash = partition_key_hash(&key);
        let owner = shards
            .iter()
            .find(|s| {
                let start: u128 = s.hash_key_range.starting_hash_key.parse().unwrap();
                let end: u128 = s.hash_key_range.ending_hash_key.parse().unwrap();
                start <= hash && hash <= end
            })
            .unwrap();
        assert_eq!(put.shard_id, owner.shard_id, "{key}");
    }
    // An explicit hash key overrides the partition key.
    let mut e = entry("anything", b"y");
    e.explicit_hash_key = Some(HASH_KEY_MAX.to_string());
    assert_eq!(
        stream.put_record(e, None).expect("put").shard_id,
        "shardId-000000000003"
    );
    let mut e = entry("anything", b"y");
    e.explicit_hash_key = Some("0".into());
    assert_eq!(
        stream.put_record(e, None).expect("put").shard_id,
        "shardId-000000000000"
    );
}

#[test]
fn sequence_numbers_increase_and_iterators_start_where_asked() {
    let (_disk, clock, _store, stream) = setup(1);
    let mut seqs = Vec::new();
    for i in 0..10i64 {
        clock.set(1_700_000_000_000 + i * 1000);
        let put = stream
            .put_record(entry("k", format!("r{i}").as_bytes()), None)
            .expect("put");
        seqs.push(put.sequence_number);
    }
    let numeric: Vec<u128> = seqs
        .iter()
        .map(|s| s.to_string().parse().unwrap())
        .collect();
    assert!(
        numeric.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing"
    );
    let shard = "shardId-000000000000";
    let data_from = |kind: ShardIteratorType| -> Vec<String> {
        let it = stream.get_shard_iterator(shard, &kind).expect("iterator");
        let page = stream.get_records(&it, 100).expect("get");
        page.records
            .iter()
            .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
            .collect()
    };
    assert_eq!(data_from(ShardIteratorType::TrimHorizon).len(), 10);
    assert!(data_from(ShardIteratorType::Latest).is_empty());
    assert_eq!(
        data_from(ShardIteratorType::AtSequenceNumber(seqs[4].into()))[0],
        "r4"
    );
    assert_eq!(
        data_from(ShardIteratorType::AfterSequenceNumber(seqs[4].into()))[0],
        "r5"
    );
    assert_eq!(
        data_from(ShardIteratorType::AtTimestamp(1_700_000_000_000 + 6500))[0],
        "r7"
    );
    // LATEST sees only what is written after it.
    let latest = stream
        .get_shard_iterator(shard, &ShardIteratorType::Latest)
        .expect("latest");
    stream.put_record(entry("k", b"after"), None).expect("put");
    let page = stream.get_records(&latest, 100).expect("get");
    assert_eq!(page.records.len(), 1);
    assert_eq!(&page.records[0].data[..], b"after");
    assert_eq!(page.millis_behind_latest, 0);
    assert_eq!(
        page.records[0].approximate_arrival_timestamp_ms,
        1_700_000_009_000
    );
    // Reading is not consuming: the same iterator reads the same records again.
    assert_eq!(
        stream.get_records(&latest, 100).expect("again").records,
        page.records
    );
}

#[test]
fn iterators_expire_after_five_minutes_and_paging_continues() {
    let (_disk, clock, _store, stream) = setup(1);
    for i in 0..25 {
        stream
            .put_record(entry("k", format!("{i}").as_bytes()), None)
            .expect("put");
    }
    let it = stream
        .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
        .expect("iterator");
    let page = stream.get_records(&it, 10).expect("page 1");
    assert_eq!(page.records.len(), 10);
    assert!(page.millis_behind_latest == 0 || page.next_shard_iterator.is_some());
    let next = page.next_shard_iterator.expect("next");
    let page2 = stream.get_records(&next, 10).expect("page 2");
    assert_eq!(&page2.records[0].data[..], b"10");
    clock.set(1_700_000_000_000 + ITERATOR_TTL_MS + 1);
    assert!(matches!(
        stream.get_records(&next, 10),
        Err(Error::ExpiredIterator(_))
    ));
    assert!(matches!(
        stream.get_records("garbage", 10),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        stream.get_records(&next, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        stream.get_records(&next, 10_001),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_sequence_number_from_another_shard_is_invalid_argument() {
    let (_disk, _clock, _store, stream) = setup(2);
    let mut e = entry("k", b"x");
    e.explicit_hash_key = Some("0".into());
    let put = stream.put_record(e, None).expect("put");
    assert_eq!(put.shard_id, "shardId-000000000000");
    let err = stream
        .get_shard_iterator(
            "shardId-000000000001",
            &ShardIteratorType::AtSequenceNumber(put.sequence_number.into()),
        )
        .unwrap_err();
    assert_eq!(err.kinesis_name(), "InvalidArgumentException");
    assert!(
        err.to_string().contains("It encodes shardId-000000000000"),
        "{err}"
    );
    let err = stream
        .get_shard_iterator("shardId-000000000009", &ShardIteratorType::Latest)
        .unwrap_err();
    assert_eq!(err.kinesis_name(), "ResourceNotFoundException");
}

#[test]
fn a_position_behind_the_trim_horizon_starts_at_the_oldest_retained_record() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let config = StreamConfig {
        retention: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let stream = store.create_stream("s", &config).expect("create");
    let first = stream.put_record(entry("k", b"old"), None).expect("put");
    clock.set(1_000_000_000 + 50_000);
    stream.put_record(entry("k", b"new"), None).expect("put");
    clock.set(1_000_000_000 + 70_000);
    let it = stream
        .get_shard_iterator(
            "shardId-000000000000",
            &ShardIteratorType::AtSequenceNumber(first.sequence_number.into()),
        )
        .expect("iterator");
    let page = stream.get_records(&it, 10).expect("get");
    assert_eq!(
        page.records.len(),
        1,
        "the expired record is skipped silently"
    );
    assert_eq!(&page.records[0].data[..], b"new");
    // Retention can change at runtime; shortening hides more at once.
    stream
        .set_retention(std::time::Duration::from_secs(10))
        .expect("retention");
    let it = stream
        .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
        .expect("it");
    assert!(stream.get_records(&it, 10).expect("get").records.is_empty());
    assert_eq!(
        store
            .describe_stream("s")
            .expect("describe")
            .retention_period_ms,
        10_000
    );
}

#[test]
fn streams_persist_across_reopen() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000);
    let seqs = {
        let store =
            Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
        let stream = store
            .create_stream(
                "a",
                &StreamConfig {
                    shard_count: 3,
                    ..Default::default()
                },
            )
            .expect("a");
        store
            .create_stream("b", &StreamConfig::default())
            .expect("b");
        (0..30)
            .map(|i| {
                stream
                    .put_record(entry(&format!("k{i}"), b"v"), None)
                    .expect("put")
                    .sequence_number
            })
            .collect::<Vec<_>>()
    };
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("reopen");
    assert_eq!(
        store.list_streams().expect("list"),
        vec!["a".to_string(), "b".to_string()]
    );
    let stream = store.stream("a").expect("a");
    let mut read: Vec<SequenceNumber> = read_in_lineage_order(&stream)
        .into_iter()
        .map(|r| r.sequence_number)
        .collect();
    let mut want = seqs.clone();
    read.sort();
    want.sort();
    assert_eq!(read, want);
    assert!(matches!(
        store.create_stream("a", &StreamConfig::default()),
        Err(Error::ResourceInUse(_))
    ));
    store.delete_stream("b").expect("delete");
    assert_eq!(store.list_streams().expect("list"), vec!["a".to_string()]);
    assert!(matches!(store.stream("b"), Err(Error::ResourceNotFound(_))));
}

#[test]
fn closed_shards_disappear_once_their_data_has_expired() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let config = StreamConfig {
        retention: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let stream = store.create_stream("s", &config).expect("create");
    stream.put_record(entry("k", b"x"), None).expect("put");
    stream
        .split_shard("shardId-000000000000", &(1u128 << 127).to_string())
        .expect("split");
    clock.set(1_000_000_000 + 59_000);
    assert_eq!(
        stream.list_shards().expect("list").len(),
        3,
        "the parent is listed while its data lives"
    );
    clock.set(1_000_000_000 + 61_000);
    let ids: Vec<String> = stream
        .list_shards()
        .expect("list")
        .into_iter()
        .map(|s| s.shard_id)
        .collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    let err = stream
        .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
        .unwrap_err();
    assert_eq!(err.kinesis_name(), "ResourceNotFoundException");
}

#[test]
fn store_and_stream_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
    shareable::<Stream>();
    shareable::<shardlog::storage::Log>();
    shareable::<shardlog::storage::LogReader>();
}

/// A page read from the middle of a shard maps only the segment it reads. The trim horizon
/// (a timestamp search from the oldest segment) is computed only when the first record read
/// is older than the expiry cutoff; computing it on every call mapped the oldest segment too.
#[test]
fn a_page_maps_only_the_segment_it_reads() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let stream = store
        .create_stream("s", &StreamConfig::default())
        .expect("create");
    let payload = vec![b'x'; 1000];
    let mut numbers = Vec::new();
    for _ in 0..300 {
        let put = stream.put_record(entry("k", &payload), None).expect("put");
        numbers.push(put.sequence_number);
    }
    let shard = "shardId-000000000000";
    let late = numbers[250];
    let it = stream
        .get_shard_iterator(shard, &ShardIteratorType::AtSequenceNumber(late.into()))
        .expect("iterator");
    disk.reset_stats();
    let page = stream.get_records(&it, 1).expect("get");
    assert_eq!(page.records[0].sequence_number, late);
    let maps = disk.stats().maps;
    let segment_maps: u64 = maps
        .iter()
        .filter(|(name, _)| name.ends_with(".seg"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(segment_maps, 1, "one segment mapped: {maps:?}");
}

/// A page's partition keys are copied, in read order, into one buffer its records share: no
/// allocation per record, and a consumer walking the page reads its keys from contiguous
/// memory. (Keys that sliced the mapped segment made a mapping's poll 25% slower: a cache
/// miss per record.) Keys read equal the keys put, across segments and batches.
#[test]
fn a_pages_partition_keys_share_one_buffer_in_read_order() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let stream = store
        .create_stream("s", &StreamConfig::default())
        .expect("create");
    let keys: Vec<String> = (0..50).map(|i| format!("key-{i}-é")).collect();
    for chunk in keys.chunks(7) {
        let entries: Vec<_> = chunk.iter().map(|k| entry(k, b"data")).collect();
        let out = stream.put_records(&entries).expect("put");
        assert_eq!(out.failed_record_count, 0);
    }
    let it = stream
        .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
        .expect("iterator");
    let page = stream.get_records(&it, 10_000).expect("get");
    let read: Vec<&str> = page.records.iter().map(|r| &r.partition_key[..]).collect();
    assert_eq!(read, keys.iter().map(String::as_str).collect::<Vec<_>>());
    for pair in page.records.windows(2) {
        let (a, b) = (&pair[0].partition_key, &pair[1].partition_key);
        assert_eq!(
            a.as_ptr().wrapping_add(a.len()),
            b.as_ptr(),
            "each key follows the previous one in the page's buffer"
        );
    }
}
