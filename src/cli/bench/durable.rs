//! The durable phase: 8 producer threads put into a stream under `Always` (every put waits
//! for a group commit), against a 1 MiB write + fdatasync loop and a 4 KiB fdatasync's
//! median measured just before. It runs at the bench's batch size, as every other produce
//! phase does, and once more at puts of 100 records, shown beside it: by Little's law the
//! mean put latency is the bytes 8 producers have in flight over the durable bandwidth, so
//! smaller puts trade bandwidth for latency.

use std::path::Path;
use std::time::Duration;

use shardlog::storage::Durability;
use shardlog::stream::{Store, StreamConfig};

use super::naive::fdatasync_baseline;
use super::{mbps, percentile, produce, Generation, Workload};
use crate::cli::Failure;

/// Producer threads of the durable phase, as the issue sets them.
const DURABLE_PRODUCERS: usize = 8;
/// Records per put of the phase's second run.
const SMALL_PUT_RECORDS: usize = 100;

/// One run of the durable phase.
#[derive(Debug, Clone, Copy)]
pub(super) struct DurableRun {
    pub(super) records_per_put: usize,
    pub(super) mb_per_s: f64,
    pub(super) put_p50: Duration,
    pub(super) put_p99: Duration,
}

/// What the durable phase measured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Durable {
    /// At the bench's batch size: the run the ratios use.
    pub(super) run: DurableRun,
    /// At puts of [`SMALL_PUT_RECORDS`] (the same run when that is the batch size).
    pub(super) small_puts: DurableRun,
    /// The 1 MiB write + fdatasync loop.
    pub(super) fdatasync_mb_per_s: f64,
    /// A 4 KiB write + fdatasync's median.
    pub(super) fdatasync_p50: Duration,
}

/// Runs the durable phase on `work`'s records, into streams of `config`'s shape under
/// `Always`; the fdatasync baselines write in `dir`.
pub(super) fn durable_phase(
    dir: &Path,
    store: &Store,
    config: &StreamConfig,
    work: &Workload,
    batch_size: usize,
) -> Result<Durable, Failure> {
    let (fdatasync_mb_per_s, fdatasync_p50) = fdatasync_baseline(dir)?;
    let config = StreamConfig {
        durability: Durability::Always,
        ..config.clone()
    };
    let run_at = |name: &str, records_per_put: usize| -> Result<DurableRun, Failure> {
        let stream = store.create_stream(name, &config)?;
        let (elapsed, latencies) = produce(
            &stream,
            work,
            DURABLE_PRODUCERS,
            records_per_put,
            Generation::Prepared,
        )?;
        Ok(DurableRun {
            records_per_put,
            mb_per_s: mbps(work.payload_bytes(), elapsed),
            put_p50: percentile(&latencies, 0.5),
            put_p99: percentile(&latencies, 0.99),
        })
    };
    let run = run_at("bench-durable", batch_size)?;
    let small_puts = if batch_size == SMALL_PUT_RECORDS {
        run
    } else {
        run_at("bench-durable-small-puts", SMALL_PUT_RECORDS)?
    };
    Ok(Durable {
        run,
        small_puts,
        fdatasync_mb_per_s,
        fdatasync_p50,
    })
}

impl Durable {
    /// Durable bandwidth over the fdatasync loop's.
    pub(super) fn bandwidth_ratio(&self, run: &DurableRun) -> f64 {
        run.mb_per_s / self.fdatasync_mb_per_s.max(1e-9)
    }

    /// Put p99 over a 4 KiB fdatasync's median.
    pub(super) fn p99_ratio(&self, run: &DurableRun) -> f64 {
        run.put_p99.as_secs_f64() / self.fdatasync_p50.as_secs_f64().max(1e-9)
    }
}
