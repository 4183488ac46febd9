//! `put_records_ref` (entries that borrow their bytes) is `put_records` without the copy:
//! for any request, valid or not, both give the same results, the same errors and the same
//! records on disk.

mod common;

use common::*;
use proptest::prelude::*;
use shardlog::storage::SimDisk;
use shardlog::stream::*;

fn stream_pair() -> (
    SimDisk,
    Store,
    std::sync::Arc<Stream>,
    std::sync::Arc<Stream>,
) {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_700_000_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let config = StreamConfig {
        shard_count: 3,
        ..Default::default()
    };
    let owned = store.create_stream("owned", &config).expect("create");
    let borrowed = store.create_stream("borrowed", &config).expect("create");
    (disk, store, owned, borrowed)
}

/// Partition keys, hash keys and data sizes that include every validation failure.
fn entry_strategy() -> impl Strategy<Value = PutRecordsEntry> {
    let key = prop_oneof![
        40 => "[a-z]{1,12}",
        1 => Just(String::new()),
        1 => Just("k".repeat(257)),
        1 => Just("é".repeat(256)),
    ];
    let hash_key = prop_oneof![
        40 => Just(None),
        10 => any::<u128>().prop_map(|h| Some(h.to_string())),
        1 => Just(Some("0".to_string())),
        1 => Just(Some("01".to_string())),
        1 => Just(Some("340282366920938463463374607431768211456".to_string())),
    ];
    let data = prop_oneof![
        80 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => Just(vec![7u8; RECORD_BYTES_MAX_DEFAULT as usize + 1]),
    ];
    (key, hash_key, data).prop_map(|(partition_key, explicit_hash_key, data)| PutRecordsEntry {
        data,
        partition_key,
        explicit_hash_key,
    })
}

/// Every shard's records, by shard id.
fn stored(stream: &Stream) -> Vec<(String, Vec<KinesisRecord>)> {
    stream
        .list_shards()
        .expect("list_shards")
        .into_iter()
        .map(|shard| {
            let records = read_shard(stream, &shard.shard_id);
            (shard.shard_id.to_string(), records)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn borrowed_and_owned_requests_have_the_same_outcome(
        requests in proptest::collection::vec(proptest::collection::vec(entry_strategy(), 0..12), 1..6),
    ) {
        let (_disk, _store, owned, borrowed) = stream_pair();
        for request in &requests {
            let by_value = owned.put_records(request);
            let refs: Vec<PutRecordsEntryRef<'_>> =
                request.iter().map(PutRecordsEntry::as_entry_ref).collect();
            let by_ref = borrowed.put_records_ref(&refs);
            match (by_value, by_ref) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "owned {:?} but borrowed {:?}", a, b),
            }
        }
        prop_assert_eq!(stored(&owned), stored(&borrowed));
    }
}
