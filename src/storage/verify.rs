//! Full verification: every batch of every segment decoded and checked, footers against the
//! batches, and index files against the index the segment implies.

use std::path::PathBuf;

use super::segment::{scan, ScanCursor, ScanStop, Segments, Source};
use super::vfs::Vfs;
use crate::error::{CorruptReason, Error};
use crate::format::index::{decode_index_entries, index_digest, IndexEntry};

/// What a verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Bytes of batches checked.
    pub bytes: u64,
    /// Records covered by the checked batches.
    pub records: u64,
    /// Every problem found, in log order. Empty means the log is sound.
    pub problems: Vec<Error>,
}

impl VerifyReport {
    /// Whether nothing was wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn index_problem(path: PathBuf, reason: &'static str) -> Error {
    Error::corrupt(path, 0, CorruptReason::Index(reason))
}

/// Which sealed segments may not have their index file written yet: a roll leaves it to
/// the seal that follows (FORMAT.md §7, *Sealing*).
#[derive(Debug, Clone, Copy)]
pub(crate) enum UnwrittenIndexes<'a> {
    /// The writer's own list (bases of segments whose seal has not written the index):
    /// those are checked against the index the writer holds, every other file strictly.
    Known(&'a [u64]),
    /// Seen from another process, which cannot know: an index file that holds whole
    /// entries, a strict prefix of the segment's index (what checkpoints wrote before the
    /// roll), is a seal still to come (or, after a crash, one the next open completes), not
    /// damage.
    Unknown,
}

/// Checks a snapshot of segments; `interval` is the index interval the writer used.
pub(crate) fn verify(
    segments: &Segments,
    vfs: &dyn Vfs,
    interval: u64,
    unwritten: UnwrittenIndexes<'_>,
) -> VerifyReport {
    let mut report = VerifyReport::default();
    for segment in &segments.sealed {
        report.segments += 1;
        let map = match segment.mapped(vfs) {
            Ok(map) => map,
            Err(e) => {
                report.problems.push(e);
                continue;
            }
        };
        let mut cursor = ScanCursor::at_start(segment.base);
        let mut implied: Vec<IndexEntry> = Vec::new();
        let end = segment.footer.data_end;
        let stop = scan(Source::Map(&map), &mut cursor, end, interval, &mut implied);
        report.bytes += cursor.position - ScanCursor::at_start(segment.base).position;
        report.records += cursor.next_sequence - segment.base;
        if let ScanStop::Invalid(e) = stop {
            report
                .problems
                .push(e.into_error(&segment.path, cursor.position));
            continue;
        }
        if cursor.next_sequence != segment.footer.next_sequence
            || cursor.max_timestamp_ms != segment.footer.max_timestamp_ms
        {
            report.problems.push(Error::corrupt(
                &segment.path,
                end,
                CorruptReason::Footer("footer disagrees with the batches"),
            ));
        }
        if let UnwrittenIndexes::Known(bases) = unwritten {
            if bases.contains(&segment.base) {
                // Not on disk yet: the index readers use is the writer's, in memory.
                match segment.index(vfs) {
                    Ok(held) if *held == implied => {}
                    Ok(_) => report.problems.push(index_problem(
                        segment.index_path.clone(),
                        "the writer's index differs from the batches",
                    )),
                    Err(e) => report.problems.push(e),
                }
                continue;
            }
        }
        match vfs.read_file(
            &segment.index_path,
            super::segment::index_len_max(segment.file_len()),
        ) {
            Err(_) => report.problems.push(index_problem(
                segment.index_path.clone(),
                "index file missing",
            )),
            Ok(bytes) => {
                let (stored, whole) = decode_index_entries(&bytes, segment.base);
                let seal_to_come = matches!(unwritten, UnwrittenIndexes::Unknown)
                    && whole
                    && stored.len() < implied.len()
                    && implied.starts_with(&stored);
                if seal_to_come {
                    continue;
                }
                if index_digest(&bytes) != segment.footer.index_digest
                    || bytes.len() as u64 != segment.footer.index_len
                {
                    report.problems.push(index_problem(
                        segment.index_path.clone(),
                        "index digest differs from the footer's",
                    ));
                } else if !whole || stored != implied {
                    report.problems.push(index_problem(
                        segment.index_path.clone(),
                        "index entries differ from the batches",
                    ));
                }
            }
        }
    }
    if let Some(active) = &segments.active {
        report.segments += 1;
        // The whole file, not just the published tip: bytes after the last valid batch are a
        // torn or corrupt tail (or, rarely, a write still in progress) and are reported.
        let end = active.file.len().unwrap_or(active.tip().end);
        let mut cursor = ScanCursor::at_start(active.base);
        let mut implied = Vec::new();
        let stop = scan(
            Source::File(active.file.as_ref()),
            &mut cursor,
            end,
            interval,
            &mut implied,
        );
        report.bytes += cursor.position - ScanCursor::at_start(active.base).position;
        report.records += cursor.next_sequence - active.base;
        if let ScanStop::Invalid(e) = stop {
            report
                .problems
                .push(e.into_error(&active.path, cursor.position));
        }
    }
    report
}
