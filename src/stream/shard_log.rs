//! A shard's log as a stream sees it: the writer's own [`Log`], or a [`LogReader`] following
//! a log that another process writes.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::storage::SharedRecord;
use crate::storage::{Log, LogReader, ReadLimits};

/// The log behind one shard.
#[derive(Debug)]
pub(crate) enum ShardLog {
    /// This process writes the shard.
    Writer(Log),
    /// Another process writes it; this one follows.
    Reader(LogReader, PathBuf),
}

impl ShardLog {
    /// The writable log, or `ReadOnly` for a follower.
    pub(crate) fn writer(&self) -> Result<&Log> {
        match self {
            ShardLog::Writer(log) => Ok(log),
            ShardLog::Reader(_, path) => Err(Error::ReadOnly { path: path.clone() }),
        }
    }

    pub(crate) fn scan(
        &self,
        from: u64,
        limits: ReadLimits,
        visit: impl FnMut(SharedRecord<'_>) -> bool,
    ) -> Result<u64> {
        match self {
            ShardLog::Writer(log) => log.scan_shared(from, limits, visit),
            ShardLog::Reader(reader, _) => reader.scan_shared(from, limits, visit),
        }
    }

    pub(crate) fn sequence_at_timestamp(&self, timestamp_ms: i64) -> Result<u64> {
        match self {
            ShardLog::Writer(log) => log.sequence_at_timestamp(timestamp_ms),
            ShardLog::Reader(reader, _) => reader.sequence_at_timestamp(timestamp_ms),
        }
    }

    pub(crate) fn first_sequence(&self) -> Result<u64> {
        match self {
            ShardLog::Writer(log) => Ok(log.first_sequence()),
            ShardLog::Reader(reader, _) => reader.first_sequence(),
        }
    }

    pub(crate) fn verify(&self) -> Result<crate::storage::VerifyReport> {
        match self {
            ShardLog::Writer(log) => Ok(log.verify()),
            ShardLog::Reader(reader, _) => reader.verify(),
        }
    }

    pub(crate) fn next_sequence(&self) -> Result<u64> {
        match self {
            ShardLog::Writer(log) => Ok(log.next_sequence()),
            ShardLog::Reader(reader, _) => reader.next_sequence(),
        }
    }
}
