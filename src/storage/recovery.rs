//! Opening a log directory: find the segments, trust what is proven, validate the rest.
//!
//! FORMAT.md §"Recovery" is the prose version of this module. In short: sealed segments are
//! trusted through their footers (nothing is scanned); the last segment is trusted up to the
//! checkpoint's recovery point, and every batch after it is validated; the first invalid batch
//! after the recovery point ends the log and is truncated away (a torn tail). Anything that a
//! torn write cannot explain is `Error::Corrupt`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::atomic::{write_atomically, TEMP_SUFFIX};
use super::options::LogOptions;
use super::segment::{
    index_file_name, index_len_max, parse_segment_name, scan, segment_file_name, ActiveSegment,
    LoadError, ScanCursor, ScanStop, SealedSegment, Segments, Source, Tip,
};
use super::vfs::{read_full_at, OpenMode, Vfs, VfsFile};
use crate::error::{CorruptReason, Error, Result};
use crate::format::batch::{decode_batch, BATCH_MAGIC};
use crate::format::checkpoint::{Checkpoint, CHECKPOINT_LEN};
use crate::format::codec::DecodeScratch;
use crate::format::index::{
    decode_index_entries, encode_index_file, encode_index_header, index_digest, IndexEntry,
    INDEX_ENTRY_LEN, INDEX_HEADER_LEN,
};
use crate::format::segment::{
    SegmentFooter, SegmentHeader, SegmentMetaError, FOOTER_LEN, SEGMENT_HEADER_LEN,
};

/// Name of a log's checkpoint file.
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint carried the clean-shutdown mark (and it was honoured).
    pub clean_shutdown: bool,
    /// Segments whose batches were read to validate them.
    pub segments_scanned: u64,
    /// Bytes of batches read to validate them.
    pub bytes_scanned: u64,
    /// Bytes cut from the tail of the last segment.
    pub bytes_truncated: u64,
    /// Whole, valid batches found inside the truncated tail (they followed an invalid one, so
    /// they were not acknowledged as durable and cannot be kept without a gap).
    pub batches_dropped: u64,
    /// Index files that were missing or wrong and were rebuilt.
    pub indexes_rebuilt: u64,
    /// Leftover temporary files removed.
    pub temp_files_removed: u64,
}

/// The state a writer starts from (what recovery did is in the caller's report).
#[derive(Debug)]
pub(crate) struct Recovered {
    pub segments: Segments,
    pub cursor: ScanCursor,
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(path, op, e)
}

fn meta_err(path: &Path, offset: u64, e: SegmentMetaError) -> Error {
    match e {
        SegmentMetaError::UnsupportedVersion { found, supported } => Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported,
        },
        other => Error::corrupt(path, offset, other),
    }
}

/// Reads a log's checkpoint: `Ok(None)` when missing or unreadable as a checkpoint (recovery
/// then validates the whole last segment), an error only for a newer format version.
pub(crate) fn read_checkpoint(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let Ok(bytes) = vfs.read_file(&path, CHECKPOINT_LEN as u64) else {
        return Ok(None);
    };
    match Checkpoint::decode(&bytes) {
        Ok(cp) => Ok(Some(cp)),
        Err(e @ SegmentMetaError::UnsupportedVersion { .. }) => Err(meta_err(&path, 0, e)),
        Err(_) => Ok(None),
    }
}

/// Writes a log's checkpoint atomically.
pub(crate) fn write_checkpoint(vfs: &dyn Vfs, dir: &Path, cp: &Checkpoint) -> Result<()> {
    let path = dir.join(CHECKPOINT_FILE);
    write_atomically(vfs, &path, &cp.encode()).map_err(io_err(&path, "write checkpoint"))
}

/// The bases of the segment files in `dir`, ascending.
pub(crate) fn list_segments(vfs: &dyn Vfs, dir: &Path) -> Result<(Vec<u64>, Vec<String>)> {
    let names = vfs.list_dir(dir).map_err(io_err(dir, "list"))?;
    let mut bases: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    bases.sort_unstable();
    Ok((bases, names))
}

/// Reads and checks the footer of the segment file at `path`, if it has a valid one.
pub(crate) fn read_footer(
    file: &dyn VfsFile,
    path: &Path,
    base: u64,
) -> Result<Option<SegmentFooter>> {
    let len = file.len().map_err(io_err(path, "stat"))?;
    if len < (SEGMENT_HEADER_LEN + FOOTER_LEN) as u64 {
        return Ok(None);
    }
    let mut bytes = [0u8; FOOTER_LEN];
    let at = len - FOOTER_LEN as u64;
    let read = read_full_at(file, &mut bytes, at).map_err(io_err(path, "read"))?;
    if read < FOOTER_LEN {
        return Ok(None);
    }
    match SegmentFooter::decode(&bytes) {
        Ok(f) if f.base_sequence == base && f.data_end == at => Ok(Some(f)),
        Ok(_) => Ok(None),
        Err(e @ SegmentMetaError::UnsupportedVersion { .. }) => Err(meta_err(path, at, e)),
        Err(_) => Ok(None),
    }
}

/// Opens an existing sealed segment, requiring a valid footer.
fn open_sealed(
    vfs: &dyn Vfs,
    dir: &Path,
    base: u64,
    options: &LogOptions,
) -> Result<SealedSegment> {
    let path = dir.join(segment_file_name(base));
    let file = vfs
        .open(&path, OpenMode::Read)
        .map_err(io_err(&path, "open"))?;
    let len = file.len().map_err(io_err(&path, "stat"))?;
    match read_footer(file.as_ref(), &path, base)? {
        Some(footer) => Ok(SealedSegment::new(
            dir,
            footer,
            true,
            options.index_interval_bytes,
        )),
        None => Err(Error::corrupt(
            &path,
            len.saturating_sub(FOOTER_LEN as u64),
            CorruptReason::MissingFooter,
        )),
    }
}

/// Creates an empty segment file (header synced) and its index file, then syncs the directory.
pub(crate) fn create_segment(
    vfs: &dyn Vfs,
    dir: &Path,
    base: u64,
    created_ms: i64,
) -> Result<Arc<dyn VfsFile>> {
    let path = dir.join(segment_file_name(base));
    let file = vfs
        .open(&path, OpenMode::Create)
        .map_err(io_err(&path, "create"))?;
    let header = SegmentHeader {
        base_sequence: base,
        created_ms,
    };
    file.write_all_at(&header.encode(), 0)
        .map_err(io_err(&path, "write"))?;
    file.sync_data().map_err(io_err(&path, "fsync"))?;
    let index_path = dir.join(index_file_name(base));
    let index = vfs
        .open(&index_path, OpenMode::Create)
        .map_err(io_err(&index_path, "create"))?;
    index
        .write_all_at(&encode_index_header(base), 0)
        .map_err(io_err(&index_path, "write"))?;
    vfs.sync_dir(dir).map_err(io_err(dir, "fsync dir"))?;
    Ok(file)
}

/// Opens (recovering as needed) the segments of a writable log. The caller holds the lock
/// and has already cleared the clean-shutdown mark.
pub(crate) fn recover(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &LogOptions,
    checkpoint: Option<Checkpoint>,
    report: &mut RecoveryReport,
) -> Result<Recovered> {
    let (bases, names) = list_segments(vfs, dir)?;
    for name in &names {
        let orphan_index = name
            .strip_suffix(".idx")
            .and_then(|stem| parse_segment_name(&format!("{stem}.seg")))
            .is_some_and(|base| !bases.contains(&base));
        if name.ends_with(TEMP_SUFFIX) || orphan_index {
            let path = dir.join(name);
            // Already gone is fine: clearing the clean mark (before this first change) writes
            // the checkpoint through its own temporary file, which it renames away.
            match vfs.remove_file(&path) {
                Ok(()) => report.temp_files_removed += u64::from(name.ends_with(TEMP_SUFFIX)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, "remove")(e)),
            }
        }
    }
    let Some((&last_base, sealed_bases)) = bases.split_last() else {
        if checkpoint.is_some() {
            return Err(Error::corrupt(
                dir.join(CHECKPOINT_FILE),
                0,
                CorruptReason::Footer("a checkpoint exists but every segment file is gone"),
            ));
        }
        let now = options.clock.now_ms();
        let base = options.initial_sequence;
        let file = create_segment(vfs, dir, base, now)?;
        let cursor = ScanCursor::at_start(base);
        let active = ActiveSegment::new(dir, base, file, now, tip_of(&cursor), Vec::new());
        return Ok(Recovered {
            segments: Segments {
                sealed: Vec::new(),
                active: Some(Arc::new(active)),
            },
            cursor,
        });
    };

    let mut sealed = Vec::with_capacity(bases.len());
    for &base in sealed_bases {
        let segment = open_sealed(vfs, dir, base, options)?;
        check_contiguous(&sealed, &segment.path, base)?;
        sealed.push(Arc::new(segment));
    }

    let last_path = dir.join(segment_file_name(last_base));
    let last_file = vfs
        .open(&last_path, OpenMode::ReadWrite)
        .map_err(io_err(&last_path, "open"))?;
    check_contiguous(&sealed, &last_path, last_base)?;
    if let Some(footer) = read_footer(last_file.as_ref(), &last_path, last_base)? {
        // The writer stopped between sealing this segment and creating the next one.
        sealed.push(Arc::new(SealedSegment::new(
            dir,
            footer,
            true,
            options.index_interval_bytes,
        )));
        let now = options.clock.now_ms();
        let file = create_segment(vfs, dir, footer.next_sequence, now)?;
        let cursor = ScanCursor::at_start(footer.next_sequence);
        let active = ActiveSegment::new(
            dir,
            footer.next_sequence,
            file,
            now,
            tip_of(&cursor),
            Vec::new(),
        );
        return Ok(Recovered {
            segments: Segments {
                sealed,
                active: Some(Arc::new(active)),
            },
            cursor,
        });
    }

    let (active, cursor) = recover_active(
        vfs,
        dir,
        options,
        last_base,
        last_file,
        checkpoint.filter(|cp| cp.active_base == last_base),
        report,
    )?;
    Ok(Recovered {
        segments: Segments {
            sealed,
            active: Some(Arc::new(active)),
        },
        cursor,
    })
}

fn check_contiguous(sealed: &[Arc<SealedSegment>], path: &Path, base: u64) -> Result<()> {
    if let Some(prev) = sealed.last() {
        if prev.footer.next_sequence != base {
            return Err(Error::corrupt(
                path,
                0,
                CorruptReason::SequenceGap {
                    expected: prev.footer.next_sequence,
                    found: base,
                },
            ));
        }
    }
    Ok(())
}

pub(crate) fn tip_of(cursor: &ScanCursor) -> Tip {
    Tip {
        end: cursor.position,
        next_sequence: cursor.next_sequence,
        max_timestamp_ms: cursor.max_timestamp_ms,
    }
}

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

#[allow(clippy::too_many_arguments)]
fn recover_active(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &LogOptions,
    base: u64,
    file: Arc<dyn VfsFile>,
    checkpoint: Option<Checkpoint>,
    report: &mut RecoveryReport,
) -> Result<(ActiveSegment, ScanCursor)> {
    let path = dir.join(segment_file_name(base));
    let index_path = dir.join(index_file_name(base));
    let len = file.len().map_err(io_err(&path, "stat"))?;
    let mut header_bytes = [0u8; SEGMENT_HEADER_LEN];
    let read = read_full_at(file.as_ref(), &mut header_bytes, 0).map_err(io_err(&path, "read"))?;
    let header = match SegmentHeader::decode(&header_bytes) {
        Ok(h) if h.base_sequence == base => h,
        Ok(_) => {
            return Err(Error::corrupt(
                &path,
                0,
                CorruptReason::Footer("header base differs from the file name"),
            ))
        }
        // A segment is created and its header synced before any batch is written to it, so a
        // bad header with nothing after it is a creation torn by a crash: start it afresh.
        Err(_) if len <= SEGMENT_HEADER_LEN as u64 || read < SEGMENT_HEADER_LEN => {
            report.bytes_truncated += len;
            let now = options.clock.now_ms();
            let file = create_segment(vfs, dir, base, now)?;
            let cursor = ScanCursor::at_start(base);
            let active = ActiveSegment::new(dir, base, file, now, tip_of(&cursor), Vec::new());
            return Ok((active, cursor));
        }
        Err(e) => return Err(meta_err(&path, 0, e)),
    };

    // Where validated data starts, and the index entries that cover what lies before it.
    let trusted = checkpoint.and_then(|cp| {
        let in_range = cp.recovery_position >= SEGMENT_HEADER_LEN as u64
            && cp.recovery_position <= len
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
    report.clean_shutdown = clean && cursor.position == len;

    let scan_from = cursor.position;
    if scan_from < len {
        report.segments_scanned += 1;
        let stop = scan(
            Source::File(file.as_ref()),
            &mut cursor,
            len,
            options.index_interval_bytes,
            &mut index,
        );
        report.bytes_scanned += cursor.position - scan_from;
        if let ScanStop::Invalid(LoadError::Io(e)) = stop {
            return Err(Error::io(&path, "read", e));
        }
    }
    if cursor.position < len {
        report.bytes_truncated += len - cursor.position;
        report.batches_dropped += count_valid_batches(file.as_ref(), cursor.position, len);
        file.set_len(cursor.position)
            .map_err(io_err(&path, "truncate"))?;
    }
    // After a clean shutdown the segment was synced and its index written by the close, and
    // nothing was scanned: both are already as they must be, and rewriting them would clear
    // the clean mark of an open that changes nothing.
    if !report.clean_shutdown {
        // Whatever survived in the page cache is made durable before it is called recovered
        // (redb #299): the recovery point written next must be true after a power loss too.
        file.sync_data().map_err(io_err(&path, "fsync"))?;
        // Rewrite the index so that its entries are exactly those of the surviving batches.
        let index_bytes = encode_index_file(base, &index);
        write_atomically(vfs, &index_path, &index_bytes)
            .map_err(io_err(&index_path, "write index"))?;
    }
    let active = ActiveSegment::new(dir, base, file, header.created_ms, tip_of(&cursor), index);
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

/// The paths of a segment's files.
pub(crate) fn segment_paths(dir: &Path, base: u64) -> [PathBuf; 2] {
    [
        dir.join(segment_file_name(base)),
        dir.join(index_file_name(base)),
    ]
}
