//! The stream layer's cost over the storage core: `put_records` of 500 x 1 KiB records into a
//! 4-shard stream against one `Log::append` of the same 500 records and the naive baseline (a
//! buffered file of length-prefixed, CRC-checked records), and `get_records` pages of 10,000.
//!
//! Run: `cargo bench --bench stream`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::format::batch::RecordIn;
use shardlog::storage::{Durability, Log, LogOptions};
use shardlog::stream::{PutRecordsEntry, ShardIteratorType, Store, StreamConfig};

const ENTRIES: usize = 500;
const SIZE: usize = 1024;

fn entries() -> Vec<PutRecordsEntry> {
    (0..ENTRIES)
        .map(|i| PutRecordsEntry {
            data: format!("{{\"id\":{i},\"kind\":\"click\"}}")
                .into_bytes()
                .into_iter()
                .cycle()
                .take(SIZE)
                .collect(),
            partition_key: format!("user-{}", i % 97),
            explicit_hash_key: None,
        })
        .collect()
}

fn bench_put(c: &mut Criterion) {
    let entries = entries();
    for (mode, durability) in [("None", Durability::None), ("Always", Durability::Always)] {
        let mut group = c.benchmark_group(format!("put_records/500x1KiB/{mode}"));
        group.throughput(Throughput::Bytes((ENTRIES * SIZE) as u64));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(4));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store
            .create_stream(
                "bench",
                &StreamConfig {
                    shard_count: 4,
                    durability,
                    ..Default::default()
                },
            )
            .unwrap();
        group.bench_function(BenchmarkId::new("stream", "4 shards"), |b| {
            b.iter(|| assert_eq!(stream.put_records(&entries).unwrap().failed_record_count, 0))
        });
        let log_dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            log_dir.path(),
            LogOptions {
                durability,
                ..Default::default()
            },
        )
        .unwrap();
        group.bench_function(BenchmarkId::new("log", "1 batch"), |b| {
            b.iter(|| {
                let records: Vec<RecordIn<'_>> = entries
                    .iter()
                    .map(|e| RecordIn {
                        timestamp_ms: 1,
                        partition_key: e.partition_key.as_bytes(),
                        explicit_hash_key: None,
                        data: &e.data,
                    })
                    .collect();
                log.append(&records).unwrap();
            })
        });
        let naive_dir = tempfile::tempdir().unwrap();
        let path = naive_dir.path().join("naive.log");
        group.bench_function(BenchmarkId::new("naive", "1 file"), |b| {
            b.iter(|| {
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap();
                let mut out = BufWriter::with_capacity(1 << 20, file);
                for e in &entries {
                    out.write_all(&(e.data.len() as u32).to_le_bytes()).unwrap();
                    out.write_all(&crc32fast::hash(&e.data).to_le_bytes())
                        .unwrap();
                    out.write_all(&e.data).unwrap();
                }
                out.flush().unwrap();
                if durability == Durability::Always {
                    out.get_ref().sync_data().unwrap();
                }
            })
        });
        group.finish();
    }
}

fn bench_get(c: &mut Criterion) {
    let entries = entries();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stream = store
        .create_stream(
            "bench",
            &StreamConfig {
                shard_count: 1,
                durability: Durability::None,
                ..Default::default()
            },
        )
        .unwrap();
    for _ in 0..40 {
        stream.put_records(&entries).unwrap();
    }
    let mut group = c.benchmark_group("get_records/10000x1KiB");
    group.throughput(Throughput::Bytes((10_000 * SIZE) as u64));
    group.sample_size(20);
    group.bench_function("stream", |b| {
        b.iter(|| {
            let it = stream
                .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
                .unwrap();
            assert_eq!(
                stream.get_records(&it, 10_000).unwrap().records.len(),
                10_000
            );
        })
    });
    group.finish();
}

criterion_group!(benches, bench_put, bench_get);
criterion_main!(benches);
