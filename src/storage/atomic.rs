//! Atomic replacement of small metadata files: temp file, fsync, rename, fsync directory.

use std::io;
use std::path::{Path, PathBuf};

use super::vfs::{OpenMode, Vfs};

/// Suffix of the temporary files of atomic writes; recovery deletes leftovers.
pub const TEMP_SUFFIX: &str = ".tmp";

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TEMP_SUFFIX);
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` so that after a crash the file holds either its old or its
/// new contents, never a mix; returns once the new contents and the rename are durable.
pub fn write_atomically(vfs: &dyn Vfs, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let file = vfs.open(&temp, OpenMode::Create)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    vfs.rename(&temp, path)?;
    vfs.sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Replaces `path` with `bytes` as [`write_atomically`] does, without waiting for the disk:
/// other readers see the new contents at once, and after a crash the file may hold the old
/// contents, the new or a torn mix. Only for files that are checked on read and rebuildable
/// (index files); [`sync_replaced`] later makes the replacement durable.
pub fn replace_unsynced(vfs: &dyn Vfs, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let file = vfs.open(&temp, OpenMode::Create)?;
    file.write_all_at(bytes, 0)?;
    drop(file);
    vfs.rename(&temp, path)
}

/// Makes a [`replace_unsynced`] durable: the file's contents, then the rename.
pub fn sync_replaced(vfs: &dyn Vfs, path: &Path) -> io::Result<()> {
    vfs.open(path, OpenMode::Read)?.sync_data()?;
    vfs.sync_dir(path.parent().unwrap_or(Path::new(".")))
}
