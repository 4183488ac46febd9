//! Warming the page cache's memory before the timed write phases.
//!
//! On a virtual machine whose host backs guest memory lazily, the first touch of a page costs
//! a fault in the host. Measured on the development machine: a 1 GB write into memory never
//! touched before ran at 0.4 GB/s, the same write into freed page-cache memory at 4.9 GB/s.
//! Each write phase of the bench grows the page cache, so which phase got fresh memory was
//! chance: one run measured the naive baseline at 0.39 GB/s, the next at 3.2. Reading a
//! sparse file fills the page cache with zeroed pages without any disk I/O (no dirty pages, no
//! writeback); deleting the file frees those pages, now backed by the host, and the phases
//! after it reuse them.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{io_failure, Failure};

/// What the warm-up did: bytes read through the page cache, and how long it took (not part
/// of any phase's time).
#[derive(Debug, Clone, Copy)]
pub(super) struct Warmed {
    pub(super) bytes: u64,
    pub(super) elapsed: Duration,
}

/// Never warms more than this share of the memory the kernel reports available, so the
/// warm-up cannot push anything else out.
const AVAILABLE_SHARE_MAX: f64 = 0.5;

/// Reads `wanted` bytes of a sparse file through the page cache in `dir`, then deletes it.
/// Warms less (or nothing) where `/proc/meminfo` says memory is short or cannot be read.
pub(super) fn warm_page_cache(dir: &Path, wanted: u64) -> Result<Warmed, Failure> {
    let started = Instant::now();
    let bytes = wanted.min((available_bytes() as f64 * AVAILABLE_SHARE_MAX) as u64);
    if bytes == 0 {
        return Ok(Warmed {
            bytes,
            elapsed: started.elapsed(),
        });
    }
    let path = dir.join("warm-up.sparse");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_failure("warm-up create", e))?;
    let read = file
        .set_len(bytes)
        .and_then(|()| read_to_end_discarding(&file));
    let removed = std::fs::remove_file(&path);
    read.map_err(|e| io_failure("warm-up read", e))?;
    removed.map_err(|e| io_failure("warm-up remove", e))?;
    Ok(Warmed {
        bytes,
        elapsed: started.elapsed(),
    })
}

fn read_to_end_discarding(mut file: &File) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    while file.read(&mut buffer)? > 0 {}
    Ok(())
}

/// `MemAvailable` from `/proc/meminfo`, or 0 where it cannot be read.
fn available_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_mem_available(&text))
        .unwrap_or(0)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_kib() {
        let meminfo = "MemTotal:       24684008 kB\nMemFree:        12345678 kB\nMemAvailable:   24140104 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(24_140_104 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn warm_up_reads_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(warmed) = warm_page_cache(dir.path(), 3 << 20) else {
            panic!("the warm-up failed");
        };
        assert!(warmed.bytes <= 3 << 20);
        if available_bytes() > 16 << 20 {
            assert_eq!(warmed.bytes, 3 << 20);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
