//! The consumer phases of `shardlog bench`: records/s through an event source mapping (with
//! planted poison records isolated by bisect into a failure file) and the latency from an
//! acknowledged put to the start of its invocation.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardlog::consumer::{
    CheckpointStore, Destination, EsmConfig, EventBatch, EventSourceMapping, Function, Invocation,
    MappingOptions,
};
use shardlog::storage::{Durability, RealFs};
use shardlog::stream::{PutRecordsEntry, Store, Stream, StreamConfig, GET_RECORDS_LIMIT_MAX};

use super::read::{read_every_shard, Readers};
use super::{io_failure, percentile, POISON_KEY};
use crate::cli::Failure;

/// What the consume phase measured.
pub(super) struct Consumed {
    /// Records/s through the pipeline's mapping: bisect, a failure file, and an in-process
    /// function that fails batches holding a poison record.
    pub records_per_s: f64,
    /// Records/s through a mapping whose typed in-process function does nothing (best run).
    pub no_op_records_per_s: f64,
    /// Records/s when the function takes the Lambda event JSON (a no-op otherwise).
    pub json_records_per_s: f64,
    /// Failure records the poison records produced.
    pub poison_found: usize,
    /// The baseline (best run): records/s of a bare get_records loop per shard, one thread per shard as
    /// the mapping has, pages of 10,000 records (the largest, so the fastest loop; the
    /// mapping polls pages that large too, whatever its BatchSize).
    pub get_records_per_s: f64,
}

/// The bench's function: fails any batch holding a poison record, succeeds otherwise. In
/// process it reads the records' keys; given JSON (as an out-of-process handler would be),
/// it searches the event.
struct PoisonDetector;

impl Function for PoisonDetector {
    fn invoke(&self, _lane: usize, event: &str) -> Invocation {
        verdict(event.contains(&format!("\"partitionKey\":\"{POISON_KEY}-")))
    }

    fn invoke_batch(&self, _lane: usize, batch: &EventBatch<'_>) -> Invocation {
        verdict(
            batch
                .records()
                .any(|r| r.partition_key.starts_with(POISON_KEY)),
        )
    }
}

fn verdict(poisoned: bool) -> Invocation {
    if poisoned {
        Invocation::FunctionError("poison record".into())
    } else {
        Invocation::Returned(None)
    }
}

fn mapping(
    batch_size: usize,
    dir: &Path,
    name: &str,
    stream: &Arc<Stream>,
    function: Arc<dyn Function>,
    destination: Destination,
) -> Result<EventSourceMapping, Failure> {
    let checkpoints = Arc::new(CheckpointStore::open(
        dir.join("mappings").join(name).join("checkpoints"),
        Arc::new(RealFs),
    )?);
    let config = EsmConfig::from_json(&format!(
        r#"{{"StartingPosition":"TRIM_HORIZON","BatchSize":{batch_size},"BisectBatchOnFunctionError":true,"MaximumRetryAttempts":0}}"#
    ))?;
    let options = MappingOptions {
        name: name.into(),
        poll_interval: Duration::from_millis(1),
        retry_backoff_base: Duration::ZERO,
        ..Default::default()
    };
    Ok(EventSourceMapping::new(
        config,
        stream.clone(),
        function,
        destination,
        checkpoints,
        options,
    )?)
}

/// Runs of the no-op mapping and of the get_records baseline; each side keeps its fastest,
/// as each read phase keeps the fastest of its three. They alternate, so a slow spell of the
/// machine does not fall on one side only.
const CONSUME_RUNS: usize = 3;

/// A typed in-process function that does nothing: what the target's ratio is defined with,
/// so the ratio measures the mapping's own cost.
struct NoOp;

impl Function for NoOp {
    fn invoke(&self, _lane: usize, _event: &str) -> Invocation {
        Invocation::Returned(None)
    }

    fn invoke_batch(&self, _lane: usize, _batch: &EventBatch<'_>) -> Invocation {
        Invocation::Returned(None)
    }
}

/// Records/s of one whole-stream run of a fresh mapping.
fn run_mapping(mapping: &EventSourceMapping) -> Result<f64, Failure> {
    let started = Instant::now();
    let consumed = mapping.run_until_idle()?;
    Ok(consumed.totals.polled_event_count as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Consumes the whole stream: [`CONSUME_RUNS`] times with a no-op typed function,
/// alternating with the get_records baseline (the ratio); once through the pipeline's
/// poison detector with bisect and a failure file; once with a no-op function that takes the
/// event JSON. Each run is a fresh mapping from TRIM_HORIZON.
pub(super) fn consume(
    dir: &Path,
    stream: &Arc<Stream>,
    batch_size: usize,
) -> Result<Consumed, Failure> {
    let (mut no_op_records_per_s, mut get_records_per_s) = (0f64, 0f64);
    for run in 0..CONSUME_RUNS {
        get_records_per_s = get_records_per_s.max(
            read_every_shard(stream, GET_RECORDS_LIMIT_MAX, Readers::ThreadPerShard)?
                .records_per_s(),
        );
        let name = format!("bench-no-op-{run}");
        let no_op = mapping(
            batch_size,
            dir,
            &name,
            stream,
            Arc::new(NoOp),
            Destination::None,
        )?;
        no_op_records_per_s = no_op_records_per_s.max(run_mapping(&no_op)?);
    }

    let failures = dir.join("failures.jsonl");
    let _ = std::fs::remove_file(&failures);
    let detector = mapping(
        batch_size,
        dir,
        "bench",
        stream,
        Arc::new(PoisonDetector),
        Destination::file(&failures),
    )?;
    let records_per_s = run_mapping(&detector)?;
    let poison_found = std::fs::read_to_string(&failures)
        .map(|t| t.lines().count())
        .unwrap_or(0);

    let json = mapping(
        batch_size,
        dir,
        "bench-json",
        stream,
        Arc::new(|_: &str| Invocation::Returned(None)),
        Destination::None,
    )?;
    let json_records_per_s = run_mapping(&json)?;
    Ok(Consumed {
        records_per_s,
        no_op_records_per_s,
        json_records_per_s,
        poison_found,
        get_records_per_s,
    })
}

/// Latency from an acknowledged put to the start of its invocation, zero batching window,
/// the mapping in this process (pollers wake on append).
pub(super) fn put_to_invoke_latency(store: &Store) -> Result<(Duration, Duration), Failure> {
    use std::sync::atomic::AtomicBool;
    let stream = store.create_stream(
        "bench-latency",
        &StreamConfig {
            durability: Durability::None,
            ..Default::default()
        },
    )?;
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let tx = std::sync::Mutex::new(tx);
    let function = move |_: &str| {
        let _ = tx.lock().map(|t| t.send(Instant::now()));
        Invocation::Returned(None)
    };
    let dir = tempfile::tempdir().map_err(|e| io_failure("tempdir", e))?;
    let checkpoints = Arc::new(CheckpointStore::open(
        dir.path().join("checkpoints"),
        Arc::new(RealFs),
    )?);
    let config = EsmConfig::from_json(r#"{"StartingPosition":"LATEST","BatchSize":1}"#)?;
    let mapping = EventSourceMapping::new(
        config,
        stream.clone(),
        Arc::new(function),
        Destination::None,
        checkpoints,
        MappingOptions::default(),
    )?;
    let stop = AtomicBool::new(false);
    let mut latencies = Vec::new();
    std::thread::scope(|scope| -> Result<(), Failure> {
        let runner = scope.spawn(|| mapping.run(&stop));
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..200 {
            let entry = PutRecordsEntry {
                data: format!("{i}").into_bytes(),
                partition_key: "k".into(),
                explicit_hash_key: None,
            };
            stream.put_record(entry, None)?;
            let acknowledged = Instant::now();
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(invoked) => latencies.push(invoked.saturating_duration_since(acknowledged)),
                Err(_) => break,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        stream.wake_consumers();
        runner
            .join()
            .map_err(|_| Failure::usage("bench: the mapping panicked"))??;
        Ok(())
    })?;
    latencies.sort();
    Ok((percentile(&latencies, 0.5), percentile(&latencies, 0.99)))
}
