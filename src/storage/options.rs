//! Settings of one log.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::real_fs::RealFs;
use super::vfs::Vfs;
use crate::format::codec::Compression;
use crate::format::index::INDEX_INTERVAL_BYTES;

/// Default size at which the active segment rolls: 128 MiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
/// Smallest allowed `segment_bytes_max`: small segments are for tests.
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Largest allowed `segment_bytes_max`: positions in a segment stay far from `u64` limits and
/// one segment stays mappable on any 64-bit machine.
pub const SEGMENT_BYTES_LIMIT: u64 = 1 << 40;
/// Default interval between recovery-point checkpoints.
pub const CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);

/// When an append counts as done.
///
/// | mode | process crash (kill -9) | power loss / kernel crash |
/// |---|---|---|
/// | `Always` | nothing acknowledged is lost | nothing acknowledged is lost |
/// | `Interval(d)` | nothing acknowledged is lost | up to `d` of acknowledged appends (plus the sync's own duration) may be lost |
/// | `None` | nothing acknowledged is lost | everything since the last roll or checkpoint may be lost |
///
/// In every mode recovery yields a prefix of the appended batches: never a partial batch, a
/// reordering or an invented record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// An append returns after an fdatasync that covers it; concurrent appenders share one
    /// sync (group commit). Readers see a batch only once it is synced.
    #[default]
    Always,
    /// A background thread syncs every interval; appends return after the write.
    Interval(Duration),
    /// Appends return after the write to the OS page cache; syncs happen only at segment
    /// rolls, checkpoints and close.
    None,
}

/// Retention limits; a sealed segment is deleted when either says so. The active segment is
/// never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete a sealed segment once its newest record is older than this.
    pub age: Option<Duration>,
    /// Delete the oldest sealed segments while the log's total size exceeds this many bytes.
    pub bytes_max: Option<u64>,
}

/// The clock a log reads, in milliseconds since the Unix epoch; replaceable for tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// A clock from any function.
    pub fn new(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now_ms))
    }

    /// The system clock.
    pub fn system() -> Self {
        Clock::new(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
    }

    /// The current time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Everything that configures a [`Log`](super::Log).
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Roll the active segment once it holds this many bytes.
    pub segment_bytes_max: u64,
    /// Roll the active segment once it is this old (at the next append).
    pub segment_age_max: Option<Duration>,
    /// When appends are acknowledged.
    pub durability: Durability,
    /// Compression of new batches (existing batches keep theirs).
    pub compression: Compression,
    /// Retention limits.
    pub retention: Retention,
    /// Log bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// How often the recovery point is checkpointed (bounds the rescan after a crash).
    pub checkpoint_interval: Duration,
    /// The first sequence number of a new log.
    pub initial_sequence: u64,
    /// Under `Interval` and `None`, who completes a roll's seal (the fsync of the rolled
    /// segment, then its index file): a thread the roll starts (`true`, the default), or the
    /// next sync, checkpoint, explicit roll or close (`false`: deterministic, for simulation).
    pub seal_in_background: bool,
    /// The file system.
    pub vfs: Arc<dyn Vfs>,
    /// The clock.
    pub clock: Clock,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
            segment_age_max: None,
            durability: Durability::Always,
            compression: Compression::None,
            retention: Retention::default(),
            index_interval_bytes: INDEX_INTERVAL_BYTES,
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            initial_sequence: 0,
            seal_in_background: true,
            vfs: Arc::new(RealFs),
            clock: Clock::system(),
        }
    }
}

impl LogOptions {
    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes_max) {
            return Err(format!(
                "segment_bytes_max {} outside [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_LIMIT}]",
                self.segment_bytes_max
            ));
        }
        if !self.compression.is_valid() {
            return Err(format!(
                "compression {:?}: zstd level must be 1..=19",
                self.compression
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index_interval_bytes must be positive".into());
        }
        if let Durability::Interval(d) = self.durability {
            if d.is_zero() {
                return Err("Durability::Interval needs a positive interval".into());
            }
        }
        Ok(())
    }
}
