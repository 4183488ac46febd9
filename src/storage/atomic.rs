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

/// Makes a [`replace_unsynced`] durable: the file's contents, then the directory (the
/// rename, and every other entry made in it since its last sync). A file deleted since has no
/// contents left to sync; the directory still is.
pub fn sync_replaced(vfs: &dyn Vfs, path: &Path) -> io::Result<()> {
    match vfs.open(path, OpenMode::Read) {
        Ok(file) => file.sync_data()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    vfs.sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FaultOp, SimDisk};

    /// A seal whose segment retention deleted still syncs the directory: the segment its roll
    /// created must be on disk before a checkpoint that may name the deleted one.
    #[test]
    fn syncing_a_deleted_replacement_still_syncs_its_directory() {
        let disk = SimDisk::new();
        let path = Path::new("/sim/log/00000000000000000000.idx");
        replace_unsynced(&disk, path, b"index").unwrap();
        disk.delete(path);
        let before = (disk.calls(FaultOp::Sync), disk.calls(FaultOp::SyncDir));
        sync_replaced(&disk, path).unwrap();
        assert_eq!(disk.calls(FaultOp::Sync), before.0, "nothing left to sync");
        assert_eq!(disk.calls(FaultOp::SyncDir), before.1 + 1);
        // A file that is there is synced, then its directory.
        replace_unsynced(&disk, path, b"index").unwrap();
        sync_replaced(&disk, path).unwrap();
        assert_eq!(disk.calls(FaultOp::Sync), before.0 + 1);
        assert_eq!(disk.calls(FaultOp::SyncDir), before.1 + 2);
    }
}
