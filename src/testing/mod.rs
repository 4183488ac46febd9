//! Harnesses shared by the fuzz targets (`fuzz/`) and the tests that replay every input the
//! fuzzers ever crashed on (`tests/fuzz_regressions.rs`). Each takes arbitrary bytes and
//! panics only when an invariant of shardlog breaks; that panic is the finding.

use std::path::Path;
use std::sync::Arc;

use crate::format::batch::{
    decode_batch, encode_batch, RecordIn, BATCH_BYTES_MAX, BATCH_HEADER_LEN, CRC_OFFSET,
    LENGTH_OFFSET, VERSION_OFFSET,
};
use crate::format::codec::{CodecId, Compression, DecodeScratch, EncodeScratch};
use crate::format::le;
use crate::storage::{
    Clock, Durability, Log, LogOptions, ReadLimits, Record, SimDisk, CHECKPOINT_FILE,
};

/// Decodes arbitrary bytes as a batch; a batch that decodes must re-encode to the same
/// records, and (when stored raw) to the same bytes. The bytes are tried as given and again
/// with the length and checksum fields made to fit, so a fuzzer's mutations reach the record
/// parser and the decompressor instead of stopping at the checksum.
pub fn decode_batch_round_trip(data: &[u8]) {
    check_decoded(data);
    if data.len() >= BATCH_HEADER_LEN && data.len() <= BATCH_BYTES_MAX {
        let mut fitted = data.to_vec();
        le::put_at(
            &mut fitted,
            LENGTH_OFFSET,
            &(data.len() as u32).to_le_bytes(),
        );
        let crc = crc32fast::hash(fitted.get(VERSION_OFFSET..).unwrap_or_default());
        le::put_at(&mut fitted, CRC_OFFSET, &crc.to_le_bytes());
        check_decoded(&fitted);
    }
}

fn check_decoded(data: &[u8]) {
    let mut scratch = DecodeScratch::default();
    let Ok(view) = decode_batch(data, &mut scratch) else {
        return;
    };
    let header = *view.header();
    let records: Vec<_> = view.records().collect();
    assert_eq!(records.len(), header.record_count as usize);
    let input: Vec<RecordIn<'_>> = records
        .iter()
        .map(|r| RecordIn {
            timestamp_ms: r.timestamp_ms,
            partition_key: r.partition_key,
            explicit_hash_key: r.explicit_hash_key,
            data: r.data,
        })
        .collect();
    let mut out = Vec::new();
    let encoded = encode_batch(
        &mut out,
        &mut EncodeScratch::default(),
        header.base_sequence,
        &input,
        Compression::None,
        header.aggregated,
    );
    assert!(
        encoded.is_ok(),
        "a decoded batch must re-encode: {encoded:?}"
    );
    if header.codec == CodecId::None {
        assert!(
            data.get(..header.length as usize) == Some(out.as_slice()),
            "a raw batch must re-encode to the same bytes"
        );
    }
    let mut again_scratch = DecodeScratch::default();
    let again = decode_batch(&out, &mut again_scratch);
    assert!(again.is_ok(), "re-encoded batch must decode");
    if let Ok(again) = again {
        assert!(
            again.records().eq(records.iter().copied()),
            "records survive a re-encode"
        );
    }
}

const FUZZ_DIR: &str = "/fuzz/log";

fn fuzz_options(disk: &SimDisk) -> LogOptions {
    LogOptions {
        vfs: Arc::new(disk.clone()),
        durability: Durability::None,
        segment_bytes_max: 2048,
        index_interval_bytes: 256,
        clock: Clock::new(|| 1_000_000),
        seal_in_background: false,
        ..LogOptions::default()
    }
}

fn read_everything(log: &Log) -> crate::Result<Vec<Record>> {
    log.read(0, ReadLimits::records(100_000))
}

/// Which file a [`recover_log_with_damage`] input damages, chosen by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    AppendToActive,
    OverwriteActive,
    ReplaceSealed,
    ReplaceIndex,
    ReplaceCheckpoint,
}

/// Builds a small log on a simulated disk, damages one of its files with `data`, and checks
/// that opening never panics, that what it recovers is a prefix of what was written (all of
/// it when only derived data or the tail past the last batch was touched), and that appending
/// afterwards works and survives another reopen.
pub fn recover_log_with_damage(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let damage = match selector % 5 {
        0 => Damage::AppendToActive,
        1 => Damage::OverwriteActive,
        2 => Damage::ReplaceSealed,
        3 => Damage::ReplaceIndex,
        _ => Damage::ReplaceCheckpoint,
    };
    let disk = SimDisk::new();
    let dir = Path::new(FUZZ_DIR);
    let Ok(log) = Log::open(dir, fuzz_options(&disk)) else {
        panic!("a fresh log must open");
    };
    let payloads: Vec<Vec<u8>> = (0..36u8)
        .map(|i| vec![i; 20 + usize::from(i) * 3])
        .collect();
    for chunk in payloads.chunks(3) {
        let records: Vec<RecordIn<'_>> = chunk
            .iter()
            .map(|d| RecordIn {
                timestamp_ms: 1_000_000,
                partition_key: b"key",
                explicit_hash_key: None,
                data: d,
            })
            .collect();
        assert!(log.append(&records).is_ok(), "append to a fresh log");
    }
    let Ok(original) = read_everything(&log) else {
        panic!("a fresh log must read");
    };
    assert!(log.close().is_ok(), "close a fresh log");
    let mut segments: Vec<_> = disk
        .files_in(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let (Some(first), Some(active)) = (segments.first().cloned(), segments.last().cloned()) else {
        panic!("the log has segments");
    };
    assert_ne!(first, active, "the log has a sealed segment");
    match damage {
        Damage::AppendToActive => {
            let mut contents = disk.contents(&active).unwrap_or_default();
            contents.extend_from_slice(bytes);
            disk.set_contents(&active, &contents);
        }
        Damage::OverwriteActive => {
            let mut contents = disk.contents(&active).unwrap_or_default();
            let at = bytes
                .first()
                .map_or(0, |b| usize::from(*b) * contents.len() / 256);
            contents.truncate(at);
            contents.extend_from_slice(bytes.get(1..).unwrap_or_default());
            disk.set_contents(&active, &contents);
        }
        Damage::ReplaceSealed => disk.set_contents(&first, bytes),
        Damage::ReplaceIndex => disk.set_contents(&first.with_extension("idx"), bytes),
        Damage::ReplaceCheckpoint => disk.set_contents(&dir.join(CHECKPOINT_FILE), bytes),
    }
    let Ok(log) = Log::open(dir, fuzz_options(&disk)) else {
        return;
    };
    let Ok(recovered) = read_everything(&log) else {
        return;
    };
    // Verification reads every byte of every file, damaged or not: it reports, never panics.
    let verified = log.verify();
    if let Ok(reader) = crate::storage::LogReader::open(dir, Arc::new(disk.clone())) {
        let _ = reader.verify();
    }
    if damage == Damage::ReplaceIndex {
        // Reading rebuilt a damaged index and wrote it back: nothing is left to report.
        assert!(
            verified.is_ok(),
            "a replaced index is rebuilt: {:?}",
            verified.problems
        );
    }
    match damage {
        // Appended bytes are a torn tail unless they happen to form valid batches.
        Damage::AppendToActive => {
            assert!(
                recovered.starts_with(&original),
                "appended bytes must not lose records"
            );
        }
        // A sealed index is trusted only if its digest matches the footer's.
        Damage::ReplaceIndex => {
            assert!(
                recovered == original,
                "a replaced index must not change the records"
            );
        }
        // A checkpoint is CRC-protected against rot, not against a forger who also matches
        // the index digest, so only the prefix property is promised.
        Damage::OverwriteActive | Damage::ReplaceCheckpoint => {
            assert!(
                original.starts_with(&recovered),
                "recovered records must be a prefix of the written ones"
            );
        }
        Damage::ReplaceSealed => {}
    }
    let next = log.next_sequence();
    let appended = log.append(&[RecordIn {
        timestamp_ms: 2_000_000,
        partition_key: b"after",
        explicit_hash_key: None,
        data: b"recovered",
    }]);
    let Ok(appended) = appended else {
        return;
    };
    assert_eq!(appended.first_sequence, next);
    drop(log);
    let Ok(log) = Log::open(dir, fuzz_options(&disk)) else {
        panic!("a log that opened and appended must reopen");
    };
    let last = log.read(next, ReadLimits::default());
    assert!(
        matches!(&last, Ok(records) if records.first().is_some_and(|r| r.data == b"recovered")),
        "the append after recovery survives a reopen: {last:?}"
    );
}

/// Arbitrary bytes into the KPL de-aggregator: it returns user records or passes the record
/// through whole, as the reference libraries do — never anything else.
pub fn kpl_deaggregate_total(data: &[u8]) {
    use crate::format::kpl::{aggregate, deaggregate, UserRecord};
    let out = deaggregate("outer-key", Some("1"), data);
    match out.as_slice() {
        [single] if !single.aggregated => {
            assert!(single.data == data, "a pass-through keeps the bytes");
            assert!(single.partition_key == "outer-key" && single.sub_sequence_number.is_none());
        }
        records => {
            assert!(records
                .iter()
                .enumerate()
                .all(|(i, r)| r.aggregated && r.sub_sequence_number == Some(i as u64)));
            // What de-aggregates re-aggregates to an aggregate with the same user records.
            let users: Vec<UserRecord> = records
                .iter()
                .map(|r| UserRecord {
                    partition_key: r.partition_key.clone(),
                    explicit_hash_key: r.explicit_hash_key.clone(),
                    data: r.data.clone(),
                })
                .collect();
            let again = deaggregate("outer-key", None, &aggregate(&users));
            assert!(again.len() == records.len() || records.is_empty());
        }
    }
}

/// Arbitrary text as a filter pattern and an event: parsing gives a pattern or a typed
/// error, and matching never panics. The input is split at the first newline.
pub fn filter_pattern_total(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, event) = text.split_once('\n').unwrap_or((&text, "{}"));
    match crate::consumer::Pattern::parse(pattern) {
        Ok(p) => {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(event) {
                let _ = p.matches(&event);
            }
        }
        Err(e) => assert!(
            e.kinesis_name() == "InvalidParameterValueException",
            "typed error: {e}"
        ),
    }
}

mod shard_check;
mod stream_model;
pub use stream_model::stream_model;

mod esm_check;
mod esm_model;
pub use esm_model::esm_model;
