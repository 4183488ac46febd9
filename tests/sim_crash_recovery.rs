//! Deterministic simulation: seeded random workloads on the simulated disk, crashed at random
//! points with every fault kind, in every durability mode. The invariant after each crash:
//! the recovered log is a prefix of what was written, and contains everything that was synced
//! (in `Always` mode: everything acknowledged).
//!
//! `SHARDLOG_SIM_SEEDS=N` runs N seeds (default 10,000); `SHARDLOG_SIM_SEED=S` replays one.

mod common;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::time::Duration;

use common::*;
use shardlog::storage::{CrashMode, Durability, FaultOp, Log, SimDisk, SimRng};
use shardlog::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    DropUnsynced,
    TornPrefix,
    Reorder,
    FailedFsync,
    FailedWrite,
    DiskFull,
}

const FAULTS: [Fault; 6] = [
    Fault::DropUnsynced,
    Fault::TornPrefix,
    Fault::Reorder,
    Fault::FailedFsync,
    Fault::FailedWrite,
    Fault::DiskFull,
];

fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Always => "Always",
        Durability::Interval(_) => "Interval",
        Durability::None => "None",
    }
}

/// Runs one seed; returns the (fault, durability) cell it exercised.
fn run_seed(seed: u64) -> (Fault, &'static str) {
    let mut rng = SimRng::new(seed);
    let durability = match rng.below(3) {
        0 => Durability::Always,
        1 => Durability::Interval(Duration::from_secs(3600)),
        _ => Durability::None,
    };
    let fault = FAULTS[rng.below(FAULTS.len() as u64) as usize];
    let crash_mode = match fault {
        Fault::DropUnsynced => CrashMode::DropUnsynced,
        Fault::Reorder => CrashMode::Reorder,
        _ => CrashMode::TornPrefix,
    };
    let disk = SimDisk::new();
    let mut options = sim_options(&disk, durability);
    options.segment_bytes_max = 2048 + rng.below(4096);
    // `written`: every record that may be in the log, in order. `synced`: how many must be.
    let mut written: u64 = 0;
    let mut synced: u64 = 0;
    for epoch in 0..3 {
        let mut log = Some(
            Log::open(DIR, options.clone())
                .unwrap_or_else(|e| panic!("seed {seed} epoch {epoch}: open failed: {e}")),
        );
        let records = log.as_ref().map(read_all).unwrap_or_default();
        let n = records.len() as u64;
        assert!(
            n >= synced,
            "seed {seed} epoch {epoch}: lost synced records: {n} < {synced}"
        );
        assert!(
            n <= written,
            "seed {seed} epoch {epoch}: invented records: {n} > {written}"
        );
        assert_numbered(&records, n);
        written = n;
        synced = n; // recovery syncs what it keeps
        let ops = 5 + rng.below(40);
        let fault_at = rng.below(ops);
        for op in 0..ops {
            if op == fault_at {
                match fault {
                    Fault::FailedFsync => {
                        let next = disk.calls(FaultOp::Sync) + 1 + rng.below(3);
                        disk.fail_nth(FaultOp::Sync, next, ErrorKind::Other);
                    }
                    Fault::FailedWrite => {
                        let next = disk.calls(FaultOp::Write) + 1 + rng.below(3);
                        disk.fail_nth(FaultOp::Write, next, ErrorKind::Other);
                    }
                    Fault::DiskFull => {
                        let used: u64 = disk
                            .files_in(std::path::Path::new(DIR))
                            .iter()
                            .map(|p| disk.contents(p).map_or(0, |c| c.len() as u64))
                            .sum();
                        disk.set_space_limit(Some(used + rng.below(1500)));
                    }
                    _ => {}
                }
            }
            let Some(open) = log.as_ref() else {
                break;
            };
            let result = match rng.below(12) {
                0 => open.sync().map(|()| synced = written),
                1 => open.roll().map(|()| synced = written),
                // A clean restart: the reopen is clean and complete, and writes nothing until
                // the next change (the crash ending the epoch may come first).
                2 => match log.take().map(Log::close) {
                    Some(Ok(())) => {
                        synced = written;
                        // A planned fault may fail the reopen: the epoch then ends in its crash.
                        Log::open(DIR, options.clone()).map(|reopened| {
                            assert!(
                                reopened.recovery_report().clean_shutdown,
                                "seed {seed} epoch {epoch}: a clean close must reopen clean: {:?}",
                                reopened.recovery_report()
                            );
                            assert_numbered(&read_all(&reopened), written);
                            log = Some(reopened);
                        })
                    }
                    Some(Err(e)) => Err(e),
                    None => Ok(()),
                },
                _ => {
                    let count = 1 + rng.below(5);
                    match append_numbered(open, written, count) {
                        Ok(appended) => {
                            assert_eq!(appended.first_sequence, written, "seed {seed}");
                            written += count;
                            if durability == Durability::Always {
                                synced = written;
                            }
                            Ok(())
                        }
                        Err(e) => {
                            // The failed batch may have reached the disk, whole or torn.
                            if !matches!(e, Error::Poisoned { .. }) {
                                written += count;
                            }
                            Err(e)
                        }
                    }
                }
            };
            if result.is_err() {
                break;
            }
        }
        disk.crash(crash_mode, &mut rng);
        disk.set_space_limit(None);
        drop(log);
    }
    (fault, durability_name(durability))
}

#[test]
fn recovered_log_is_a_synced_prefix_under_every_fault() {
    if let Ok(seed) = std::env::var("SHARDLOG_SIM_SEED") {
        let seed: u64 = seed.parse().expect("SHARDLOG_SIM_SEED is a number");
        run_seed(seed);
        return;
    }
    let seeds: u64 = std::env::var("SHARDLOG_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut matrix: BTreeMap<(Fault, &'static str), u64> = BTreeMap::new();
    for seed in 0..seeds {
        let outcome = std::panic::catch_unwind(|| run_seed(seed));
        match outcome {
            Ok(cell) => *matrix.entry(cell).or_insert(0) += 1,
            Err(_) => panic!(
                "seed {seed} failed; replay with: SHARDLOG_SIM_SEED={seed} cargo test --release --test sim_crash_recovery -- --nocapture"
            ),
        }
    }
    eprintln!("seeds run per fault x durability (each seed: 3 epochs, each ending in a crash):");
    eprintln!(
        "{:<14} {:>8} {:>8} {:>8}",
        "fault", "Always", "Interval", "None"
    );
    for fault in FAULTS {
        let get = |d| matrix.get(&(fault, d)).copied().unwrap_or(0);
        eprintln!(
            "{:<14} {:>8} {:>8} {:>8}",
            format!("{fault:?}"),
            get("Always"),
            get("Interval"),
            get("None")
        );
        for d in ["Always", "Interval", "None"] {
            assert!(seeds < 500 || get(d) > 0, "cell {fault:?} x {d} never ran");
        }
    }
}
