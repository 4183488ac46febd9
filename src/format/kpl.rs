//! The KPL aggregated-record format: many user records packed into one Kinesis record.
//!
//! Layout: magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, and the 16-byte MD5 of the
//! protobuf bytes. De-aggregation follows the reference libraries exactly: anything that is
//! not a well-formed aggregate (too short, wrong magic, wrong digest, undecodable protobuf,
//! a key index outside its table) passes through whole as one plain record.

use md5::{Digest, Md5};
use prost::Message;

/// The four bytes every aggregated record starts with.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// Length of the MD5 trailer.
pub const KPL_DIGEST_LEN: usize = 16;

#[derive(Clone, PartialEq, Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<KplRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct KplRecord {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, Message)]
struct Tag {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// A user record to aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Its partition key.
    pub partition_key: String,
    /// Its explicit hash key (decimal), if any.
    pub explicit_hash_key: Option<String>,
    /// Its payload.
    pub data: Vec<u8>,
}

/// A record after de-aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeaggregatedRecord {
    /// The user record's partition key (the outer one for a pass-through).
    pub partition_key: String,
    /// The user record's explicit hash key, if it had one.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Vec<u8>,
    /// Position inside the aggregate; `None` for a pass-through record.
    pub sub_sequence_number: Option<u64>,
    /// Whether the record came out of an aggregate.
    pub aggregated: bool,
}

/// Encodes `records` as one aggregated record (magic, protobuf, MD5). Partition keys and
/// explicit hash keys are stored once each in their tables.
pub fn aggregate(records: &[UserRecord]) -> Vec<u8> {
    let mut message = AggregatedRecord::default();
    for record in records {
        let partition_key_index =
            table_index(&mut message.partition_key_table, &record.partition_key);
        let explicit_hash_key_index = record
            .explicit_hash_key
            .as_ref()
            .map(|key| table_index(&mut message.explicit_hash_key_table, key));
        message.records.push(KplRecord {
            partition_key_index,
            explicit_hash_key_index,
            data: record.data.clone(),
            tags: Vec::new(),
        });
    }
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(KPL_MAGIC.len() + body.len() + KPL_DIGEST_LEN);
    out.extend_from_slice(&KPL_MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

fn table_index(table: &mut Vec<String>, key: &str) -> u64 {
    match table.iter().position(|k| k == key) {
        Some(i) => i as u64,
        None => {
            table.push(key.to_string());
            (table.len() - 1) as u64
        }
    }
}

/// Exact size of the aggregate of `records`, without building it.
pub fn aggregated_len(records: &[UserRecord]) -> usize {
    // Building the message is cheap next to the I/O it sizes; exactness matters more.
    aggregate(records).len()
}

/// Expands one Kinesis record (its partition key, explicit hash key and data) into its user
/// records, or passes it through whole when it is not a well-formed aggregate.
pub fn deaggregate(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    data: &[u8],
) -> Vec<DeaggregatedRecord> {
    match try_deaggregate(data) {
        Some(records) => records,
        None => vec![DeaggregatedRecord {
            partition_key: partition_key.to_string(),
            explicit_hash_key: explicit_hash_key.map(str::to_string),
            data: data.to_vec(),
            sub_sequence_number: None,
            aggregated: false,
        }],
    }
}

fn try_deaggregate(data: &[u8]) -> Option<Vec<DeaggregatedRecord>> {
    let rest = data.strip_prefix(&KPL_MAGIC)?;
    if rest.len() <= KPL_DIGEST_LEN {
        return None;
    }
    let (body, digest) = rest.split_at(rest.len() - KPL_DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let message = AggregatedRecord::decode(body).ok()?;
    let mut out = Vec::with_capacity(message.records.len());
    for (i, record) in message.records.into_iter().enumerate() {
        let partition_key = message
            .partition_key_table
            .get(usize::try_from(record.partition_key_index).ok()?)?
            .clone();
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            Some(index) => Some(
                message
                    .explicit_hash_key_table
                    .get(usize::try_from(index).ok()?)?
                    .clone(),
            ),
        };
        out.push(DeaggregatedRecord {
            partition_key,
            explicit_hash_key,
            data: record.data,
            sub_sequence_number: Some(i as u64),
            aggregated: true,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user_record() -> impl Strategy<Value = UserRecord> {
        (
            "[a-z0-9ключ]{1,12}",
            proptest::option::of(any::<u128>().prop_map(|k| k.to_string())),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(partition_key, explicit_hash_key, data)| UserRecord {
                partition_key,
                explicit_hash_key,
                data,
            })
    }

    proptest! {
        #[test]
        fn aggregation_then_deaggregation_is_the_identity(records in proptest::collection::vec(user_record(), 1..40)) {
            let blob = aggregate(&records);
            prop_assert_eq!(aggregated_len(&records), blob.len());
            let out = deaggregate("outer", None, &blob);
            prop_assert_eq!(out.len(), records.len());
            for (i, (got, want)) in out.iter().zip(&records).enumerate() {
                prop_assert_eq!(&got.partition_key, &want.partition_key);
                prop_assert_eq!(&got.explicit_hash_key, &want.explicit_hash_key);
                prop_assert_eq!(&got.data, &want.data);
                prop_assert_eq!(got.sub_sequence_number, Some(i as u64));
                prop_assert!(got.aggregated);
            }
        }

        #[test]
        fn arbitrary_bytes_deaggregate_or_pass_through(data: Vec<u8>) {
            let out = deaggregate("pk", Some("1"), &data);
            if out.len() == 1 && !out[0].aggregated {
                prop_assert_eq!(&out[0].data, &data);
            }
        }
    }
}
