//! Every validation rule answers with the Kinesis error name and writes nothing.

mod common;

use common::*;
use shardlog::storage::SimDisk;
use shardlog::stream::*;

fn total_records(stream: &Stream) -> usize {
    read_in_lineage_order(stream).len()
}

#[test]
fn put_validation_rejects_the_whole_request() {
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
    let ok = entry("k", b"fine");
    let with = |e: PutRecordsEntry| vec![ok.clone(), e];
    let mut long_key = entry(&"é".repeat(257), b"x");
    let cases: Vec<(&str, Vec<PutRecordsEntry>, &str)> = vec![
        ("no entries", vec![], "ValidationException"),
        ("501 entries", vec![ok.clone(); 501], "ValidationException"),
        ("empty key", with(entry("", b"x")), "ValidationException"),
        (
            "257-character key",
            with(long_key.clone()),
            "ValidationException",
        ),
        (
            "data over 1 MiB",
            with(entry("k", &vec![0u8; 1024 * 1024 + 1])),
            "ValidationException",
        ),
        (
            "data plus key over 1 MiB",
            with(entry("kk", &vec![0u8; 1024 * 1024 - 1])),
            "InvalidArgumentException",
        ),
        (
            "request over 5 MiB",
            vec![entry("k", &vec![0u8; 1024 * 1000]); 6],
            "InvalidArgumentException",
        ),
        (
            "hash key over 2^128-1",
            with(PutRecordsEntry {
                explicit_hash_key: Some("340282366920938463463374607431768211456".into()),
                ..ok.clone()
            }),
            "InvalidArgumentException",
        ),
        (
            "hash key not decimal",
            with(PutRecordsEntry {
                explicit_hash_key: Some("0x10".into()),
                ..ok.clone()
            }),
            "ValidationException",
        ),
    ];
    for (what, entries, name) in cases {
        let err = stream.put_records(&entries).expect_err(what);
        assert_eq!(err.kinesis_name(), name, "{what}: {err}");
        assert_eq!(total_records(&stream), 0, "{what} wrote nothing");
    }
    long_key.partition_key = "é".repeat(256);
    stream
        .put_records(&[long_key])
        .expect("256 characters (512 bytes) is allowed");
    let err = stream
        .put_record(entry("", b"x"), None)
        .expect_err("empty key");
    assert_eq!(err.kinesis_name(), "ValidationException");
    let err = stream
        .put_record(ok.clone(), Some("999999999999999999999999999"))
        .expect_err("future ordering number");
    assert_eq!(err.kinesis_name(), "InvalidArgumentException");
    let err = stream
        .put_record(ok.clone(), Some("abc"))
        .expect_err("malformed ordering number");
    assert_eq!(err.kinesis_name(), "ValidationException");
    let first = stream.put_record(ok.clone(), None).expect("put");
    let second = stream
        .put_record(ok, Some(&first.sequence_number.to_string()))
        .expect("ordered put");
    assert!(
        second.sequence_number.to_string().parse::<u128>().unwrap()
            > first.sequence_number.to_string().parse::<u128>().unwrap()
    );
    assert_eq!(total_records(&stream), 3);
}

#[test]
fn names_counts_and_positions_are_checked() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(1_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "../escape",
        "name with space",
        &"x".repeat(129),
    ] {
        let err = store
            .create_stream(bad, &StreamConfig::default())
            .expect_err(bad);
        assert_eq!(err.kinesis_name(), "ValidationException", "{bad:?}");
    }
    assert!(disk
        .files_in(std::path::Path::new("/sim"))
        .iter()
        .all(|p| !p.to_string_lossy().contains("escape")));
    let err = store
        .create_stream(
            "s",
            &StreamConfig {
                shard_count: 0,
                ..Default::default()
            },
        )
        .expect_err("0 shards");
    assert_eq!(err.kinesis_name(), "ValidationException");
    assert_eq!(
        store.list_streams().expect("list"),
        Vec::<String>::new(),
        "nothing created"
    );
    assert_eq!(
        store.stream("missing").unwrap_err().kinesis_name(),
        "ResourceNotFoundException"
    );
    let stream = store
        .create_stream("s", &StreamConfig::default())
        .expect("create");
    let err = stream
        .get_shard_iterator(
            "shardId-000000000000",
            &ShardIteratorType::AtTimestamp(1_000_001),
        )
        .expect_err("future timestamp");
    assert_eq!(err.kinesis_name(), "InvalidArgumentException");
    let err = stream
        .get_shard_iterator("nonsense", &ShardIteratorType::Latest)
        .expect_err("bad shard id");
    assert_eq!(err.kinesis_name(), "ResourceNotFoundException");
    assert_eq!(
        stream
            .split_shard("shardId-000000000000", "nope")
            .unwrap_err()
            .kinesis_name(),
        "InvalidArgumentException"
    );
    assert_eq!(
        stream.list_shards().expect("list_shards").len(),
        1,
        "a refused split changes nothing"
    );
}

#[test]
fn injected_faults_fail_a_seeded_fraction_of_entries_and_calls() {
    let run = |seed: u64| {
        let disk = SimDisk::new();
        let clock = ManualClock::at(1_000_000);
        let store =
            Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
        let stream = store
            .create_stream(
                "s",
                &StreamConfig {
                    shard_count: 2,
                    ..Default::default()
                },
            )
            .expect("create");
        stream.set_fault_injection(Some(FaultInjection {
            seed,
            put_throttle_rate: 0.2,
            put_internal_failure_rate: 0.1,
            get_throttle_rate: 0.3,
        }));
        let entries: Vec<_> = (0..500)
            .map(|i| entry(&format!("k{i}"), format!("{i}").as_bytes()))
            .collect();
        let out = stream
            .put_records(&entries)
            .expect("partial failure is not an error");
        let codes: Vec<Option<String>> = out.records.iter().map(|r| r.error_code.clone()).collect();
        assert_eq!(
            out.failed_record_count as usize,
            codes.iter().filter(|c| c.is_some()).count()
        );
        // Aligned: failed entries are exactly the ones missing from the stream.
        stream.set_fault_injection(None);
        let stored: std::collections::BTreeSet<Vec<u8>> = read_in_lineage_order(&stream)
            .into_iter()
            .map(|r| r.data.to_vec())
            .collect();
        for (e, r) in entries.iter().zip(&out.records) {
            assert_eq!(stored.contains(&e.data), r.error_code.is_none());
            if let Some(code) = &r.error_code {
                assert!(
                    code == "ProvisionedThroughputExceededException" || code == "InternalFailure"
                );
                assert!(r.sequence_number.is_none() && r.shard_id.is_none());
            }
        }
        stream.set_fault_injection(Some(FaultInjection {
            seed,
            put_throttle_rate: 0.0,
            put_internal_failure_rate: 0.0,
            get_throttle_rate: 0.3,
        }));
        let it = stream
            .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
            .expect("it");
        let gets: Vec<bool> = (0..50)
            .map(|_| stream.get_records(&it, 10).is_ok())
            .collect();
        (codes, gets)
    };
    let (codes, gets) = run(7);
    let throttled = codes
        .iter()
        .filter(|c| c.as_deref() == Some("ProvisionedThroughputExceededException"))
        .count();
    let internal = codes
        .iter()
        .filter(|c| c.as_deref() == Some("InternalFailure"))
        .count();
    assert!(
        (60..=140).contains(&throttled),
        "about 20% throttled: {throttled}"
    );
    assert!(
        (20..=80).contains(&internal),
        "about 10% internal: {internal}"
    );
    let failed_gets = gets.iter().filter(|ok| !**ok).count();
    assert!(
        (5..=30).contains(&failed_gets),
        "about 30% of reads throttled: {failed_gets}"
    );
    assert_eq!(run(7), (codes.clone(), gets), "same seed, same failures");
    assert_ne!(run(8).0, codes, "another seed, another pattern");
}
