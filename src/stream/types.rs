//! Request and response shapes of the stream API, named after Kinesis' own (serialized with
//! AWS's PascalCase field names).

use std::time::Duration;

use bytestring::ByteString;
use serde::Serialize;

use super::{SequenceNumber, ShardId};

use crate::format::codec::Compression;
use crate::storage::Durability;

/// Default retention of a new stream: 24 hours, as Kinesis.
pub const RETENTION_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Default and classic Kinesis limit on one record (data plus partition key): 1 MiB.
pub const RECORD_BYTES_MAX_DEFAULT: u64 = 1024 * 1024;
/// Most entries in one `put_records` call.
pub const PUT_RECORDS_ENTRIES_MAX: usize = 500;
/// Most bytes (data plus partition keys) in one `put_records` call: 5 MiB.
pub const PUT_RECORDS_BYTES_MAX: u64 = 5 * 1024 * 1024;
/// Longest partition key, in Unicode characters.
pub const PARTITION_KEY_CHARS_MAX: usize = 256;
/// Most records one `get_records` call returns.
pub const GET_RECORDS_LIMIT_MAX: usize = 10_000;
/// Most bytes one `get_records` call returns: 10 MiB.
pub const GET_RECORDS_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Most shards in one stream.
pub const SHARDS_PER_STREAM_MAX: u32 = 10_000;

/// Settings of a new stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Number of shards, 1..=10,000.
    pub shard_count: u32,
    /// How long records stay readable; any positive duration.
    pub retention: Duration,
    /// Batch compression.
    pub compression: Compression,
    /// When puts are acknowledged.
    pub durability: Durability,
    /// Largest record (data plus partition key) accepted.
    pub max_record_bytes: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            shard_count: 1,
            retention: RETENTION_DEFAULT,
            compression: Compression::None,
            durability: Durability::Always,
            max_record_bytes: RECORD_BYTES_MAX_DEFAULT,
        }
    }
}

/// One entry of a `put_records` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecordsEntry {
    /// The payload.
    pub data: Vec<u8>,
    /// The partition key, 1..=256 characters.
    pub partition_key: String,
    /// A decimal hash key overriding the partition key's MD5.
    pub explicit_hash_key: Option<String>,
}

impl PutRecordsEntry {
    /// This entry, borrowed: what [`Stream::put_records_ref`](super::Stream::put_records_ref)
    /// takes.
    pub fn as_entry_ref(&self) -> PutRecordsEntryRef<'_> {
        PutRecordsEntryRef {
            data: &self.data,
            partition_key: &self.partition_key,
            explicit_hash_key: self.explicit_hash_key.as_deref(),
        }
    }
}

/// One entry of a `put_records` request that borrows its bytes, so a producer can build its
/// batches in buffers it reuses instead of allocating for every record. Validated, routed
/// and stored exactly as the [`PutRecordsEntry`] with the same fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutRecordsEntryRef<'a> {
    /// The payload.
    pub data: &'a [u8],
    /// The partition key, 1..=256 characters.
    pub partition_key: &'a str,
    /// A decimal hash key overriding the partition key's MD5.
    pub explicit_hash_key: Option<&'a str>,
}

/// Where a put landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    /// The shard.
    pub shard_id: ShardId,
    /// The record's sequence number.
    pub sequence_number: SequenceNumber,
}

/// One result of `put_records`, positionally aligned with its entry: either a sequence number
/// and shard, or an error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResultEntry {
    /// Set on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<SequenceNumber>,
    /// Set on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<ShardId>,
    /// `ProvisionedThroughputExceededException` or `InternalFailure` on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Set on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// The result of `put_records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    /// How many entries failed.
    pub failed_record_count: u32,
    /// One result per entry, in request order.
    pub records: Vec<PutRecordsResultEntry>,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardIteratorType {
    /// The oldest retained record.
    TrimHorizon,
    /// Just after the newest record: only records written later.
    Latest,
    /// The record with this sequence number.
    AtSequenceNumber(String),
    /// The record after this sequence number.
    AfterSequenceNumber(String),
    /// The first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(i64),
}

/// A record as `get_records` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// Sequence number: held as a number, shown (`Display`, serde) as Kinesis' decimal string.
    pub sequence_number: SequenceNumber,
    /// Arrival time, ms since the epoch.
    pub approximate_arrival_timestamp_ms: i64,
    /// Payload: shares the stored batch's bytes (a mapped segment, or the batch's buffer), so
    /// a page of records costs no per-record copy; keeping it keeps that batch's memory.
    pub data: bytes::Bytes,
    /// Partition key: like `data`, a slice of the stored batch's bytes (no allocation).
    pub partition_key: ByteString,
}

/// An inclusive hash-key range in decimal, as Kinesis shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRangeText {
    /// First key.
    pub starting_hash_key: String,
    /// Last key.
    pub ending_hash_key: String,
}

/// A child of a shard that has been read to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    /// The child.
    pub shard_id: String,
    /// Its parents (one for a split, two for a merge).
    pub parent_shards: Vec<String>,
    /// Its range.
    pub hash_key_range: HashKeyRangeText,
}

/// The result of `get_records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecordsOutput {
    /// Records in sequence order; may be empty.
    pub records: Vec<KinesisRecord>,
    /// Where to continue; `None` once a closed shard has been read to its end.
    pub next_shard_iterator: Option<String>,
    /// How far the returned records are behind the shard's newest (0 = caught up).
    pub millis_behind_latest: u64,
    /// Set when a closed shard has been read to its end.
    pub child_shards: Vec<ChildShard>,
}

/// A sequence-number range; an open shard has no end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    /// The first sequence number the shard can hold.
    pub starting_sequence_number: String,
    /// The last, once the shard is closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

/// A shard as `list_shards` and `describe_stream` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShardDescription {
    /// `shardId-` and 12 digits.
    pub shard_id: String,
    /// The shard it was split from, or the first of the two it was merged from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    /// The second shard of a merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    /// The hash keys it owns (owned, once closed).
    pub hash_key_range: HashKeyRangeText,
    /// Its sequence numbers.
    pub sequence_number_range: SequenceNumberRange,
}

/// A stream as `describe_stream` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    /// Name.
    pub stream_name: String,
    /// `arn:aws:kinesis:{region}:{account}:stream/{name}`.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// Always `ACTIVE`: shardlog's operations complete before they return.
    pub stream_status: String,
    /// Retention in whole hours (rounded up), as Kinesis reports it.
    pub retention_period_hours: u64,
    /// Retention in milliseconds (shardlog allows any duration).
    pub retention_period_ms: u64,
    /// Creation time, ms since the epoch.
    pub stream_creation_timestamp_ms: i64,
    /// Shards within retention, open and closed.
    pub shards: Vec<ShardDescription>,
    /// Open shards.
    pub open_shard_count: u32,
}

/// Formats a shard index as Kinesis does: `shardId-000000000007` (see [`ShardId`]).
pub fn shard_id(index: u32) -> String {
    ShardId::new(index).to_string()
}

/// Parses `shardId-000000000007` (or the bare index `7`, as kinesalite accepts).
pub fn parse_shard_id(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("shardId-").unwrap_or(text);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
