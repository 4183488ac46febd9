//! One shard's log on disk, knowing nothing of Kinesis.
//!
//! A log is a directory of segment files named by their base sequence number, each with a
//! sparse index file, plus a checkpoint file and a lock file. [`Log`] is the single writer;
//! [`LogReader`] follows a log read-only from any process. All file I/O goes through [`Vfs`]:
//! [`RealFs`] in production, [`SimDisk`] in fault tests.

mod atomic;
mod clean_mark;
mod log;
mod options;
mod read;
mod reader;
mod real_fs;
mod recovery;
mod segment;
mod sim_disk;
mod verify;
mod vfs;

pub use self::log::{Appended, Log, PendingSync, RetentionReport, PENDING_SEALS_MAX};
pub use atomic::write_atomically;
pub use options::{
    Clock, Durability, LogOptions, Retention, CHECKPOINT_INTERVAL_DEFAULT, SEGMENT_BYTES_DEFAULT,
    SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN,
};
pub use read::{ReadLimits, Record, SharedRecord, READ_BYTES_DEFAULT, READ_RECORDS_DEFAULT};
pub use reader::LogReader;
pub use real_fs::RealFs;
pub use recovery::{RecoveryReport, CHECKPOINT_FILE};
pub use segment::{index_file_name, parse_segment_name, segment_file_name};
pub use sim_disk::{CrashMode, FaultOp, SimDisk, SimRng, SimStats};
pub use verify::VerifyReport;
pub use vfs::{read_full_at, DirLock, Mapped, OpenMode, Vfs, VfsFile};
