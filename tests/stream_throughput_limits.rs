//! With throughput limits on, a shard admits 1,000 records and 1 MiB per second of writes and
//! 5 reads per second, answering `ProvisionedThroughputExceededException` beyond them (per
//! entry for put_records, for the whole call otherwise); with limits off nothing is throttled.

mod common;

use common::*;
use shardlog::storage::SimDisk;
use shardlog::stream::*;
use shardlog::Error;

#[test]
fn provisioned_limits_throttle_writes_and_reads_per_second() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(5_000_000);
    let store = Store::open_with("/sim/store", sim_store_options(&disk, &clock)).expect("store");
    let stream = store
        .create_stream("s", &StreamConfig::default())
        .expect("create");
    let batch: Vec<_> = (0..500)
        .map(|i| entry(&format!("k{i}"), b"0123456789"))
        .collect();
    // Off by default.
    for _ in 0..3 {
        assert_eq!(
            stream.put_records(&batch).expect("put").failed_record_count,
            0
        );
    }
    stream.set_throughput_limits(Some(ThroughputLimits::KINESIS));
    clock.set(5_001_000);
    let results: Vec<u32> = (0..3)
        .map(|_| stream.put_records(&batch).expect("put").failed_record_count)
        .collect();
    assert_eq!(results, [0, 0, 500], "1,000 records per second");
    let throttled = stream.put_records(&batch[..1]).expect("put");
    assert_eq!(
        throttled.records[0].error_code.as_deref(),
        Some("ProvisionedThroughputExceededException")
    );
    assert!(throttled.records[0]
        .error_message
        .as_deref()
        .unwrap()
        .starts_with("Rate exceeded for shard shardId-000000000000"));
    assert!(matches!(
        stream.put_record(entry("k", b"x"), None),
        Err(Error::ProvisionedThroughputExceeded(_))
    ));
    clock.set(5_002_000);
    assert_eq!(
        stream.put_records(&batch).expect("put").failed_record_count,
        0,
        "a new second"
    );
    // Bytes: a 1 MiB second holds one record of 600 KiB, not two.
    clock.set(5_003_000);
    let big = entry("k", &vec![7u8; 600 * 1024]);
    assert!(stream.put_record(big.clone(), None).is_ok());
    assert!(matches!(
        stream.put_record(big, None),
        Err(Error::ProvisionedThroughputExceeded(_))
    ));
    // Reads: five calls per second.
    let it = stream
        .get_shard_iterator("shardId-000000000000", &ShardIteratorType::Latest)
        .expect("it");
    let ok: Vec<bool> = (0..7)
        .map(|_| stream.get_records(&it, 10).is_ok())
        .collect();
    assert_eq!(ok, [true, true, true, true, true, false, false]);
    clock.set(5_004_000);
    assert!(stream.get_records(&it, 10).is_ok());
    stream.set_throughput_limits(None);
    assert!((0..10).all(|_| stream.get_records(&it, 10).is_ok()));
}
