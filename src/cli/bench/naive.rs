//! The baselines of `shardlog bench`: the naive file (a buffered file of length-prefixed,
//! CRC-checked records, written and read by one thread) and the fdatasync loops.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{io_failure, mbps, percentile, Workload};
use crate::cli::Failure;

/// The naive baseline: a buffered file of length-prefixed, CRC-checked records. Returns the
/// time of its write, of its read (the faster of [`READ_RUNS`]) and its size.
pub(super) fn naive(path: &Path, work: &Workload) -> Result<(Duration, Duration, u64), Failure> {
    let write = naive_write(path, work)?;
    let read = best_of(READ_RUNS, || naive_read(path, work))?;
    let size = std::fs::metadata(path)
        .map_err(|e| io_failure("naive stat", e))?
        .len();
    Ok((write, read, size))
}

/// Writes the naive file (replacing it) and returns the time that took; then writes it back
/// (untimed), as the stream is before it is read, so that no later phase competes with its
/// writeback.
pub(super) fn naive_write(path: &Path, work: &Workload) -> Result<Duration, Failure> {
    // A file left by the first run goes before the clock starts: truncating a gigabyte
    // (freeing its page cache and, on a file system mounted with `discard`, its blocks) made
    // the second run 35% slower than the first.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_failure("naive remove", e))
        }
        _ => {}
    }
    let started = Instant::now();
    let file = File::create(path).map_err(|e| io_failure("naive create", e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut r = Vec::with_capacity(work.size);
    for i in 0..work.count {
        // Built in a buffer reused for every record, as the stream's producers build theirs.
        r.clear();
        work.record_into(i, &mut r);
        let r = &r;
        out.write_all(&(r.len() as u32).to_le_bytes())
            .and_then(|()| out.write_all(&crc32fast::hash(r).to_le_bytes()))
            .and_then(|()| out.write_all(r))
            .map_err(|e| io_failure("naive write", e))?;
    }
    out.flush().map_err(|e| io_failure("naive flush", e))?;
    let write = started.elapsed();
    out.get_ref()
        .sync_data()
        .map_err(|e| io_failure("naive sync", e))?;
    Ok(write)
}

/// Times each read phase this many times and keeps the fastest, for the naive file and the
/// stream alike: one run is at the mercy of whatever else the machine does.
pub(super) const READ_RUNS: usize = 3;

/// The fastest of `runs` timings of `run`.
fn best_of(
    runs: usize,
    mut run: impl FnMut() -> Result<Duration, Failure>,
) -> Result<Duration, Failure> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        best = best.min(run()?);
    }
    Ok(best)
}

/// Reads the naive file back, checking every record's CRC.
fn naive_read(path: &Path, work: &Workload) -> Result<Duration, Failure> {
    let started = Instant::now();
    let mut input = BufReader::with_capacity(
        1 << 20,
        File::open(path).map_err(|e| io_failure("naive open", e))?,
    );
    let (mut header, mut buf, mut count) = ([0u8; 8], Vec::new(), 0usize);
    while input.read_exact(&mut header).is_ok() {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        buf.resize(len, 0);
        input
            .read_exact(&mut buf)
            .map_err(|e| io_failure("naive read", e))?;
        if crc32fast::hash(&buf) != crc {
            return Err(Failure::usage("bench: naive baseline read a bad CRC"));
        }
        count += 1;
    }
    if count != work.count {
        return Err(Failure::usage("bench: naive baseline lost records"));
    }
    Ok(started.elapsed())
}

/// A 1 MiB write + fdatasync loop, and the median latency of a 4 KiB write + fdatasync.
pub(super) fn fdatasync_baseline(dir: &Path) -> Result<(f64, Duration), Failure> {
    let path = dir.join("fdatasync.bin");
    let mut file = File::create(&path).map_err(|e| io_failure("fdatasync create", e))?;
    let block = vec![0x5au8; 1 << 20];
    let started = Instant::now();
    for _ in 0..64 {
        file.write_all(&block)
            .and_then(|()| file.sync_data())
            .map_err(|e| io_failure("fdatasync", e))?;
    }
    let bandwidth = mbps(64 << 20, started.elapsed());
    let small = vec![0xa5u8; 4096];
    let mut latencies: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let _ = file.write_all(&small).and_then(|()| file.sync_data());
            t.elapsed()
        })
        .collect();
    latencies.sort();
    let _ = std::fs::remove_file(&path);
    Ok((bandwidth, percentile(&latencies, 0.5)))
}
