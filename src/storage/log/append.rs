//! The append path: a batch is encoded outside the writer lock, then sequenced and written
//! under it; rolls seal the active segment (at once under `Always`, deferred otherwise; see
//! `sealing`) and start the next.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{sealing, tip_of, Appended, PendingSync, Shared, Writer};
use crate::error::{Error, Result};
use crate::format::batch::{encode_unsequenced, RecordIn, Unsequenced};
use crate::format::codec::EncodeScratch;
use crate::format::index::{encode_index_file, index_digest};
use crate::format::segment::{SegmentFooter, SEGMENT_HEADER_LEN};
use crate::storage::options::Durability;
use crate::storage::recovery::{create_segment, create_segment_unsynced};
use crate::storage::segment::{lock, ActiveSegment, ScanCursor, SealedSegment};

/// Largest encode buffer a thread keeps between appends (a larger one is freed after use).
const ENCODE_BUFFER_KEPT_BYTES_MAX: usize = 4 << 20;

thread_local! {
    /// Each appending thread's batch buffer and compression scratch.
    static ENCODE_BUFFER: std::cell::RefCell<(Vec<u8>, EncodeScratch)> =
        std::cell::RefCell::new((Vec::new(), EncodeScratch::default()));
}

impl Shared {
    /// Writes one batch; under `Always` it is published (to readers) only by the sync that
    /// covers it, whose target is returned.
    pub(super) fn write(
        &self,
        records: &[RecordIn<'_>],
        aggregated: bool,
    ) -> Result<(Appended, PendingSync)> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::InvalidArgument("the log is closed".into()));
        }
        // The batch is encoded (records copied, compressed, checksummed) before the writer
        // lock, in this thread's buffer, so appenders of one log encode in parallel; under
        // the lock it only gets its sequence numbers and is written.
        let encode_and_write = |buf: &mut Vec<u8>, scratch: &mut EncodeScratch| {
            let unsequenced =
                encode_unsequenced(buf, scratch, records, self.options.compression, aggregated)?;
            self.write_encoded(buf, unsequenced)
        };
        ENCODE_BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffers) => {
                let (buf, scratch) = &mut *buffers;
                let result = encode_and_write(buf, scratch);
                if buf.capacity() > ENCODE_BUFFER_KEPT_BYTES_MAX {
                    *buf = Vec::new();
                }
                result
            }
            // Not reachable (an append does not append), but never a panic: fresh buffers.
            Err(_) => encode_and_write(&mut Vec::new(), &mut EncodeScratch::default()),
        })
    }

    fn write_encoded(
        &self,
        batch: &mut [u8],
        unsequenced: Unsequenced,
    ) -> Result<(Appended, PendingSync)> {
        let mut guard = self.lock_writer()?;
        let writer = &mut *guard;
        let first_sequence = writer.cursor.next_sequence;
        unsequenced.sequence(batch, first_sequence)?;
        debug_assert!(crate::format::batch::decode_batch(
            batch,
            &mut crate::format::codec::DecodeScratch::default()
        )
        .is_ok());
        let length = batch.len() as u64;
        if self.should_roll(writer, length) {
            self.roll(writer)?;
        }
        let position = writer.cursor.position;
        if let Err(e) = writer.active.file.write_all_at(batch, position) {
            return Err(self.poison("write", Error::io(&writer.active.path, "write", e)));
        }
        if let Some(entry) = writer.cursor.advance(
            length,
            unsequenced.record_count(),
            unsequenced.max_timestamp_ms(),
            self.options.index_interval_bytes,
        ) {
            writer.active.push_index(entry);
        }
        writer.lsn += length;
        let appended = Appended {
            first_sequence,
            last_sequence: writer.cursor.next_sequence - 1,
        };
        let target_lsn = match self.options.durability {
            Durability::Always => Some(writer.lsn),
            Durability::Interval(_) | Durability::None => {
                writer.active.publish(tip_of(&writer.cursor));
                None
            }
        };
        Ok((appended, PendingSync { target_lsn }))
    }

    fn should_roll(&self, writer: &Writer, incoming: u64) -> bool {
        let position = writer.cursor.position;
        if position <= SEGMENT_HEADER_LEN as u64 {
            return false;
        }
        let full = position + incoming > self.options.segment_bytes_max;
        let old = self.options.segment_age_max.is_some_and(|age| {
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            self.options
                .clock
                .now_ms()
                .saturating_sub(writer.active.created_ms)
                >= age_ms
        });
        full || old
    }

    /// Seals the active segment (footer, index, fsync) and makes a new one active.
    pub(super) fn roll(&self, writer: &mut Writer) -> Result<()> {
        self.roll_inner(writer)
            .map_err(|e| self.poison("roll", e))?;
        if self.defers_seals() {
            // The checkpoint follows the seal (see `sealing`).
            self.start_sealer();
        } else {
            self.write_checkpoint(false)?;
        }
        self.apply_retention()?;
        Ok(())
    }

    fn roll_inner(&self, writer: &mut Writer) -> Result<()> {
        let old = writer.active.clone();
        let cursor = writer.cursor;
        let entries = old.index_snapshot();
        let index_bytes = encode_index_file(old.base, &entries);
        let footer = SegmentFooter {
            base_sequence: old.base,
            next_sequence: cursor.next_sequence,
            data_end: cursor.position,
            max_timestamp_ms: cursor.max_timestamp_ms,
            index_digest: index_digest(&index_bytes),
            index_len: index_bytes.len() as u64,
        };
        let deferred = self.defers_seals();
        old.file
            .write_all_at(&footer.encode(), cursor.position)
            .map_err(|e| Error::io(&old.path, "seal", e))?;
        // Deferred, the index file is the seal's first write: a rename over the index
        // checkpoints kept makes ext4 write the new file back at once, and under the writer
        // lock that waited (up to 124 ms measured) behind the block layer's throttling of the
        // earlier seals' writeback, with every producer of the shard queued behind it.
        if !deferred {
            old.file
                .sync_data()
                .map_err(|e| Error::io(&old.path, "seal", e))?;
            crate::storage::atomic::write_atomically(
                self.vfs.as_ref(),
                &old.index_path,
                &index_bytes,
            )
            .map_err(|e| Error::io(&old.index_path, "write index", e))?;
        }
        let now = self.options.clock.now_ms();
        let base = cursor.next_sequence;
        let file = if deferred {
            create_segment_unsynced(self.vfs.as_ref(), &self.dir, base, now)?
        } else {
            create_segment(self.vfs.as_ref(), &self.dir, base, now)?
        };
        let fresh = ScanCursor::at_start(base);
        let active = Arc::new(ActiveSegment::new(
            &self.dir,
            base,
            file,
            now,
            tip_of(&fresh),
            Vec::new(),
        ));
        let sealed = Arc::new(SealedSegment::with_index(
            &self.dir,
            footer,
            self.options.index_interval_bytes,
            entries,
        ));
        if deferred {
            self.queue_seal(sealing::PendingSeal::new(old.clone(), index_bytes))?;
        }
        let mut segments = (*self.snapshot()).clone();
        segments.sealed.push(sealed);
        segments.active = Some(active.clone());
        *self
            .segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(segments);
        writer.active = active.clone();
        writer.cursor = fresh;
        // The new header is written bytes a sync must cover: with the log sequence number past
        // them, a sync after the roll (a close's, an `Interval` one) really syncs the new
        // segment even when nothing was appended to it, and a checkpoint may then name it.
        writer.lsn += SEGMENT_HEADER_LEN as u64;
        let mut sync = lock(&self.sync);
        if deferred {
            // The new segment's header is not synced by the seal (that fsync wrote back
            // everything appended to the new segment meanwhile, on the appenders' time): until
            // a sync covers the new segment, a checkpoint names the rolled one, whole, which
            // the seal that precedes every checkpoint makes durable.
            sync.synced = (old, tip_of(&cursor));
        } else {
            sync.synced_lsn = sync.synced_lsn.max(writer.lsn);
            sync.synced = (active, tip_of(&fresh));
        }
        drop(sync);
        self.synced_cv.notify_all();
        Ok(())
    }
}
