//! One test per bug found, each naming the bug and how it was found.

mod common;

use std::path::Path;

use common::*;
use shardlog::format::segment::{SegmentHeader, SEGMENT_HEADER_LEN};
use shardlog::storage::{segment_file_name, Durability, Log, SimDisk};

/// Bug: a segment whose creation was torn by a crash, leaving the magic but a zero version
/// byte, made open fail with "format version 0 is not supported" instead of recreating the
/// empty segment. Found by the crash simulation (seed 681, a DiskFull fault during a roll).
/// Fix: a bad header with nothing after it is a torn creation, whatever the error.
#[test]
fn torn_segment_header_is_not_mistaken_for_a_newer_version() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::Always)).expect("open");
    append_numbered(&log, 0, 4).expect("append");
    log.roll().expect("roll");
    drop(log);
    let active = Path::new(DIR).join(segment_file_name(4));
    let header = SegmentHeader {
        base_sequence: 4,
        created_ms: 7,
    }
    .encode();
    for torn in [5usize, 12, SEGMENT_HEADER_LEN - 1] {
        let mut bytes = header[..torn].to_vec();
        bytes.resize(SEGMENT_HEADER_LEN, 0);
        disk.set_contents(&active, &bytes);
        let log = Log::open(DIR, sim_options(&disk, Durability::Always))
            .unwrap_or_else(|e| panic!("torn header of {torn} bytes: {e}"));
        assert_numbered(&read_all(&log), 4);
        assert_eq!(
            append_numbered(&log, 4, 1).expect("append").first_sequence,
            4
        );
        drop(log);
    }
}
