//! Segment files in memory: sealed (immutable, mapped, footer-trusted) and active (appended,
//! read with positioned reads up to its published tip), plus the batch scanner that recovery,
//! index rebuilds and tail-following readers share.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use super::vfs::{read_full_at, Mapped, Vfs, VfsFile};
use crate::error::{CorruptReason, Error, Result};
use crate::format::batch::{decode_batch, peek_header, BatchView, DecodeError, BATCH_HEADER_LEN};
use crate::format::codec::DecodeScratch;
use crate::format::index::{decode_index_entries, encode_index_file, index_digest, IndexEntry};
use crate::format::segment::{SegmentFooter, SegmentHeader, FOOTER_LEN, SEGMENT_HEADER_LEN};

/// File name of the segment based at `base`: 20 zero-padded decimal digits, `.seg`.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// File name of the index of the segment based at `base`.
pub fn index_file_name(base: u64) -> String {
    format!("{base:020}.idx")
}

/// The base sequence number named by a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its state consistent before anything that can panic, so a
    // poisoned mutex holds usable state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read_lock<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

/// Where the readable part of a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tip {
    /// Byte position after the last readable batch.
    pub end: u64,
    /// Sequence number of the next record after the readable ones.
    pub next_sequence: u64,
    /// Greatest timestamp of the readable records (`i64::MIN` if none).
    pub max_timestamp_ms: i64,
}

/// Why a batch could not be loaded at a position.
#[derive(Debug)]
pub(crate) enum LoadError {
    Io(io::Error),
    Decode(DecodeError),
    Gap { expected: u64, found: u64 },
}

impl LoadError {
    pub(crate) fn into_error(self, path: &Path, offset: u64) -> Error {
        match self {
            LoadError::Io(e) => Error::io(path, "read", e),
            LoadError::Decode(DecodeError::UnsupportedVersion { found, supported }) => {
                Error::UnsupportedFormat {
                    path: path.to_path_buf(),
                    found,
                    supported,
                }
            }
            LoadError::Decode(e) => Error::corrupt(path, offset, e),
            LoadError::Gap { expected, found } => {
                Error::corrupt(path, offset, CorruptReason::SequenceGap { expected, found })
            }
        }
    }
}

/// The bytes a batch is read from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Map(&'a [u8]),
    File(&'a dyn VfsFile),
}

/// The bytes of the batch at `position`, which must end by `end`. A batch that runs past
/// `end` is `Truncated`.
pub(crate) fn batch_bytes<'a>(
    source: Source<'a>,
    position: u64,
    end: u64,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], LoadError> {
    let available = end.saturating_sub(position);
    let truncated = |needed: u64| LoadError::Decode(DecodeError::Truncated { needed, available });
    match source {
        Source::Map(bytes) => {
            let start = usize::try_from(position).map_err(|_| truncated(1))?;
            let stop = usize::try_from(end).map_err(|_| truncated(1))?;
            let region = bytes.get(start..stop).ok_or_else(|| truncated(1))?;
            let header = peek_header(region).map_err(LoadError::Decode)?;
            region
                .get(..header.length as usize)
                .ok_or_else(|| truncated(u64::from(header.length)))
        }
        Source::File(file) => {
            if available < BATCH_HEADER_LEN as u64 {
                return Err(truncated(BATCH_HEADER_LEN as u64));
            }
            // The buffer only grows: zeroing it again for every batch cost a memset of the
            // whole batch. Only the bytes read below are ever handed out.
            if buf.len() < BATCH_HEADER_LEN {
                buf.resize(BATCH_HEADER_LEN, 0);
            }
            let head = buf.get_mut(..BATCH_HEADER_LEN).unwrap_or_default();
            let read = read_full_at(file, head, position).map_err(LoadError::Io)?;
            if read < BATCH_HEADER_LEN {
                return Err(truncated(BATCH_HEADER_LEN as u64));
            }
            let header = peek_header(head).map_err(LoadError::Decode)?;
            let length = u64::from(header.length);
            if length > available {
                return Err(truncated(length));
            }
            let length = header.length as usize;
            if buf.len() < length {
                buf.resize(length, 0);
            }
            let rest = buf.get_mut(BATCH_HEADER_LEN..length).unwrap_or_default();
            let read = read_full_at(file, rest, position + BATCH_HEADER_LEN as u64)
                .map_err(LoadError::Io)?;
            if read < rest.len() {
                return Err(truncated(length as u64));
            }
            Ok(buf.get(..length).unwrap_or_default())
        }
    }
}

/// Decodes the batch at `position` and checks that it starts at `expected_sequence`.
pub(crate) fn load_batch<'a>(
    source: Source<'a>,
    position: u64,
    end: u64,
    expected_sequence: Option<u64>,
    buf: &'a mut Vec<u8>,
    scratch: &'a mut DecodeScratch,
) -> Result<BatchView<'a>, LoadError> {
    let bytes = batch_bytes(source, position, end, buf)?;
    let view = decode_batch(bytes, scratch).map_err(LoadError::Decode)?;
    if let Some(expected) = expected_sequence {
        let found = view.header().base_sequence;
        if found != expected {
            return Err(LoadError::Gap { expected, found });
        }
    }
    Ok(view)
}

/// The state of a forward scan over a segment's batches; also the writer's append cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanCursor {
    pub position: u64,
    pub next_sequence: u64,
    pub max_timestamp_ms: i64,
    /// Log bytes since the last index entry; `None` before the segment's first entry.
    pub bytes_since_index: Option<u64>,
}

impl ScanCursor {
    /// The cursor at the start of an empty segment.
    pub(crate) fn at_start(base: u64) -> Self {
        ScanCursor {
            position: SEGMENT_HEADER_LEN as u64,
            next_sequence: base,
            max_timestamp_ms: i64::MIN,
            bytes_since_index: None,
        }
    }

    /// Accounts for one batch of `length` bytes at the cursor, returning the index entry the
    /// batch gets, if any. The one rule for sparse entries: the first batch of a segment, then
    /// the first batch after at least `interval` bytes since the last entry.
    pub(crate) fn advance(
        &mut self,
        length: u64,
        record_count: u32,
        max_timestamp_ms: i64,
        interval: u64,
    ) -> Option<IndexEntry> {
        let entry = match self.bytes_since_index {
            Some(since) if since < interval => None,
            _ => Some(IndexEntry {
                sequence: self.next_sequence,
                position: self.position,
                max_timestamp_before_ms: self.max_timestamp_ms,
            }),
        };
        let since = if entry.is_some() {
            0
        } else {
            self.bytes_since_index.unwrap_or(0)
        };
        self.bytes_since_index = Some(since + length);
        self.position += length;
        self.next_sequence += u64::from(record_count);
        self.max_timestamp_ms = self.max_timestamp_ms.max(max_timestamp_ms);
        entry
    }
}

/// How a scan stopped.
#[derive(Debug)]
pub(crate) enum ScanStop {
    /// Reached `end` exactly.
    End,
    /// The bytes at the cursor are not a valid next batch.
    Invalid(LoadError),
}

/// Scans valid, contiguous batches from the cursor to `end`, pushing index entries.
pub(crate) fn scan(
    source: Source<'_>,
    cursor: &mut ScanCursor,
    end: u64,
    interval: u64,
    index: &mut Vec<IndexEntry>,
) -> ScanStop {
    let mut buf = Vec::new();
    let mut scratch = DecodeScratch::default();
    while cursor.position < end {
        let view = match load_batch(
            source,
            cursor.position,
            end,
            Some(cursor.next_sequence),
            &mut buf,
            &mut scratch,
        ) {
            Ok(view) => view,
            Err(e) => return ScanStop::Invalid(e),
        };
        let header = *view.header();
        if let Some(entry) = cursor.advance(
            u64::from(header.length),
            header.record_count,
            header.max_timestamp_ms,
            interval,
        ) {
            index.push(entry);
        }
    }
    ScanStop::End
}

/// A sealed segment: immutable, its extent and sequence range known from its footer.
#[derive(Debug)]
pub(crate) struct SealedSegment {
    pub base: u64,
    pub path: PathBuf,
    pub index_path: PathBuf,
    pub footer: SegmentFooter,
    /// Whether a rebuilt index may be written back (only the writer does).
    pub repair_index: bool,
    pub index_interval_bytes: u64,
    index: Mutex<Option<Arc<Vec<IndexEntry>>>>,
}

impl SealedSegment {
    pub(crate) fn new(
        dir: &Path,
        footer: SegmentFooter,
        repair_index: bool,
        index_interval_bytes: u64,
    ) -> Self {
        SealedSegment {
            base: footer.base_sequence,
            path: dir.join(segment_file_name(footer.base_sequence)),
            index_path: dir.join(index_file_name(footer.base_sequence)),
            footer,
            repair_index,
            index_interval_bytes,
            index: Mutex::new(None),
        }
    }

    /// Like [`SealedSegment::new`] for the writer, with its index entries already known
    /// (the index file on disk may lag them until the seal is durable).
    pub(crate) fn with_index(
        dir: &Path,
        footer: SegmentFooter,
        index_interval_bytes: u64,
        entries: Vec<IndexEntry>,
    ) -> Self {
        let segment = SealedSegment::new(dir, footer, true, index_interval_bytes);
        *lock(&segment.index) = Some(Arc::new(entries));
        segment
    }

    /// Total bytes of the segment file.
    pub(crate) fn file_len(&self) -> u64 {
        self.footer.data_end + FOOTER_LEN as u64
    }

    /// The file, mapped for the caller and checked against its footer. Mappings are not
    /// kept between reads, so resident memory follows what readers hold, not what was read.
    pub(crate) fn mapped(&self, vfs: &dyn Vfs) -> Result<Mapped> {
        let map = vfs
            .map(&self.path)
            .map_err(|e| Error::io(&self.path, "map", e))?;
        if map.len() as u64 != self.file_len() {
            return Err(Error::corrupt(
                &self.path,
                map.len() as u64,
                CorruptReason::Footer("file length differs from the footer's"),
            ));
        }
        let header = SegmentHeader::decode(&map).map_err(|e| Error::corrupt(&self.path, 0, e))?;
        if header.base_sequence != self.base {
            return Err(Error::corrupt(
                &self.path,
                0,
                CorruptReason::Footer("header base differs from the file name"),
            ));
        }
        Ok(map)
    }

    /// The sparse index: read from the index file if its digest matches the footer, else
    /// rebuilt by scanning the segment (and written back when this is the writer).
    pub(crate) fn index(&self, vfs: &dyn Vfs) -> Result<Arc<Vec<IndexEntry>>> {
        let mut slot = lock(&self.index);
        if let Some(index) = slot.as_ref() {
            return Ok(index.clone());
        }
        let stored = vfs
            .read_file(&self.index_path, self.footer.index_len)
            .ok()
            .and_then(|bytes| {
                let trusted = bytes.len() as u64 == self.footer.index_len
                    && index_digest(&bytes) == self.footer.index_digest;
                let (entries, whole) = decode_index_entries(&bytes, self.base);
                (trusted && whole).then_some(entries)
            });
        let entries = match stored {
            Some(entries) => entries,
            None => self.rebuild_index(vfs)?,
        };
        let entries = Arc::new(entries);
        *slot = Some(entries.clone());
        Ok(entries)
    }

    fn rebuild_index(&self, vfs: &dyn Vfs) -> Result<Vec<IndexEntry>> {
        let map = self.mapped(vfs)?;
        let mut cursor = ScanCursor::at_start(self.base);
        let mut entries = Vec::new();
        let end = self.footer.data_end;
        if let ScanStop::Invalid(e) = scan(
            Source::Map(&map),
            &mut cursor,
            end,
            self.index_interval_bytes,
            &mut entries,
        ) {
            return Err(e.into_error(&self.path, cursor.position));
        }
        if cursor.next_sequence != self.footer.next_sequence {
            return Err(Error::corrupt(
                &self.path,
                end,
                CorruptReason::Footer("batches end at another sequence than the footer says"),
            ));
        }
        if self.repair_index {
            // Best effort: the index is derived data, and a failure to persist it only costs
            // another rebuild at the next open.
            let bytes = encode_index_file(self.base, &entries);
            if index_digest(&bytes) == self.footer.index_digest {
                let _ = super::atomic::write_atomically(vfs, &self.index_path, &bytes);
            }
        }
        Ok(entries)
    }
}

/// The active segment: the writer appends at its end; readers see batches up to its tip.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub base: u64,
    pub path: PathBuf,
    pub index_path: PathBuf,
    pub file: Arc<dyn VfsFile>,
    pub created_ms: i64,
    tip: Mutex<Tip>,
    index: RwLock<Vec<IndexEntry>>,
}

impl ActiveSegment {
    pub(crate) fn new(
        dir: &Path,
        base: u64,
        file: Arc<dyn VfsFile>,
        created_ms: i64,
        tip: Tip,
        index: Vec<IndexEntry>,
    ) -> Self {
        ActiveSegment {
            base,
            path: dir.join(segment_file_name(base)),
            index_path: dir.join(index_file_name(base)),
            file,
            created_ms,
            tip: Mutex::new(tip),
            index: RwLock::new(index),
        }
    }

    /// The readable extent.
    pub(crate) fn tip(&self) -> Tip {
        *lock(&self.tip)
    }

    /// Makes batches up to `tip` readable; never moves the tip backwards.
    pub(crate) fn publish(&self, tip: Tip) {
        let mut current = lock(&self.tip);
        if tip.end > current.end {
            *current = tip;
        }
    }

    /// Adds an index entry for a batch written at the end.
    pub(crate) fn push_index(&self, entry: IndexEntry) {
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        debug_assert!(index
            .last()
            .is_none_or(|last| last.position < entry.position));
        index.push(entry);
    }

    /// A copy of the index entries.
    pub(crate) fn index_snapshot(&self) -> Vec<IndexEntry> {
        read_lock(&self.index).clone()
    }

    /// The last index entry at or before `sequence` among batches before `end`.
    pub(crate) fn seek_sequence(&self, sequence: u64, end: u64) -> Option<IndexEntry> {
        let index = read_lock(&self.index);
        seek_sequence(&index, sequence).filter(|e| e.position < end)
    }

    /// The last index entry whose preceding batches are all older than `timestamp_ms`.
    pub(crate) fn seek_time(&self, timestamp_ms: i64) -> Option<IndexEntry> {
        seek_time(&read_lock(&self.index), timestamp_ms)
    }
}

/// The last entry with `sequence <= target`.
pub(crate) fn seek_sequence(index: &[IndexEntry], target: u64) -> Option<IndexEntry> {
    let after = index.partition_point(|e| e.sequence <= target);
    after.checked_sub(1).and_then(|i| index.get(i)).copied()
}

/// The last entry all of whose preceding records are older than `timestamp_ms`.
pub(crate) fn seek_time(index: &[IndexEntry], timestamp_ms: i64) -> Option<IndexEntry> {
    let after = index.partition_point(|e| e.max_timestamp_before_ms < timestamp_ms);
    after.checked_sub(1).and_then(|i| index.get(i)).copied()
}

/// The largest index file a segment of `segment_len` bytes can have: one entry per batch at
/// most, and a batch is at least a header long.
pub(crate) fn index_len_max(segment_len: u64) -> u64 {
    let entries = segment_len / crate::format::batch::BATCH_HEADER_LEN as u64 + 1;
    crate::format::index::INDEX_HEADER_LEN as u64
        + entries * crate::format::index::INDEX_ENTRY_LEN as u64
}

/// The segments of a log, oldest first. A reader works on one such snapshot at a time.
#[derive(Debug, Clone)]
pub(crate) struct Segments {
    pub sealed: Vec<Arc<SealedSegment>>,
    /// `None` only for a read-only view that found the writer between sealing a segment and
    /// creating the next.
    pub active: Option<Arc<ActiveSegment>>,
}

impl Segments {
    /// The oldest retained sequence number.
    pub(crate) fn first_sequence(&self) -> u64 {
        match (self.sealed.first(), &self.active) {
            (Some(s), _) => s.base,
            (None, Some(a)) => a.base,
            (None, None) => 0,
        }
    }

    /// The sequence number the next appended record will get.
    pub(crate) fn next_sequence(&self) -> u64 {
        match (&self.active, self.sealed.last()) {
            (Some(a), _) => a.tip().next_sequence,
            (None, Some(s)) => s.footer.next_sequence,
            (None, None) => 0,
        }
    }
}
