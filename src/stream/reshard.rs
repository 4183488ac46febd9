//! Splits, merges and uniform scaling, each committed by one atomic manifest write.
//!
//! A reshard, under the exclusive shard-map lock: (1) roll each parent's log, which seals it
//! and syncs every record it holds; (2) create the children's logs, starting at the parents'
//! next log sequence so every child number is greater than every parent number; (3) write the
//! new manifest — the commit point; (4) swap the in-memory map. A crash before (3) leaves the
//! old manifest in force, and the children's directories are removed as orphans at the next
//! open; a crash after it leaves the new map, whose parents are durable.

use std::sync::Arc;

use super::hash_key::{uniform_ranges, HashKeyRange};
use super::manifest::{ClosedMeta, ShardMeta};
use super::shard_log::ShardLog;
use super::stream::{log_options, shard_dir, Shard, Stream, StreamState};
use super::types::{parse_shard_id, shard_id, SHARDS_PER_STREAM_MAX};
use crate::error::{Error, Result};
use crate::storage::Log;

/// The result of `update_shard_count`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    /// The stream.
    pub stream_name: String,
    /// Open shards before the call.
    pub current_shard_count: u32,
    /// Open shards after it.
    pub target_shard_count: u32,
}

impl Stream {
    fn open_shard(&self, state: &StreamState, shard: &str) -> Result<u32> {
        let index = parse_shard_id(shard)
            .filter(|i| state.shards.contains_key(i))
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "Shard {shard} in stream {} under account {} does not exist",
                    self.name, self.options.account
                ))
            })?;
        let open = state.shards.get(&index).is_some_and(Shard::is_open);
        if !open {
            return Err(Error::InvalidArgument(format!(
                "Shard {} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                shard_id(index),
                self.name,
                self.options.account
            )));
        }
        Ok(index)
    }

    /// Splits an open shard at `new_starting_hash_key` (decimal): the lower child owns the
    /// keys below it, the upper child the rest.
    pub fn split_shard(&self, shard: &str, new_starting_hash_key: &str) -> Result<()> {
        self.check_writer()?;
        let mut state = self.write_state();
        let index = self.open_shard(&state, shard)?;
        let key = super::hash_key::parse_hash_key(new_starting_hash_key).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "NewStartingHashKey {new_starting_hash_key} must be a decimal number in [0, 2^128-1]"
            ))
        })?;
        self.split_locked(&mut state, index, key, true)
    }

    /// `api_rule`: apply SplitShard's own bound (`key > start + 1`); uniform scaling only
    /// needs both children non-empty, since its boundaries may sit one key apart.
    fn split_locked(
        &self,
        state: &mut StreamState,
        index: u32,
        key: u128,
        api_rule: bool,
    ) -> Result<()> {
        let range = state
            .shards
            .get(&index)
            .map(|s| s.range)
            .ok_or_else(|| Error::ResourceNotFound(shard_id(index)))?;
        let valid = if api_rule {
            range.start.checked_add(1).is_some_and(|s1| key > s1) && key < range.end
        } else {
            key > range.start && key <= range.end
        };
        if !valid {
            return Err(Error::InvalidArgument(format!(
                "NewStartingHashKey {key} used in SplitShard() on shard {} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                shard_id(index),
                self.name,
                self.options.account,
                range.start,
                range.end
            )));
        }
        self.check_shard_limit(state, 2)?;
        let lower = HashKeyRange {
            start: range.start,
            end: key - 1,
        };
        let upper = HashKeyRange {
            start: key,
            end: range.end,
        };
        self.reshard(state, &[index], &[lower, upper])
    }

    /// Merges two adjacent open shards into one child owning both ranges.
    pub fn merge_shards(&self, shard: &str, adjacent_shard: &str) -> Result<()> {
        self.check_writer()?;
        let mut state = self.write_state();
        let a = self.open_shard(&state, shard)?;
        let b = self.open_shard(&state, adjacent_shard)?;
        self.merge_locked(&mut state, a, b)
    }

    fn merge_locked(&self, state: &mut StreamState, a: u32, b: u32) -> Result<()> {
        let (Some(ra), Some(rb)) = (
            state.shards.get(&a).map(|s| s.range),
            state.shards.get(&b).map(|s| s.range),
        ) else {
            return Err(Error::ResourceNotFound(shard_id(a)));
        };
        let merged = if ra.is_followed_by(&rb) {
            HashKeyRange {
                start: ra.start,
                end: rb.end,
            }
        } else if rb.is_followed_by(&ra) {
            HashKeyRange {
                start: rb.start,
                end: ra.end,
            }
        } else {
            return Err(Error::InvalidArgument(format!(
                "Shards {} and {} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                shard_id(a),
                shard_id(b),
                self.name,
                self.options.account
            )));
        };
        self.check_shard_limit(state, 1)?;
        self.reshard(state, &[a, b], &[merged])
    }

    fn check_shard_limit(&self, state: &StreamState, adding: u32) -> Result<()> {
        if state.shards.len() as u32 + adding > SHARDS_PER_STREAM_MAX * 2 {
            return Err(Error::LimitExceeded(format!(
                "Stream {} under account {} would exceed the limit of shards",
                self.name, self.options.account
            )));
        }
        Ok(())
    }

    /// Closes `parents` and opens one child per range in `children` (see the module doc).
    fn reshard(
        &self,
        state: &mut StreamState,
        parents: &[u32],
        children: &[HashKeyRange],
    ) -> Result<()> {
        let now = self.now_ms();
        let mut manifest = state.manifest.clone();
        let mut child_start = 0u64;
        let mut closed = Vec::with_capacity(parents.len());
        for &parent in parents {
            let shard = state
                .shards
                .get(&parent)
                .ok_or_else(|| Error::ResourceNotFound(shard_id(parent)))?;
            let log = shard.log.writer()?;
            log.roll()?;
            log.sync()?;
            let next = log.next_sequence();
            child_start = child_start.max(next);
            closed.push((parent, next));
        }
        for (parent, next) in &closed {
            if let Some(meta) = manifest.shards.iter_mut().find(|m| m.index == *parent) {
                meta.closed = Some(ClosedMeta {
                    next_log_sequence: *next,
                    closed_ms: now,
                });
            }
        }
        let mut opened = Vec::with_capacity(children.len());
        for range in children {
            let index = manifest.next_shard_index;
            manifest.next_shard_index += 1;
            let meta = ShardMeta {
                index,
                hash_start: range.start.to_string(),
                hash_end: range.end.to_string(),
                parent: parents.first().copied(),
                adjacent_parent: parents.get(1).copied(),
                first_log_sequence: child_start,
                closed: None,
                created_ms: now,
            };
            let log = Log::open(
                shard_dir(&self.dir, index),
                log_options(&manifest, &meta, &self.options),
            )?;
            manifest.shards.push(meta.clone());
            opened.push(Shard {
                meta,
                range: *range,
                log: Arc::new(ShardLog::Writer(log)),
            });
        }
        self.commit(&manifest)?;
        for (parent, _) in &closed {
            let meta = manifest.shards.iter().find(|m| m.index == *parent).cloned();
            if let (Some(shard), Some(meta)) = (state.shards.get_mut(parent), meta) {
                shard.meta = meta;
            }
        }
        for shard in opened {
            state.shards.insert(shard.meta.index, shard);
        }
        state.manifest = manifest;
        state.reindex();
        Ok(())
    }

    /// Scales to `target` open shards with uniform ranges (`UNIFORM_SCALING`), through splits
    /// and merges, as Kinesis does; may pass through short-lived intermediate shards.
    pub fn update_shard_count(&self, target: u32) -> Result<UpdateShardCountOutput> {
        self.check_writer()?;
        let mut state = self.write_state();
        let current = state.open.len() as u32;
        if target == 0 || target > SHARDS_PER_STREAM_MAX {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{target}' at 'targetShardCount' failed to satisfy constraint: Member must have value between 1 and {SHARDS_PER_STREAM_MAX}"
            )));
        }
        if target > current.saturating_mul(2) || target.saturating_mul(2) < current {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount on stream {} under account {}: target {target} must be between half and double the current {current} open shards",
                self.name, self.options.account
            )));
        }
        let ranges = uniform_ranges(target);
        // Splits: make every target boundary a shard boundary.
        for range in ranges.iter().skip(1) {
            let boundary = range.start;
            let holder = state
                .open
                .iter()
                .find(|(r, _)| r.start < boundary && boundary <= r.end)
                .map(|(_, i)| *i);
            if let Some(index) = holder {
                self.split_locked(&mut state, index, boundary, false)?;
            }
        }
        // Merges: fold the shards inside each target range into one, left to right.
        for range in &ranges {
            loop {
                let inside: Vec<u32> = state
                    .open
                    .iter()
                    .filter(|(r, _)| range.start <= r.start && r.end <= range.end)
                    .map(|(_, i)| *i)
                    .collect();
                let [first, second, ..] = inside[..] else {
                    break;
                };
                self.merge_locked(&mut state, first, second)?;
            }
        }
        Ok(UpdateShardCountOutput {
            stream_name: self.name.clone(),
            current_shard_count: current,
            target_shard_count: state.open.len() as u32,
        })
    }
}
