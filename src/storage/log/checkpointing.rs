//! Checkpoints of a writable log: the recovery point (the synced extent of the active
//! segment, or of the segment rolled before it until a sync covers the active one) and the
//! index entries it names, written by the background thread, after seals and at close.

use std::sync::Arc;
use std::time::Instant;

use super::{Checkpointer, Shared};
use crate::error::{Error, Result};
use crate::format::checkpoint::Checkpoint;
use crate::format::index::{encode_index_file, index_digest, INDEX_ENTRY_LEN, INDEX_HEADER_LEN};
use crate::storage::recovery::write_checkpoint;
use crate::storage::segment::{lock, ActiveSegment};
use crate::storage::vfs::OpenMode;

impl Shared {
    /// Writes a checkpoint if the last one is older than the checkpoint interval. Called by
    /// the background thread, never on an appender's path: its fsyncs would be put latency.
    pub(super) fn checkpoint_if_due(&self) -> Result<()> {
        if lock(&self.checkpointer).last_written.elapsed() >= self.options.checkpoint_interval {
            self.write_checkpoint(false)?;
        }
        Ok(())
    }

    /// Persists the active segment's new index entries, then names the synced extent as the
    /// recovery point (atomically). `clean` adds the clean-shutdown mark.
    pub(super) fn write_checkpoint(&self, clean: bool) -> Result<()> {
        // No checkpoint may name a segment while a seal before it is pending.
        self.finish_seals()?;
        let mut cp = lock(&self.checkpointer);
        self.check_poison()?;
        if !clean && self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            // A sealer thread finishing after close: the close's checkpoint stands.
            return Ok(());
        }
        let (active, tip) = lock(&self.sync).synced.clone();
        let entries: Vec<_> = active
            .index_snapshot()
            .into_iter()
            .filter(|e| e.position < tip.end)
            .collect();
        // A rolled segment (named until a sync covers the next one) had its whole index
        // written at the roll and synced by its seal; retention may even have deleted it
        // since, and recovery then validates from the next segment on.
        let still_active = self
            .snapshot()
            .active
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &active));
        let persisted = if still_active {
            self.persist_index(&mut cp, &active, &entries)
        } else {
            Ok(())
        };
        let result = persisted.and_then(|()| {
            let prefix = encode_index_file(active.base, &entries);
            let checkpoint = Checkpoint {
                clean,
                active_base: active.base,
                recovery_position: tip.end,
                next_sequence: tip.next_sequence,
                max_timestamp_ms: tip.max_timestamp_ms,
                index_digest: index_digest(&prefix),
            };
            write_checkpoint(self.vfs.as_ref(), &self.dir, &checkpoint)
        });
        cp.last_written = Instant::now();
        result.map_err(|e| self.poison("checkpoint", e))
    }

    fn persist_index(
        &self,
        cp: &mut Checkpointer,
        active: &ActiveSegment,
        entries: &[crate::format::index::IndexEntry],
    ) -> Result<()> {
        let path = &active.index_path;
        let stale = cp
            .index
            .as_ref()
            .is_none_or(|(base, _, _)| *base != active.base);
        if stale {
            let file = self
                .vfs
                .open(path, OpenMode::ReadWrite)
                .map_err(|e| Error::io(path, "open", e))?;
            let held = file.len().map_err(|e| Error::io(path, "stat", e))?;
            let held =
                (held.saturating_sub(INDEX_HEADER_LEN as u64) / INDEX_ENTRY_LEN as u64) as usize;
            cp.index = Some((active.base, file, held.min(entries.len())));
        }
        let Some((_, file, persisted)) = cp.index.as_mut() else {
            return Ok(());
        };
        if entries.len() <= *persisted {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((entries.len() - *persisted) * INDEX_ENTRY_LEN);
        for (ordinal, entry) in entries.iter().enumerate().skip(*persisted) {
            bytes.extend_from_slice(&entry.encode(ordinal as u64));
        }
        let offset = (INDEX_HEADER_LEN + *persisted * INDEX_ENTRY_LEN) as u64;
        file.write_all_at(&bytes, offset)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(path, "write index", e))?;
        *persisted = entries.len();
        Ok(())
    }
}
