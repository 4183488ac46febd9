//! The I/O seam: every file operation of the storage layer goes through [`Vfs`].
//!
//! Two implementations exist: [`RealFs`](super::RealFs) over the operating system, and
//! [`SimDisk`](super::SimDisk), an in-memory disk for tests that keeps unsynced writes apart
//! and can lose or tear them on a simulated crash, flip bits, or fail chosen calls.

use std::fmt;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read an existing file.
    Read,
    /// Read and write an existing file.
    ReadWrite,
    /// Create a new empty file, replacing any file of that name, for reading and writing.
    Create,
}

/// A file handle. Offsets are explicit, so one handle serves concurrent readers.
#[allow(clippy::len_without_is_empty)]
pub trait VfsFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`. On error, any prefix of `buf` may have been written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every completed write to this file durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// An exclusive lock on a directory, released on drop.
pub trait DirLock: Send + Sync + fmt::Debug {}

/// Bytes of a whole file mapped (or copied) read-only. Valid as long as the value lives, even
/// if the file is unlinked meanwhile.
#[derive(Clone)]
pub struct Mapped(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Mapped {
    /// Wraps any byte owner.
    pub fn new(bytes: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        Mapped(bytes)
    }
}

impl Mapped {
    /// The same bytes as [`bytes::Bytes`], sharing the mapping (no copy): slices of it stay
    /// valid after this value is dropped.
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self.clone())
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl fmt::Debug for Mapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mapped({} bytes)", self.len())
    }
}

/// The file-system operations the storage layer uses; nothing else touches the disk.
pub trait Vfs: Send + Sync + fmt::Debug + 'static {
    /// Creates a directory and its parents (owner-only permissions on Unix).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames a file, replacing the target.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Maps a whole file read-only. Only sealed segments are mapped, and active segments to
    /// read below their published tip; neither range is ever rewritten or truncated, so a
    /// mapping cannot fault.
    fn map(&self, path: &Path) -> io::Result<Mapped>;
    /// Takes the exclusive lock of a directory, or `None` if another holder has it. The
    /// holder records its process id in the lock file.
    fn try_lock_dir(&self, path: &Path) -> io::Result<Option<Box<dyn DirLock>>>;

    /// The process id recorded by the current holder of a directory's lock, if known.
    fn lock_holder(&self, path: &Path) -> Option<u32> {
        let bytes = self.read_file(&path.join("LOCK"), 32).ok()?;
        std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
    }

    /// Reads a whole file of at most `len_max` bytes; a longer file is `InvalidData`, so a
    /// damaged or foreign file can never make the reader allocate by its length.
    fn read_file(&self, path: &Path, len_max: u64) -> io::Result<Vec<u8>> {
        let file = self.open(path, OpenMode::Read)?;
        let len = file.len()?;
        if len > len_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {len} bytes, more than the {len_max} expected",
                    path.display()
                ),
            ));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let mut buf = vec![0u8; len];
        let read = read_full_at(file.as_ref(), &mut buf, 0)?;
        buf.truncate(read);
        Ok(buf)
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub fn read_full_at(file: &dyn VfsFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        let n = file.read_at(rest, offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}
