//! `shardlog bench`: a realistic pipeline on generated data — produce, read back, produce
//! compressed, produce durably from 8 threads, consume through an event source mapping with
//! planted poison records, reopen — each figure beside a baseline measured in the same run.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use shardlog::format::codec::Compression;
use shardlog::storage::Durability;
use shardlog::stream::{Store, Stream, StreamConfig, GET_RECORDS_LIMIT_MAX};

use super::{Failure, Outcome};

mod arena;
mod consume;
mod durable;
mod kill;
mod naive;
mod payload;
mod read;
mod table;
mod warm;

use arena::BatchArena;
use durable::durable_phase;
use naive::{naive, naive_write, READ_RUNS};
use payload::{Payload, PayloadPool};

/// Arguments of `shardlog bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Records to produce.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Shards of the stream.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Producer threads.
    #[arg(long, default_value_t = 4)]
    producer_threads: usize,
    /// Durability of the main stream (produce, read back, consume, reopen): always,
    /// interval:MS or none. The durable phase always uses `always`.
    #[arg(long, default_value = "none", value_parser = crate::cli::streams::parse_durability)]
    durability: Durability,
    /// Compression of the main stream: none, zstd or zstd:LEVEL. The zstd phase always uses
    /// zstd level 1.
    #[arg(long, default_value = "none", value_parser = crate::cli::streams::parse_compression)]
    compression: Compression,
    /// Records per put_records call.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// BatchSize of the consume phase's event source mapping (1..=10000); the get_records
    /// baseline reads pages of 10,000 records whatever this is.
    #[arg(long, default_value_t = 1000)]
    consume_batch_size: usize,
    /// Records of the durable (Always, 8 threads) phase.
    #[arg(long, default_value_t = 40_000)]
    durable_records: usize,
    /// What the records hold: `events` (clickstream JSON: ids, timestamps, user, page, cart
    /// items, a note) or `words` (a short header, then free text of 16 words and numbers).
    #[arg(long, value_enum, default_value = "events")]
    payload: Payload,
    /// Keep the data here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) const POISON_KEY: &str = "poison";

/// The stream of the first produce run, deleted after it.
const FIRST_RUN_STREAM: &str = "bench-first-run";

/// The records of a run, generated on demand from their index, so none is held in memory.
#[derive(Debug, Clone)]
pub(super) struct Workload {
    count: usize,
    size: usize,
    poison_every: usize,
    payloads: Arc<PayloadPool>,
}

impl Workload {
    /// `count` records of `size` bytes, five of them poison.
    fn new(count: usize, size: usize, payload: Payload) -> Workload {
        Workload {
            count,
            size,
            poison_every: (count / 5).max(1),
            payloads: Arc::new(PayloadPool::new(payload, size)),
        }
    }

    pub(super) fn record(&self, i: usize) -> Vec<u8> {
        self.payloads.record(i)
    }

    /// Appends record `i` to `buffer`.
    pub(super) fn record_into(&self, i: usize, buffer: &mut Vec<u8>) {
        self.payloads.record_into(i, buffer);
    }

    fn key(&self, i: usize) -> String {
        let mut key = String::new();
        self.key_into(i, &mut key);
        key
    }

    /// Appends record `i`'s partition key to `buffer`.
    fn key_into(&self, i: usize, buffer: &mut String) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = if i % self.poison_every == self.poison_every / 2 {
            write!(buffer, "{POISON_KEY}-{i}")
        } else {
            write!(buffer, "user-{}", i % 1000)
        };
    }

    fn payload_bytes(&self) -> u64 {
        (self.count * self.size) as u64
    }
}

pub(super) fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

pub(super) fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub(super) fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::usage(format!("bench: {what}: {e}"))
}

/// When a produce phase makes its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generation {
    /// While producing, batch by batch, so a large run is never held in memory (the naive
    /// baseline generates its records the same way).
    Streamed,
    /// Before the clock starts: for the durable phase, whose baseline (a write + fdatasync
    /// loop) generates nothing, and which is small enough to hold.
    Prepared,
}

/// Puts every record from `threads` threads in `put_records` calls; returns the elapsed time
/// and every call's latency.
fn produce(
    stream: &Arc<Stream>,
    work: &Workload,
    threads: usize,
    batch: usize,
    generation: Generation,
) -> Result<(Duration, Vec<Duration>), Failure> {
    let threads = threads.max(1);
    let chunk = work.count.div_ceil(threads);
    // Producers that prepare their data first start together, after the clock.
    let ready = Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let stream = stream.clone();
            let ready = ready.clone();
            let work = work.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let start = t * chunk;
                let end = (start + chunk).min(work.count);
                let ranges = (start..end)
                    .step_by(batch.max(1))
                    .map(|i| i..(i + batch).min(end));
                // Streamed: one arena, refilled for each call; prepared: one per call.
                let mut prepared = Vec::new();
                if generation == Generation::Prepared {
                    prepared = ranges.clone().map(|r| BatchArena::of(&work, r)).collect();
                }
                let mut arena = BatchArena::default();
                ready.wait();
                let mut latencies = Vec::new();
                for (k, records) in ranges.enumerate() {
                    let arena = match prepared.get(k) {
                        Some(built) => built,
                        None => {
                            arena.fill(&work, records);
                            &arena
                        }
                    };
                    let mut entries = arena.entries();
                    while !entries.is_empty() {
                        let call = Instant::now();
                        let out = stream
                            .put_records_ref(&entries)
                            .map_err(|e| e.to_string())?;
                        latencies.push(call.elapsed());
                        entries = entries
                            .into_iter()
                            .zip(out.records)
                            .filter(|(_, r)| r.error_code.is_some())
                            .map(|(e, _)| e)
                            .collect();
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    ready.wait();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(
            h.join()
                .map_err(|_| Failure::usage("bench: a producer panicked"))?
                .map_err(Failure::usage)?,
        );
    }
    latencies.sort();
    Ok((started.elapsed(), latencies))
}

/// The fastest of [`READ_RUNS`] reads of every shard by `readers`, checked to find every
/// record produced.
fn best_read(
    stream: &Stream,
    args: &BenchArgs,
    readers: read::Readers,
) -> Result<read::ReadBack, Failure> {
    let mut best: Option<read::ReadBack> = None;
    for _ in 0..READ_RUNS {
        let run = read::read_every_shard(stream, GET_RECORDS_LIMIT_MAX, readers)?;
        if run.records != args.records as u64 {
            return Err(Failure::usage(format!(
                "bench: read {} records, produced {}",
                run.records, args.records
            )));
        }
        best = Some(match best {
            Some(b) if b.elapsed <= run.elapsed => b,
            _ => run,
        });
    }
    best.ok_or_else(|| Failure::usage("bench: no read ran"))
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> Outcome {
    if args.records == 0 || args.record_size < 64 || args.batch_size == 0 || args.batch_size > 500 {
        return Err(Failure::usage(
            "bench: --records > 0, --record-size >= 64, --batch-size 1..=500",
        ));
    }
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().map_err(|e| io_failure("tempdir", e))?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_failure("create dir", e))?;
    let progress = if std::io::stderr().is_terminal() && !args.json {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let say = |what: &str| progress.set_message(what.to_string());
    progress.enable_steady_tick(Duration::from_millis(200));

    let work = Workload::new(args.records, args.record_size, args.payload);
    let poison_count = (0..work.count)
        .filter(|&i| work.key(i).starts_with(POISON_KEY))
        .count();
    let payload_bytes = work.payload_bytes();

    say("warm the page cache's memory");
    // What the timed write phases add to the page cache: the naive file and the stream
    // (each the payload and a little), the zstd stream (about a quarter) and the durable one.
    // The durable phase runs twice (at the batch size and at puts of 100).
    let durable_payload_bytes =
        2 * (args.durable_records.min(args.records) * args.record_size) as u64;
    let warmed = warm::warm_page_cache(&dir, payload_bytes / 2 * 5 + durable_payload_bytes)?;

    say("naive baseline");
    let (naive_write_first, naive_read, naive_size) = naive(&dir.join("naive.log"), &work)?;

    say("produce");
    let store = Store::open(dir.join("store"))?;
    let config = StreamConfig {
        shard_count: args.shards,
        durability: args.durability,
        compression: args.compression,
        ..Default::default()
    };
    // Every record of the run, streamed from the configured producer threads.
    let produce_all = |stream: &Arc<Stream>| {
        produce(
            stream,
            &work,
            args.producer_threads,
            args.batch_size,
            Generation::Streamed,
        )
    };
    // Each side of the append ratio runs twice and keeps its faster run, one run before the
    // other side's second: a half-second run is at the mercy of the machine. The first
    // stream is deleted after its run, so that the second writes into the memory it freed.
    let first = store.create_stream(FIRST_RUN_STREAM, &config)?;
    let first_run = produce_all(&first)?;
    first.sync()?;
    drop(first);
    store.delete_stream(FIRST_RUN_STREAM)?;
    let naive_write_second = naive_write(&dir.join("naive.log"), &work)?;
    let naive_write_time = naive_write_first.min(naive_write_second);
    let stream = store.create_stream("bench", &config)?;
    let second_run = produce_all(&stream)?;
    let produce_runs = [first_run.0, second_run.0];
    let (produce_time, latencies) = if first_run.0 <= second_run.0 {
        first_run
    } else {
        second_run
    };

    say("read back");
    stream.sync()?;
    // The ratio's read: a thread per shard, as Kinesis consumers read, against the naive
    // file's one thread (it is one file); as the produce phase's producer threads are
    // against the naive writer's one. One thread over all shards is reported beside it.
    let read = best_read(&stream, &args, read::Readers::ThreadPerShard)?;
    let read_one_thread = best_read(&stream, &args, read::Readers::OneThread)?;

    say("produce with zstd");
    let zstd_config = StreamConfig {
        compression: Compression::Zstd { level: 1 },
        ..config.clone()
    };
    let zstd = store.create_stream("bench-zstd", &zstd_config)?;
    let (zstd_time, _) = produce_all(&zstd)?;
    let zstd_disk = dir_bytes(&dir.join("store/streams/bench-zstd"));
    let raw_disk = dir_bytes(&dir.join("store/streams/bench"));

    say("durable produce, 8 threads");
    // Earlier phases' data written back first: the baseline and the durable phase both
    // measure a quiet device, not one busy flushing a gigabyte.
    zstd.sync()?;
    let durable_work = Workload {
        count: args.durable_records.min(args.records),
        ..work.clone()
    };
    let durable = durable_phase(&dir, &store, &config, &durable_work, args.batch_size)?;

    say("consume through an event source mapping");
    let consumed = consume::consume(&dir, &stream, args.consume_batch_size)?;

    say("put-to-invoke latency");
    let (latency_p50, latency_p99) = consume::put_to_invoke_latency(&store)?;

    say("reopen and verify");
    drop((stream, zstd, store));
    let started = Instant::now();
    let store = Store::open(dir.join("store"))?;
    let stream = store.stream("bench")?;
    let reopen_time = started.elapsed();
    let started = Instant::now();
    let problems: usize = stream.verify()?.iter().map(|(_, r)| r.problems.len()).sum();
    let verify_time = started.elapsed();

    say("kill -9 a writer and reopen");
    let killed = kill::kill_nine(&dir, &work)?;
    progress.finish_and_clear();

    let append = mbps(payload_bytes, produce_time);
    let naive_append = mbps(payload_bytes, naive_write_time);
    let read_one_thread_mbps = mbps(read_one_thread.data_bytes, read_one_thread.elapsed);
    let get_rps = read.records_per_s();
    let read = mbps(read.data_bytes, read.elapsed);
    let naive_read_mbps = mbps(payload_bytes, naive_read);
    let zstd_append = mbps(payload_bytes, zstd_time);
    let consume_rps = consumed.records_per_s;
    let poison_found = consumed.poison_found;
    let ratios = json!({
        "append_vs_naive": append / naive_append,
        "read_vs_naive": read / naive_read_mbps,
        "zstd_append_vs_naive": zstd_append / naive_append,
        "zstd_disk_vs_naive": zstd_disk as f64 / naive_size as f64,
        "durable_vs_fdatasync": durable.bandwidth_ratio(&durable.run),
        "durable_p99_vs_fdatasync_p50": durable.p99_ratio(&durable.run),
        "consume_vs_get_records": consumed.no_op_records_per_s / consumed.get_records_per_s,
        "clean_reopen_vs_verify": reopen_time.as_secs_f64() / verify_time.as_secs_f64().max(1e-9),
    });
    let mut figures = json!({
        "records": args.records, "record_bytes": args.record_size, "shards": args.shards,
        "durability": format!("{:?}", args.durability), "compression": format!("{:?}", args.compression),
        "append_mb_per_s": append, "naive_append_mb_per_s": naive_append,
        "read_mb_per_s": read, "naive_read_mb_per_s": naive_read_mbps,
        "records_per_s": args.records as f64 / produce_time.as_secs_f64().max(1e-9),
        "put_latency_ms": {"p50": percentile(&latencies, 0.5).as_secs_f64() * 1e3, "p99": percentile(&latencies, 0.99).as_secs_f64() * 1e3, "p999": percentile(&latencies, 0.999).as_secs_f64() * 1e3},
        "zstd_append_mb_per_s": zstd_append, "disk_bytes": raw_disk, "zstd_disk_bytes": zstd_disk, "naive_disk_bytes": naive_size,
        "compression_ratio": raw_disk as f64 / zstd_disk.max(1) as f64,
        "durable_mb_per_s": durable.run.mb_per_s, "durable_put_p99_ms": durable.run.put_p99.as_secs_f64() * 1e3,
        "fdatasync_1mib_mb_per_s": durable.fdatasync_mb_per_s, "fdatasync_4kib_p50_ms": durable.fdatasync_p50.as_secs_f64() * 1e3,
        "consumer_records_per_s": consume_rps, "get_records_per_s": get_rps,
        "consumer_no_op_records_per_s": consumed.no_op_records_per_s,
        "consumer_with_poison_vs_get_records": consume_rps / consumed.get_records_per_s,
        "consumer_json_event_records_per_s": consumed.json_records_per_s,
        "get_records_per_shard_thread_records_per_s": consumed.get_records_per_s,
        "poison_planted": poison_count, "poison_found_in_destination": poison_found,
        "clean_reopen_ms": reopen_time.as_secs_f64() * 1e3, "verify_ms": verify_time.as_secs_f64() * 1e3,
        "verify_problems": problems,
        "put_to_invoke_ms": {"p50": latency_p50.as_secs_f64() * 1e3, "p99": latency_p99.as_secs_f64() * 1e3},
        "page_cache_warmed_bytes": warmed.bytes, "page_cache_warm_up_ms": warmed.elapsed.as_secs_f64() * 1e3,
        "kill9": {"stream_bytes": killed.stream_bytes, "bytes_scanned": killed.bytes_scanned,
            "bytes_truncated": killed.bytes_truncated, "records_recovered": killed.records_recovered,
            "reopen_ms": killed.reopen.as_secs_f64() * 1e3},
    });
    // Beside the ones above (one json! holding them all passes the macro's recursion limit).
    figures["read_one_thread_mb_per_s"] = json!(read_one_thread_mbps);
    // The median beside the p99: by Little's law the durable latency is bounded below by the
    // bytes in flight over the durable bandwidth, whatever the tail does.
    figures["durable_put_p50_ms"] = json!(durable.run.put_p50.as_secs_f64() * 1e3);
    figures["durable_records_per_put"] = json!(durable.run.records_per_put);
    let small = &durable.small_puts;
    figures["durable_small_puts"] = json!({
        "records_per_put": small.records_per_put, "mb_per_s": small.mb_per_s,
        "put_p50_ms": small.put_p50.as_secs_f64() * 1e3, "put_p99_ms": small.put_p99.as_secs_f64() * 1e3,
        "vs_fdatasync": durable.bandwidth_ratio(small), "p99_vs_fdatasync_p50": durable.p99_ratio(small),
    });
    figures["append_runs_mb_per_s"] = json!(produce_runs.map(|t| mbps(payload_bytes, t)));
    figures["naive_append_runs_mb_per_s"] = json!([
        mbps(payload_bytes, naive_write_first),
        mbps(payload_bytes, naive_write_second)
    ]);
    figures["read_one_thread_vs_naive"] = json!(read_one_thread_mbps / naive_read_mbps);
    let report =
        json!({ "ratios": ratios, "peak_rss_bytes": peak_rss_bytes(), "figures": figures });
    if args.json {
        super::print_json(&report);
    } else {
        let mut table = table::Table::default();
        table.row(
            "produce MB/s (naive append)",
            format!("{append:.0}"),
            format!("{naive_append:.0}"),
            append / naive_append,
        );
        table.row(
            "read MB/s, thread per shard (naive read)",
            format!("{read:.0}"),
            format!("{naive_read_mbps:.0}"),
            read / naive_read_mbps,
        );
        table.row(
            "read MB/s, one thread (naive read)",
            format!("{read_one_thread_mbps:.0}"),
            format!("{naive_read_mbps:.0}"),
            read_one_thread_mbps / naive_read_mbps,
        );
        table.row(
            "zstd produce MB/s (naive append)",
            format!("{zstd_append:.0}"),
            format!("{naive_append:.0}"),
            zstd_append / naive_append,
        );
        table.row(
            "zstd bytes on disk (naive file)",
            format!("{zstd_disk}"),
            format!("{naive_size}"),
            zstd_disk as f64 / naive_size as f64,
        );
        for run in [&durable.run, &durable.small_puts] {
            let puts = run.records_per_put;
            table.row(
                &format!("durable MB/s, puts of {puts} (1 MiB fdatasync loop)"),
                format!("{:.0}", run.mb_per_s),
                format!("{:.0}", durable.fdatasync_mb_per_s),
                durable.bandwidth_ratio(run),
            );
            table.row(
                &format!("durable p99 ms, puts of {puts} (fdatasync p50)"),
                format!("{:.2}", run.put_p99.as_secs_f64() * 1e3),
                format!("{:.2}", durable.fdatasync_p50.as_secs_f64() * 1e3),
                durable.p99_ratio(run),
            );
            if durable.small_puts.records_per_put == durable.run.records_per_put {
                break;
            }
        }
        table.row(
            "consume records/s, no-op function (get_records)",
            format!("{:.0}", consumed.no_op_records_per_s),
            format!("{:.0}", consumed.get_records_per_s),
            consumed.no_op_records_per_s / consumed.get_records_per_s,
        );
        table.row(
            "consume records/s, poison pipeline (get_records)",
            format!("{consume_rps:.0}"),
            format!("{:.0}", consumed.get_records_per_s),
            consume_rps / consumed.get_records_per_s,
        );
        table.row(
            "clean reopen ms (verify ms)",
            format!("{:.1}", reopen_time.as_secs_f64() * 1e3),
            format!("{:.1}", verify_time.as_secs_f64() * 1e3),
            reopen_time.as_secs_f64() / verify_time.as_secs_f64().max(1e-9),
        );
        print!("{}", table.render());
        println!(
            "after kill -9 of a writer: {} of {} bytes scanned on reopen ({} torn bytes cut), {} records recovered, reopen {:.1} ms",
            killed.bytes_scanned,
            killed.stream_bytes,
            killed.bytes_truncated,
            killed.records_recovered,
            killed.reopen.as_secs_f64() * 1e3
        );
        println!(
            "put-to-invoke latency p50/p99 ms: {:.2}/{:.2} (zero batching window, mapping in this process)",
            latency_p50.as_secs_f64() * 1e3,
            latency_p99.as_secs_f64() * 1e3
        );
        println!(
            "put latency p50/p99/p999 ms: {:.2}/{:.2}/{:.2}; compression {:.1}x; poison records {poison_count} planted, {poison_found} in the destination; peak RSS {} MiB; verify problems {problems}",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            percentile(&latencies, 0.999).as_secs_f64() * 1e3,
            raw_disk as f64 / zstd_disk.max(1) as f64,
            peak_rss_bytes() >> 20
        );
    }
    Ok(if problems == 0 && poison_found == poison_count {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
