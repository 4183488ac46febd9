//! The one public error type. Each variant says what went wrong and, in its message, what to do.

use std::io;
use std::path::PathBuf;

use crate::format::batch::{DecodeError, EncodeError};
use crate::format::segment::SegmentMetaError;

/// Result alias for shardlog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in shardlog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("{op} {path}: {source}; check the path, its permissions and the disk")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What was being done (`"write"`, `"fsync"`, ...).
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The disk is full. Nothing was acknowledged; the log is poisoned until reopened.
    #[error("disk full while writing {path}; free space, then reopen the log")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Bytes on disk are not what shardlog wrote, somewhere a torn write cannot explain.
    #[error("corrupt data in {path} at byte {offset}: {reason}; restore the file from a replica or backup, or truncate the log before this offset")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first bad byte range.
        offset: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// A file was written by a newer shardlog format.
    #[error("{path} uses format version {found}; this build reads version {supported}: upgrade shardlog")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// Another writer holds the lock of a log or stream.
    #[error("{path} is locked by another writer ({}); stop it, or open read-only to follow it", holder_text(*holder_pid))]
    Locked {
        /// The locked directory.
        path: PathBuf,
        /// The process id the holder recorded in its `LOCK` file, if readable.
        holder_pid: Option<u32>,
    },
    /// An earlier write or sync failed, so the log refuses writes: what reached the disk is
    /// unknown until recovery has looked.
    #[error("log {path} is poisoned by an earlier failed {op} ({kind}); reopen it to recover")]
    Poisoned {
        /// The log directory.
        path: PathBuf,
        /// The operation that failed first.
        op: &'static str,
        /// How it failed.
        kind: io::ErrorKind,
    },
    /// The records cannot form a batch (empty, too many, too large).
    #[error("invalid append: {0}")]
    InvalidBatch(#[from] EncodeError),
    /// An argument is outside what the operation accepts (Kinesis
    /// `InvalidArgumentException`). Nothing was written.
    #[error("InvalidArgumentException: {0}")]
    InvalidArgument(String),
    /// A stream, shard or other named resource does not exist (Kinesis
    /// `ResourceNotFoundException`).
    #[error("ResourceNotFoundException: {0}")]
    ResourceNotFound(String),
    /// The resource exists but is in a state that forbids the call, or already exists (Kinesis
    /// `ResourceInUseException`).
    #[error("ResourceInUseException: {0}")]
    ResourceInUse(String),
    /// A request violates a model constraint, such as a list or string length (Kinesis
    /// `ValidationException`). Nothing was written.
    #[error("ValidationException: {0}")]
    Validation(String),
    /// A shard iterator is older than five minutes; get a new one (Kinesis
    /// `ExpiredIteratorException`).
    #[error("ExpiredIteratorException: {0}")]
    ExpiredIterator(String),
    /// A per-shard rate limit was exceeded; back off and retry (Kinesis
    /// `ProvisionedThroughputExceededException`).
    #[error("ProvisionedThroughputExceededException: {0}")]
    ProvisionedThroughputExceeded(String),
    /// A limit on resources or scaling operations would be exceeded (Kinesis
    /// `LimitExceededException`).
    #[error("LimitExceededException: {0}")]
    LimitExceeded(String),
    /// An event source mapping setting is out of range or malformed (Lambda
    /// `InvalidParameterValueException`).
    #[error("InvalidParameterValueException: {0}")]
    InvalidParameterValue(String),
    /// The service failed to store a record (Kinesis `InternalFailure`); retrying may
    /// succeed, and the store's log names the cause.
    #[error("InternalFailure: {0}")]
    Internal(String),
    /// The log was opened read-only.
    #[error("{path} is open read-only (a follower); open it with a writable handle to write")]
    ReadOnly {
        /// The log directory.
        path: PathBuf,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) if pid == std::process::id() => format!("this process, {pid}"),
        Some(pid) => format!("process {pid}"),
        None => "holder unknown".to_string(),
    }
}

/// Why data is corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptReason {
    /// A batch failed to decode.
    #[error("bad batch: {0}")]
    Batch(#[from] DecodeError),
    /// A segment header, footer, index header or checkpoint is invalid.
    #[error("bad metadata: {0}")]
    Meta(#[from] SegmentMetaError),
    /// Segment files do not form a contiguous sequence range.
    #[error("sequence gap: expected {expected}, found {found}")]
    SequenceGap {
        /// The sequence number the previous segment ends at.
        expected: u64,
        /// The base of the next segment.
        found: u64,
    },
    /// A sealed segment's footer disagrees with its file.
    #[error("footer disagrees with the segment: {0}")]
    Footer(&'static str),
    /// An index file disagrees with the segment it indexes (derived data: rebuildable).
    #[error("index disagrees with its segment: {0}")]
    Index(&'static str),
    /// A segment other than the last one has no valid footer.
    #[error("segment is not the last one yet has no valid footer")]
    MissingFooter,
}

impl Error {
    /// Wraps an I/O error, mapping "no space left" to [`Error::DiskFull`].
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(28) || source.kind() == io::ErrorKind::StorageFull {
            Error::DiskFull { path }
        } else {
            Error::Io { path, op, source }
        }
    }

    /// A corruption error.
    pub fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<CorruptReason>,
    ) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// The Kinesis error name for this error (`__type` on the wire), or `InternalFailure` for
    /// errors Kinesis has no name for.
    pub fn kinesis_name(&self) -> &'static str {
        match self {
            Error::ResourceNotFound(_) => "ResourceNotFoundException",
            Error::ResourceInUse(_) => "ResourceInUseException",
            Error::Validation(_) => "ValidationException",
            Error::ExpiredIterator(_) => "ExpiredIteratorException",
            Error::ProvisionedThroughputExceeded(_) => "ProvisionedThroughputExceededException",
            Error::LimitExceeded(_) => "LimitExceededException",
            Error::InvalidArgument(_) | Error::InvalidBatch(_) => "InvalidArgumentException",
            Error::Internal(_) => "InternalFailure",
            Error::InvalidParameterValue(_) => "InvalidParameterValueException",
            _ => "InternalFailure",
        }
    }

    /// The kind of I/O failure behind this error, for poisoning.
    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Io { source, .. } => source.kind(),
            Error::DiskFull { .. } => io::ErrorKind::StorageFull,
            Error::Poisoned { kind, .. } => *kind,
            _ => io::ErrorKind::Other,
        }
    }
}
