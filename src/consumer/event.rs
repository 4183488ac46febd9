//! The exact Lambda Kinesis event and the on-failure destination record.

use bytestring::ByteString;

use super::record_json::IdentityJson;
use crate::stream::SequenceNumber;

/// Identity of the mapping as it appears in events and failure records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingIdentity {
    /// `arn:aws:kinesis:{region}:{account}:stream/{name}`.
    pub stream_arn: String,
    /// `arn:aws:lambda:{region}:{account}:function:{mapping}`.
    pub function_arn: String,
    /// `arn:aws:iam::{account}:role/{mapping}`.
    pub role_arn: String,
    /// The region.
    pub region: String,
}

/// One record of a poll, as the mapping holds it. Its shard is the batch's
/// ([`EventBatch::shard_id`](super::EventBatch::shard_id)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledRecord {
    /// Its sequence number.
    pub sequence_number: SequenceNumber,
    /// Its partition key (shares the stored batch's bytes, as `data` does).
    pub partition_key: ByteString,
    /// Its data: as stored, or one user record of a KPL aggregate when the mapping
    /// de-aggregates. Shares the stored batch's bytes (no copy per record).
    pub data: bytes::Bytes,
    /// The user record's place in its aggregate, when the mapping de-aggregates.
    pub sub_sequence_number: Option<u64>,
    /// Arrival time in ms.
    pub arrival_ms: i64,
}

/// The JSON of one event record, in AWS's key order.
pub fn event_record_json(shard_id: &str, record: &PolledRecord, id: &MappingIdentity) -> String {
    let json = IdentityJson::new(id);
    let mut out = String::with_capacity(json.record_len(shard_id, record));
    json.write(&mut out, shard_id, record);
    out
}

/// Bytes of the `{"Records":[...]}` wrapper around the record JSONs (plus commas).
pub const EVENT_ENVELOPE_BYTES: usize = r#"{"Records":[]}"#.len();

/// ISO-8601 UTC with milliseconds and `Z`.
pub fn iso_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(epoch_time(ms)).to_string()
}

/// ISO-8601 UTC in whole seconds with `Z` (tumbling-window bounds).
pub(crate) fn iso_seconds(ms: i64) -> String {
    humantime::format_rfc3339_seconds(epoch_time(ms)).to_string()
}

/// `ms` since the epoch as a time (before the epoch counts as the epoch).
fn epoch_time(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Why a batch was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The retry quota is used up.
    RetryAttemptsExhausted,
    /// Records passed `MaximumRecordAgeInSeconds`.
    RecordAgeExceeded,
}

impl Condition {
    /// AWS's name of the condition.
    pub fn name(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// A discarded batch: the shard it came from and its records, in shard order.
#[derive(Debug, Clone, Copy)]
pub struct DiscardedBatch<'a> {
    /// The shard.
    pub shard_id: &'a str,
    /// The records.
    pub records: &'a [PolledRecord],
}

/// Builds the on-failure destination record for a discarded batch (AWS's shape and key order).
pub fn failure_record(
    id: &MappingIdentity,
    request_id: &str,
    condition: Condition,
    invoke_count: u64,
    function_error: Option<&str>,
    now_ms: i64,
    batch: DiscardedBatch<'_>,
) -> String {
    let (Some(first), Some(last)) = (batch.records.first(), batch.records.last()) else {
        return String::new();
    };
    let mut record = serde_json::Map::new();
    record.insert(
        "requestContext".into(),
        serde_json::json!({
            "requestId": request_id,
            "functionArn": id.function_arn,
            "condition": condition.name(),
            "approximateInvokeCount": invoke_count,
        }),
    );
    if condition == Condition::RetryAttemptsExhausted {
        record.insert(
            "responseContext".into(),
            serde_json::json!({
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": function_error,
            }),
        );
    }
    record.insert("version".into(), "1.0".into());
    record.insert("timestamp".into(), iso_ms(now_ms).into());
    record.insert(
        "KinesisBatchInfo".into(),
        serde_json::json!({
            "shardId": batch.shard_id,
            "startSequenceNumber": first.sequence_number,
            "endSequenceNumber": last.sequence_number,
            "approximateArrivalOfFirstRecord": iso_ms(first.arrival_ms),
            "approximateArrivalOfLastRecord": iso_ms(last.arrival_ms),
            "batchSize": batch.records.len(),
            "streamArn": id.stream_arn,
        }),
    );
    serde_json::Value::Object(record).to_string()
}
