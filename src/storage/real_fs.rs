//! The operating system behind the [`Vfs`] seam. The only module allowed `unsafe`: mapping.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;

use fs2::FileExt;

use super::vfs::{DirLock, Mapped, OpenMode, Vfs, VfsFile};

/// Files on the local file system; positioned I/O, fdatasync, memmap2 and fs2 locks.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(File);

impl VfsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

#[derive(Debug)]
struct RealLock(File);

impl DirLock for RealLock {}

impl Drop for RealLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first just makes it prompt.
        let _ = FileExt::unlock(&self.0);
    }
}

fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600)
}

impl Vfs for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::Create => {
                owner_only(options.read(true).write(true).create(true).truncate(true))
            }
        };
        Ok(Arc::new(RealFile(options.open(path)?)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    #[allow(unsafe_code)]
    fn map(&self, path: &Path) -> io::Result<Mapped> {
        let file = File::open(path)?;
        // SAFETY: shardlog maps sealed segments, and active segments only to read below
        // their published tip. Neither range is ever written or truncated again by a shardlog
        // process: appends go past the tip, sealing appends a footer, retention unlinks whole
        // files (which leaves mappings valid), and recovery truncates only bytes past the last
        // valid batch, which no reader was ever shown. So mapped bytes cannot change or vanish
        // under a reader.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mapped::new(Arc::new(map)))
    }

    fn try_lock_dir(&self, path: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        let file = owner_only(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .open(path.join("LOCK"))?;
        match file.try_lock_exclusive() {
            Ok(()) => {
                // Name the holder for whoever is refused next; the lock itself is the flock.
                file.set_len(0)?;
                std::os::unix::fs::FileExt::write_all_at(
                    &file,
                    format!("{}\n", std::process::id()).as_bytes(),
                    0,
                )?;
                Ok(Some(Box::new(RealLock(file))))
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == fs2::lock_contended_error().raw_os_error() =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
