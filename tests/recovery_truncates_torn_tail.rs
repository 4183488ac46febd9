//! Recovery after the last segment is cut at every byte of its last two batches: the log
//! reopens with exactly the whole batches, reports what it cut, and appends continue at the
//! next sequence number and survive another reopen.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use shardlog::format::batch::peek_header;
use shardlog::format::segment::SEGMENT_HEADER_LEN;
use shardlog::storage::{Durability, Log, SimDisk, CHECKPOINT_FILE};

/// Byte offsets where each batch of a segment ends.
fn batch_ends(segment: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while let Ok(header) = peek_header(&segment[at..]) {
        at += header.length as usize;
        ends.push(at);
    }
    ends
}

fn image(disk: &SimDisk, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    disk.files_in(dir)
        .into_iter()
        .map(|p| {
            let bytes = disk.contents(&p).expect("file");
            (p, bytes)
        })
        .collect()
}

#[test]
fn truncation_at_every_byte_of_the_last_two_batches_keeps_whole_batches() {
    let disk = SimDisk::new();
    let dir = Path::new(DIR);
    let log = Log::open(dir, sim_options(&disk, Durability::None)).expect("open");
    for batch in 0..8 {
        append_numbered(&log, batch * 3, 3).expect("append");
    }
    log.close().expect("close");
    let files = image(&disk, dir);
    let segment_path = segment_files(&disk, dir).pop().expect("segment");
    let segment = disk.contents(&segment_path).expect("segment bytes");
    let ends = batch_ends(&segment);
    assert_eq!(ends.len(), 8, "all batches in one segment");
    assert_eq!(*ends.last().unwrap(), segment.len());

    let first_cut = ends[ends.len() - 3];
    for keep_checkpoint in [true, false] {
        for cut in first_cut..=segment.len() {
            let disk = SimDisk::new();
            for (path, bytes) in &files {
                if path.ends_with(CHECKPOINT_FILE) && !keep_checkpoint {
                    continue;
                }
                let bytes = if *path == segment_path {
                    &bytes[..cut]
                } else {
                    &bytes[..]
                };
                disk.set_contents(path, bytes);
            }
            let whole = ends.iter().filter(|&&end| end <= cut).count() as u64;
            let log = Log::open(dir, sim_options(&disk, Durability::None))
                .unwrap_or_else(|e| panic!("open after cut at {cut}: {e}"));
            let report = log.recovery_report().clone();
            let kept_end = if whole == 0 {
                SEGMENT_HEADER_LEN
            } else {
                ends[whole as usize - 1]
            };
            assert_eq!(
                report.bytes_truncated,
                (cut - kept_end) as u64,
                "cut at {cut}"
            );
            assert_numbered(&read_all(&log), whole * 3);
            let appended = append_numbered(&log, whole * 3, 3).expect("append after recovery");
            assert_eq!(appended.first_sequence, whole * 3, "cut at {cut}");
            drop(log);
            let log = Log::open(dir, sim_options(&disk, Durability::None)).expect("reopen");
            assert_eq!(log.recovery_report().bytes_truncated, 0);
            assert_numbered(&read_all(&log), whole * 3 + 3);
        }
    }
}
