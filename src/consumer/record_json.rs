//! The JSON of one Lambda Kinesis event record, written by hand: base64 straight into the
//! output, no intermediate strings, and its exact length computable without writing it, so
//! the poller can apply the 6 MB payload limit before (or without) building any JSON.
//!
//! The bytes are those `serde_json` gives for the same record in AWS's key order; the tests
//! hold the two against each other.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::event::{MappingIdentity, PolledRecord};

const KINESIS_OPEN: &str = r#"{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"#;
const SEQUENCE: &str = r#","sequenceNumber":""#;
const SUB_SEQUENCE: &str = r#"","subSequenceNumber":"#;
const DATA_AFTER_SUB: &str = r#","data":""#;
const DATA: &str = r#"","data":""#;
const TIMESTAMP: &str = r#"","approximateArrivalTimestamp":"#;
const SOURCE: &str = r#"},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"#;
const NAME: &str = r#","eventName":"aws:kinesis:record","invokeIdentityArn":"#;
const REGION: &str = r#","awsRegion":"#;
const SOURCE_ARN: &str = r#","eventSourceARN":"#;

/// Bytes `text` takes as a JSON string, quotes included (serde_json's escaping).
pub(crate) fn json_string_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Appends `text` as a JSON string.
pub(crate) fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Timestamps whose milliseconds have at most 15 digits print as plain decimals; past that
/// (never a real clock) serde_json's float formatter decides.
const PLAIN_MS_MAX: i64 = 999_999_999_999_999;

/// Appends the arrival time in seconds as serde_json prints the f64 `ms / 1000.0`: shortest
/// round-trip digits, always with a fraction (`1545084650.987`, `1545084650.5`,
/// `1545084650.0`). For up to 15 significant digits that is the exact decimal with trailing
/// zeros dropped, written here without float formatting.
fn write_seconds(out: &mut String, arrival_ms: i64) {
    if arrival_ms.unsigned_abs() > PLAIN_MS_MAX as u64 {
        // Rare enough to pay for serde_json's own float formatting.
        let seconds = serde_json::to_string(&(arrival_ms as f64 / 1000.0)).unwrap_or_default();
        out.push_str(&seconds);
        return;
    }
    if arrival_ms < 0 {
        out.push('-');
    }
    let ms = arrival_ms.unsigned_abs();
    let _ = write!(out, "{}", ms / 1000);
    out.push('.');
    let (fraction, digits) = trimmed_fraction(ms % 1000);
    let _ = write!(out, "{fraction:0digits$}");
}

/// The millisecond fraction without trailing zeros, and its digit count (at least one).
fn trimmed_fraction(millis: u64) -> (u64, usize) {
    match millis {
        0 => (0, 1),
        m if m % 100 == 0 => (m / 100, 1),
        m if m % 10 == 0 => (m / 10, 2),
        m => (m, 3),
    }
}

fn seconds_len(arrival_ms: i64) -> usize {
    if arrival_ms.unsigned_abs() > PLAIN_MS_MAX as u64 {
        let mut text = String::with_capacity(32);
        write_seconds(&mut text, arrival_ms);
        return text.len();
    }
    let ms = arrival_ms.unsigned_abs();
    usize::from(arrival_ms < 0) + decimal_len(ms / 1000) + 1 + trimmed_fraction(ms % 1000).1
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |digits| digits as usize + 1)
}

/// The parts of a record's JSON that depend only on the mapping, escaped once.
#[derive(Debug, Clone)]
pub(crate) struct IdentityJson {
    role_arn: String,
    region: String,
    stream_arn: String,
}

impl IdentityJson {
    pub(crate) fn new(id: &MappingIdentity) -> IdentityJson {
        let quoted = |s: &str| {
            let mut out = String::new();
            write_json_string(&mut out, s);
            out
        };
        IdentityJson {
            role_arn: quoted(&id.role_arn),
            region: quoted(&id.region),
            stream_arn: quoted(&id.stream_arn),
        }
    }

    /// The exact byte length of [`IdentityJson::write`]'s output for `record`.
    pub(crate) fn record_len(&self, shard_id: &str, record: &PolledRecord) -> usize {
        let sub = record.sub_sequence_number.map_or(DATA.len(), |n| {
            SUB_SEQUENCE.len() + decimal_len(n) + DATA_AFTER_SUB.len()
        });
        self.fixed_len()
            + json_string_len(&record.partition_key)
            + record.sequence_number.decimal_len() * 2
            + sub
            + record.data.len().div_ceil(3) * 4
            + seconds_len(record.arrival_ms)
            + shard_id.len()
    }

    /// The bytes of a record's JSON that are the same for every record of the mapping.
    fn fixed_len(&self) -> usize {
        KINESIS_OPEN.len()
            + SEQUENCE.len()
            + TIMESTAMP.len()
            + SOURCE.len()
            + 2
            + 1
            + NAME.len()
            + self.role_arn.len()
            + REGION.len()
            + self.region.len()
            + SOURCE_ARN.len()
            + self.stream_arn.len()
            + 1
    }

    /// Appends the record's JSON. Shard ids and sequence numbers are ASCII letters, digits
    /// and dashes, so they need no escaping.
    pub(crate) fn write(&self, out: &mut String, shard_id: &str, record: &PolledRecord) {
        out.push_str(KINESIS_OPEN);
        write_json_string(out, &record.partition_key);
        out.push_str(SEQUENCE);
        let _ = write!(out, "{}", record.sequence_number);
        match record.sub_sequence_number {
            Some(n) => {
                out.push_str(SUB_SEQUENCE);
                let _ = write!(out, "{n}");
                out.push_str(DATA_AFTER_SUB);
            }
            None => out.push_str(DATA),
        }
        STANDARD.encode_string(&record.data, out);
        out.push_str(TIMESTAMP);
        write_seconds(out, record.arrival_ms);
        out.push_str(SOURCE);
        out.push('"');
        out.push_str(shard_id);
        out.push(':');
        let _ = write!(out, "{}", record.sequence_number);
        out.push('"');
        out.push_str(NAME);
        out.push_str(&self.role_arn);
        out.push_str(REGION);
        out.push_str(&self.region);
        out.push_str(SOURCE_ARN);
        out.push_str(&self.stream_arn);
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct KinesisPart<'a> {
        kinesis_schema_version: &'a str,
        partition_key: &'a str,
        sequence_number: &'a crate::stream::SequenceNumber,
        #[serde(skip_serializing_if = "Option::is_none")]
        sub_sequence_number: Option<u64>,
        data: String,
        approximate_arrival_timestamp: f64,
    }

    #[derive(Serialize)]
    struct Reference<'a> {
        kinesis: KinesisPart<'a>,
        #[serde(rename = "eventSource")]
        event_source: &'a str,
        #[serde(rename = "eventVersion")]
        event_version: &'a str,
        #[serde(rename = "eventID")]
        event_id: String,
        #[serde(rename = "eventName")]
        event_name: &'a str,
        #[serde(rename = "invokeIdentityArn")]
        invoke_identity_arn: &'a str,
        #[serde(rename = "awsRegion")]
        aws_region: &'a str,
        #[serde(rename = "eventSourceARN")]
        event_source_arn: &'a str,
    }

    /// The same record through serde_json, the way this module's output is defined.
    fn reference(record: &PolledRecord, id: &MappingIdentity) -> String {
        serde_json::to_string(&Reference {
            kinesis: KinesisPart {
                kinesis_schema_version: "1.0",
                partition_key: &record.partition_key,
                sequence_number: &record.sequence_number,
                sub_sequence_number: record.sub_sequence_number,
                data: STANDARD.encode(&record.data),
                approximate_arrival_timestamp: record.arrival_ms as f64 / 1000.0,
            },
            event_source: "aws:kinesis",
            event_version: "1.0",
            event_id: format!("{SHARD}:{}", record.sequence_number),
            event_name: "aws:kinesis:record",
            invoke_identity_arn: &id.role_arn,
            aws_region: &id.region,
            event_source_arn: &id.stream_arn,
        })
        .unwrap()
    }

    const SHARD: &str = "shardId-000000000003";

    fn identity() -> MappingIdentity {
        MappingIdentity {
            stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s\"q".into(),
            function_arn: "arn:aws:lambda:eu-west-1:123456789012:function:f".into(),
            role_arn: "arn:aws:iam::123456789012:role/f".into(),
            region: "eu-west-1".into(),
        }
    }

    proptest! {
        #[test]
        fn hand_written_json_matches_serde_byte_for_byte(
            key in "\\PC{0,20}|[\\x00-\\x1f\"\\\\/]{0,8}",
            data in proptest::collection::vec(any::<u8>(), 0..300),
            arrival_ms in prop_oneof![
                0i64..4_102_444_800_000,
                any::<i32>().prop_map(i64::from),
                any::<i64>(),
                (0i64..4_102_444_800).prop_map(|s| s * 1000),
            ],
            sub in proptest::option::of(any::<u64>()),
            log_sequence in any::<u64>(),
        ) {
            let record = PolledRecord {
                sequence_number: crate::stream::SequenceNumber::new(3, log_sequence),
                partition_key: key.into(),
                data: data.into(),
                arrival_ms,
                sub_sequence_number: sub,
            };
            let id = identity();
            let json = IdentityJson::new(&id);
            let mut out = String::new();
            json.write(&mut out, SHARD, &record);
            prop_assert_eq!(&out, &reference(&record, &id));
            prop_assert_eq!(json.record_len(SHARD, &record), out.len());
        }
    }
}
