//! The active segment rolls when the next batch would pass `segment_bytes_max` and when it is
//! older than `segment_age_max`; a batch larger than a whole segment gets a segment of its
//! own; sealed segments end in a footer and reads cross them seamlessly.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use shardlog::format::segment::SegmentFooter;
use shardlog::storage::{Durability, Log, SimDisk};

#[test]
fn segments_roll_before_passing_their_size() {
    let disk = SimDisk::new();
    let options = sim_options(&disk, Durability::None);
    let max = options.segment_bytes_max as usize;
    let log = Log::open(DIR, options).expect("open");
    let mut n = 0;
    while log.segment_count() < 6 {
        append_numbered(&log, n, 7).expect("append");
        n += 7;
    }
    let files = segment_files(&disk, Path::new(DIR));
    for sealed in &files[..files.len() - 1] {
        let bytes = disk.contents(sealed).expect("segment");
        assert!(
            bytes.len() - 64 <= max,
            "{} holds {} bytes",
            sealed.display(),
            bytes.len()
        );
        assert!(
            SegmentFooter::decode(&bytes[bytes.len() - 64..]).is_ok(),
            "sealed with a footer"
        );
    }
    assert_numbered(&read_all(&log), n);
}

#[test]
fn segments_roll_by_age_at_the_next_append() {
    let disk = SimDisk::new();
    let clock = ManualClock::at(10_000);
    let mut options = sim_options(&disk, Durability::None);
    options.clock = clock.clock();
    options.segment_age_max = Some(Duration::from_secs(60));
    let log = Log::open(DIR, options).expect("open");
    append_numbered(&log, 0, 1).expect("append");
    clock.set(10_000 + 59_999);
    append_numbered(&log, 1, 1).expect("append");
    assert_eq!(log.segment_count(), 1, "not old enough yet");
    clock.set(10_000 + 60_000);
    append_numbered(&log, 2, 1).expect("append");
    assert_eq!(log.segment_count(), 2, "rolled at 60 s");
    append_numbered(&log, 3, 1).expect("append");
    assert_eq!(log.segment_count(), 2, "the new segment is young");
    assert_numbered(&read_all(&log), 4);
}

#[test]
fn a_batch_larger_than_a_segment_gets_its_own() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    append_numbered(&log, 0, 2).expect("append");
    append_numbered(&log, 2, 200).expect("a batch of ~30 KiB into 16 KiB segments");
    append_numbered(&log, 202, 2).expect("append");
    assert_eq!(log.segment_count(), 3);
    assert_numbered(&read_all(&log), 204);
}
