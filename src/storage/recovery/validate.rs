//! Validating the segments recovery cannot trust: the batches after a checkpoint's recovery
//! point (or all of them), and making the segment the log ends in active.

use std::path::Path;
use std::sync::Arc;

use super::{io_err, meta_err, tip_of, RecoveryReport};
use crate::error::{CorruptReason, Error, Result};
use crate::format::batch::{decode_batch, BATCH_MAGIC};
use crate::format::checkpoint::Checkpoint;
use crate::format::codec::DecodeScratch;
use crate::format::index::{
    decode_index_entries, encode_index_file, index_digest, IndexEntry, INDEX_ENTRY_LEN,
    INDEX_HEADER_LEN,
};
use crate::format::segment::{SegmentHeader, SegmentMetaError, SEGMENT_HEADER_LEN};
use crate::storage::atomic::write_atomically;
use crate::storage::options::LogOptions;
use crate::storage::segment::{
    index_file_name, index_len_max, scan, segment_file_name, ActiveSegment, LoadError, ScanCursor,
    ScanStop, Source,
};
use crate::storage::vfs::{read_full_at, Vfs, VfsFile};

/// Index entries persisted before the recovery point, if the checkpoint vouches for them.
fn trusted_index_prefix(
    vfs: &dyn Vfs,
    index_path: &Path,
    base: u64,
    cp: &Checkpoint,
    segment_len: u64,
) -> Option<Vec<IndexEntry>> {
    let bytes = vfs.read_file(index_path, index_len_max(segment_len)).ok()?;
    let (mut entries, _) = decode_index_entries(&bytes, base);
    entries.retain(|e| e.position < cp.recovery_position);
    let prefix_len = INDEX_HEADER_LEN + entries.len() * INDEX_ENTRY_LEN;
    let prefix = bytes.get(..prefix_len)?;
    (index_digest(prefix) == cp.index_digest).then_some(entries)
}

/// What validating one segment found.
pub(super) enum Scanned {
    /// Its header is invalid and nothing follows it.
    TornCreation { len: u64 },
    /// Its valid batches, from the start or the checkpoint's recovery point.
    Batches(ScannedBatches),
}

pub(super) struct ScannedBatches {
    pub(super) created_ms: i64,
    /// Just after the last valid batch.
    pub(super) cursor: ScanCursor,
    pub(super) index: Vec<IndexEntry>,
    /// The checkpoint carried the clean mark and nothing followed its recovery point.
    pub(super) clean: bool,
    /// Bytes in the file.
    pub(super) len: u64,
}

/// Validates a segment's batches, after the checkpoint's recovery point when `checkpoint`
/// names this segment and its index prefix checks out, up to `end` (a footer's data end) or
/// the end of the file; stops at the first invalid batch.
#[allow(clippy::too_many_arguments)]
pub(super) fn scan_segment(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &LogOptions,
    base: u64,
    file: &dyn VfsFile,
    checkpoint: Option<Checkpoint>,
    end: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<Scanned> {
    let path = dir.join(segment_file_name(base));
    let index_path = dir.join(index_file_name(base));
    let len = file.len().map_err(io_err(&path, "stat"))?;
    let mut header_bytes = [0u8; SEGMENT_HEADER_LEN];
    let read = read_full_at(file, &mut header_bytes, 0).map_err(io_err(&path, "read"))?;
    if read < SEGMENT_HEADER_LEN {
        // Shorter than its header (a creation cut short, e.g. by a failed write): even if the
        // bytes present decode (the missing ones read as zeros), the segment was never used.
        return Ok(Scanned::TornCreation { len });
    }
    // A segment the checkpoint does not name may never have been covered by a sync (which
    // is what makes a deferred roll's new header durable); later writes to it may have landed
    // while its header did not. Then nothing in it was ever synced, and an invalid header is a torn
    // creation whatever follows. A header the checkpoint vouches for was synced: damage to it
    // is corruption.
    let header_synced = checkpoint.is_some();
    let header = match SegmentHeader::decode(&header_bytes) {
        Ok(h) if h.base_sequence == base => h,
        Ok(_) => {
            return Err(Error::corrupt(
                &path,
                0,
                CorruptReason::Footer("header base differs from the file name"),
            ))
        }
        // A newer format is never mistaken for a torn creation (and deleted).
        Err(e @ SegmentMetaError::UnsupportedVersion { .. }) => return Err(meta_err(&path, 0, e)),
        Err(_) if len <= SEGMENT_HEADER_LEN as u64 || !header_synced => {
            return Ok(Scanned::TornCreation { len })
        }
        Err(e) => return Err(meta_err(&path, 0, e)),
    };
    let end = end.unwrap_or(len).min(len);

    // Where validated data starts, and the index entries that cover what lies before it.
    let trusted = checkpoint.and_then(|cp| {
        let in_range = cp.recovery_position >= SEGMENT_HEADER_LEN as u64
            && cp.recovery_position <= end
            && cp.next_sequence >= base;
        if !in_range {
            return None;
        }
        let entries = trusted_index_prefix(vfs, &index_path, base, &cp, len)?;
        let since = entries.last().map(|e| cp.recovery_position - e.position);
        if entries.is_empty() != (cp.recovery_position == SEGMENT_HEADER_LEN as u64) {
            return None;
        }
        let cursor = ScanCursor {
            position: cp.recovery_position,
            next_sequence: cp.next_sequence,
            max_timestamp_ms: cp.max_timestamp_ms,
            bytes_since_index: since,
        };
        Some((cursor, entries, cp.clean))
    });
    let (mut cursor, mut index, clean) = match trusted {
        Some(t) => t,
        None => {
            report.indexes_rebuilt += 1;
            (ScanCursor::at_start(base), Vec::new(), false)
        }
    };
    let scan_from = cursor.position;
    if scan_from < end {
        report.segments_scanned += 1;
        let stop = scan(
            Source::File(file),
            &mut cursor,
            end,
            options.index_interval_bytes,
            &mut index,
        );
        report.bytes_scanned += cursor.position - scan_from;
        if let ScanStop::Invalid(LoadError::Io(e)) = stop {
            return Err(Error::io(&path, "read", e));
        }
    }
    Ok(Scanned::Batches(ScannedBatches {
        created_ms: header.created_ms,
        clean: clean && cursor.position == len,
        cursor,
        index,
        len,
    }))
}

/// Makes the segment the log ends in active: cuts what follows its last valid batch (a torn
/// tail, or a footer whose batches did not all survive), and unless the checkpoint vouched for
/// all of it, syncs it and rewrites its index.
pub(super) fn finish_active(
    vfs: &dyn Vfs,
    dir: &Path,
    base: u64,
    file: Arc<dyn VfsFile>,
    scanned: ScannedBatches,
    report: &mut RecoveryReport,
) -> Result<(ActiveSegment, ScanCursor)> {
    let path = dir.join(segment_file_name(base));
    let index_path = dir.join(index_file_name(base));
    let ScannedBatches {
        created_ms,
        cursor,
        index,
        clean,
        len,
    } = scanned;
    report.clean_shutdown = clean;
    if cursor.position < len {
        report.bytes_truncated += len - cursor.position;
        report.batches_dropped += count_valid_batches(file.as_ref(), cursor.position, len);
        file.set_len(cursor.position)
            .map_err(io_err(&path, "truncate"))?;
    }
    // After a clean shutdown the segment was synced and its index written by the close, and
    // nothing was scanned: both are already as they must be, and rewriting them would clear
    // the clean mark of an open that changes nothing.
    if !clean {
        // Whatever survived in the page cache is made durable before it is called recovered
        // (redb #299): the recovery point written next must be true after a power loss too.
        file.sync_data().map_err(io_err(&path, "fsync"))?;
        // Rewrite the index so that its entries are exactly those of the surviving batches.
        let index_bytes = encode_index_file(base, &index);
        write_atomically(vfs, &index_path, &index_bytes)
            .map_err(io_err(&index_path, "write index"))?;
    }
    let active = ActiveSegment::new(dir, base, file, created_ms, tip_of(&cursor), index);
    Ok((active, cursor))
}

/// How much of a truncated tail recovery searches for whole batches to report.
pub const TAIL_SEARCH_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Counts the valid batches in the first [`TAIL_SEARCH_BYTES_MAX`] bytes of `[from, end)`,
/// for the recovery report.
fn count_valid_batches(file: &dyn VfsFile, from: u64, end: u64) -> u64 {
    let Ok(len) = usize::try_from((end - from).min(TAIL_SEARCH_BYTES_MAX)) else {
        return 0;
    };
    let mut tail = vec![0u8; len];
    if read_full_at(file, &mut tail, from).map_or(true, |n| n < len) {
        return 0;
    }
    let mut scratch = DecodeScratch::default();
    let mut count = 0;
    let mut at = 0;
    while let Some(rest) = tail.get(at..) {
        let Some(found) = rest
            .windows(BATCH_MAGIC.len())
            .position(|w| w == BATCH_MAGIC)
        else {
            break;
        };
        let start = at + found;
        match decode_batch(tail.get(start..).unwrap_or_default(), &mut scratch) {
            Ok(view) => {
                count += 1;
                at = start + view.header().length as usize;
            }
            Err(_) => at = start + 1,
        }
    }
    count
}
