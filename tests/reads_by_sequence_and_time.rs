//! Reads agree with a plain in-memory model: from any sequence number, within record and
//! byte limits, across sealed and active segments, raw and compressed; and a time seek finds
//! the first record (in sequence order) stamped at or after the time.

mod common;

use common::*;
use proptest::prelude::*;
use shardlog::format::batch::RecordIn;
use shardlog::format::codec::Compression;
use shardlog::storage::{Durability, Log, ReadLimits, SimDisk};

#[derive(Debug, Clone)]
struct Model {
    timestamps: Vec<i64>,
    data: Vec<Vec<u8>>,
}

fn build(batches: &[(Vec<(i64, usize)>, bool)], compression: Compression) -> (SimDisk, Log, Model) {
    let disk = SimDisk::new();
    let mut options = sim_options(&disk, Durability::None);
    options.compression = compression;
    options.segment_bytes_max = 4096;
    options.index_interval_bytes = 256;
    let log = Log::open(DIR, options).expect("open");
    let mut model = Model {
        timestamps: Vec::new(),
        data: Vec::new(),
    };
    for (records, roll) in batches {
        let datas: Vec<Vec<u8>> = records
            .iter()
            .enumerate()
            .map(|(i, (_, len))| vec![(model.data.len() + i) as u8; *len])
            .collect();
        let input: Vec<RecordIn<'_>> = records
            .iter()
            .zip(&datas)
            .map(|((ts, _), data)| RecordIn {
                timestamp_ms: *ts,
                partition_key: b"pk",
                explicit_hash_key: None,
                data,
            })
            .collect();
        log.append(&input).expect("append");
        model.timestamps.extend(records.iter().map(|(ts, _)| *ts));
        model.data.extend(datas);
        if *roll {
            log.roll().expect("roll");
        }
    }
    (disk, log, model)
}

fn batches() -> impl Strategy<Value = Vec<(Vec<(i64, usize)>, bool)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec((0i64..10_000, 0usize..400), 1..8),
            proptest::bool::weighted(0.1),
        ),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reads_match_the_model(
        batches in batches(),
        zstd: bool,
        queries in proptest::collection::vec((0u64..400, 0usize..50, 1usize..3000), 1..20),
    ) {
        let compression = if zstd { Compression::Zstd { level: 1 } } else { Compression::None };
        let (_disk, log, model) = build(&batches, compression);
        let total = model.data.len() as u64;
        prop_assert_eq!(log.next_sequence(), total);
        for (from, records_max, bytes_max) in queries {
            let got = log.read(from, ReadLimits { records_max, bytes_max }).expect("read");
            // The model: records from `from`, stopping before the record that would pass a
            // limit, but always at least one record if any exists.
            let mut want = Vec::new();
            let mut bytes = 0;
            for seq in from..total {
                let size = model.data[seq as usize].len() + 2;
                if want.len() >= records_max || (!want.is_empty() && bytes + size > bytes_max) {
                    break;
                }
                bytes += size;
                want.push(seq);
            }
            let got_seqs: Vec<u64> = got.iter().map(|r| r.sequence).collect();
            prop_assert_eq!(&got_seqs, &want, "from {} limits {} {}", from, records_max, bytes_max);
            for r in &got {
                prop_assert_eq!(&r.data, &model.data[r.sequence as usize]);
                prop_assert_eq!(r.timestamp_ms, model.timestamps[r.sequence as usize]);
            }
        }
    }

    #[test]
    fn time_seeks_match_the_model(batches in batches(), probes in proptest::collection::vec(-10i64..10_010, 1..30)) {
        let (_disk, log, model) = build(&batches, Compression::None);
        for t in probes {
            let want = model.timestamps.iter().position(|&ts| ts >= t).map_or(model.data.len() as u64, |i| i as u64);
            prop_assert_eq!(log.sequence_at_timestamp(t).expect("seek"), want, "time {}", t);
        }
    }
}

#[test]
fn a_record_larger_than_the_byte_limit_is_still_returned_alone() {
    let disk = SimDisk::new();
    let log = Log::open(DIR, sim_options(&disk, Durability::None)).expect("open");
    let big = vec![7u8; 5000];
    let input = [
        RecordIn {
            timestamp_ms: 1,
            partition_key: b"k",
            explicit_hash_key: None,
            data: &big,
        },
        RecordIn {
            timestamp_ms: 2,
            partition_key: b"k",
            explicit_hash_key: None,
            data: b"small",
        },
    ];
    log.append(&input).expect("append");
    let got = log
        .read(
            0,
            ReadLimits {
                records_max: 10,
                bytes_max: 100,
            },
        )
        .expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data.len(), 5000);
    assert_eq!(
        log.read(
            0,
            ReadLimits {
                records_max: 0,
                bytes_max: 100
            }
        )
        .expect("read"),
        vec![]
    );
    assert_eq!(
        log.read(2, ReadLimits::default())
            .expect("read past the end"),
        vec![]
    );
}
