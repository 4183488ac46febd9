//! Reading a snapshot of segments: from a sequence number or a timestamp, bounded in records
//! and bytes. Sealed segments are read zero-copy from their mapping; the active segment with
//! positioned reads, never past its published tip, so a reader never sees a torn or
//! unpublished batch.

use super::segment::{load_batch, seek_sequence, seek_time, LoadError, Segments, Source};
use super::vfs::{Mapped, Vfs};
use crate::error::Result;
use crate::format::batch::{BatchHeader, BatchView, DecodeError, RecordRef, BATCH_HEADER_LEN};
use crate::format::codec::{CodecId, DecodeScratch};
use crate::format::index::IndexEntry;
use crate::format::segment::SEGMENT_HEADER_LEN;
use bytes::Bytes;
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

/// Whether a walk hands out batches whose bytes outlive the visit.
#[derive(Clone, Copy)]
enum Share<'m> {
    /// Batches borrowed from this thread's reused buffers: nothing outlives the visit.
    No,
    /// Batches backed by [`Bytes`]: the mapped file given here (`Some`), else a fresh buffer
    /// per batch; a compressed batch's inflated records always get a fresh buffer.
    Yes(Option<&'m Bytes>),
}

/// Calls `each` on every batch from `start` (an index entry or the segment start) to `end`,
/// with the bytes its records can be shared from (under [`Share::Yes`]), until it returns
/// `false`. Batches must be contiguous in sequence numbers.
fn walk_batches(
    source: Source<'_>,
    path: &Path,
    start: Option<IndexEntry>,
    (base, end): (u64, u64),
    share: Share<'_>,
    each: &mut dyn FnMut(&BatchView<'_>, Option<&Bytes>) -> bool,
) -> Result<bool> {
    // Taken out for the walk (a nested walk on this thread simply gets fresh buffers).
    let mut buffers = READ_BUFFERS
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_else(|| ReadBuffers {
            batch: Vec::new(),
            scratch: DecodeScratch::default(),
        });
    let (mut position, mut expected) = match start {
        Some(e) => (e.position, e.sequence),
        None => (SEGMENT_HEADER_LEN as u64, base),
    };
    let mut result = Ok(true);
    while position < end {
        let visited = match share {
            Share::No => load_batch(
                source,
                position,
                end,
                Some(expected),
                &mut buffers.batch,
                &mut buffers.scratch,
            )
            .map(|view| (*view.header(), each(&view, None))),
            Share::Yes(map) => {
                visit_shared(source, position, end, expected, map, &mut buffers, each)
            }
        };
        match visited {
            Ok((header, true)) => {
                position += u64::from(header.length);
                expected = header.next_sequence();
            }
            Ok((_, false)) => {
                result = Ok(false);
                break;
            }
            Err(e) => {
                result = Err(e.into_error(path, position));
                break;
            }
        }
    }
    READ_BUFFERS.with(|slot| *slot.borrow_mut() = Some(buffers));
    result
}

/// Loads the batch at `position` and visits it with bytes its records can be shared from:
/// the mapped file for a raw batch in a mapping, else a buffer of its own.
fn visit_shared(
    source: Source<'_>,
    position: u64,
    end: u64,
    expected: u64,
    map: Option<&Bytes>,
    buffers: &mut ReadBuffers,
    each: &mut dyn FnMut(&BatchView<'_>, Option<&Bytes>) -> bool,
) -> Result<(BatchHeader, bool), LoadError> {
    // A batch read from a file goes to a buffer of its own, which the records then share.
    let mut own = Vec::new();
    let buf = if map.is_some() {
        &mut buffers.batch
    } else {
        &mut own
    };
    let header = {
        let view = load_batch(
            source,
            position,
            end,
            Some(expected),
            buf,
            &mut buffers.scratch,
        )?;
        let header = *view.header();
        if header.codec == CodecId::None {
            if let Some(map) = map {
                return Ok((header, each(&view, Some(map))));
            }
        }
        header
    };
    let backing = if header.codec == CodecId::None {
        Bytes::from(own)
    } else {
        Bytes::from(buffers.scratch.take_records())
    };
    let section = if header.codec == CodecId::None {
        backing.get(BATCH_HEADER_LEN..header.length as usize)
    } else {
        Some(backing.as_ref())
    };
    let view = section
        .and_then(|records| BatchView::moved(header, records))
        .ok_or(LoadError::Decode(DecodeError::HeaderMismatch {
            problem: "record section moved to shared storage changed length",
        }))?;
    Ok((header, each(&view, Some(&backing))))
}

/// A record as a scan visits it: borrowed from its batch, and shareable past the visit
/// without a copy when the scan shares.
#[derive(Debug, Clone, Copy)]
pub struct SharedRecord<'a> {
    /// The record's fields, borrowed.
    pub record: RecordRef<'a>,
    backing: Option<&'a Bytes>,
}

impl SharedRecord<'_> {
    /// The data as owned bytes: a slice of the batch's shared bytes (no copy) when the scan
    /// shares, else a copy.
    pub fn data(&self) -> Bytes {
        share(self.backing, self.record.data)
    }
}

/// `part` as a slice of `backing` if it lies inside it, else a copy of it.
fn share(backing: Option<&Bytes>, part: &[u8]) -> Bytes {
    if let Some(backing) = backing {
        let offset = (part.as_ptr() as usize).wrapping_sub(backing.as_ptr() as usize);
        if offset <= backing.len() && part.len() <= backing.len() - offset {
            return backing.slice(offset..offset + part.len());
        }
    }
    Bytes::copy_from_slice(part)
}

struct Collector<F> {
    next: u64,
    records: usize,
    bytes: usize,
    stopped: bool,
    limits: ReadLimits,
    visit: F,
}

impl<F: FnMut(SharedRecord<'_>) -> bool> Collector<F> {
    fn on_batch(&mut self, view: &BatchView<'_>, backing: Option<&Bytes>) -> bool {
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
            if full || !(self.visit)(SharedRecord { record, backing }) {
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
    share: bool,
    mut visit: impl FnMut(SharedRecord<'_>) -> bool,
) -> Result<u64> {
    let mut attempt = 0;
    loop {
        let segments = snapshot()?;
        let mut seen = 0usize;
        let result = scan(&segments, vfs, from, limits, share, |r| {
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
    share: bool,
    visit: impl FnMut(SharedRecord<'_>) -> bool,
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
        let shared_map = share.then(|| map.to_bytes());
        walk_batches(
            Source::Map(&map),
            &segment.path,
            start,
            (segment.base, segment.footer.data_end),
            if share {
                Share::Yes(shared_map.as_ref())
            } else {
                Share::No
            },
            &mut |v, backing| c.on_batch(v, backing),
        )?;
    }
    if let Some(active) = segments.active.as_ref().filter(|_| !c.stopped) {
        let tip = active.tip();
        if c.next < tip.next_sequence {
            let start = active.seek_sequence(c.next, tip.end);
            // A sharing read maps the active segment too: its bytes up to the published tip
            // never change, and a mapping spares a copy, a fresh buffer and its zeroing per
            // batch. A mapping shorter than the tip (never expected) falls back to reads.
            let map = if share {
                Some(
                    vfs.map(&active.path)
                        .map_err(|e| crate::Error::io(&active.path, "map", e))?,
                )
                .filter(|map| map.len() as u64 >= tip.end)
            } else {
                None
            };
            let shared_map = map.as_ref().map(Mapped::to_bytes);
            let (source, sharing) = match (&map, share) {
                (Some(map), _) => (Source::Map(map), Share::Yes(shared_map.as_ref())),
                (None, true) => (Source::File(active.file.as_ref()), Share::Yes(None)),
                (None, false) => (Source::File(active.file.as_ref()), Share::No),
            };
            walk_batches(
                source,
                &active.path,
                start,
                (active.base, tip.end),
                sharing,
                &mut |v, backing| c.on_batch(v, backing),
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
            (segment.base, segment.footer.data_end),
            Share::No,
            &mut |v, _| first_at_or_after(v, timestamp_ms, &mut found),
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
                (active.base, tip.end),
                Share::No,
                &mut |v, _| first_at_or_after(v, timestamp_ms, &mut found),
            )?;
            if let Some(sequence) = found {
                return Ok(sequence);
            }
        }
    }
    Ok(segments.next_sequence())
}

#[cfg(test)]
mod tests {
    use super::share;
    use bytes::Bytes;

    #[test]
    fn a_part_inside_the_backing_is_sliced_not_copied() {
        let backing = Bytes::from(b"0123456789".to_vec());
        let part = backing.get(3..7).unwrap_or_default();
        let shared = share(Some(&backing), part);
        assert_eq!(&shared[..], b"3456");
        assert_eq!(shared.as_ptr(), part.as_ptr(), "points into the backing");
        let whole = share(Some(&backing), &backing);
        assert_eq!(whole.as_ptr(), backing.as_ptr());
        let empty_at_end = share(Some(&backing), backing.get(10..).unwrap_or_default());
        assert!(empty_at_end.is_empty());
    }

    #[test]
    fn a_part_outside_the_backing_or_without_one_is_copied() {
        let backing = Bytes::from(b"0123456789".to_vec());
        let elsewhere = b"3456".to_vec();
        let copied = share(Some(&backing), &elsewhere);
        assert_eq!(&copied[..], b"3456");
        assert_ne!(copied.as_ptr(), elsewhere.as_ptr());
        // Straddling the backing's end: must not be sliced out of bounds.
        let longer = Bytes::from(b"0123456789abcdef".to_vec());
        let straddling = longer.get(8..12).unwrap_or_default();
        let first_ten = longer.slice(..10);
        assert_eq!(&share(Some(&first_ten), straddling)[..], b"89ab");
        assert_eq!(&share(None, b"xyz")[..], b"xyz");
    }
}
