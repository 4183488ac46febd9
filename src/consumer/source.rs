//! The only way the consumer reads: list shards, get an iterator, get records — as Lambda
//! reads only through GetRecords — so a mapping can later be pointed at a remote stream.

use crate::error::Result;
use crate::stream::{GetRecordsOutput, ShardDescription, ShardIteratorType, Stream};

/// A stream the mapping reads.
pub trait RecordSource: Send + Sync {
    /// The stream's ARN.
    fn stream_arn(&self) -> String;
    /// Its shards within retention.
    fn list_shards(&self) -> Result<Vec<ShardDescription>>;
    /// An iterator into a shard.
    fn get_shard_iterator(&self, shard: &str, kind: &ShardIteratorType) -> Result<String>;
    /// A page of records.
    fn get_records(&self, iterator: &str, limit: usize) -> Result<GetRecordsOutput>;

    /// Records that arrived before this time (ms) have left the stream by retention; `None`
    /// when the source cannot tell. A batch being retried sheds them, as Lambda does.
    fn expired_before_ms(&self) -> Option<i64> {
        None
    }

    /// A counter of appends, for [`RecordSource::wait_for_append`]; a source that cannot
    /// observe appends returns 0.
    fn appends(&self) -> u64 {
        0
    }

    /// Blocks until the append counter passes `seen` or `timeout` passes. A source that cannot
    /// observe appends (another process writes it) just waits out the timeout: that is polling.
    fn wait_for_append(&self, seen: u64, timeout: std::time::Duration) {
        let _ = seen;
        std::thread::sleep(timeout);
    }
}

impl RecordSource for Stream {
    fn stream_arn(&self) -> String {
        self.arn()
    }

    fn list_shards(&self) -> Result<Vec<ShardDescription>> {
        Stream::list_shards(self)
    }

    fn get_shard_iterator(&self, shard: &str, kind: &ShardIteratorType) -> Result<String> {
        Stream::get_shard_iterator(self, shard, kind)
    }

    fn get_records(&self, iterator: &str, limit: usize) -> Result<GetRecordsOutput> {
        Stream::get_records(self, iterator, limit)
    }

    fn expired_before_ms(&self) -> Option<i64> {
        Some(Stream::expired_before_ms(self))
    }

    fn appends(&self) -> u64 {
        Stream::appends(self)
    }

    fn wait_for_append(&self, seen: u64, timeout: std::time::Duration) {
        Stream::wait_for_append(self, seen, timeout)
    }
}
