//! What `stream_model` compares: a shard read back against the model's expected records.

use super::stream_model::Expected;
use crate::stream::{SequenceNumber, ShardDescription, ShardIteratorType, Stream};

pub(super) fn list(stream: &Stream) -> Vec<ShardDescription> {
    match stream.list_shards() {
        Ok(list) => list,
        Err(e) => panic!("list_shards must work: {e}"),
    }
}

pub(super) fn range_of(shard: &ShardDescription) -> Option<(u128, u128)> {
    let start = shard.hash_key_range.starting_hash_key.parse().ok()?;
    let end = shard.hash_key_range.ending_hash_key.parse().ok()?;
    Some((start, end))
}

pub(super) fn parse_sequence(text: &str) -> u128 {
    match SequenceNumber::parse(text, "SequenceNumber") {
        Ok(sequence) => sequence.to_string().parse().unwrap_or_default(),
        Err(e) => panic!("a sequence number the stream returned must parse: {e}"),
    }
}

/// A record as read back, reduced to what the model compares.
pub(super) struct Got {
    pub sequence_number: String,
    pub approximate_arrival_timestamp_ms: i64,
    pub partition_key: String,
    pub data: Vec<u8>,
}

pub(super) fn read_shard(
    stream: &Stream,
    shard_id: &str,
    kind: &ShardIteratorType,
) -> crate::Result<Vec<Got>> {
    let mut out = Vec::new();
    let mut iterator = stream.get_shard_iterator(shard_id, kind)?;
    loop {
        let page = stream.get_records(&iterator, 10_000)?;
        let empty = page.records.is_empty();
        out.extend(page.records.into_iter().map(|r| Got {
            sequence_number: r.sequence_number.to_string(),
            approximate_arrival_timestamp_ms: r.approximate_arrival_timestamp_ms,
            partition_key: r.partition_key.to_string(),
            data: r.data.to_vec(),
        }));
        match page.next_shard_iterator {
            Some(next) if !empty => iterator = next,
            _ => return Ok(out),
        }
    }
}

/// What a shard returned must be the model's records in order, where only these may be
/// missing: at the front, records retention allows to go; anywhere, records whose put failed
/// on an I/O fault; after a crash, at the back, records that were never synced.
pub(super) fn check_shard(shard_id: &str, got: &[Got], expected: &[Expected], after_crash: bool) {
    let mut next = 0;
    for (i, record) in got.iter().enumerate() {
        let sequence = parse_sequence(&record.sequence_number);
        loop {
            let Some(model) = expected.get(next) else {
                panic!("{shard_id} returned {sequence}, which was never put or is out of order");
            };
            next += 1;
            let same = record.data == model.data
                && record.partition_key == model.partition_key
                && (model.in_doubt || model.sequence == sequence);
            if same {
                if !model.in_doubt {
                    assert!(
                        record.approximate_arrival_timestamp_ms == model.arrival_ms,
                        "{shard_id}: the arrival time of {sequence} changed"
                    );
                }
                break;
            }
            let may_be_missing = model.in_doubt || (i == 0 && model.expirable);
            assert!(
                may_be_missing,
                "{shard_id} lost record {} before {sequence}",
                model.sequence
            );
        }
    }
    for missing in expected.iter().skip(next) {
        let may_be_missing = missing.in_doubt
            || (after_crash && !missing.durable)
            || (got.is_empty() && missing.expirable);
        assert!(
            may_be_missing,
            "{shard_id} lost acknowledged record {} ({} bytes){}",
            missing.sequence,
            missing.data.len(),
            if after_crash { " in a crash" } else { "" }
        );
    }
}
