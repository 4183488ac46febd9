//! 8 threads put into 4 shards with random keys at once: afterwards every acknowledged record
//! is readable exactly once, each key's records are in put order, and no sequence number
//! repeats anywhere in the stream.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use shardlog::storage::{Durability, SimRng};
use shardlog::stream::*;

const THREADS: u64 = 8;
const PUTS: u64 = 300;

#[test]
fn concurrent_puts_are_exactly_once_and_ordered_per_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let config = StreamConfig {
        shard_count: 4,
        durability: Durability::None,
        ..Default::default()
    };
    let stream = store.create_stream("events", &config).expect("create");
    let acked: Vec<Vec<(String, String, String)>> = (0..THREADS)
        .map(|t| {
            let stream = Arc::clone(&stream);
            std::thread::spawn(move || {
                let mut rng = SimRng::new(t);
                let mut acked = Vec::new();
                let mut i = 0;
                while i < PUTS {
                    // Mix single puts and batches; keys are per thread so order is checkable.
                    let n = 1 + rng.below(8).min(PUTS - i - 1);
                    let entries: Vec<_> = (0..n)
                        .map(|k| {
                            entry(
                                &format!("t{t}-key{}", rng.below(16)),
                                format!("t{t}-{}", i + k).as_bytes(),
                            )
                        })
                        .collect();
                    if n == 1 {
                        let put = stream.put_record(entries[0].clone(), None).expect("put");
                        acked.push((
                            entries[0].partition_key.clone(),
                            put.sequence_number.to_string(),
                            String::from_utf8(entries[0].data.clone()).unwrap(),
                        ));
                    } else {
                        let out = stream.put_records(&entries).expect("put_records");
                        assert_eq!(out.failed_record_count, 0);
                        for (e, r) in entries.iter().zip(out.records) {
                            acked.push((
                                e.partition_key.clone(),
                                r.sequence_number.unwrap().to_string(),
                                String::from_utf8(e.data.clone()).unwrap(),
                            ));
                        }
                    }
                    i += n;
                }
                acked
            })
        })
        .map(|h| h.join().expect("thread"))
        .collect();
    let records = read_in_lineage_order(&stream);
    let acked_count: usize = acked.iter().map(Vec::len).sum();
    assert_eq!(
        records.len(),
        acked_count,
        "every acknowledged record, once"
    );
    let unique: BTreeSet<_> = records.iter().map(|r| r.sequence_number).collect();
    assert_eq!(unique.len(), records.len(), "no sequence number repeats");
    let by_seq: BTreeMap<&str, &str> = acked
        .iter()
        .flatten()
        .map(|(_, s, d)| (s.as_str(), d.as_str()))
        .collect();
    for r in &records {
        assert_eq!(
            by_seq.get(r.sequence_number.to_string().as_str()).copied(),
            Some(std::str::from_utf8(&r.data).unwrap())
        );
    }
    // Per key: the order read equals the order put.
    let mut read_per_key: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for r in &records {
        read_per_key
            .entry(&r.partition_key[..])
            .or_default()
            .push(&r.data);
    }
    for thread in &acked {
        let mut put_per_key: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
        for (key, _, data) in thread {
            put_per_key
                .entry(key.as_str())
                .or_default()
                .push(data.as_bytes());
        }
        for (key, puts) in put_per_key {
            assert_eq!(read_per_key.get(key), Some(&puts), "order of {key}");
        }
    }
}
