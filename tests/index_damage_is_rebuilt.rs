//! Index files are derived data: missing, truncated, garbage or bit-flipped index files are
//! rebuilt from the segment, and reads by sequence and by time give identical answers.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use shardlog::storage::{Durability, Log, ReadLimits, SimDisk};

fn answers(log: &Log, n: u64) -> Vec<(u64, Vec<u64>)> {
    (0..n)
        .step_by(7)
        .map(|from| {
            let seqs = log
                .read(from, ReadLimits::records(5))
                .expect("read")
                .iter()
                .map(|r| r.sequence)
                .collect();
            let at = log
                .sequence_at_timestamp(1_000_000 + from as i64)
                .expect("time seek");
            (at, seqs)
        })
        .collect()
}

fn setup() -> (SimDisk, u64, Vec<PathBuf>) {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    let mut n = 0;
    while log.segment_count() < 3 {
        append_numbered(&log, n, 2).expect("append");
        n += 2;
    }
    log.close().expect("close");
    let mut indexes: Vec<_> = disk
        .files_in(Path::new(DIR))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    indexes.sort();
    (disk, n, indexes)
}

#[test]
fn missing_truncated_and_garbage_indexes_are_rebuilt() {
    let (disk, n, indexes) = setup();
    let expected = {
        let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
        answers(&log, n)
    };
    for index in &indexes {
        let original = disk.contents(index).expect("index");
        assert!(original.len() >= 24 + 32, "at least one entry");
        let damages: Vec<Option<Vec<u8>>> = vec![
            None,
            Some(original[..original.len() / 2].to_vec()),
            Some(vec![0u8; original.len()]),
            Some((0..original.len()).map(|i| (i * 31) as u8).collect()),
            // Far larger than any index of this segment can be: refused unread.
            Some([original.clone(), vec![0xab; 1 << 20]].concat()),
        ];
        for damage in damages {
            match &damage {
                None => disk.delete(index),
                Some(bytes) => disk.set_contents(index, bytes),
            }
            let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
            assert_eq!(
                answers(&log, n),
                expected,
                "{} damaged: {:?}",
                index.display(),
                damage.as_ref().map(|d| d.len())
            );
            assert_numbered(&read_all(&log), n);
            drop(log);
            disk.set_contents(index, &original);
        }
    }
}

#[test]
fn flipping_any_byte_of_a_sealed_index_leaves_reads_identical() {
    let (disk, n, indexes) = setup();
    let expected = {
        let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
        answers(&log, n)
    };
    let index = &indexes[0];
    let original = disk.contents(index).expect("index");
    for at in 0..original.len() {
        disk.flip_bit(index, at as u64, 0xff);
        let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
        assert_eq!(answers(&log, n), expected, "byte {at} flipped");
        drop(log);
        disk.set_contents(index, &original);
    }
}

#[test]
fn rebuilt_index_is_written_back_by_the_writer() {
    let (disk, _, indexes) = setup();
    let original = disk.contents(&indexes[0]).expect("index");
    disk.delete(&indexes[0]);
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    read_all(&log);
    assert_eq!(disk.contents(&indexes[0]), Some(original));
}
