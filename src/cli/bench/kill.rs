//! The kill -9 phase of `shardlog bench`: a `shardlog put-lines` child writes a stream
//! (durability interval, so recovery-point checkpoints are written each second) and is killed
//! with SIGKILL mid-stream; reopening must scan only what came after the last recovery point.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shardlog::storage::Durability;
use shardlog::stream::{Store, StreamConfig};

use super::{dir_bytes, io_failure, Workload};
use crate::cli::Failure;

/// What reopening after the kill found.
pub(super) struct KillNine {
    /// Bytes of the stream's files when it was reopened.
    pub stream_bytes: u64,
    /// Bytes recovery read to validate (after the recovery points), all shards.
    pub bytes_scanned: u64,
    /// Torn bytes it cut off.
    pub bytes_truncated: u64,
    /// Records readable after the reopen.
    pub records_recovered: u64,
    /// Time to reopen the store and the stream.
    pub reopen: Duration,
}

/// How long the child writes before it is killed (or until it was sent the workload's
/// record count, whichever comes first).
const WRITE_FOR: Duration = Duration::from_millis(2500);

pub(super) fn kill_nine(dir: &Path, work: &Workload) -> Result<KillNine, Failure> {
    let data = dir.join("kill9");
    let _ = std::fs::remove_dir_all(&data);
    {
        let store = Store::open(&data)?;
        store.create_stream(
            "crash",
            &StreamConfig {
                shard_count: 4,
                durability: Durability::Interval(Duration::from_millis(100)),
                ..Default::default()
            },
        )?;
    }
    let exe = std::env::current_exe().map_err(|e| io_failure("find the shardlog binary", e))?;
    let mut child = Command::new(exe)
        .arg("--data-dir")
        .arg(&data)
        // Every payload shape has its record id as a top-level string.
        .args(["put-lines", "crash", "--partition-key-field", "id"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io_failure("start put-lines", e))?;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(Failure::usage("bench: put-lines has no stdin"));
    };
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < WRITE_FOR && i < work.count {
        let mut line = work.record(i);
        line.push(b'\n');
        if stdin.write_all(&line).is_err() {
            break;
        }
        i += 1;
    }
    // Give a short run a moment to be read and written, then SIGKILL it: no close, no final
    // checkpoint, whatever it was doing.
    std::thread::sleep(Duration::from_millis(200));
    child.kill().map_err(|e| io_failure("kill put-lines", e))?;
    let _ = child.wait();
    drop(stdin);

    let stream_bytes = dir_bytes(&data);
    let started = Instant::now();
    let store = Store::open(&data)?;
    let stream = store.stream("crash")?;
    let reopen = started.elapsed();
    let reports = stream.recovery_reports();
    let bytes_scanned = reports.iter().map(|(_, r)| r.bytes_scanned).sum();
    let bytes_truncated = reports.iter().map(|(_, r)| r.bytes_truncated).sum();
    let records_recovered = stream.verify()?.iter().map(|(_, r)| r.records).sum::<u64>();
    if records_recovered == 0 {
        // A phase that wrote nothing would report a perfect recovery of nothing.
        return Err(Failure::usage(
            "bench: the killed put-lines wrote no record (it failed before the kill)",
        ));
    }
    Ok(KillNine {
        stream_bytes,
        bytes_scanned,
        bytes_truncated,
        records_recovered,
        reopen,
    })
}
