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

    fn appends(&self) -> u64 {
        Stream::appends(self)
    }

    fn wait_for_append(&self, seen: u64, timeout: std::time::Duration) {
        Stream::wait_for_append(self, seen, timeout)
    }
}
