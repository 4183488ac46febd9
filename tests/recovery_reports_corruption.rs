//! A flipped bit inside a sealed segment is reported as `Corrupt` naming the file and the
//! offset of the damaged batch, never skipped; the same flip in the unsynced tail of the
//! active segment is a torn write: truncated and reported.

mod common;

use std::path::Path;

use common::*;
use shardlog::format::batch::peek_header;
use shardlog::format::segment::SEGMENT_HEADER_LEN;
use shardlog::storage::{CrashMode, Durability, Log, ReadLimits, SimDisk, SimRng};
use shardlog::Error;

fn batch_starts(segment: &[u8], data_end: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while at < data_end {
        starts.push(at);
        at += peek_header(&segment[at..]).expect("valid batch").length as usize;
    }
    starts
}

#[test]
fn bit_flips_in_a_sealed_segment_are_corrupt_at_the_batch_offset() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, sim_options(&disk, Durability::None)).expect("open");
    let mut n = 0;
    while log.segment_count() < 3 {
        append_numbered(&log, n, 4).expect("append");
        n += 4;
    }
    log.close().expect("close");
    let sealed = segment_files(&disk, dir)[0].clone();
    let bytes = disk.contents(&sealed).expect("sealed bytes");
    let data_end = bytes.len() - 64;
    let starts = batch_starts(&bytes, data_end);
    // One flip per batch, at a different byte of each, header and payload alike.
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data_end);
        let offset = start + (i * 37) % (end - start);
        disk.flip_bit(&sealed, offset as u64, 0x10);
        let log = Log::open(dir, sim_options(&disk, Durability::None)).expect("open is lazy");
        match log.read(0, ReadLimits::default()) {
            Err(Error::Corrupt {
                path, offset: at, ..
            }) => {
                assert_eq!(path, sealed);
                assert_eq!(at, start as u64, "flip at {offset} in batch at {start}");
            }
            other => panic!("flip at {offset}: expected Corrupt, got {other:?}"),
        }
        drop(log);
        disk.flip_bit(&sealed, offset as u64, 0x10);
    }
    let log = Log::open(dir, sim_options(&disk, Durability::None)).expect("open");
    assert_numbered(&read_all(&log), n);
}

#[test]
fn bit_flips_in_the_unsynced_tail_are_truncated_and_reported() {
    for flip_in_last in [0u64, 10, 47, 60] {
        let disk = SimDisk::new();
        let dir = Path::new(DIR);
        let log = Log::open(dir, sim_options(&disk, Durability::Always)).expect("open");
        for i in 0..5 {
            append_numbered(&log, i * 2, 2).expect("append");
        }
        // Simulated power loss: every append was synced, so nothing is lost.
        disk.crash(CrashMode::TornPrefix, &mut SimRng::new(flip_in_last));
        drop(log);
        let segment = segment_files(&disk, dir).pop().expect("segment");
        let bytes = disk.contents(&segment).expect("bytes");
        let starts = batch_starts(&bytes, bytes.len());
        let last = *starts.last().expect("batches");
        assert!(disk.flip_bit(&segment, last as u64 + flip_in_last, 0x01));
        let log = Log::open(dir, sim_options(&disk, Durability::Always)).expect("recover");
        let report = log.recovery_report();
        assert_eq!(report.bytes_truncated, (bytes.len() - last) as u64);
        assert_eq!(report.segments_scanned, 1);
        assert_numbered(&read_all(&log), 8);
    }
}

#[test]
fn verify_finds_every_damaged_batch_and_index() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, sim_options(&disk, Durability::None)).expect("open");
    let mut n = 0;
    while log.segment_count() < 4 {
        append_numbered(&log, n, 4).expect("append");
        n += 4;
    }
    let clean = log.verify();
    assert!(clean.is_ok(), "{:?}", clean.problems);
    assert_eq!(clean.records, n);
    assert_eq!(clean.segments, 4);
    drop(log);
    let segments = segment_files(&disk, dir);
    // Damage a batch in two sealed segments and one index.
    disk.flip_bit(&segments[0], 100, 0x04);
    disk.flip_bit(&segments[2], 200, 0x04);
    let index = segments[1].with_extension("idx");
    disk.flip_bit(&index, 30, 0x01);
    let log = Log::open(dir, sim_options(&disk, Durability::None)).expect("open");
    let report = log.verify();
    let found: Vec<String> = report
        .problems
        .iter()
        .map(|e| match e {
            Error::Corrupt { path, .. } => path.file_name().unwrap().to_string_lossy().into_owned(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        found,
        vec![
            segments[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            index.file_name().unwrap().to_string_lossy().into_owned(),
            segments[2]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        ]
    );
}
