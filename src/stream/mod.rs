//! The Kinesis data plane over the storage core: a [`Store`] of named streams, each a set of
//! shards owning ranges of the 128-bit hash-key space, with Kinesis' names, limits, error
//! names and behaviour (`../shared/reference/esm-kinesis-semantics.md` part 1).

/// For a value type with `PartialEq<str>` (its text form), the comparisons with `&str` and
/// `String` on either side, all through that one.
macro_rules! compares_with_text {
    ($type:ty) => {
        impl PartialEq<&str> for $type {
            fn eq(&self, text: &&str) -> bool {
                *self == **text
            }
        }

        impl PartialEq<String> for $type {
            fn eq(&self, text: &String) -> bool {
                *self == *text.as_str()
            }
        }

        impl PartialEq<$type> for String {
            fn eq(&self, value: &$type) -> bool {
                *value == *self.as_str()
            }
        }

        impl PartialEq<$type> for &str {
            fn eq(&self, value: &$type) -> bool {
                *value == **self
            }
        }
    };
}

mod hash_key;
mod iterator;
mod manifest;
mod put;
mod read;
mod reshard;
mod sequence;
mod shard_id;
mod shard_log;
mod store;
#[allow(clippy::module_inception)]
mod stream;
mod throughput;
mod types;

pub use hash_key::{
    parse_hash_key, partition_key_hash, uniform_ranges, HashKeyRange, HASH_CACHE_KEY_BYTES_MAX,
    HASH_CACHE_SLOTS, HASH_CACHE_WAYS, HASH_KEY_MAX,
};
pub use iterator::ITERATOR_TTL_MS;
pub use manifest::{CompressionSetting, DurabilitySetting, MANIFEST_MAGIC, MANIFEST_VERSION};
pub use reshard::UpdateShardCountOutput;
pub use sequence::SequenceNumber;
pub use shard_id::ShardId;
pub use store::{validate_stream_name, Store, StoreOptions};
pub use stream::{FaultInjection, Stream, MANIFEST_FILE};
pub use throughput::ThroughputLimits;
pub use types::*;
