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
    index_file_name, parse_segment_name, segment_file_name, ActiveSegment, ScanCursor,
    SealedSegment, Segments, Tip,
};
use super::vfs::{read_full_at, OpenMode, Vfs, VfsFile};
use crate::error::{CorruptReason, Error, Result};
use crate::format::checkpoint::{Checkpoint, CHECKPOINT_LEN};
use crate::format::index::{encode_index_file, encode_index_header};
use crate::format::segment::{
    SegmentFooter, SegmentHeader, SegmentMetaError, FOOTER_LEN, SEGMENT_HEADER_LEN,
};

mod validate;

use validate::{finish_active, scan_segment, Scanned};

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
    /// Bytes cut from the end of the log: a torn tail, and the segments dropped after it.
    pub bytes_truncated: u64,
    /// Segments deleted because they followed a segment whose end was torn (its seal was
    /// deferred and never became durable, so nothing after it was ever synced).
    pub segments_dropped: u64,
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
    let file = create_segment_unsynced(vfs, dir, base, created_ms)?;
    let path = dir.join(segment_file_name(base));
    file.sync_data().map_err(io_err(&path, "fsync"))?;
    vfs.sync_dir(dir).map_err(io_err(dir, "fsync dir"))?;
    Ok(file)
}

/// [`create_segment`] without its syncs, for a roll whose seal is deferred: the seal syncs
/// the header and the directory after the rolled segment (FORMAT.md §7, *Sealing*).
pub(crate) fn create_segment_unsynced(
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
    let index_path = dir.join(index_file_name(base));
    let index = vfs
        .open(&index_path, OpenMode::Create)
        .map_err(io_err(&index_path, "create"))?;
    index
        .write_all_at(&encode_index_header(base), 0)
        .map_err(io_err(&index_path, "write"))?;
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
        return fresh_active(vfs, dir, options, options.initial_sequence, Vec::new());
    };

    // Segments before the checkpoint's active one were sealed durably before that checkpoint
    // was written: their footers are trusted and nothing in them is read. From it on (every
    // segment, without a checkpoint), a roll may have written a footer whose fsync never
    // happened (sealing is deferred under `Interval` and `None`), so each is validated.
    let first_validated = checkpoint.map_or(0, |cp| cp.active_base).min(last_base);
    let mut sealed = Vec::with_capacity(bases.len());
    for &base in sealed_bases.iter().filter(|&&b| b < first_validated) {
        let segment = open_sealed(vfs, dir, base, options)?;
        check_contiguous(&sealed, &segment.path, base)?;
        sealed.push(Arc::new(segment));
    }
    let validated: Vec<u64> = bases
        .iter()
        .copied()
        .filter(|&b| b >= first_validated)
        .collect();
    for (k, &base) in validated.iter().enumerate() {
        let is_last = k + 1 == validated.len();
        let path = dir.join(segment_file_name(base));
        let file = vfs
            .open(&path, OpenMode::ReadWrite)
            .map_err(io_err(&path, "open"))?;
        check_contiguous(&sealed, &path, base)?;
        let footer = read_footer(file.as_ref(), &path, base)?;
        let cp = checkpoint.filter(|cp| cp.active_base == base);
        let end = footer.map(|f| f.data_end);
        let scanned = match scan_segment(vfs, dir, options, base, file.as_ref(), cp, end, report)? {
            Scanned::TornCreation { len } => {
                // A segment's header is synced before or with its first batch (by the first
                // sync that covers the segment, when seals are deferred), so a bad header is a
                // creation torn by a crash: the log ends before it, and it starts afresh.
                // Later segments follow the gap and were never synced.
                report.bytes_truncated += len;
                drop_segments(vfs, dir, later_segments(&validated, k), report)?;
                return fresh_active(vfs, dir, options, base, sealed);
            }
            Scanned::Batches(scanned) => scanned,
        };
        let sealed_footer = footer.filter(|f| {
            scanned.cursor.position == f.data_end && scanned.cursor.next_sequence == f.next_sequence
        });
        if let Some(footer) = sealed_footer {
            // Every batch up to the footer is whole: the seal is completed here.
            if !scanned.clean {
                file.sync_data().map_err(io_err(&path, "fsync"))?;
                let index_path = dir.join(index_file_name(base));
                write_atomically(vfs, &index_path, &encode_index_file(base, &scanned.index))
                    .map_err(io_err(&index_path, "write index"))?;
            }
            sealed.push(Arc::new(SealedSegment::with_index(
                dir,
                footer,
                options.index_interval_bytes,
                scanned.index,
            )));
            if is_last {
                // The writer stopped between sealing this segment and creating the next one.
                return fresh_active(vfs, dir, options, footer.next_sequence, sealed);
            }
            continue;
        }
        // The log ends in this segment: its torn tail (and any footer) is cut, and the
        // segments after it go, since they follow a gap (none of them was ever synced: a
        // later segment is synced only after every seal before it).
        let (active, cursor) = finish_active(vfs, dir, base, file, scanned, report)?;
        drop_segments(vfs, dir, later_segments(&validated, k), report)?;
        return Ok(Recovered {
            cursor,
            segments: Segments {
                sealed,
                active: Some(Arc::new(active)),
            },
        });
    }
    Err(Error::Internal(
        "recovery found segments but validated none".into(),
    ))
}

/// The segments after the `k`th of `validated`.
fn later_segments(validated: &[u64], k: usize) -> &[u64] {
    validated.get(k + 1..).unwrap_or_default()
}

/// Deletes the files of segments that follow the end of a recovered log.
fn drop_segments(
    vfs: &dyn Vfs,
    dir: &Path,
    bases: &[u64],
    report: &mut RecoveryReport,
) -> Result<()> {
    for &base in bases {
        for path in segment_paths(dir, base) {
            let len = vfs
                .open(&path, OpenMode::Read)
                .and_then(|f| f.len())
                .unwrap_or(0);
            match vfs.remove_file(&path) {
                Ok(()) => report.bytes_truncated += len,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, "remove")(e)),
            }
        }
        report.segments_dropped += 1;
    }
    if !bases.is_empty() {
        vfs.sync_dir(dir).map_err(io_err(dir, "fsync dir"))?;
    }
    Ok(())
}

/// A new, empty active segment at `base` after `sealed`.
fn fresh_active(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &LogOptions,
    base: u64,
    sealed: Vec<Arc<SealedSegment>>,
) -> Result<Recovered> {
    let now = options.clock.now_ms();
    let file = create_segment(vfs, dir, base, now)?;
    let cursor = ScanCursor::at_start(base);
    let active = ActiveSegment::new(dir, base, file, now, tip_of(&cursor), Vec::new());
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

/// The paths of a segment's files.
pub(crate) fn segment_paths(dir: &Path, base: u64) -> [PathBuf; 2] {
    [
        dir.join(segment_file_name(base)),
        dir.join(index_file_name(base)),
    ]
}
