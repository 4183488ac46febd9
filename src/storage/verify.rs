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
    /// Seen from another process, which knows neither the pending seals nor the writer's
    /// index interval: an index file of whole entries that each name a batch of the segment,
    /// the first batch first, is sound. Written at another interval, its digest matches the
    /// footer's; as a prefix of the writer's index (what checkpoints wrote before the roll)
    /// it is a seal still to come (or, after a crash, one the next open completes).
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
                let unknown = matches!(unwritten, UnwrittenIndexes::Unknown);
                if unknown && whole && stored != implied {
                    // Another interval, or a seal to come: check each entry against the
                    // batches themselves (a second scan, only when the index differs).
                    let mut every_batch = Vec::new();
                    let mut rescan = ScanCursor::at_start(segment.base);
                    let stop = scan(Source::Map(&map), &mut rescan, end, 0, &mut every_batch);
                    if !matches!(stop, ScanStop::Invalid(_))
                        && names_batches_in_order(&stored, &every_batch)
                    {
                        continue;
                    }
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

/// Whether every entry of `stored` is one of `every_batch` (an entry per batch), in order,
/// starting at the first batch: an index at some interval, or a prefix of one.
fn names_batches_in_order(stored: &[IndexEntry], every_batch: &[IndexEntry]) -> bool {
    if stored
        .first()
        .is_some_and(|first| Some(first) != every_batch.first())
    {
        return false;
    }
    let mut batches = every_batch.iter();
    stored
        .iter()
        .all(|entry| batches.any(|batch| batch == entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sequence: u64) -> IndexEntry {
        IndexEntry {
            sequence,
            position: 32 + sequence * 100,
            max_timestamp_before_ms: sequence as i64,
        }
    }

    #[test]
    fn an_index_names_batches_in_order_from_the_first() {
        let batches: Vec<IndexEntry> = (0..6).map(entry).collect();
        let named = |seqs: &[u64]| {
            let stored: Vec<IndexEntry> = seqs.iter().copied().map(entry).collect();
            names_batches_in_order(&stored, &batches)
        };
        assert!(named(&[]), "an empty index (nothing checkpointed yet)");
        assert!(named(&[0, 2, 4]), "every other batch");
        assert!(named(&[0, 1]), "a prefix");
        assert!(!named(&[1, 3]), "not from the first batch");
        assert!(!named(&[0, 4, 2]), "out of order");
        assert!(!named(&[0, 0]), "a batch twice");
        let mut moved = entry(3);
        moved.position += 1;
        assert!(
            !names_batches_in_order(&[entry(0), moved], &batches),
            "not at a batch"
        );
    }
}
