//! Micro-benchmarks of the hot paths, each beside the plainest way to do the same work:
//! batch encode and decode (raw and zstd) against copying the payloads, the batch checksum,
//! an index lookup (reading one record at a random sequence number of a large log) against a
//! scan from the start, and ESM dispatch (a mapping delivering a stream to an in-process
//! function, typed and as Lambda JSON) against a bare get_records loop.
//!
//! Run: `cargo bench --bench hot_paths` (add a filter such as `batch/` to narrow).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::consumer::{
    CheckpointStore, Destination, EsmConfig, EventBatch, EventSourceMapping, Function, Invocation,
    MappingOptions,
};
use shardlog::format::batch::{decode_batch, encode_batch, RecordIn};
use shardlog::format::codec::{Compression, DecodeScratch, EncodeScratch};
use shardlog::storage::{Durability, Log, LogOptions, ReadLimits, SimDisk};
use shardlog::stream::{PutRecordsEntry, ShardIteratorType, Store, StoreOptions, StreamConfig};

const RECORDS: usize = 100;
const SIZE: usize = 1024;

/// Seeded JSON-like events of `SIZE` bytes.
fn events(count: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|i| {
            let mut event = format!("{{\"id\":{i},\"words\":\"");
            while event.len() + 2 < SIZE {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                event.push_str(["click ", "view ", "buy ", "scroll "][(state % 4) as usize]);
                event.push_str(&(state % 10_000).to_string());
                event.push(' ');
            }
            event.truncate(SIZE - 2);
            event.push_str("\"}");
            event.into_bytes()
        })
        .collect()
}

fn records(payloads: &[Vec<u8>]) -> Vec<RecordIn<'_>> {
    payloads
        .iter()
        .map(|data| RecordIn {
            timestamp_ms: 1_700_000_000_000,
            partition_key: b"user-1",
            explicit_hash_key: None,
            data,
        })
        .collect()
}

fn bench_batches(c: &mut Criterion) {
    let payloads = events(RECORDS);
    let input = records(&payloads);
    for (name, compression) in [
        ("raw", Compression::None),
        ("zstd1", Compression::Zstd { level: 1 }),
    ] {
        let mut group = c.benchmark_group(format!("batch/{RECORDS}x1KiB/{name}"));
        group.throughput(Throughput::Bytes((RECORDS * SIZE) as u64));
        let mut out = Vec::new();
        let mut scratch = EncodeScratch::default();
        group.bench_function("encode", |b| {
            b.iter(|| encode_batch(&mut out, &mut scratch, 0, &input, compression, false).unwrap())
        });
        let mut encoded = Vec::new();
        encode_batch(&mut encoded, &mut scratch, 0, &input, compression, false).unwrap();
        let mut decode = DecodeScratch::default();
        group.bench_function("decode+iterate", |b| {
            b.iter(|| {
                let view = decode_batch(&encoded, &mut decode).unwrap();
                view.records().map(|r| r.data.len()).sum::<usize>()
            })
        });
        // The floor: copying the payloads once.
        group.bench_function("naive copy", |b| {
            b.iter(|| {
                let mut copy = Vec::with_capacity(RECORDS * SIZE);
                for p in &payloads {
                    copy.extend_from_slice(p);
                }
                copy.len()
            })
        });
        group.finish();
    }
    let mut group = c.benchmark_group("checksum/100KiB");
    let bytes: Vec<u8> = payloads.concat();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("crc32", |b| b.iter(|| crc32fast::hash(&bytes)));
    group.finish();
}

/// One record at a random sequence number of a 50,000-record log: the sparse index finds its
/// batch; the baseline walks from the start.
fn bench_index_lookup(c: &mut Criterion) {
    let disk = SimDisk::new();
    let options = LogOptions {
        vfs: Arc::new(disk),
        durability: Durability::None,
        ..LogOptions::default()
    };
    let log = Log::open("/bench/log", options).unwrap();
    let payloads = events(RECORDS);
    for _ in 0..500 {
        log.append(&records(&payloads)).unwrap();
    }
    let total = 500 * RECORDS as u64;
    let mut group = c.benchmark_group("index_lookup/50000x1KiB");
    let mut at = 0u64;
    group.bench_function("read one at a random sequence", |b| {
        b.iter(|| {
            at = (at + 7919) % total;
            log.read(at, ReadLimits::records(1)).unwrap().len()
        })
    });
    group.bench_function("naive: scan from the start", |b| {
        b.iter(|| {
            at = (at + 7919) % total;
            let mut seen = 0u64;
            let everything = ReadLimits {
                records_max: usize::MAX,
                bytes_max: usize::MAX,
            };
            log.scan(0, everything, |r| {
                seen += 1;
                r.sequence < at
            })
            .unwrap();
            seen
        })
    });
    group.finish();
}

/// Takes the records, never their JSON.
struct Typed;

impl Function for Typed {
    fn invoke(&self, _lane: usize, _event: &str) -> Invocation {
        Invocation::Returned(None)
    }

    fn invoke_batch(&self, _lane: usize, batch: &EventBatch<'_>) -> Invocation {
        std::hint::black_box(batch.len());
        Invocation::Returned(None)
    }
}

fn bench_esm_dispatch(c: &mut Criterion) {
    const COUNT: usize = 10_000;
    let disk = SimDisk::new();
    let store = Store::open_with(
        "/bench/store",
        StoreOptions {
            vfs: Arc::new(disk.clone()),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let stream = store
        .create_stream(
            "esm",
            &StreamConfig {
                durability: Durability::None,
                ..Default::default()
            },
        )
        .unwrap();
    let payloads = events(500);
    for chunk in 0..COUNT / 500 {
        let entries: Vec<PutRecordsEntry> = payloads
            .iter()
            .enumerate()
            .map(|(i, data)| PutRecordsEntry {
                data: data.clone(),
                partition_key: format!("k{}", chunk * 500 + i),
                explicit_hash_key: None,
            })
            .collect();
        stream.put_records(&entries).unwrap();
    }
    let mut group = c.benchmark_group(format!("esm_dispatch/{COUNT}x1KiB/batch{RECORDS}"));
    group.throughput(Throughput::Elements(COUNT as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let mut run = 0u64;
    let functions: [(&str, Arc<dyn Function>); 2] = [
        ("mapping, typed function", Arc::new(Typed)),
        (
            "mapping, Lambda JSON",
            Arc::new(|_: &str| Invocation::Returned(None)),
        ),
    ];
    for (name, function) in functions {
        group.bench_function(BenchmarkId::new(name, ""), |b| {
            b.iter(|| {
                // A fresh mapping (new checkpoints) consumes the whole stream.
                run += 1;
                let checkpoints = Arc::new(
                    CheckpointStore::open(
                        format!("/bench/mappings/{run}/checkpoints"),
                        Arc::new(disk.clone()),
                    )
                    .unwrap(),
                );
                let config = EsmConfig::from_json(&format!(
                    r#"{{"StartingPosition":"TRIM_HORIZON","BatchSize":{RECORDS}}}"#
                ))
                .unwrap();
                let mapping = EventSourceMapping::new(
                    config,
                    stream.clone(),
                    function.clone(),
                    Destination::None,
                    checkpoints,
                    MappingOptions {
                        poll_interval: Duration::from_millis(1),
                        ..MappingOptions::default()
                    },
                )
                .unwrap();
                let metrics = mapping.run_until_idle().unwrap();
                assert_eq!(metrics.totals.invoked_event_count, COUNT as u64);
            })
        });
    }
    group.bench_function(BenchmarkId::new("naive: get_records loop", ""), |b| {
        b.iter(|| {
            let mut iterator = stream
                .get_shard_iterator("shardId-000000000000", &ShardIteratorType::TrimHorizon)
                .unwrap();
            let mut seen = 0;
            loop {
                let page = stream.get_records(&iterator, RECORDS).unwrap();
                if page.records.is_empty() {
                    break;
                }
                seen += page.records.len();
                iterator = page.next_shard_iterator.unwrap();
            }
            assert_eq!(seen, COUNT);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_batches,
    bench_index_lookup,
    bench_esm_dispatch
);
criterion_main!(benches);
