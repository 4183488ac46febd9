//! Append and read throughput of one log, against the naive baseline in the same run: a
//! buffered file of length-prefixed records with a CRC-32 each (fdatasync per batch when the
//! durability is `Always`). Record sizes 100 B and 1 KiB, batches of 1, 100 and 1000,
//! durability `None` and `Always`, zstd off and on.
//!
//! Run: `cargo bench --bench log` (add a filter such as `append/1024B/batch100` to narrow).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::format::batch::RecordIn;
use shardlog::format::codec::Compression;
use shardlog::storage::{Durability, Log, LogOptions, ReadLimits};

const RECORDS_PER_ITER: usize = 1000;

/// JSON-like events of roughly `size` bytes, compressible as real events are.
fn events(size: usize, count: usize) -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut event = format!(
                "{{\"id\":{i},\"user\":\"user-{}\",\"kind\":\"{}\",\"amount\":{},\"tags\":[",
                state % 10_000,
                ["click", "view", "purchase", "scroll"][(state % 4) as usize],
                state % 100_000
            );
            while event.len() + 2 < size {
                event.push_str(&format!("\"t{}\",", (state >> (event.len() % 48)) % 1000));
            }
            event.truncate(size - 2);
            event.push_str("]}");
            event.into_bytes()
        })
        .collect()
}

fn options(durability: Durability, compression: Compression) -> LogOptions {
    LogOptions {
        durability,
        compression,
        ..LogOptions::default()
    }
}

fn append_all(log: &Log, data: &[Vec<u8>], batch: usize) {
    for chunk in data.chunks(batch) {
        let records: Vec<RecordIn<'_>> = chunk
            .iter()
            .map(|d| RecordIn {
                timestamp_ms: 1_700_000_000_000,
                partition_key: b"partition-key-1",
                explicit_hash_key: None,
                data: d,
            })
            .collect();
        log.append(&records).expect("append");
    }
}

/// The naive baseline's writer: u32 length, u32 CRC-32, bytes, per record.
fn naive_append(path: &Path, data: &[Vec<u8>], batch: usize, sync: bool) {
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for chunk in data.chunks(batch) {
        for d in chunk {
            out.write_all(&(d.len() as u32).to_le_bytes())
                .expect("write");
            out.write_all(&crc32fast::hash(d).to_le_bytes())
                .expect("write");
            out.write_all(d).expect("write");
        }
        if sync {
            out.flush().expect("flush");
            out.get_ref().sync_data().expect("fdatasync");
        }
    }
    out.flush().expect("flush");
}

fn naive_read(path: &Path) -> usize {
    let mut input = BufReader::with_capacity(1 << 20, File::open(path).expect("open"));
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    let mut count = 0;
    while input.read_exact(&mut header).is_ok() {
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
        buf.resize(len, 0);
        input.read_exact(&mut buf).expect("record");
        assert_eq!(crc32fast::hash(&buf), crc);
        count += 1;
    }
    count
}

fn bench_append(c: &mut Criterion) {
    for size in [100usize, 1024] {
        let data = events(size, RECORDS_PER_ITER);
        for batch in [1usize, 100, 1000] {
            for (mode_name, durability) in
                [("None", Durability::None), ("Always", Durability::Always)]
            {
                let mut group =
                    c.benchmark_group(format!("append/{size}B/batch{batch}/{mode_name}"));
                group.throughput(Throughput::Bytes((size * RECORDS_PER_ITER) as u64));
                group.sample_size(10);
                group.measurement_time(Duration::from_secs(3));
                group.warm_up_time(Duration::from_millis(500));
                for (codec_name, compression) in [
                    ("raw", Compression::None),
                    ("zstd1", Compression::Zstd { level: 1 }),
                ] {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let log =
                        Log::open(dir.path(), options(durability, compression)).expect("open");
                    group.bench_function(BenchmarkId::new("shardlog", codec_name), |b| {
                        b.iter(|| append_all(&log, &data, batch))
                    });
                }
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("naive.log");
                group.bench_function(BenchmarkId::new("naive", "raw"), |b| {
                    b.iter(|| naive_append(&path, &data, batch, durability == Durability::Always))
                });
                group.finish();
            }
        }
    }
}

fn bench_read(c: &mut Criterion) {
    const READ_RECORDS: usize = 100_000;
    for size in [100usize, 1024] {
        let data = events(size, READ_RECORDS);
        for batch in [1usize, 100, 1000] {
            let mut group = c.benchmark_group(format!("read/{size}B/batch{batch}"));
            group.throughput(Throughput::Bytes((size * READ_RECORDS) as u64));
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(3));
            group.warm_up_time(Duration::from_millis(500));
            for (codec_name, compression) in [
                ("raw", Compression::None),
                ("zstd1", Compression::Zstd { level: 1 }),
            ] {
                let dir = tempfile::tempdir().expect("tempdir");
                let log =
                    Log::open(dir.path(), options(Durability::None, compression)).expect("open");
                append_all(&log, &data, batch);
                log.roll().expect("seal, so reads go through the mapping");
                group.bench_function(BenchmarkId::new("shardlog", codec_name), |b| {
                    b.iter(|| {
                        let mut bytes = 0usize;
                        let mut from = 0;
                        loop {
                            let next = log
                                .scan(from, ReadLimits::default(), |r| {
                                    bytes += r.data.len();
                                    true
                                })
                                .expect("scan");
                            if next == from {
                                break;
                            }
                            from = next;
                        }
                        assert!(bytes >= size * READ_RECORDS);
                    })
                });
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("naive.log");
            naive_append(&path, &data, batch, false);
            group.bench_function(BenchmarkId::new("naive", "raw"), |b| {
                b.iter(|| assert_eq!(naive_read(&path), READ_RECORDS))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
