//! The read path of a stream: trim horizons, shard iterators and get_records.

use std::sync::PoisonError;

use bytes::Bytes;
use bytestring::ByteString;

use super::iterator::IteratorToken;
use super::sequence::SequenceNumber;
use super::stream::{range_text, Shard, Stream, StreamState};
use super::types::*;
use crate::error::{Error, Result};
use crate::storage::ReadLimits;

/// Records a get_records page reserves room for before reading (more grow the vector).
const GET_RECORDS_PREALLOCATED_MAX: usize = 4096;

impl Stream {
    fn admit_read(&self, shard: u32, now: i64) -> Result<()> {
        let mut slot = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((limits, meter)) = slot.as_mut() else {
            return Ok(());
        };
        if meter.admit_read(limits, shard, now) {
            return Ok(());
        }
        Err(Error::ProvisionedThroughputExceeded(format!(
            "Rate exceeded for shard {} in stream {} under account {}.",
            shard_id(shard),
            self.name,
            self.options.account
        )))
    }

    fn retention_ms(state: &StreamState) -> u64 {
        state.manifest.retention_ms
    }

    /// Records that arrived before this time (ms since the epoch) are no longer readable:
    /// past the retention period, or expired under a shorter one before it was lengthened.
    pub fn expired_before_ms(&self) -> i64 {
        let state = self.read_state();
        self.expiry_cutoff_ms(&state)
    }

    /// Records that arrived before this time are unreadable: older than the retention period
    /// now, or expired under a shorter retention before it was lengthened.
    pub(super) fn expiry_cutoff_ms(&self, state: &StreamState) -> i64 {
        let retention = i64::try_from(Self::retention_ms(state)).unwrap_or(i64::MAX);
        self.now_ms()
            .saturating_sub(retention)
            .max(state.manifest.expired_before_ms)
    }

    /// The oldest readable log sequence of a shard: past retention deletions and past
    /// records that arrived before the expiry cutoff.
    fn trim_horizon(&self, state: &StreamState, shard: &Shard) -> Result<u64> {
        let cutoff = self.expiry_cutoff_ms(state);
        let by_age = shard.log.sequence_at_timestamp(cutoff)?;
        Ok(by_age.max(shard.log.first_sequence()?))
    }

    fn find_shard<'s>(&self, state: &'s StreamState, shard: &str) -> Result<&'s Shard> {
        parse_shard_id(shard)
            .and_then(|index| state.shards.get(&index))
            .filter(|s| !self.is_expired(state, s))
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "Shard {shard} in stream {} under account {} does not exist",
                    self.name, self.options.account
                ))
            })
    }

    /// Whether a closed shard's data has all passed retention.
    pub(super) fn is_expired(&self, state: &StreamState, shard: &Shard) -> bool {
        let cutoff = self.expiry_cutoff_ms(state);
        shard.meta.closed.is_some_and(|c| c.closed_ms < cutoff)
    }

    /// A shard iterator: an opaque token valid for five minutes.
    pub fn get_shard_iterator(&self, shard: &str, kind: &ShardIteratorType) -> Result<String> {
        self.refresh()?;
        let state = self.read_state();
        let target = self.find_shard(&state, shard)?;
        let index = target.meta.index;
        let end = target.meta.closed.map(|c| c.next_log_sequence);
        let own = |text: &str| -> Result<SequenceNumber> {
            let number = SequenceNumber::parse(text, "startingSequenceNumber")?;
            if number.shard_index() != index {
                return Err(Error::InvalidArgument(format!(
                    "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                    shard_id(number.shard_index()),
                    shard_id(index)
                )));
            }
            Ok(number)
        };
        let position = match kind {
            ShardIteratorType::TrimHorizon => self.trim_horizon(&state, target)?,
            ShardIteratorType::Latest => match end {
                Some(end) => end,
                None => target.log.next_sequence()?,
            },
            ShardIteratorType::AtSequenceNumber(text) => own(text)?.log_sequence(),
            ShardIteratorType::AfterSequenceNumber(text) => {
                own(text)?.log_sequence().saturating_add(1)
            }
            ShardIteratorType::AtTimestamp(ts) => {
                let now = self.now_ms();
                if *ts > now {
                    return Err(Error::InvalidArgument(format!(
                        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {ts}, currentTimestampInMillis: {now}"
                    )));
                }
                target.log.sequence_at_timestamp(*ts)?
            }
        };
        Ok(IteratorToken {
            shard_index: index,
            log_sequence: position,
            issued_ms: self.now_ms(),
        }
        .encode(&self.name))
    }

    /// Reads up to `limit` (1..=10,000) records and 10 MiB from an iterator's position.
    pub fn get_records(&self, iterator: &str, limit: usize) -> Result<GetRecordsOutput> {
        if limit == 0 || limit > GET_RECORDS_LIMIT_MAX {
            return Err(Error::InvalidArgument(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {GET_RECORDS_LIMIT_MAX}"
            )));
        }
        let now = self.now_ms();
        let token = IteratorToken::decode(iterator, &self.name, now)?;
        self.injected_get_failure(token.shard_index)?;
        self.refresh()?;
        let state = self.read_state();
        let shard = self.find_shard(&state, &shard_id(token.shard_index))?;
        self.admit_read(token.shard_index, now)?;
        let end = shard.meta.closed.map(|c| c.next_log_sequence);
        // Sized for a full page up front (bounded): growing by doubling copied it repeatedly.
        let mut records = Vec::with_capacity(limit.min(GET_RECORDS_PREALLOCATED_MAX));
        let mut keys = KeyArena::default();
        let limits = ReadLimits {
            records_max: limit,
            bytes_max: GET_RECORDS_BYTES_MAX,
        };
        let index = token.shard_index;
        // Reads from `from`; with a cutoff, stops at once (returning `true`) if the first record
        // arrived before it.
        let mut read_from = |from: u64, cutoff: Option<i64>| -> Result<(u64, bool)> {
            let mut expired_first = false;
            let next = shard.log.scan(from, limits, |r| {
                if end.is_some_and(|end| r.record.sequence >= end) {
                    return false;
                }
                if cutoff.is_some_and(|c| records.is_empty() && r.record.timestamp_ms < c) {
                    expired_first = true;
                    return false;
                }
                keys.push(r.record.partition_key);
                records.push(KinesisRecord {
                    sequence_number: SequenceNumber::new(index, r.record.sequence),
                    approximate_arrival_timestamp_ms: r.record.timestamp_ms,
                    data: r.data(),
                    partition_key: ByteString::new(),
                });
                true
            })?;
            Ok((next, expired_first))
        };
        // The trim horizon is the first record that arrived at or after the expiry cutoff, so
        // if the first record read arrived at or after it, the horizon is at or before that
        // record and reading from the iterator's position is right. Only a first record older
        // than the cutoff needs the horizon itself, whose timestamp search maps a segment:
        // paying it on every call cost a mapping per page.
        let mut from = token.log_sequence;
        let (mut next, expired_first) = read_from(from, Some(self.expiry_cutoff_ms(&state)))?;
        if expired_first {
            from = from.max(self.trim_horizon(&state, shard)?);
            next = read_from(from, None)?.0;
        }
        keys.assign(&mut records);
        let next = next.max(from);
        let latest = shard.log.next_sequence()?;
        let millis_behind_latest = if next >= latest {
            0
        } else {
            records.last().map_or(0, |r| {
                now.saturating_sub(r.approximate_arrival_timestamp_ms)
                    .max(0) as u64
            })
        };
        let finished = end.is_some_and(|end| next >= end);
        let (next_shard_iterator, child_shards) = if finished {
            (None, children_of(&state, index))
        } else {
            let token = IteratorToken {
                shard_index: index,
                log_sequence: next,
                issued_ms: now,
            };
            (Some(token.encode(&self.name)), Vec::new())
        };
        let bytes: usize = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        if let Some((_, meter)) = self
            .limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            meter.record_read_bytes(index, now, bytes as u64);
        }
        Ok(GetRecordsOutput {
            records,
            next_shard_iterator,
            millis_behind_latest,
            child_shards,
        })
    }

    fn injected_get_failure(&self, shard_index: u32) -> Result<()> {
        let mut slot = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((faults, rng)) = slot.as_mut() else {
            return Ok(());
        };
        let roll = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if roll < faults.get_throttle_rate {
            return Err(Error::ProvisionedThroughputExceeded(format!(
                "Rate exceeded for shard {} in stream {} under account {}.",
                shard_id(shard_index),
                self.name,
                self.options.account
            )));
        }
        Ok(())
    }
}

fn children_of(state: &StreamState, parent: u32) -> Vec<ChildShard> {
    state
        .shards
        .values()
        .filter(|s| s.meta.parent == Some(parent) || s.meta.adjacent_parent == Some(parent))
        .map(|s| ChildShard {
            shard_id: shard_id(s.meta.index),
            parent_shards: s
                .meta
                .parent
                .into_iter()
                .chain(s.meta.adjacent_parent)
                .map(shard_id)
                .collect(),
            hash_key_range: range_text(s.range),
        })
        .collect()
}

/// The partition keys of one page, copied into one buffer while their batch is in cache and
/// shared by the page's records. Slices of the segment instead would cost no copy, but a
/// consumer walking the page then missed the cache once per record to read its key (its
/// mapping's poll took 25% longer); a String per key costs an allocation and a free per
/// record.
#[derive(Default)]
struct KeyArena {
    bytes: Vec<u8>,
    spans: Vec<std::ops::Range<usize>>,
}

impl KeyArena {
    /// Adds the next record's key. Stored keys are UTF-8 (puts validate them); one damaged
    /// past its checksum reads with U+FFFD for invalid sequences rather than failing the page.
    fn push(&mut self, key: &[u8]) {
        let start = self.bytes.len();
        match std::str::from_utf8(key) {
            Ok(_) => self.bytes.extend_from_slice(key),
            Err(_) => self
                .bytes
                .extend_from_slice(String::from_utf8_lossy(key).as_bytes()),
        }
        self.spans.push(start..self.bytes.len());
    }

    /// Gives each record its key, in the order they were pushed.
    fn assign(self, records: &mut [KinesisRecord]) {
        let shared = Bytes::from(self.bytes);
        for (record, span) in records.iter_mut().zip(self.spans) {
            // Each span holds whole UTF-8 (checked in `push`): the fallback is unreachable.
            record.partition_key = ByteString::try_from(shared.slice(span)).unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> KinesisRecord {
        KinesisRecord {
            sequence_number: SequenceNumber::new(0, 0),
            approximate_arrival_timestamp_ms: 0,
            data: Bytes::new(),
            partition_key: ByteString::new(),
        }
    }

    /// Keys come back in order, empty ones included; a key that is not UTF-8 (damage a
    /// checksum did not catch) reads lossily and does not shift the keys after it.
    #[test]
    fn key_arena_assigns_keys_in_order_and_reads_damaged_ones_lossily() {
        let mut arena = KeyArena::default();
        let keys: [&[u8]; 4] = [b"a", b"", b"\xff\xfebad", "ключ".as_bytes()];
        for key in keys {
            arena.push(key);
        }
        let mut records: Vec<KinesisRecord> = (0..4).map(|_| blank()).collect();
        arena.assign(&mut records);
        let read: Vec<&str> = records.iter().map(|r| &r.partition_key[..]).collect();
        assert_eq!(read, ["a", "", "\u{fffd}\u{fffd}bad", "ключ"]);
    }
}
