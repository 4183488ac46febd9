//! A real process crash: a child process appends and prints each acknowledged sequence
//! number; the parent kills it with SIGKILL at random moments. After every kill, reopening
//! must show every acknowledged record, intact and in order, and the directory lock must have
//! refused the parent while the child lived. In `Always` mode, and in `None` mode, where a
//! kill may land between a roll and its seal (which writes the rolled segment's index file):
//! a process crash loses nothing acknowledged in any mode, and the reopened log verifies.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use shardlog::storage::{Durability, Log, LogOptions, SimRng};
use shardlog::Error;

const ROUNDS: u64 = 60;

/// The mode under test, passed to the child in `SHARDLOG_CRASH_DURABILITY`.
fn options_for(durability: Durability) -> LogOptions {
    LogOptions {
        durability,
        segment_bytes_max: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogOptions::default()
    }
}

fn options() -> LogOptions {
    options_for(Durability::Always)
}

fn child_options() -> LogOptions {
    match std::env::var("SHARDLOG_CRASH_DURABILITY").as_deref() {
        Ok("none") => options_for(Durability::None),
        _ => options(),
    }
}

/// The child: appends numbered batches forever, printing the last acknowledged sequence.
#[test]
#[ignore = "helper process spawned by sigkill_never_loses_acknowledged_records"]
fn helper_append_until_killed() {
    let dir = std::env::var("SHARDLOG_CRASH_DIR").expect("run only by the crash test");
    let log = Log::open(&dir, child_options()).expect("child open");
    let mut next = log.next_sequence();
    let stdout = std::io::stdout();
    let mut rng = SimRng::new(next);
    loop {
        let count = 1 + rng.below(20);
        let appended = append_numbered(&log, next, count).expect("child append");
        next = appended.last_sequence + 1;
        let mut out = stdout.lock();
        writeln!(out, "{}", appended.last_sequence).expect("print");
        out.flush().expect("flush");
    }
}

#[test]
fn sigkill_never_loses_acknowledged_records() {
    let dir = kill_rounds(ROUNDS, Durability::Always);
    assert!(Path::new(dir.path()).join("checkpoint").exists());
}

/// Kills during deferred seals: the reopened log holds every acknowledged record and
/// verifies (every sealed segment's index file whole, or rebuilt by recovery).
#[test]
fn sigkill_between_rolls_and_their_seals_leaves_a_log_that_verifies() {
    kill_rounds(ROUNDS / 2, Durability::None);
}

/// Runs `rounds` child-and-kill rounds in one directory, checking each reopen.
fn kill_rounds(rounds: u64, durability: Durability) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mode = if durability == Durability::None {
        "none"
    } else {
        "always"
    };
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = SimRng::new(0x5eed);
    let mut acked_max: Option<u64> = None;
    let mut truncated_rounds = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "helper_append_until_killed",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SHARDLOG_CRASH_DIR", dir.path())
            .env("SHARDLOG_CRASH_DURABILITY", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let acks = Arc::new(Mutex::new(Vec::<u64>::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = acks.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(seq) = line.trim().parse::<u64>() {
                    sink.lock().unwrap().push(seq);
                }
            }
        });
        // Wait for the child's first acknowledgement, then let it run a random while.
        for _ in 0..2000 {
            if !acks.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if round == 0 {
            match Log::open(dir.path(), options_for(durability)) {
                Err(Error::Locked { path, holder_pid }) => {
                    assert_eq!(path, dir.path());
                    assert_eq!(holder_pid, Some(child.id()), "the refusal names the holder");
                }
                other => panic!("second writer must be refused while the child runs: {other:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader thread");
        let acked = acks.lock().unwrap().clone();
        assert!(
            !acked.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        assert!(acked.windows(2).all(|w| w[0] < w[1]));
        acked_max = acked.last().copied().max(acked_max);

        let log = Log::open(dir.path(), options_for(durability)).expect("reopen after SIGKILL");
        truncated_rounds += u64::from(log.recovery_report().bytes_truncated > 0);
        let records = read_all(&log);
        let must_have = acked_max.expect("acks") + 1;
        assert!(
            records.len() as u64 >= must_have,
            "round {round}: {} records after reopen, {must_have} were acknowledged",
            records.len()
        );
        assert_numbered(&records, records.len() as u64);
        let verified = log.verify();
        assert!(
            verified.is_ok(),
            "round {round}: {:?}; {:?}",
            verified.problems,
            log.recovery_report()
        );
        drop(log);
    }
    eprintln!("{rounds} SIGKILL rounds ({mode}), {truncated_rounds} of them recovered a torn tail; last acknowledged sequence {acked_max:?}");
    dir
}
