//! Producing into a stream: a retrying producer that re-puts only failed entries, with
//! exponential backoff and full jitter, and KPL aggregation of small records.

mod aggregator;
mod retry;

pub use aggregator::{
    hash_key_of, pack, Packed, AGGREGATE_PARTITION_KEY, AGGREGATION_BYTES_DEFAULT,
};
pub use retry::{Producer, ProducerConfig, ProducerReport, RecordOutcome, Sleeper};
