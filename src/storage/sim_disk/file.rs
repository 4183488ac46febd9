//! Open files and directory locks of the simulated disk: every write lands in the file's live
//! image and its pending list; `sync_data` applies the pending list to the durable image.

use std::io;
use std::path::PathBuf;

use super::*;

#[derive(Debug)]
pub(super) struct SimFile {
    pub(super) disk: SimDisk,
    pub(super) inode: u64,
    pub(super) generation: u64,
    pub(super) name: String,
    pub(super) writable: bool,
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return Err(eio("handle from before a crash"));
        }
        f(&mut state)
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|state| {
            let inode = state
                .inodes
                .get(&self.inode)
                .ok_or_else(|| eio("inode gone"))?;
            let start = (offset as usize).min(inode.live.len());
            let end = (start + buf.len()).min(inode.live.len());
            let src = inode.live.get(start..end).unwrap_or_default();
            let n = src.len();
            if let Some(dst) = buf.get_mut(..n) {
                dst.copy_from_slice(src);
            }
            *state.stats.bytes_read.entry(self.name.clone()).or_insert(0) += n as u64;
            Ok(n)
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only handle",
            ));
        }
        self.with(|state| {
            if let Some(err) = state.fault(FaultOp::Write) {
                return Err(err);
            }
            let current = state
                .inodes
                .get(&self.inode)
                .map_or(0, |i| i.live.len() as u64);
            let growth = (offset + buf.len() as u64).saturating_sub(current);
            let mut data = buf;
            let mut full = false;
            if let Some(limit) = state.space_limit {
                let free = limit.saturating_sub(state.live_bytes());
                if growth > free {
                    let fits = (buf.len() as u64 - (growth - free)) as usize;
                    data = buf.get(..fits).unwrap_or_default();
                    full = true;
                }
            }
            let inode = state
                .inodes
                .get_mut(&self.inode)
                .ok_or_else(|| eio("inode gone"))?;
            write_into(Arc::make_mut(&mut inode.live), offset, data);
            inode.pending.push(Pending::Write {
                offset,
                data: data.to_vec(),
            });
            if full {
                return Err(io::Error::from_raw_os_error(28));
            }
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        // Like a real device, a sync takes time during which other threads may run and write.
        let delay = {
            let mut state = self.disk.lock();
            state.syncs_in_flight += 1;
            state.stats.syncs_in_flight_max =
                state.stats.syncs_in_flight_max.max(state.syncs_in_flight);
            state.sync_delay
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut state = self.disk.lock();
        state.syncs_in_flight = state.syncs_in_flight.saturating_sub(1);
        drop(state);
        self.with(|state| {
            state.stats.syncs += 1;
            if let Some(err) = state.fault(FaultOp::Sync) {
                // As on Linux, a failed fsync may have dropped the dirty pages: the pending
                // writes stay unsynced, and nothing says whether they will ever land.
                return Err(err);
            }
            let inode = state
                .inodes
                .get_mut(&self.inode)
                .ok_or_else(|| eio("inode gone"))?;
            for op in std::mem::take(&mut inode.pending) {
                apply(&mut inode.durable, &op);
            }
            debug_assert_eq!(inode.durable, *inode.live);
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|state| {
            let inode = state
                .inodes
                .get(&self.inode)
                .ok_or_else(|| eio("inode gone"))?;
            Ok(inode.live.len() as u64)
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|state| {
            let inode = state
                .inodes
                .get_mut(&self.inode)
                .ok_or_else(|| eio("inode gone"))?;
            Arc::make_mut(&mut inode.live).resize(len as usize, 0);
            inode.pending.push(Pending::SetLen(len));
            Ok(())
        })
    }
}

#[derive(Debug)]
pub(super) struct SimLock {
    pub(super) disk: SimDisk,
    pub(super) path: PathBuf,
    pub(super) generation: u64,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self.disk.lock();
        if state.generation == self.generation {
            state.locks.remove(&self.path);
        }
    }
}
