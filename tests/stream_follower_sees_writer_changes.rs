//! A producer process and a consumer process share one store: the consumer, opened read-only
//! once, sees the producer's new records, its reshard and its retention change without
//! reopening; a second writer of the stream is refused with `Locked` while the producer runs.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use shardlog::storage::Durability;
use shardlog::stream::*;
use shardlog::Error;

const RECORDS: usize = 3000;

#[test]
#[ignore = "helper process spawned by follower_sees_puts_reshards_and_retention_changes"]
fn helper_producer() {
    let dir = std::env::var("SHARDLOG_STORE_DIR").expect("run only by the follower test");
    let store = Store::open(&dir).expect("writer store");
    let stream = store.stream("live").expect("stream");
    for i in 0..RECORDS {
        let key = format!("k{}", i % 20);
        stream
            .put_record(entry(&key, format!("{key}:{i}").as_bytes()), None)
            .expect("put");
        if i == 1000 {
            stream
                .split_shard("shardId-000000000000", &(1u128 << 126).to_string())
                .expect("split");
        }
        if i == 2500 {
            stream
                .set_retention(Duration::from_secs(3600))
                .expect("retention");
        }
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Hold the stream until the follower has checked that a second writer is refused.
    let release = std::path::Path::new(&dir).join("release");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !release.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn follower_sees_puts_reshards_and_retention_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("store");
        let config = StreamConfig {
            shard_count: 2,
            durability: Durability::None,
            ..Default::default()
        };
        store.create_stream("live", &config).expect("create");
    }
    let follower = Store::open_read_only(dir.path(), StoreOptions::default()).expect("follower");
    let stream = follower.stream("live").expect("follow stream");
    assert!(!stream.is_writer());
    assert!(matches!(
        stream.put_record(entry("k", b"x"), None),
        Err(Error::ReadOnly { .. })
    ));
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "helper_producer",
            "--ignored",
            "--test-threads=1",
        ])
        .env("SHARDLOG_STORE_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn producer");
    // Live: poll shard 1 (never resharded) while the producer writes.
    let mut live = 0usize;
    let mut iterator = stream
        .get_shard_iterator("shardId-000000000001", &ShardIteratorType::TrimHorizon)
        .expect("iterator");
    let mut locked_seen = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll").is_none() {
        assert!(Instant::now() < deadline, "producer hangs");
        let page = stream.get_records(&iterator, 500).expect("live read");
        live += page.records.len();
        iterator = page.next_shard_iterator.expect("open shard");
        // Records exist only once the producer holds the stream: a writer must be refused.
        if !locked_seen && live > 0 {
            let writer = Store::open(dir.path()).expect("store");
            match writer.stream("live") {
                Err(Error::Locked { .. }) => {
                    locked_seen = true;
                    std::fs::write(dir.path().join("release"), b"").expect("release");
                }
                other => panic!("a second writer must get Locked: {other:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().expect("exit").success());
    assert!(
        locked_seen,
        "a second writer was refused while the producer ran"
    );
    assert!(live > 0, "records seen while they were written");

    let shards = stream.list_shards().expect("list");
    assert_eq!(shards.len(), 4, "the split is visible without reopening");
    assert_eq!(
        stream.describe().expect("describe").retention_period_ms,
        3_600_000
    );
    let records = read_in_lineage_order(&stream);
    assert_eq!(records.len(), RECORDS);
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &records {
        let text = String::from_utf8(r.data.to_vec()).unwrap();
        let (key, n) = text.split_once(':').unwrap();
        per_key
            .entry(key.to_string())
            .or_default()
            .push(n.parse().unwrap());
    }
    for (key, ns) in per_key {
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "order of {key}");
    }
}
