//! Appends records to a log, closes it, reopens it and reads them back, printing what recovery
//! saw. Run: `cargo run --release --example quickstart [DIR]`.

use std::time::Instant;

use shardlog::format::batch::RecordIn;
use shardlog::storage::{Durability, Log, LogOptions, ReadLimits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("shardlog-quickstart-{}", std::process::id())),
    };
    let options = LogOptions {
        durability: Durability::Always,
        segment_bytes_max: 1024 * 1024,
        ..LogOptions::default()
    };
    let log = Log::open(&dir, options.clone())?;
    println!(
        "opened {} at sequence {}",
        dir.display(),
        log.next_sequence()
    );
    let payload = vec![b'x'; 1000];
    let started = Instant::now();
    let batches = 1000;
    for i in 0..batches {
        let key = format!("user-{}", i % 16);
        let records: Vec<RecordIn<'_>> = (0..10)
            .map(|_| RecordIn {
                timestamp_ms: 1_700_000_000_000 + i,
                partition_key: key.as_bytes(),
                explicit_hash_key: None,
                data: &payload,
            })
            .collect();
        log.append(&records)?;
    }
    let elapsed = started.elapsed();
    println!(
        "appended {} records in {} durable batches: {:.0} batches/s, {} segments",
        batches * 10,
        batches,
        batches as f64 / elapsed.as_secs_f64(),
        log.segment_count()
    );
    log.close()?;

    let log = Log::open(&dir, options)?;
    println!("reopened: {:?}", log.recovery_report());
    let mut from = log.first_sequence();
    let mut total = 0usize;
    loop {
        let records = log.read(from, ReadLimits::records(5000))?;
        let Some(last) = records.last() else { break };
        from = last.sequence + 1;
        total += records.len();
    }
    let at = log.sequence_at_timestamp(1_700_000_000_500)?;
    println!("read back {total} records; first at timestamp +500 ms is sequence {at}");
    log.close()?;
    Ok(())
}
