//! Reading a snapshot of segments: from a sequence number or a timestamp, bounded in records
//! and bytes. Sealed segments are read zero-copy from their mapping; the active segment with
//! positioned reads, never past its published tip, so a reader never sees a torn or
//! unpublished batch.

use super::segment::{load_batch, seek_sequence, seek_time, LoadError, Segments, Source};
use super::vfs::Vfs;
use crate::error::Result;
use crate::format::batch::{BatchView, RecordRef};
use crate::format::codec::DecodeScratch;
use crate::format::index::IndexEntry;
use crate::format::segment::SEGMENT_HEADER_LEN;
use std::path::Path;

/// Default most records per read (as Kinesis GetRecords).
pub const READ_RECORDS_DEFAULT: usize = 10_000;
/// Default most bytes per read (as Kinesis GetRecords): 10 MiB.
pub const READ_BYTES_DEFAULT: usize = 10 * 1024 * 1024;

/// Bounds of one read. Bytes count partition keys and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most records to return.
    pub records_max: usize,
    /// Most bytes to return; the first record is returned even if it alone is larger.
    pub bytes_max: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            records_max: READ_RECORDS_DEFAULT,
            bytes_max: READ_BYTES_DEFAULT,
        }
    }
}

impl ReadLimits {
    /// Limits of at most `records_max` records and the default byte limit.
    pub fn records(records_max: usize) -> Self {
        ReadLimits {
            records_max,
            ..ReadLimits::default()
        }
    }
}

/// An owned record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number.
    pub sequence: u64,
    /// Arrival timestamp in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Partition key bytes.
    pub partition_key: Vec<u8>,
    /// Explicit hash key, if any.
    pub explicit_hash_key: Option<u128>,
    /// Payload.
    pub data: Vec<u8>,
}

impl From<RecordRef<'_>> for Record {
    fn from(r: RecordRef<'_>) -> Self {
        Record {
            sequence: r.sequence,
            timestamp_ms: r.timestamp_ms,
            partition_key: r.partition_key.to_vec(),
            explicit_hash_key: r.explicit_hash_key,
            data: r.data.to_vec(),
        }
    }
}

/// Buffers a thread reuses across reads: a batch read from the active segment and a
/// decompressed record section. Reusing them avoids a fresh (page-faulting) allocation of up
/// to a batch's size on every read; each is bounded by the largest batch (16 MiB).
struct ReadBuffers {
    batch: Vec<u8>,
    scratch: DecodeScratch,
}

thread_local! {
    static READ_BUFFERS: std::cell::RefCell<Option<ReadBuffers>> = const { std::cell::RefCell::new(None) };
}

/// Calls `each` on every batch from `start` (an index entry or the segment start) to `end`,
/// until it returns `false`. Batches must be contiguous in sequence numbers.
fn walk_batches(
    source: Source<'_>,
    path: &Path,
    start: Option<IndexEntry>,
    base: u64,
    end: u64,
    each: &mut dyn FnMut(&BatchView<'_>) -> bool,
) -> Result<bool> {
    // Taken out for the walk (a nested walk on this thread simply gets fresh buffers).
    let mut buffers = READ_BUFFERS
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_else(|| ReadBuffers {
            batch: Vec::new(),
            scratch: DecodeScratch::default(),
        });
    let result = walk_with(source, path, start, base, end, each, &mut buffers);
    READ_BUFFERS.with(|slot| *slot.borrow_mut() = Some(buffers));
    result
}

fn walk_with(
    source: Source<'_>,
    path: &Path,
    start: Option<IndexEntry>,
    base: u64,
    end: u64,
    each: &mut dyn FnMut(&BatchView<'_>) -> bool,
    buffers: &mut ReadBuffers,
) -> Result<bool> {
    let (mut position, mut expected) = match start {
        Some(e) => (e.position, e.sequence),
        None => (SEGMENT_HEADER_LEN as u64, base),
    };
    while position < end {
        let view = load_batch(
            source,
            position,
            end,
            Some(expected),
            &mut buffers.batch,
            &mut buffers.scratch,
        )
        .map_err(|e: LoadError| e.into_error(path, position))?;
        if !each(&view) {
            return Ok(false);
        }
        position += u64::from(view.header().length);
        expected = view.header().next_sequence();
    }
    Ok(true)
}

struct Collector<F> {
    next: u64,
    records: usize,
    bytes: usize,
    stopped: bool,
    limits: ReadLimits,
    visit: F,
}

impl<F: FnMut(RecordRef<'_>) -> bool> Collector<F> {
    fn on_batch(&mut self, view: &BatchView<'_>) -> bool {
        if view.header().next_sequence() <= self.next {
            return true;
        }
        for record in view.records() {
            if record.sequence < self.next {
                continue;
            }
            let size = record.data.len() + record.partition_key.len();
            let full = self.records >= self.limits.records_max
                || (self.records > 0 && self.bytes.saturating_add(size) > self.limits.bytes_max);
            if full || !(self.visit)(record) {
                self.stopped = true;
                return false;
            }
            self.records += 1;
            self.bytes = self.bytes.saturating_add(size);
            self.next = record.sequence + 1;
        }
        true
    }
}

/// How many times a read starts over when retention deletes a segment under it.
pub(crate) const RETRIES_ON_RETENTION_RACE: usize = 3;

/// Like [`scan`], taking a fresh snapshot and starting over when retention deleted a segment
/// between the snapshot and its mapping (only if nothing was visited yet, so no record is
/// delivered twice).
pub(crate) fn scan_fresh(
    snapshot: impl Fn() -> Result<std::sync::Arc<Segments>>,
    vfs: &dyn Vfs,
    from: u64,
    limits: ReadLimits,
    mut visit: impl FnMut(RecordRef<'_>) -> bool,
) -> Result<u64> {
    let mut attempt = 0;
    loop {
        let segments = snapshot()?;
        let mut seen = 0usize;
        let result = scan(&segments, vfs, from, limits, |r| {
            seen += 1;
            visit(r)
        });
        match result {
            Err(crate::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && seen == 0
                    && attempt < RETRIES_ON_RETENTION_RACE =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Reads records from `from` (clamped to the oldest retained) within `limits`.
pub(crate) fn scan(
    segments: &Segments,
    vfs: &dyn Vfs,
    from: u64,
    limits: ReadLimits,
    visit: impl FnMut(RecordRef<'_>) -> bool,
) -> Result<u64> {
    let mut c = Collector {
        next: from.max(segments.first_sequence()),
        records: 0,
        bytes: 0,
        stopped: limits.records_max == 0,
        limits,
        visit,
    };
    let first_sealed = segments
        .sealed
        .partition_point(|s| s.footer.next_sequence <= c.next);
    for segment in segments.sealed.iter().skip(first_sealed) {
        if c.stopped {
            return Ok(c.next);
        }
        let map = segment.mapped(vfs)?;
        let index = segment.index(vfs)?;
        let start = seek_sequence(&index, c.next);
        walk_batches(
            Source::Map(&map),
            &segment.path,
            start,
            segment.base,
            segment.footer.data_end,
            &mut |v| c.on_batch(v),
        )?;
    }
    if let Some(active) = segments.active.as_ref().filter(|_| !c.stopped) {
        let tip = active.tip();
        if c.next < tip.next_sequence {
            let start = active.seek_sequence(c.next, tip.end);
            walk_batches(
                Source::File(active.file.as_ref()),
                &active.path,
                start,
                active.base,
                tip.end,
                &mut |v| c.on_batch(v),
            )?;
        }
    }
    Ok(c.next)
}

fn first_at_or_after(view: &BatchView<'_>, timestamp_ms: i64, found: &mut Option<u64>) -> bool {
    if view.header().max_timestamp_ms < timestamp_ms {
        return true;
    }
    *found = view
        .records()
        .find(|r| r.timestamp_ms >= timestamp_ms)
        .map(|r| r.sequence);
    found.is_none()
}

/// The first sequence number at or after `timestamp_ms`, or the next sequence number.
pub(crate) fn sequence_at_timestamp(
    segments: &Segments,
    vfs: &dyn Vfs,
    timestamp_ms: i64,
) -> Result<u64> {
    let mut found = None;
    for segment in &segments.sealed {
        if segment.footer.max_timestamp_ms < timestamp_ms {
            continue;
        }
        let map = segment.mapped(vfs)?;
        let index = segment.index(vfs)?;
        let start = seek_time(&index, timestamp_ms);
        walk_batches(
            Source::Map(&map),
            &segment.path,
            start,
            segment.base,
            segment.footer.data_end,
            &mut |v| first_at_or_after(v, timestamp_ms, &mut found),
        )?;
        if let Some(sequence) = found {
            return Ok(sequence);
        }
    }
    if let Some(active) = &segments.active {
        let tip = active.tip();
        if tip.max_timestamp_ms >= timestamp_ms {
            let start = active
                .seek_time(timestamp_ms)
                .filter(|e| e.position < tip.end);
            walk_batches(
                Source::File(active.file.as_ref()),
                &active.path,
                start,
                active.base,
                tip.end,
                &mut |v| first_at_or_after(v, timestamp_ms, &mut found),
            )?;
            if let Some(sequence) = found {
                return Ok(sequence);
            }
        }
    }
    Ok(segments.next_sequence())
}
