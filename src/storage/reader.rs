//! A read-only view of a log that another process (or another handle) writes, following its
//! appends, rolls and retention deletions without reopening. It takes no lock and writes
//! nothing. Bytes after the last valid batch of the active segment are "not yet", never
//! "corrupt": the writer may be in the middle of writing them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::read::{self, ReadLimits, Record, SharedRecord};
use super::recovery::{list_segments, read_footer, tip_of};
use super::segment::{
    lock, scan, segment_file_name, ActiveSegment, ScanCursor, SealedSegment, Segments, Source,
};
use super::vfs::{read_full_at, OpenMode, Vfs};
use crate::error::{CorruptReason, Error, Result};
use crate::format::batch::RecordRef;
use crate::format::index::INDEX_INTERVAL_BYTES;
use crate::format::segment::{SegmentHeader, SegmentMetaError, SEGMENT_HEADER_LEN};

#[derive(Debug)]
struct Follow {
    segments: Arc<Segments>,
    /// Scan state of the active segment, if there is one.
    cursor: Option<ScanCursor>,
}

/// A read-only follower of a log directory.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    state: Mutex<Follow>,
}

impl LogReader {
    /// Opens a read-only view of the log in `dir`, which must exist.
    pub fn open(dir: impl AsRef<Path>, vfs: Arc<dyn Vfs>) -> Result<LogReader> {
        let reader = LogReader {
            dir: dir.as_ref().to_path_buf(),
            vfs,
            state: Mutex::new(Follow {
                segments: Arc::new(Segments {
                    sealed: Vec::new(),
                    active: None,
                }),
                cursor: None,
            }),
        };
        reader.refresh()?;
        Ok(reader)
    }

    /// Reads like [`Log::read`](super::Log::read), seeing everything the writer has written
    /// completely so far.
    pub fn read(&self, from: u64, limits: ReadLimits) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.scan(from, limits, |r| {
            out.push(Record::from(r));
            true
        })?;
        Ok(out)
    }

    /// Visits records like [`Log::scan`](super::Log::scan).
    pub fn scan(
        &self,
        from: u64,
        limits: ReadLimits,
        mut visit: impl FnMut(RecordRef<'_>) -> bool,
    ) -> Result<u64> {
        let vfs = self.vfs.as_ref();
        read::scan_fresh(
            || self.refresh(),
            vfs,
            from,
            limits,
            false,
            |r| visit(r.record),
        )
    }

    /// Visits records like [`Log::scan_shared`](super::Log::scan_shared).
    pub fn scan_shared(
        &self,
        from: u64,
        limits: ReadLimits,
        visit: impl FnMut(SharedRecord<'_>) -> bool,
    ) -> Result<u64> {
        read::scan_fresh(
            || self.refresh(),
            self.vfs.as_ref(),
            from,
            limits,
            true,
            visit,
        )
    }

    /// The first sequence number at or after `timestamp_ms`, or the next sequence number.
    pub fn sequence_at_timestamp(&self, timestamp_ms: i64) -> Result<u64> {
        let segments = self.refresh()?;
        read::sequence_at_timestamp(&segments, self.vfs.as_ref(), timestamp_ms)
    }

    /// Verifies every batch, footer and sealed index as [`Log::verify`](super::Log::verify)
    /// does, without taking the writer's lock. Not knowing the writer's index interval or its
    /// pending seals, it holds an index file sound when each of its entries names a batch of
    /// the segment, in order from the first: written at any interval, or the prefix a seal
    /// the writer has yet to complete leaves.
    pub fn verify(&self) -> Result<super::VerifyReport> {
        let segments = self.refresh()?;
        Ok(super::verify::verify(
            &segments,
            self.vfs.as_ref(),
            INDEX_INTERVAL_BYTES,
            super::verify::UnwrittenIndexes::Unknown,
        ))
    }

    /// The oldest retained sequence number, as of now.
    pub fn first_sequence(&self) -> Result<u64> {
        Ok(self.refresh()?.first_sequence())
    }

    /// The sequence number after the last complete record, as of now.
    pub fn next_sequence(&self) -> Result<u64> {
        Ok(self.refresh()?.next_sequence())
    }

    /// Brings the view up to date with the directory and the active segment's tail.
    fn refresh(&self) -> Result<Arc<Segments>> {
        let mut state = lock(&self.state);
        let (bases, _) = list_segments(self.vfs.as_ref(), &self.dir)?;
        let known: Vec<u64> = state
            .segments
            .sealed
            .iter()
            .map(|s| s.base)
            .chain(state.segments.active.iter().map(|a| a.base))
            .collect();
        if known != bases || state.segments.active.is_none() {
            let fresh = self.relist(&state.segments, &bases)?;
            let cursor = match (&fresh.active, &state.segments.active, state.cursor) {
                (Some(new), Some(old), Some(c)) if new.base == old.base => Some(c),
                (Some(new), _, _) => Some(ScanCursor::at_start(new.base)),
                (None, _, _) => None,
            };
            state.segments = Arc::new(fresh);
            state.cursor = cursor;
        }
        self.follow_tail(&mut state)?;
        Ok(state.segments.clone())
    }

    fn relist(&self, current: &Segments, bases: &[u64]) -> Result<Segments> {
        let mut sealed = Vec::with_capacity(bases.len());
        let mut active = None;
        for (i, &base) in bases.iter().enumerate() {
            if let Some(known) = current.sealed.iter().find(|s| s.base == base) {
                sealed.push(known.clone());
                continue;
            }
            let path = self.dir.join(segment_file_name(base));
            let file = match self.vfs.open(&path, OpenMode::Read) {
                Ok(f) => f,
                // Deleted by retention since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path, "open", e)),
            };
            if let Some(footer) = read_footer(file.as_ref(), &path, base)? {
                sealed.push(Arc::new(SealedSegment::new(
                    &self.dir,
                    footer,
                    false,
                    INDEX_INTERVAL_BYTES,
                )));
                continue;
            }
            if i + 1 < bases.len() {
                return Err(Error::corrupt(&path, 0, CorruptReason::MissingFooter));
            }
            if let Some(known) = current.active.as_ref().filter(|a| a.base == base) {
                active = Some(known.clone());
                continue;
            }
            let mut header = [0u8; SEGMENT_HEADER_LEN];
            let read = read_full_at(file.as_ref(), &mut header, 0)
                .map_err(|e| Error::io(&path, "read", e))?;
            let created_ms = match SegmentHeader::decode(&header) {
                Ok(h) => h.created_ms,
                // Being created right now: nothing to read in it yet.
                Err(_) if read < SEGMENT_HEADER_LEN => continue,
                Err(e @ SegmentMetaError::UnsupportedVersion { .. }) => {
                    return Err(Error::corrupt(&path, 0, e))
                }
                Err(_) => continue,
            };
            let cursor = ScanCursor::at_start(base);
            active = Some(Arc::new(ActiveSegment::new(
                &self.dir,
                base,
                file,
                created_ms,
                tip_of(&cursor),
                Vec::new(),
            )));
        }
        Ok(Segments { sealed, active })
    }

    /// Validates and publishes whatever complete batches the writer has added.
    fn follow_tail(&self, state: &mut Follow) -> Result<()> {
        let (Some(active), Some(cursor)) = (state.segments.active.clone(), state.cursor.as_mut())
        else {
            return Ok(());
        };
        let len = active
            .file
            .len()
            .map_err(|e| Error::io(&active.path, "stat", e))?;
        if len <= cursor.position {
            return Ok(());
        }
        let mut entries = Vec::new();
        // An invalid batch at the tail is one still being written: stop before it.
        let _ = scan(
            Source::File(active.file.as_ref()),
            cursor,
            len,
            INDEX_INTERVAL_BYTES,
            &mut entries,
        );
        for entry in entries {
            active.push_index(entry);
        }
        active.publish(tip_of(cursor));
        Ok(())
    }
}
