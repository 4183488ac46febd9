//! Packs user records into KPL aggregated records the way the KPL does: only records bound for
//! the same shard share an aggregate; an aggregate of one is sent as the plain record; an
//! aggregate of several goes out with partition key `"a"` and the first record's hash key as
//! its explicit hash key, so it routes where its first record would.

use crate::format::kpl::{aggregate, UserRecord, KPL_DIGEST_LEN, KPL_MAGIC};
use crate::format::varint::len_u64;
use crate::stream::{parse_hash_key, partition_key_hash, PutRecordsEntry};

/// KPL's default `AggregationMaxSize`: 51,200 bytes.
pub const AGGREGATION_BYTES_DEFAULT: usize = 51_200;
/// The outer partition key of a multi-record aggregate (one byte, as the KPL uses).
pub const AGGREGATE_PARTITION_KEY: &str = "a";

/// One Kinesis record to put and the user records it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The record to put.
    pub entry: PutRecordsEntry,
    /// Indices of the user records inside, in sub-sequence order.
    pub members: Vec<usize>,
    /// Whether `entry.data` is an aggregate (else it is the one member's own data).
    pub aggregated: bool,
}

/// The hash key a user record routes by.
pub fn hash_key_of(record: &UserRecord) -> u128 {
    record
        .explicit_hash_key
        .as_deref()
        .and_then(parse_hash_key)
        .unwrap_or_else(|| partition_key_hash(&record.partition_key))
}

fn field_len(len: usize) -> usize {
    1 + len_u64(len as u64) + len
}

/// An aggregate being filled, with its exact encoded size kept up to date.
struct Open {
    members: Vec<usize>,
    keys: Vec<String>,
    hash_keys: Vec<String>,
    len: usize,
}

impl Open {
    fn new() -> Self {
        Open {
            members: Vec::new(),
            keys: Vec::new(),
            hash_keys: Vec::new(),
            len: KPL_MAGIC.len() + KPL_DIGEST_LEN,
        }
    }

    /// The size after adding `record`, exactly as protobuf encodes it.
    fn len_with(&self, record: &UserRecord) -> usize {
        let mut len = self.len;
        let key_index = self.keys.iter().position(|k| *k == record.partition_key);
        if key_index.is_none() {
            len += field_len(record.partition_key.len());
        }
        let mut body = 1 + len_u64(key_index.unwrap_or(self.keys.len()) as u64);
        if let Some(ehk) = &record.explicit_hash_key {
            let index = self.hash_keys.iter().position(|k| k == ehk);
            if index.is_none() {
                len += field_len(ehk.len());
            }
            body += 1 + len_u64(index.unwrap_or(self.hash_keys.len()) as u64);
        }
        body += field_len(record.data.len());
        len + field_len(body)
    }

    fn push(&mut self, index: usize, record: &UserRecord) {
        self.len = self.len_with(record);
        if !self.keys.contains(&record.partition_key) {
            self.keys.push(record.partition_key.clone());
        }
        if let Some(ehk) = &record.explicit_hash_key {
            if !self.hash_keys.contains(ehk) {
                self.hash_keys.push(ehk.clone());
            }
        }
        self.members.push(index);
    }
}

/// Packs `records` into Kinesis records of at most `max_bytes` (data plus partition key),
/// grouping by `shard_of(hash key)`. Order within each shard is kept.
pub fn pack(
    records: &[UserRecord],
    max_bytes: usize,
    shard_of: impl Fn(u128) -> u32,
) -> Vec<Packed> {
    let mut open: std::collections::BTreeMap<u32, Open> = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let shard = shard_of(hash_key_of(record));
        let slot = open.entry(shard).or_insert_with(Open::new);
        if !slot.members.is_empty()
            && slot.len_with(record) + AGGREGATE_PARTITION_KEY.len() > max_bytes
        {
            let full = std::mem::replace(slot, Open::new());
            out.push(finish(full, records));
        }
        slot.push(index, record);
    }
    out.extend(
        open.into_values()
            .filter(|o| !o.members.is_empty())
            .map(|o| finish(o, records)),
    );
    out
}

fn finish(open: Open, records: &[UserRecord]) -> Packed {
    let members: Vec<&UserRecord> = open
        .members
        .iter()
        .filter_map(|&i| records.get(i))
        .collect();
    match members.as_slice() {
        [single] => Packed {
            entry: PutRecordsEntry {
                data: single.data.clone(),
                partition_key: single.partition_key.clone(),
                explicit_hash_key: single.explicit_hash_key.clone(),
            },
            members: open.members,
            aggregated: false,
        },
        many => {
            let owned: Vec<UserRecord> = many.iter().map(|r| (*r).clone()).collect();
            let first_hash = many.first().map(|r| hash_key_of(r)).unwrap_or_default();
            let data = aggregate(&owned);
            debug_assert_eq!(
                data.len(),
                open.len,
                "size bookkeeping matches the encoding"
            );
            Packed {
                entry: PutRecordsEntry {
                    data,
                    partition_key: AGGREGATE_PARTITION_KEY.to_string(),
                    explicit_hash_key: Some(first_hash.to_string()),
                },
                members: open.members,
                aggregated: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::kpl::deaggregate;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = UserRecord> {
        (
            "[a-c]{1,3}",
            proptest::option::of(0u128..5),
            proptest::collection::vec(any::<u8>(), 0..3000),
        )
            .prop_map(|(partition_key, ehk, data)| UserRecord {
                partition_key,
                explicit_hash_key: ehk.map(|k| k.to_string()),
                data,
            })
    }

    proptest! {
        #[test]
        fn packing_keeps_every_record_in_order_within_the_limit(records in proptest::collection::vec(record(), 1..60)) {
            let shard_of = |h: u128| (h % 3) as u32;
            let packed = pack(&records, 10_000, shard_of);
            let mut seen = Vec::new();
            for p in &packed {
                let shards: std::collections::BTreeSet<u32> = p.members.iter().map(|&i| shard_of(hash_key_of(&records[i]))).collect();
                prop_assert_eq!(shards.len(), 1, "one shard per aggregate");
                prop_assert_eq!(shard_of(hash_key_of(&UserRecord {
                    partition_key: p.entry.partition_key.clone(),
                    explicit_hash_key: p.entry.explicit_hash_key.clone(),
                    data: vec![],
                })), shard_of(hash_key_of(&records[p.members[0]])), "routes with its first record");
                if p.aggregated {
                    prop_assert!(p.entry.data.len() < 10_000);
                    let out = deaggregate(&p.entry.partition_key, None, &p.entry.data);
                    prop_assert_eq!(out.len(), p.members.len());
                    for (o, &i) in out.iter().zip(&p.members) {
                        prop_assert_eq!(&o.data, &records[i].data);
                        prop_assert_eq!(&o.partition_key, &records[i].partition_key);
                    }
                } else {
                    prop_assert_eq!(p.members.len(), 1);
                    prop_assert_eq!(&p.entry.data, &records[p.members[0]].data);
                }
                seen.extend(p.members.iter().copied());
            }
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..records.len()).collect::<Vec<_>>());
        }
    }
}
