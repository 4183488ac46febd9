//! Retention of a writable log: whole sealed segments are deleted once they are older than
//! the age limit or while the log is over its size limit; the active segment never is.

use std::sync::Arc;

use super::{size_of, Shared};
use crate::error::{Error, Result};
use crate::storage::recovery::segment_paths;
use crate::storage::segment::lock;

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Sealed segments deleted.
    pub segments_deleted: u64,
    /// Bytes of segment files deleted.
    pub bytes_deleted: u64,
    /// The oldest retained sequence number afterwards.
    pub first_sequence: u64,
}

impl Shared {
    /// Deletes expired sealed segments. The caller holds the writer lock.
    pub(super) fn apply_retention(&self) -> Result<RetentionReport> {
        let segments = self.snapshot();
        let retention = *lock(&self.retention);
        let now = self.options.clock.now_ms();
        let mut total = size_of(&segments);
        let mut expired = 0;
        for segment in &segments.sealed {
            let too_old = retention.age.is_some_and(|age| {
                let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                segment.footer.max_timestamp_ms < now.saturating_sub(age_ms)
            });
            let too_big = retention.bytes_max.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                break;
            }
            total -= segment.file_len();
            expired += 1;
        }
        let mut report = RetentionReport {
            first_sequence: segments.first_sequence(),
            ..RetentionReport::default()
        };
        if expired == 0 {
            return Ok(report);
        }
        let mut remaining = (*segments).clone();
        let deleted: Vec<_> = remaining.sealed.drain(..expired).collect();
        report.first_sequence = remaining.first_sequence();
        // Readers switch to the shorter list first; one that still holds a mapping of a
        // deleted segment keeps valid bytes, since unlinking never shrinks a mapped file.
        *self
            .segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(remaining);
        for segment in &deleted {
            self.cancel_index_write(segment.base);
            for path in segment_paths(&self.dir, segment.base) {
                match self.vfs.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&path, "remove", e)),
                }
            }
            report.segments_deleted += 1;
            report.bytes_deleted += segment.file_len();
        }
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, "fsync dir", e))?;
        Ok(report)
    }
}
