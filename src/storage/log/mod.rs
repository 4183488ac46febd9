//! One shard's log: the writer. Appends, rolls and close here; group commit, checkpoints and
//! retention in the submodules of those names.
//!
//! Locks, always taken in this order: `writer` → `sealing` → `seals`, and `writer` →
//! `checkpointer` → `sync` (`sealing` is released before `checkpointer` is taken). A pending
//! seal's index slot is taken last, with `seals` released. The `segments` snapshot lock is
//! held only to swap or clone an `Arc`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

mod append;
mod background;
mod checkpointing;
mod group_commit;
mod retention;
mod sealing;

pub use group_commit::PendingSync;
pub use retention::RetentionReport;
pub use sealing::PENDING_SEALS_MAX;

use super::clean_mark::CleanMarkGuard;
use super::options::LogOptions;
use super::read::{self, ReadLimits, Record, SharedRecord};
use super::recovery::{read_checkpoint, recover, tip_of, RecoveryReport};
use super::segment::{lock, read_lock, ActiveSegment, ScanCursor, Segments, Tip};
use super::vfs::{DirLock, Vfs, VfsFile};
use crate::error::{Error, Result};
use crate::format::batch::{RecordIn, RecordRef};
use crate::format::segment::SEGMENT_HEADER_LEN;

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number of the first appended record.
    pub first_sequence: u64,
    /// Sequence number of the last appended record.
    pub last_sequence: u64,
}

#[derive(Debug)]
struct Writer {
    active: Arc<ActiveSegment>,
    cursor: ScanCursor,
    /// Bytes written since open (batches, and the headers of segments rolled to): the
    /// position group commit reasons about.
    lsn: u64,
}

#[derive(Debug)]
struct SyncState {
    synced_lsn: u64,
    leader: bool,
    /// The newest synced extent of an active segment: what a checkpoint may name.
    synced: (Arc<ActiveSegment>, Tip),
}

#[derive(Debug)]
struct Checkpointer {
    last_written: Instant,
    /// Open index file of the active segment and how many entries it holds.
    index: Option<(u64, Arc<dyn VfsFile>, usize)>,
}

#[derive(Debug)]
struct Shared {
    /// This log, for the sealer threads it starts (which must not keep it alive).
    me: std::sync::Weak<Shared>,
    dir: PathBuf,
    options: LogOptions,
    vfs: Arc<dyn Vfs>,
    segments: RwLock<Arc<Segments>>,
    writer: Mutex<Writer>,
    checkpointer: Mutex<Checkpointer>,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    /// Rolled segments whose seal is not yet durable, oldest first (see `sealing`).
    seals: Mutex<Vec<sealing::PendingSeal>>,
    /// Held by whoever completes seals, across their fsyncs (taken before `seals`).
    sealing: Mutex<()>,
    sealers: Mutex<Vec<JoinHandle<()>>>,
    /// How callers reach the background thread (see `background`).
    wake: Arc<background::WakeSignal>,
    poison: Mutex<Option<(&'static str, std::io::ErrorKind)>>,
    retention: Mutex<super::options::Retention>,
    closed: AtomicBool,
    /// Whether the clean mark found at open is still true (nothing changed since).
    clean_mark: CleanMarkGuard,
    _lock: Box<dyn DirLock>,
}

/// A writable log in one directory. `Send + Sync`: appends from many threads are serialized
/// into batches on disk in the order they take the writer lock, and reads run concurrently.
///
/// Dropping the log closes it cleanly (see [`Log::close`]) unless a write or sync failed.
#[derive(Debug)]
pub struct Log {
    shared: Arc<Shared>,
    report: RecoveryReport,
    background: Option<JoinHandle<()>>,
}

impl Log {
    /// Opens the log in `dir`, creating it if needed, recovering it after a crash.
    ///
    /// Fails with [`Error::Locked`] if another writer holds it.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<Log> {
        options.validate().map_err(Error::InvalidArgument)?;
        let dir = dir.as_ref().to_path_buf();
        let vfs = options.vfs.clone();
        vfs.create_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "create dir", e))?;
        let dir_lock = vfs
            .try_lock_dir(&dir)
            .map_err(|e| Error::io(dir.join("LOCK"), "lock", e))?
            .ok_or_else(|| Error::Locked {
                holder_pid: vfs.lock_holder(&dir),
                path: dir.clone(),
            })?;
        let checkpoint = read_checkpoint(vfs.as_ref(), &dir)?;
        // KAFKA-10471: from here on every change to the log's files goes through the guard,
        // which clears the clean mark before the first one; a crash during this open (or any
        // time later) can never be mistaken for a clean shutdown, and an open that changes
        // nothing writes nothing.
        let clean_mark = CleanMarkGuard::new(vfs.clone(), &dir, checkpoint);
        let vfs: Arc<dyn Vfs> = Arc::new(clean_mark.clone());
        let mut options = options;
        options.vfs = vfs.clone();
        let mut report = RecoveryReport::default();
        let recovered = recover(vfs.as_ref(), &dir, &options, checkpoint, &mut report)?;
        let active =
            recovered.segments.active.clone().ok_or_else(|| {
                Error::InvalidArgument("recovery produced no active segment".into())
            })?;
        let tip = tip_of(&recovered.cursor);
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            dir: dir.clone(),
            vfs: vfs.clone(),
            segments: RwLock::new(Arc::new(recovered.segments)),
            writer: Mutex::new(Writer {
                active: active.clone(),
                cursor: recovered.cursor,
                lsn: 0,
            }),
            checkpointer: Mutex::new(Checkpointer {
                last_written: Instant::now(),
                index: None,
            }),
            sync: Mutex::new(SyncState {
                synced_lsn: 0,
                leader: false,
                synced: (active, tip),
            }),
            synced_cv: Condvar::new(),
            seals: Mutex::new(Vec::new()),
            sealing: Mutex::new(()),
            sealers: Mutex::new(Vec::new()),
            wake: Arc::default(),
            poison: Mutex::new(None),
            retention: Mutex::new(options.retention),
            closed: AtomicBool::new(false),
            options,
            clean_mark,
            _lock: dir_lock,
        });
        // After a clean shutdown the checkpoint on disk already names this recovery point.
        if !report.clean_shutdown {
            shared.write_checkpoint(false)?;
        }
        let background = shared.start_background();
        Ok(Log {
            shared,
            report,
            background,
        })
    }

    /// What recovery found and did when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends `records` as one atomic batch; returns once the log's durability mode says the
    /// batch is safe. After an I/O failure the log is poisoned and every later append fails
    /// with [`Error::Poisoned`] until the log is reopened.
    pub fn append(&self, records: &[RecordIn<'_>]) -> Result<Appended> {
        self.append_batch(records, false)
    }

    /// Like [`Log::append`], marking the batch as holding KPL-aggregated records.
    pub fn append_batch(&self, records: &[RecordIn<'_>], aggregated: bool) -> Result<Appended> {
        let (appended, pending) = self.shared.write(records, aggregated)?;
        self.wait_durable(pending)?;
        Ok(appended)
    }

    /// Reads up to `limits` records starting at sequence `from` (or the oldest retained
    /// record if `from` is older). At least one record is returned when any exists at or after
    /// `from`, even if it alone exceeds the byte limit.
    pub fn read(&self, from: u64, limits: ReadLimits) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.scan(from, limits, |r| {
            out.push(Record::from(r));
            true
        })?;
        Ok(out)
    }

    /// Visits records from `from` in sequence order without copying them, until `limits` or
    /// the visitor (returning `false`) stops it. Returns the sequence number to continue at.
    pub fn scan(
        &self,
        from: u64,
        limits: ReadLimits,
        mut visit: impl FnMut(RecordRef<'_>) -> bool,
    ) -> Result<u64> {
        let snapshot = || Ok(self.shared.snapshot());
        let vfs = self.shared.vfs.as_ref();
        read::scan_fresh(snapshot, vfs, from, limits, false, |r| visit(r.record))
    }

    /// Like [`Log::scan`], with records whose bytes can be kept past the visit without a
    /// copy ([`SharedRecord::data`]): slices of the mapped segment, or of a buffer per batch
    /// for the active segment and for compressed batches.
    pub fn scan_shared(
        &self,
        from: u64,
        limits: ReadLimits,
        visit: impl FnMut(SharedRecord<'_>) -> bool,
    ) -> Result<u64> {
        let snapshot = || Ok(self.shared.snapshot());
        read::scan_fresh(
            snapshot,
            self.shared.vfs.as_ref(),
            from,
            limits,
            true,
            visit,
        )
    }

    /// The first sequence number whose record's timestamp is at or after `timestamp_ms`, or
    /// [`Log::next_sequence`] if there is none yet.
    pub fn sequence_at_timestamp(&self, timestamp_ms: i64) -> Result<u64> {
        let segments = self.shared.snapshot();
        read::sequence_at_timestamp(&segments, self.shared.vfs.as_ref(), timestamp_ms)
    }

    /// Reads and checks every batch of every segment, each sealed footer against its batches
    /// and each sealed index against the index its segment implies. Collects every problem
    /// instead of stopping at the first.
    pub fn verify(&self) -> super::VerifyReport {
        let segments = self.shared.snapshot();
        // Taken after the snapshot, so every segment it lists is in the snapshot or was
        // rolled since; a seal that completed in between has its file checked.
        let unwritten = self.shared.unwritten_indexes();
        super::verify::verify(
            &segments,
            self.shared.vfs.as_ref(),
            self.shared.options.index_interval_bytes,
            super::verify::UnwrittenIndexes::Known(&unwritten),
        )
    }

    /// The oldest retained sequence number.
    pub fn first_sequence(&self) -> u64 {
        self.shared.snapshot().first_sequence()
    }

    /// The sequence number the next readable record will have.
    pub fn next_sequence(&self) -> u64 {
        self.shared.snapshot().next_sequence()
    }

    /// Total bytes of segment files.
    pub fn size_bytes(&self) -> u64 {
        size_of(&self.shared.snapshot())
    }

    /// Number of segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        let segments = self.shared.snapshot();
        segments.sealed.len() + usize::from(segments.active.is_some())
    }

    /// Syncs everything appended so far, whatever the durability mode.
    pub fn sync(&self) -> Result<()> {
        let target = lock(&self.shared.writer).lsn;
        self.shared.sync_to(target)
    }

    /// Rolled segments whose seal is not yet durable (at most [`PENDING_SEALS_MAX`]; always 0
    /// under `Always`).
    pub fn pending_seals(&self) -> usize {
        lock(&self.shared.seals).len()
    }

    /// Seals the active segment and starts a new one, if it holds any batch; returns once the
    /// seal is durable, in every durability mode (rolls made by appends complete their seals
    /// in the background under `Interval` and `None`).
    pub fn roll(&self) -> Result<()> {
        let mut writer = self.shared.lock_writer()?;
        if writer.cursor.position > SEGMENT_HEADER_LEN as u64 {
            self.shared.roll(&mut writer)?;
            if self.shared.defers_seals() {
                self.shared.write_checkpoint(false)?;
            }
        }
        Ok(())
    }

    /// Replaces the retention limits; they apply from the next roll or
    /// [`Log::apply_retention`].
    pub fn set_retention(&self, retention: super::options::Retention) {
        *lock(&self.shared.retention) = retention;
    }

    /// Deletes sealed segments that retention says have expired; never the active one.
    pub fn apply_retention(&self) -> Result<RetentionReport> {
        let _writer = self.shared.lock_writer()?;
        self.shared.apply_retention()
    }

    /// Syncs, writes the index and a checkpoint with the clean-shutdown mark, and releases
    /// the lock. The mark is written only if every step succeeded and the log was never
    /// poisoned, so the next open trusts nothing it should not.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if let Some(handle) = self.background.take() {
            self.shared.stop_background();
            let _ = handle.join();
        }
        self.shared.join_sealers();
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if std::thread::panicking() {
            // Dropped while unwinding: whatever the panic interrupted is unknown, so the next
            // open must recover rather than trust a clean mark.
            return Ok(());
        }
        if self.shared.clean_mark.is_armed() {
            // Nothing changed since a clean open: the mark on disk is still true.
            return Ok(());
        }
        let target = self.shared.lock_writer()?.lsn;
        self.shared.sync_to(target)?;
        // Held so no append lands between the final sync and the clean mark.
        let _appends_blocked = self.shared.lock_writer()?;
        self.shared.write_checkpoint(true)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

pub(crate) fn size_of(segments: &Segments) -> u64 {
    let sealed: u64 = segments.sealed.iter().map(|s| s.file_len()).sum();
    sealed + segments.active.as_ref().map_or(0, |a| a.tip().end)
}

impl Shared {
    fn snapshot(&self) -> Arc<Segments> {
        read_lock(&self.segments).clone()
    }

    fn check_poison(&self) -> Result<()> {
        // A panic while a lock was held (here or in a caller's visitor) leaves state that no
        // one checked: treat it like an I/O failure (redb PR #885: a panic is not clean).
        if self.writer.is_poisoned() || self.checkpointer.is_poisoned() || self.sync.is_poisoned() {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                op: "panic",
                kind: std::io::ErrorKind::Other,
            });
        }
        match *lock(&self.poison) {
            Some((op, kind)) => Err(Error::Poisoned {
                path: self.dir.clone(),
                op,
                kind,
            }),
            None => Ok(()),
        }
    }

    /// Records the first failure; every later write is refused.
    fn poison(&self, op: &'static str, err: Error) -> Error {
        let mut poison = lock(&self.poison);
        if poison.is_none() {
            *poison = Some((op, err.io_kind()));
        }
        drop(poison);
        self.synced_cv.notify_all();
        err
    }

    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, Writer>> {
        self.check_poison()?;
        let writer = lock(&self.writer);
        self.check_poison()?;
        Ok(writer)
    }
}
