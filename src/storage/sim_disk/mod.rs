//! A simulated disk for deterministic fault tests.
//!
//! Each file keeps two images: `live` (what reads see) and `durable` (what survives a crash),
//! plus the list of writes made since its last `sync_data`. Directory changes (create, rename,
//! remove) are likewise live at once and durable after `sync_dir`. [`SimDisk::crash`] builds the
//! post-crash disk from the durable images plus a seeded choice of the pending work: a prefix of
//! each file's unsynced writes (or, with [`CrashMode::Reorder`], any subset), the last of them
//! possibly torn at a random byte, and a prefix of each directory's unsynced changes. Handles
//! opened before a crash fail with EIO afterwards, as if their process had died.
//!
//! Faults on demand: [`SimDisk::fail_nth`] fails a chosen call, [`SimDisk::set_space_limit`]
//! makes writes past a total size fail with ENOSPC after writing what fits, and
//! [`SimDisk::flip_bit`] corrupts a byte of both images.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::vfs::{DirLock, Mapped, OpenMode, Vfs, VfsFile};

/// How unsynced writes of a file survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Unsynced writes are all lost.
    DropUnsynced,
    /// A prefix of the unsynced writes survives; the last survivor may be torn.
    TornPrefix,
    /// Any subset of the unsynced writes survives, in any order of arrival; one may be torn.
    Reorder,
}

/// Which call a planned fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `write_all_at`.
    Write,
    /// `sync_data`.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// `rename`.
    Rename,
    /// `open` with [`OpenMode::Create`].
    Create,
}

/// Counters of what the simulated disk was asked to do, for tests that bound I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Bytes returned by `read_at`, per file name.
    pub bytes_read: BTreeMap<String, u64>,
    /// Number of `map` calls, per file name.
    pub maps: BTreeMap<String, u64>,
    /// `sync_data` calls.
    pub syncs: u64,
    /// The most `sync_data` calls that were under way at once (with a sync delay set, the
    /// measure of how far syncs overlapped).
    pub syncs_in_flight_max: u64,
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default, Clone)]
struct Inode {
    /// Shared with mappings, which see it as it was when mapped (only ranges that never
    /// change are read through them); a write copies it only while a mapping holds it.
    live: Arc<Vec<u8>>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    next_inode: u64,
    inodes: BTreeMap<u64, Inode>,
    live_names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    pending_dir_ops: Vec<(PathBuf, DirOp)>,
    dirs: std::collections::BTreeSet<PathBuf>,
    locks: std::collections::BTreeSet<PathBuf>,
    faults: Vec<(FaultOp, u64, io::ErrorKind)>,
    calls: BTreeMap<&'static str, u64>,
    space_limit: Option<u64>,
    sync_delay: std::time::Duration,
    /// `sync_data` calls under way (in their delay).
    syncs_in_flight: u64,
    stats: SimStats,
}

/// An in-memory disk; cheap to clone (clones share the disk).
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimDisk")
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("simulated EIO: {what}"))
}

/// Paths in `map` at or under `dir`: a contiguous range, since paths order component by
/// component (everything under `/a/b` sorts after `/a/b` and before `/a/b.x`).
fn under<'a, V>(map: &'a BTreeMap<PathBuf, V>, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> {
    map.range::<Path, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
        .map(|(p, _)| p)
        .take_while(move |p| p.starts_with(dir))
}

/// Like [`under`], for a set.
fn under_set<'a>(
    set: &'a std::collections::BTreeSet<PathBuf>,
    dir: &'a Path,
) -> impl Iterator<Item = &'a PathBuf> {
    set.range::<Path, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
        .take_while(move |p| p.starts_with(dir))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn op_name(op: FaultOp) -> &'static str {
    match op {
        FaultOp::Write => "write",
        FaultOp::Sync => "sync",
        FaultOp::SyncDir => "sync_dir",
        FaultOp::Rename => "rename",
        FaultOp::Create => "create",
    }
}

impl State {
    /// Counts a call and returns the planned error for it, if any.
    fn fault(&mut self, op: FaultOp) -> Option<io::Error> {
        let count = self.calls.entry(op_name(op)).or_insert(0);
        *count += 1;
        let n = *count;
        let at = self
            .faults
            .iter()
            .position(|(o, nth, _)| *o == op && *nth == n)?;
        let (_, _, kind) = self.faults.remove(at);
        if kind == io::ErrorKind::StorageFull {
            return Some(io::Error::from_raw_os_error(28));
        }
        Some(io::Error::new(
            kind,
            format!("simulated {kind} on {} call {n}", op_name(op)),
        ))
    }

    fn live_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.live.len() as u64).sum()
    }

    fn dir_of(path: &Path) -> PathBuf {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

fn apply(image: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => write_into(image, *offset, data),
        Pending::SetLen(len) => image.resize(*len as usize, 0),
    }
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    if let Some(slot) = image.get_mut(start..end) {
        slot.copy_from_slice(data);
    }
}

mod file;
mod rng;
mod vfs_impl;

use file::{SimFile, SimLock};
pub use rng::SimRng;

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would leave a test's disk inconsistent anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the `nth` call (1-based, counted from the disk's creation) of `op` with `kind`.
    /// `ErrorKind::StorageFull` produces a raw ENOSPC.
    pub fn fail_nth(&self, op: FaultOp, nth: u64, kind: io::ErrorKind) {
        self.lock().faults.push((op, nth, kind));
    }

    /// How many calls of `op` the disk has seen.
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.lock().calls.get(op_name(op)).copied().unwrap_or(0)
    }

    /// Caps the total live bytes of all files; writes past it fail with ENOSPC after writing
    /// the part that fits. `None` removes the cap.
    pub fn set_space_limit(&self, limit: Option<u64>) {
        self.lock().space_limit = limit;
    }

    /// Makes every `sync_data` take `delay` (outside the disk's lock), as a device would.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.lock().sync_delay = delay;
    }

    /// I/O counters since the disk was created or [`SimDisk::reset_stats`] was called.
    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    /// Zeroes the I/O counters.
    pub fn reset_stats(&self) {
        self.lock().stats = SimStats::default();
    }

    /// The live bytes of a file, as a reader would see them.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.live_names.get(path)?;
        state.inodes.get(inode).map(|i| i.live.to_vec())
    }

    /// Replaces a file's bytes in both images, as if they had been written and synced.
    pub fn set_contents(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        let id = match state.live_names.get(path) {
            Some(id) => *id,
            None => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.live_names.insert(path.to_path_buf(), id);
                state.durable_names.insert(path.to_path_buf(), id);
                id
            }
        };
        state.durable_names.insert(path.to_path_buf(), id);
        let inode = state.inodes.entry(id).or_default();
        inode.live = Arc::new(bytes.to_vec());
        inode.durable = bytes.to_vec();
        inode.pending.clear();
    }

    /// XORs `mask` into the byte at `offset` of both images of a file.
    pub fn flip_bit(&self, path: &Path, offset: u64, mask: u8) -> bool {
        let mut state = self.lock();
        let Some(id) = state.live_names.get(path).copied() else {
            return false;
        };
        let Some(inode) = state.inodes.get_mut(&id) else {
            return false;
        };
        let mut hit = false;
        for image in [Arc::make_mut(&mut inode.live), &mut inode.durable] {
            if let Some(b) = image.get_mut(offset as usize) {
                *b ^= mask;
                hit = true;
            }
        }
        hit
    }

    /// Removes a file at once, durably (a test's stand-in for an operator deleting it).
    pub fn delete(&self, path: &Path) {
        let mut state = self.lock();
        state.live_names.remove(path);
        state.durable_names.remove(path);
    }

    /// The names of live files whose path starts with `dir`.
    pub fn files_in(&self, dir: &Path) -> Vec<PathBuf> {
        under(&self.lock().live_names, dir).cloned().collect()
    }

    /// Simulates a power loss: rebuilds the disk from what was durable plus a seeded choice of
    /// unsynced work, and makes every earlier handle fail. Planned faults and the space limit
    /// are cleared.
    pub fn crash(&self, mode: CrashMode, rng: &mut SimRng) {
        let mut state = self.lock();
        state.generation += 1;
        state.locks.clear();
        // Planned faults belong to the process that died.
        state.faults.clear();
        state.space_limit = None;
        // Directory changes: a prefix of each directory's pending operations lands.
        let pending_dir = std::mem::take(&mut state.pending_dir_ops);
        let mut by_dir: BTreeMap<PathBuf, Vec<DirOp>> = BTreeMap::new();
        for (dir, op) in pending_dir {
            by_dir.entry(dir).or_default().push(op);
        }
        for ops in by_dir.values() {
            let keep = if mode == CrashMode::DropUnsynced {
                0
            } else {
                rng.below(ops.len() as u64 + 1) as usize
            };
            for op in ops.iter().take(keep) {
                match op {
                    DirOp::Link(path, id) => {
                        state.durable_names.insert(path.clone(), *id);
                    }
                    DirOp::Unlink(path) => {
                        state.durable_names.remove(path);
                    }
                }
            }
        }
        // File contents.
        for inode in state.inodes.values_mut() {
            let pending = std::mem::take(&mut inode.pending);
            let mut image = std::mem::take(&mut inode.durable);
            let chosen: Vec<&Pending> = match mode {
                CrashMode::DropUnsynced => Vec::new(),
                CrashMode::TornPrefix => {
                    let keep = rng.below(pending.len() as u64 + 1) as usize;
                    pending.iter().take(keep).collect()
                }
                CrashMode::Reorder => pending.iter().filter(|_| rng.chance(50)).collect(),
            };
            let last = chosen.len().saturating_sub(1);
            for (i, op) in chosen.into_iter().enumerate() {
                match op {
                    Pending::Write { offset, data } if i == last && rng.chance(50) => {
                        let torn = rng.below(data.len() as u64 + 1) as usize;
                        write_into(&mut image, *offset, data.get(..torn).unwrap_or_default());
                    }
                    other => apply(&mut image, other),
                }
            }
            inode.live = Arc::new(image.clone());
            inode.durable = image;
        }
        state.live_names = state.durable_names.clone();
        let referenced: std::collections::BTreeSet<u64> =
            state.durable_names.values().copied().collect();
        state.inodes.retain(|id, _| referenced.contains(id));
    }
}
