//! Keeps a log's clean-shutdown mark on disk until the first change to the log's files.
//!
//! The mark lets a reopen skip every scan; it is only true while the files are exactly as the
//! clean close left them. Instead of clearing it at every open (two atomic checkpoint writes,
//! four fsyncs, on every reopen), the log's files are reached through [`CleanMarkGuard`], a
//! [`Vfs`] that rewrites the checkpoint without the mark before the first call that changes
//! anything: a write, a truncation, a create, a rename or a removal. So no byte of the log
//! can change while the mark says it has not (KAFKA-10471: a crash during recovery must not
//! look clean), and an open that changes nothing — a reader, a clean restart — costs no write.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::recovery::write_checkpoint;
use super::vfs::{DirLock, Mapped, OpenMode, Vfs, VfsFile};
use crate::format::checkpoint::Checkpoint;

/// The mark still on disk, and how to clear it.
struct Mark {
    /// Whether the clean checkpoint is still the one on disk.
    armed: AtomicBool,
    /// The directory and the clean checkpoint found at open.
    clean: Mutex<Option<(PathBuf, Checkpoint)>>,
    inner: Arc<dyn Vfs>,
}

impl Mark {
    /// Clears the mark (durably) if it is still on disk; every change calls this first.
    fn before_change(&self) -> io::Result<()> {
        if !self.armed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut clean = self.clean.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((dir, checkpoint)) = clean.as_ref() {
            let unclean = Checkpoint {
                clean: false,
                ..*checkpoint
            };
            write_checkpoint(self.inner.as_ref(), dir, &unclean)
                .map_err(|e| io::Error::other(format!("clearing the clean-shutdown mark: {e}")))?;
        }
        *clean = None;
        self.armed.store(false, Ordering::Release);
        Ok(())
    }
}

/// A [`Vfs`] over a log directory that clears the clean-shutdown mark before the first change.
#[derive(Clone)]
pub(crate) struct CleanMarkGuard {
    mark: Arc<Mark>,
}

impl fmt::Debug for CleanMarkGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleanMarkGuard")
            .field("armed", &self.is_armed())
            .finish_non_exhaustive()
    }
}

impl CleanMarkGuard {
    /// Guards `dir` on `inner`; `clean` is the checkpoint found at open if it carries the mark
    /// (without one the guard has nothing to clear and passes every call through).
    pub(crate) fn new(inner: Arc<dyn Vfs>, dir: &Path, clean: Option<Checkpoint>) -> Self {
        let clean = clean.filter(|c| c.clean).map(|c| (dir.to_path_buf(), c));
        CleanMarkGuard {
            mark: Arc::new(Mark {
                // Mirrors `clean.is_some()` so that every write checks an atomic, not a lock.
                armed: AtomicBool::new(clean.is_some()),
                clean: Mutex::new(clean),
                inner,
            }),
        }
    }

    /// Whether nothing has changed since open, so the clean mark is still true on disk.
    pub(crate) fn is_armed(&self) -> bool {
        self.mark.armed.load(Ordering::Acquire)
    }
}

impl Vfs for CleanMarkGuard {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.mark.inner.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.mark.inner.list_dir(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        if mode == OpenMode::Create {
            self.mark.before_change()?;
        }
        let file = self.mark.inner.open(path, mode)?;
        Ok(match mode {
            OpenMode::Read => file,
            OpenMode::ReadWrite | OpenMode::Create => Arc::new(GuardedFile {
                file,
                mark: Arc::clone(&self.mark),
            }),
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.mark.before_change()?;
        self.mark.inner.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.mark.before_change()?;
        self.mark.inner.remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mark.before_change()?;
        self.mark.inner.rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.mark.inner.sync_dir(path)
    }

    fn map(&self, path: &Path) -> io::Result<Mapped> {
        self.mark.inner.map(path)
    }

    fn try_lock_dir(&self, path: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        self.mark.inner.try_lock_dir(path)
    }

    fn lock_holder(&self, path: &Path) -> Option<u32> {
        self.mark.inner.lock_holder(path)
    }
}

/// A writable file of a guarded log: writes and truncations clear the mark first.
struct GuardedFile {
    file: Arc<dyn VfsFile>,
    mark: Arc<Mark>,
}

impl fmt::Debug for GuardedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.file.fmt(f)
    }
}

impl VfsFile for GuardedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.mark.before_change()?;
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.mark.before_change()?;
        self.file.set_len(len)
    }
}
