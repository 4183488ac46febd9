//! Deferred sealing. Under `Always` every batch is synced as it is appended, so sealing a
//! segment at a roll costs one small fsync and is done at once. Under `Interval` and `None`
//! most of a segment is still in the page cache when it rolls, and its fsync (60-70 ms for a
//! 128 MiB segment here) stalled every appender of the shard, and through them every
//! producer. So the roll writes the footer and the next segment's header (neither synced)
//! and moves on; the seal (the index file's write, the segment's and the index's fsyncs,
//! and the directory's) completes on a sealer thread, or with `seal_in_background` off at the
//! next sync, checkpoint, explicit roll or close. Until the index file is written, a reader
//! in another process rebuilds the segment's index by scanning it (its digest is in the
//! footer), as it does for any damaged index.
//!
//! The seal does not sync the next segment's header: that fsync would write back everything
//! appended to the new segment since the roll too. Until a sync covers the new segment (an
//! `Interval` sync, an explicit sync, its own seal or the close), checkpoints name the rolled
//! segment, whole, and recovery validates the new one from its header.
//!
//! Two rules keep recovery exact (FORMAT.md §7): no checkpoint is written while a seal is
//! pending, so the footers before the checkpoint's segment are durable; and no segment is
//! synced while a seal before it is pending, so a seal torn by a crash has nothing durable
//! after it and recovery can end the log there.

use std::sync::{Arc, Mutex};

use super::Shared;
use crate::error::{Error, Result};
use crate::storage::atomic::{replace_unsynced, sync_replaced};
use crate::storage::options::Durability;
use crate::storage::segment::{lock, ActiveSegment};

/// Most rolled segments whose seal may be pending at once; a roll past it completes them
/// itself (back-pressure when the disk is slower than the appenders). Under `None` a power
/// loss can cost up to this many segments beyond the active one.
pub const PENDING_SEALS_MAX: usize = 4;

/// A roll whose writes are not yet durable.
#[derive(Debug, Clone)]
pub(super) struct PendingSeal {
    /// The rolled segment: its batches and footer are written, not synced.
    pub(super) rolled: Arc<ActiveSegment>,
    /// The index file's bytes until the seal writes them (`None` after, or once retention
    /// deleted the segment). Held across that write, so retention, which takes it before
    /// deleting the segment's files, never leaves an index file behind a deleted segment.
    index: Arc<Mutex<Option<Vec<u8>>>>,
}

impl PendingSeal {
    pub(super) fn new(rolled: Arc<ActiveSegment>, index_bytes: Vec<u8>) -> PendingSeal {
        PendingSeal {
            rolled,
            index: Arc::new(Mutex::new(Some(index_bytes))),
        }
    }
}

impl Shared {
    /// Whether a roll leaves its seal to complete later (every mode but `Always`).
    pub(super) fn defers_seals(&self) -> bool {
        !matches!(self.options.durability, Durability::Always)
    }

    /// Completes every pending seal, oldest first: the index file's write, the segment's
    /// fsync (its batches and footer), then the index file's and the directory's. One caller
    /// at a time does so (in
    /// order); the queue itself is locked only to look and to pop, never across an fsync, so
    /// a roll can queue its seal while an earlier one is being synced. A failure poisons the
    /// log.
    pub(super) fn finish_seals(&self) -> Result<()> {
        if !self.defers_seals() {
            // Nothing is ever queued; spares every group-commit wait two locks.
            return Ok(());
        }
        let _turn = lock(&self.sealing);
        loop {
            let Some(PendingSeal { rolled, index }) = lock(&self.seals).first().cloned() else {
                return Ok(());
            };
            {
                let mut unwritten = lock(&index);
                if let Some(bytes) = unwritten.as_ref() {
                    replace_unsynced(self.vfs.as_ref(), &rolled.index_path, bytes).map_err(
                        |e| self.poison("seal", Error::io(&rolled.index_path, "write index", e)),
                    )?;
                }
                *unwritten = None;
            }
            rolled
                .file
                .sync_data()
                .map_err(|e| self.poison("seal", Error::io(&rolled.path, "seal", e)))?;
            // The directory is synced even when retention deleted the segment meanwhile: the
            // segment the roll created must be on disk before a checkpoint that may name the
            // deleted one is renamed into place.
            sync_replaced(self.vfs.as_ref(), &rolled.index_path)
                .map_err(|e| self.poison("seal", Error::io(&rolled.index_path, "sync index", e)))?;
            lock(&self.seals).remove(0);
        }
    }

    /// Drops the unwritten index file of the pending seal of the segment at `base`, before
    /// retention deletes that segment's files (waiting for a seal writing it right now).
    /// The caller holds the writer lock.
    pub(super) fn cancel_index_write(&self, base: u64) {
        let index = lock(&self.seals)
            .iter()
            .find(|seal| seal.rolled.base == base)
            .map(|seal| seal.index.clone());
        if let Some(index) = index {
            *lock(&index) = None;
        }
    }

    /// Bases of the segments whose pending seal has not written the index file yet.
    pub(super) fn unwritten_indexes(&self) -> Vec<u64> {
        let seals: Vec<PendingSeal> = lock(&self.seals).clone();
        seals
            .iter()
            .filter(|seal| lock(&seal.index).is_some())
            .map(|seal| seal.rolled.base)
            .collect()
    }

    /// Queues a roll's seal; past [`PENDING_SEALS_MAX`] completes the queue first.
    pub(super) fn queue_seal(&self, seal: PendingSeal) -> Result<()> {
        if lock(&self.seals).len() >= PENDING_SEALS_MAX {
            self.finish_seals()?;
        }
        lock(&self.seals).push(seal);
        Ok(())
    }

    /// Starts a thread that completes the pending seals and then checkpoints (naming the
    /// segment rolled last, until a sync covers the active one), when seals complete in the
    /// background.
    pub(super) fn start_sealer(&self) {
        if !self.options.seal_in_background {
            return;
        }
        let weak = self.me.clone();
        let spawned = std::thread::Builder::new()
            .name("shardlog-seal".into())
            .spawn(move || {
                if let Some(shared) = weak.upgrade() {
                    // A failure poisons the log: appenders see it on their next call.
                    let _ = shared
                        .finish_seals()
                        .and_then(|()| shared.write_checkpoint(false));
                }
            });
        let mut sealers = lock(&self.sealers);
        sealers.retain(|h| !h.is_finished());
        // Without a thread the seal completes at the next sync, checkpoint or close.
        if let Ok(handle) = spawned {
            sealers.push(handle);
        }
    }

    /// Waits for every sealer thread (at close: each holds the log until it ends).
    pub(super) fn join_sealers(&self) {
        let sealers: Vec<_> = lock(&self.sealers).drain(..).collect();
        for handle in sealers {
            let _ = handle.join();
        }
    }
}
